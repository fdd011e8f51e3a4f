//! One OCI `mounts[]` entry → mount(2) calls on a destination resolved inside the rootfs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use oci_spec::runtime::Mount;

use super::resolve::{ensure_in_root, fd_path, mkdir_all_in_root, open_in_root, resolve, show};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

pub use super::options::{parse_options, propagation_flag, MountOptions, RecAttr};

/// Mount one spec entry under `rootfs` (host path, before pivot_root). `label`:
/// `linux.mountLabel`, the SELinux context of what a new filesystem holds (runc's choice of
/// filesystems: not proc, sysfs or cgroup; binds show their source's labels).
pub fn mount_entry(
    rootfs: &Path,
    rootfd: impl AsFd,
    bundle: &Path,
    m: &Mount,
    own_cgroup: Option<&Cgroup>,
    idmapped: Option<&OwnedFd>,
    label: Option<&str>,
) -> Result<()> {
    let dest = m.destination().to_string_lossy().into_owned();
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.bind { "bind" } else { "" });
    let is_bind = opts.bind || typ == "bind";

    let (rel, checked) = if typ == "proc" || typ == "sysfs" {
        let (rel, fd) = ordinary_dir(rootfd.as_fd(), rootfs, &dest, typ)?;
        (rel, Some(fd))
    } else {
        (resolve(rootfs, &dest)?, None)
    };
    if typ == "cgroup" || typ == "cgroup2" {
        super::cgroupfs::mount_cgroupfs(rootfd.as_fd(), &rel, &opts, own_cgroup)?;
        return set_rec_attr(rootfd.as_fd(), &rel, &opts.rec);
    }

    let source: Option<PathBuf> =
        m.source()
            .as_ref()
            .map(|s| if is_bind { bundle.join(s) } else { s.clone() });
    let source_is_dir = match (&source, is_bind) {
        (Some(src), true) => std::fs::metadata(src)
            .map_err(|e| Error::io("stat mount source", src, e))?
            .is_dir(),
        _ => true,
    };
    let target = match checked {
        Some(fd) => fd,
        None => ensure_in_root(&rootfd, &rel, !source_is_dir)?,
    };
    let target_path = fd_path(&target);
    let data = (!opts.data.is_empty()).then(|| opts.data.join(","));
    // mqueue takes no context= option: its root gets the label as a file (below).
    let context = label.filter(|_| !matches!(typ, "proc" | "sysfs" | "mqueue"));
    let data = crate::lsm::selinux::with_context(data.as_deref(), context);
    let fail = |e| Error::SysPath {
        syscall: "mount",
        path: show(&rel).into(),
        errno: e,
    };

    if is_bind {
        let mut flags = MsFlags::MS_BIND;
        flags.set(MsFlags::MS_REC, opts.recursive);
        match idmapped {
            Some(tree) => super::idmap::attach(tree, &target),
            None => mount(
                source.as_deref(),
                &target_path,
                None::<&str>,
                flags,
                None::<&str>,
            ),
        }
        .map_err(fail)?;
        // Flags such as ro/nosuid only take effect on a bind mount through a remount of the new
        // mount (reopen the target: the fd above still points at the covered inode).
        if !opts.flags.is_empty() {
            let covered = open_in_root(&rootfd, &rel, OFlag::O_PATH)?;
            let path = fd_path(&covered);
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | opts.flags;
            let remount = |flags| mount(None::<&str>, &path, None::<&str>, flags, None::<&str>);
            // EPERM: the source's flags are locked (in a user namespace); repeat them (runc too).
            match remount(flags) {
                Err(Errno::EPERM) => {
                    remount(flags | super::paths::kept_flags(&path).map_err(fail)?)
                }
                other => other,
            }
            .map_err(fail)?;
        }
    } else {
        match mount(
            source.as_deref(),
            &target_path,
            Some(typ),
            opts.flags,
            data.as_deref(),
        ) {
            // A user namespace without a network namespace of its own may not mount sysfs:
            // the host's /sys, bound recursively, is what runc gives it then.
            Err(Errno::EPERM) if typ == "sysfs" => {
                mount(
                    Some("/sys"),
                    &target_path,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(fail)?;
                let bound = open_in_root(&rootfd, &rel, OFlag::O_PATH)?;
                let path = fd_path(&bound);
                let kept = super::paths::kept_flags(&path).map_err(fail)?;
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | opts.flags | kept;
                mount(None::<&str>, &path, None::<&str>, flags, None::<&str>).map_err(fail)?;
            }
            other => other.map_err(fail)?,
        }
        if let (Some(label), "mqueue") = (label, typ) {
            let mounted = open_in_root(&rootfd, &rel, OFlag::O_PATH)?;
            crate::lsm::selinux::set_file_label(&fd_path(&mounted), label)?;
        }
    }
    if !opts.propagation.is_empty() {
        let mounted = open_in_root(&rootfd, &rel, OFlag::O_PATH)?;
        for p in &opts.propagation {
            mount(
                None::<&str>,
                &fd_path(&mounted),
                None::<&str>,
                *p,
                None::<&str>,
            )
            .map_err(fail)?;
        }
    }
    set_rec_attr(rootfd.as_fd(), &rel, &opts.rec)
}

/// Apply the recursive options (`rro`, `rnosuid`, …) to the mount now at `rel` and every mount
/// below it, as runc 1.2+ does. A plain `ro` on an `rbind` leaves the submounts writable.
fn set_rec_attr(rootfd: BorrowedFd<'_>, rel: &Path, rec: &RecAttr) -> Result<()> {
    if rec.names.is_empty() {
        return Ok(());
    }
    let mounted = open_in_root(rootfd, rel, OFlag::O_PATH)?;
    crate::sys::mount_setattr(mounted.as_fd(), true, rec.set, rec.clr).map_err(|errno| {
        let names = rec.names.join(",");
        match errno {
            Errno::ENOSYS => Error::Unsupported(format!(
                "mount option {names} on {}: this kernel has no mount_setattr(2) (Linux 5.12+)",
                show(rel)
            )),
            errno => Error::SysPath {
                syscall: "mount_setattr",
                path: format!("{} ({names})", show(rel)).into(),
                errno,
            },
        }
    })
}

/// proc and sysfs go on an ordinary directory only: with a symlink there (`/proc -> /x`) they
/// would land wherever it points (CVE-2019-19921). runc's check and wording. The parent
/// resolves as any destination's does; the last component is created if missing and opened
/// without following it, so a symlink swapped in later is refused too.
fn ordinary_dir(
    rootfd: BorrowedFd<'_>,
    rootfs: &Path,
    dest: &str,
    typ: &str,
) -> Result<(PathBuf, OwnedFd)> {
    let path = Path::new(dest);
    let (Some(parent), Some(Component::Normal(leaf))) =
        (path.parent(), path.components().next_back())
    else {
        // `/` or a path ending in `..`: no last component of its own to check.
        let rel = resolve(rootfs, dest)?;
        let fd = ensure_in_root(rootfd, &rel, false)?;
        return Ok((rel, fd));
    };
    let parent_rel = resolve(rootfs, &parent.to_string_lossy())?;
    let rel = parent_rel.join(leaf);
    let dir = mkdir_all_in_root(rootfd, &parent_rel, 0o755)?;
    let refuse = || {
        Error::Unsupported(format!(
            "filesystem {typ:?} must be mounted on ordinary directory"
        ))
    };
    match fstatat(&dir, leaf, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR => {
            return Err(refuse())
        }
        Ok(_) => {}
        Err(Errno::ENOENT) => match mkdirat(&dir, leaf, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys_path("mkdir", show(&rel))(e)),
        },
        Err(e) => return Err(Error::sys_path("stat", show(&rel))(e)),
    }
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(&dir, leaf, flags, Mode::empty()) {
        Ok(fd) => Ok((rel, fd)),
        Err(Errno::ENOTDIR | Errno::ELOOP) => Err(refuse()),
        Err(e) => Err(Error::sys_path("open", show(&rel))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn proc_and_sysfs_need_an_ordinary_directory() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("tmp")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("/tmp", r.join("proc")).unwrap();
        symlink("tmp", r.join("sys")).unwrap();
        symlink("usr", r.join("u")).unwrap();
        std::fs::write(r.join("file"), "").unwrap();
        let root = nix::fcntl::open(r, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let check = |dest| ordinary_dir(root.as_fd(), r, dest, "proc").map(|(rel, _)| rel);
        for dest in ["/proc", "/sys/", "sys/.", "/file", "/u/../proc"] {
            let err = check(dest).unwrap_err().to_string();
            assert_eq!(
                err, "filesystem \"proc\" must be mounted on ordinary directory",
                "{dest}"
            );
        }
        // Links above the last component resolve inside the rootfs; missing ones are made.
        assert_eq!(check("/u/lib").unwrap(), PathBuf::from("usr/lib"));
        assert_eq!(check("/u/new/proc").unwrap(), PathBuf::from("usr/new/proc"));
        assert!(r.join("usr/new/proc").is_dir());
        assert_eq!(check("/").unwrap(), PathBuf::new());
    }
}
