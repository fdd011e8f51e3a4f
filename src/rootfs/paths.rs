//! Steps that run after pivot_root, on the container's own `/`: masked and read-only paths,
//! a read-only root, sysctls. Every target is opened first (inside the root, without following
//! magic links) and mounted through its fd, so only the intended inode is affected.

use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, major, minor, Mode, SFlag};
use nix::sys::statvfs::{statvfs, FsFlags};

use super::resolve::{fd_path, open_in_root};
use crate::error::{Error, Result};

fn open_target(path: &str) -> Result<Option<std::os::fd::OwnedFd>> {
    let root = open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::sys_path("open", "/"))?;
    match open_in_root(
        &root,
        Path::new(path.trim_start_matches('/')),
        OFlag::O_PATH,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(crate::rootfs::resolve::ResolveError::Sys {
            errno: nix::errno::Errno::ENOENT,
            ..
        }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Hide `path`: an empty read-only tmpfs over directories (labelled `label`, see
/// `mounts::mount_entry`), /dev/null over anything else.
pub fn mask(path: &str, label: Option<&str>) -> Result<()> {
    let Some(target) = open_target(path)? else {
        return Ok(());
    };
    let fail = |errno| Error::SysPath {
        syscall: "mask",
        path: path.into(),
        errno,
    };
    let st = fstat(&target).map_err(fail)?;
    if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() {
        return mount(
            Some("tmpfs"),
            &fd_path(&target),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            crate::lsm::selinux::with_context(None, label).as_deref(),
        )
        .map_err(fail);
    }
    // The source must really be the null device: a rootfs could have planted a symlink at
    // /dev/null pointing at something we would otherwise expose.
    let null = open(
        "/dev/null",
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    let ns = fstat(&null).map_err(fail)?;
    if ns.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFCHR.bits()
        || major(ns.st_rdev) != 1
        || minor(ns.st_rdev) != 3
    {
        return Err(Error::Unsupported(format!(
            "cannot mask {path}: /dev/null in the container is not the null device"
        )));
    }
    mount(
        Some(&fd_path(&null)),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(fail)
}

/// Make `path` read-only: bind it onto itself, then remount that bind read-only.
pub fn make_readonly(path: &str) -> Result<()> {
    let Some(target) = open_target(path)? else {
        return Ok(());
    };
    let fail = |errno| Error::SysPath {
        syscall: "readonly",
        path: path.into(),
        errno,
    };
    let p = fd_path(&target);
    mount(
        Some(&p),
        &p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(fail)?;
    let Some(bound) = open_target(path)? else {
        return Ok(());
    };
    remount_readonly(&fd_path(&bound)).map_err(fail)
}

/// Remount a mount read-only, keeping the flags it already has (the kernel refuses to clear
/// locked flags such as nosuid on a remount).
pub fn remount_readonly(path: &Path) -> nix::Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    let flags = flags | kept_flags(path)?;
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// The flags of the mount at `path` that a bind remount must repeat: the kernel refuses to
/// clear nosuid/nodev/noexec/atime flags that are locked (every mount inherited into a user
/// namespace's mount namespace), and they are what the user had anyway.
pub fn kept_flags(path: &Path) -> nix::Result<MsFlags> {
    let current = statvfs(path)?.flags();
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(fs) {
            flags |= ms;
        }
    }
    Ok(flags)
}

/// Write one `linux.sysctl` entry (key validated in spec::validate).
pub fn set_sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| Error::io("write sysctl", path, e))
}
