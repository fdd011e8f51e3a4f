//! A rootfs a restore gets may be fresh — Podman's `container restore --import` makes a new one
//! from the image and the exported changes — so the mountpoints the first `create` made in it
//! can be missing, and CRIU fails on a mount it cannot place. As runc does before a restore,
//! they are made again: a bind's as a file or a directory like its source, any other's as a
//! directory. Mounts below another mount are left alone: their mountpoint is in that mount (a
//! tmpfs CRIU restores, a kernel filesystem, a bind's host directory), not in the rootfs.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Mount, Spec};

use super::super::mounts::{clean, is_bind};
use crate::error::{Error, Result};
use crate::rootfs::resolve::{ensure_in_root, resolve};

/// Make the mountpoints of `spec`'s top-level mounts that `rootfs` lacks.
pub fn prepare(spec: &Spec, rootfs: &Path) -> Result<()> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let todo = top_level(mounts);
    if todo.is_empty() {
        return Ok(());
    }
    let rootfd = open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::sys_path("open", rootfs))?;
    for m in todo {
        let dest = m.destination().to_string_lossy();
        let rel = resolve(rootfs, &dest)?;
        if rel.as_os_str().is_empty() {
            continue; // a mount over / itself
        }
        ensure_in_root(rootfd.as_fd(), &rel, is_file_bind(m))?;
    }
    Ok(())
}

/// The mounts whose destination is below no other mount's (cgroup mounts go with /sys).
fn top_level(mounts: &[Mount]) -> Vec<&Mount> {
    let dests: Vec<PathBuf> = mounts
        .iter()
        .map(|m| PathBuf::from(clean(&m.destination().to_string_lossy())))
        .collect();
    mounts
        .iter()
        .zip(&dests)
        .filter(|(m, d)| {
            m.typ().as_deref() != Some("cgroup")
                && m.typ().as_deref() != Some("cgroup2")
                && !dests.iter().any(|o| o != *d && d.starts_with(o))
        })
        .map(|(m, _)| m)
        .collect()
}

/// A bind of anything but a directory covers a file.
fn is_file_bind(m: &Mount) -> bool {
    is_bind(m)
        && m.source()
            .as_ref()
            .and_then(|s| std::fs::metadata(s).ok())
            .is_some_and(|md| !md.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mountpoints_in_the_rootfs_itself() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
                {"destination": "/etc//hosts", "type": "bind", "source": "/etc/hostname"},
                {"destination": "/data", "source": "/tmp", "options": ["rbind"]},
                {"destination": "/data/inner", "source": "/tmp", "options": ["rbind"]},
            ]
        }))
        .unwrap();
        let mounts = spec.mounts().as_deref().unwrap();
        let top: Vec<String> = top_level(mounts)
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(top, ["/proc", "/dev", "/sys", "/etc//hosts", "/data"]);
        assert!(is_file_bind(&mounts[5]) && !is_file_bind(&mounts[6]));
        assert!(!is_file_bind(&mounts[0]));

        let rootfs = std::env::temp_dir().join(format!("gpurun-mp-{}", std::process::id()));
        std::fs::create_dir_all(&rootfs).unwrap();
        prepare(&spec, &rootfs).unwrap();
        assert!(rootfs.join("etc/hosts").is_file());
        assert!(rootfs.join("data").is_dir() && rootfs.join("proc").is_dir());
        assert!(!rootfs.join("data/inner").exists() && !rootfs.join("dev/pts").exists());
        std::fs::remove_dir_all(&rootfs).unwrap();
    }
}
