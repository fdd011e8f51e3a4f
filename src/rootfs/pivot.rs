//! Switching the process' root to the prepared rootfs.

use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use crate::error::{Error, Result};

/// `pivot_root(".", ".")`: stacks the old root on top of the new one, then detaches it — no
/// temporary directory inside the rootfs is needed (runc's recipe).
pub fn pivot(rootfs: &Path) -> Result<()> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old_root = open("/", flags, Mode::empty()).map_err(Error::sys_path("open", "/"))?;
    let new_root = open(rootfs, flags, Mode::empty()).map_err(Error::sys_path("open", rootfs))?;
    fchdir(&new_root).map_err(Error::sys_path("fchdir", rootfs))?;
    pivot_root(".", ".").map_err(Error::sys_path("pivot_root", rootfs))?;
    // We are now in the old root, stacked on the new one. Make sure nothing we unmount
    // propagates to the host, then lazily detach it.
    fchdir(&old_root).map_err(Error::sys("fchdir old root"))?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(Error::sys("make old root rslave"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(Error::sys("umount old root"))?;
    chdir("/").map_err(Error::sys_path("chdir", "/"))
}

/// `--no-pivot`: move the rootfs mount over `/` and chroot into it (for ramfs roots, where
/// pivot_root is impossible). Weaker: the old root stays reachable to a process that escapes
/// the chroot.
pub fn move_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).map_err(Error::sys_path("chdir", rootfs))?;
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(Error::sys_path("move mount", rootfs))?;
    chroot(".").map_err(Error::sys_path("chroot", rootfs))?;
    chdir("/").map_err(Error::sys_path("chdir", "/"))
}

/// A container without a mount namespace of its own: chroot into the rootfs, nothing mounted
/// (a mount would land in the runtime's namespace, the host's). Only as strong as a chroot:
/// the host's mounts stay reachable to a process that escapes it.
pub fn chroot_into(rootfs: &Path) -> Result<()> {
    chdir(rootfs).map_err(Error::sys_path("chdir", rootfs))?;
    chroot(".").map_err(Error::sys_path("chroot", rootfs))?;
    chdir("/").map_err(Error::sys_path("chdir", "/"))
}
