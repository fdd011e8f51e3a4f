//! The `cgroup` mount type: what the container sees at `/sys/fs/cgroup`.
//!
//! On a pure cgroup v2 host that is one cgroup2 mount. On v1 and hybrid hosts (like ours) it is,
//! as runc builds it, a tmpfs with one subdirectory per host hierarchy, each a fresh mount of
//! that hierarchy. Mounted from inside the container's cgroup namespace, every hierarchy is
//! rooted at the container's own cgroup.

use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use super::mounts::MountOptions;
use super::resolve::{ensure_in_root, fd_path, open_in_root, show};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

use crate::cgroups::ROOT as CGROUP_ROOT;

pub fn is_unified_host() -> bool {
    nix::sys::statfs::statfs(CGROUP_ROOT)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Mount the container's cgroup filesystem(s) on `rel`, a directory inside the rootfs.
///
/// With a cgroup namespace of its own, fresh cgroup mounts are rooted at the container's
/// cgroup. Without one (what containerd and Podman send on v1 hosts), a fresh mount would show
/// the whole host hierarchy, so — as runc does — the container's own directory of each
/// hierarchy (`own`) is bind-mounted instead.
pub fn mount_cgroupfs(
    rootfd: BorrowedFd<'_>,
    rel: &Path,
    opts: &MountOptions,
    own: Option<&Cgroup>,
) -> Result<()> {
    let shown = show(rel);
    let fail = |errno| Error::SysPath {
        syscall: "mount cgroup",
        path: shown.clone().into(),
        errno,
    };
    let flags = opts.flags;
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let covered = ensure_in_root(rootfd, rel, false)?;
    if is_unified_host() {
        let covered_path = fd_path(&covered);
        let existing; // keeps the fd behind a /proc/self/fd source open until the bind
        let bind_source = match own.and_then(|cg| cg.v2.as_deref()) {
            Some(dir) => dir.to_path_buf(),
            None => match mount(
                Some("cgroup2"),
                &covered_path,
                Some("cgroup2"),
                flags,
                None::<&str>,
            ) {
                Ok(()) => return Ok(()),
                // This cgroup2 is mounted here already (a spec with the mount twice, as
                // `ctr run --mount type=cgroup` makes it): stack a bind of it instead.
                Err(Errno::EBUSY) => {
                    existing = open_in_root(rootfd, rel, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
                    fd_path(&existing)
                }
                Err(e) => return Err(fail(e)),
            },
        };
        mount(
            Some(&bind_source),
            &covered_path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(fail)?;
        // The flags go on the new mount: reach it through a fresh fd (`covered` still names
        // the directory under it, which is no mount's root).
        let top = open_in_root(rootfd, rel, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        return remount_bind(&fd_path(&top), flags | base).map_err(fail);
    }
    // Build the tree writable, then apply the requested flags (usually ro) at the end.
    mount(
        Some("tmpfs"),
        &fd_path(&covered),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(fail)?;
    // The fd above still names the covered directory: reopen to reach the new tmpfs.
    let tmpfs = open_in_root(rootfd, rel, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let target = fd_path(&tmpfs);
    let target = target.as_path();
    for h in crate::cgroups::hierarchies() {
        let dir = target.join(&h.name);
        let host_dir = own.and_then(|cg| {
            if h.v2 {
                cg.v2.as_deref()
            } else {
                cg.v1.get(&h.name).map(|p| p.as_path())
            }
        });
        if own.is_some() && host_dir.is_none() {
            continue;
        }
        nix::unistd::mkdir(&dir, Mode::from_bits_truncate(0o755)).map_err(fail)?;
        match host_dir {
            Some(host_dir) => bind(host_dir, &dir, flags | base).map_err(fail)?,
            None => {
                let data = (!h.mount_data.is_empty()).then_some(h.mount_data.as_str());
                let fstype = if h.v2 { "cgroup2" } else { "cgroup" };
                mount(Some("cgroup"), &dir, Some(fstype), flags | base, data).map_err(fail)?;
            }
        }
        // Co-mounted controllers are also reachable by each name, as on the host.
        if h.name.contains(',') {
            for part in h.name.split(',') {
                let _ = std::os::unix::fs::symlink(&h.name, target.join(part));
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let remount = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base;
        mount(
            None::<&str>,
            target,
            None::<&str>,
            remount,
            Some("mode=755"),
        )
        .map_err(fail)?;
    }
    Ok(())
}

/// Bind `source` on `target`, then apply `flags` (a bind mount takes them only on remount).
fn bind(source: &Path, target: &Path, flags: MsFlags) -> nix::Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    remount_bind(target, flags)
}

/// Apply `flags` to the bind mount at `target`, keeping the flags it must keep.
fn remount_bind(target: &Path, flags: MsFlags) -> nix::Result<()> {
    let flags = flags | super::paths::kept_flags(target)?;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )
}
