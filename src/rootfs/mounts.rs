//! One OCI `mounts[]` entry → mount(2) calls on a destination resolved inside the rootfs.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use super::resolve::{ensure_in_root, fd_path, resolve, show};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

/// Mount flags, propagation flags and fs-specific data parsed from `options`.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`: the bind covers submounts too.
    pub recursive: bool,
}

pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

pub fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        bind: false,
        recursive: false,
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            // Runtime-level or engine-level options with no mount(2) meaning.
            "tmpcopyup" | "defaults" | "remount" | "idmap" | "ridmap" => continue,
            other => {
                if let Some(p) = propagation_flag(other) {
                    o.propagation.push(p);
                } else if !other.starts_with("x-") {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
    }
    o
}

/// Mount one spec entry under `rootfs` (host path, before pivot_root).
pub fn mount_entry(
    rootfs: &Path,
    rootfd: impl AsFd,
    bundle: &Path,
    m: &Mount,
    own_cgroup: Option<&Cgroup>,
    idmapped: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
    let dest = m.destination().to_string_lossy().into_owned();
    let rel = resolve(rootfs, &dest)?;
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.bind { "bind" } else { "" });
    let is_bind = opts.bind || typ == "bind";

    if typ == "cgroup" || typ == "cgroup2" {
        return super::cgroupfs::mount_cgroupfs(rootfd.as_fd(), &rel, &opts, own_cgroup);
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
    let target = ensure_in_root(&rootfd, &rel, !source_is_dir)?;
    let target_path = fd_path(&target);
    let data = (!opts.data.is_empty()).then(|| opts.data.join(","));
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
            let covered = super::resolve::open_in_root(&rootfd, &rel, nix::fcntl::OFlag::O_PATH)?;
            let path = fd_path(&covered);
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | opts.flags;
            let remount = |flags| mount(None::<&str>, &path, None::<&str>, flags, None::<&str>);
            // EPERM: the source's flags are locked (in a user namespace); repeat them (runc too).
            match remount(flags) {
                Err(nix::errno::Errno::EPERM) => {
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
            Err(nix::errno::Errno::EPERM) if typ == "sysfs" => {
                mount(
                    Some("/sys"),
                    &target_path,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(fail)?;
                let bound = super::resolve::open_in_root(&rootfd, &rel, nix::fcntl::OFlag::O_PATH)?;
                let path = fd_path(&bound);
                let kept = super::paths::kept_flags(&path).map_err(fail)?;
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | opts.flags | kept;
                mount(None::<&str>, &path, None::<&str>, flags, None::<&str>).map_err(fail)?;
            }
            other => other.map_err(fail)?,
        }
    }
    if !opts.propagation.is_empty() {
        let mounted = super::resolve::open_in_root(&rootfd, &rel, nix::fcntl::OFlag::O_PATH)?;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> MountOptions {
        parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        let o = opts(&["rbind", "ro", "rw", "rprivate", "x-gvfs-hide"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(o.data.is_empty());
        assert_eq!(propagation_flag("bogus"), None);
    }
}
