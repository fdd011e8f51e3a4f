//! The restored container's device nodes are this node's, not the dumped node's. CRIU restores
//! `/dev` as it was dumped, so a GPU container restored elsewhere (or after the driver renumbered
//! its GPUs) would find `/dev/nvidia0` where this node's GPU of the same UUID is `/dev/nvidia3`,
//! and its device rules allow only the latter. While the restored tasks are still stopped (CRIU's
//! `post-restore`), every node the restore's spec lists is made again with this node's numbers
//! and the GPU nodes it does not list are removed.
//!
//! In a user namespace device nodes are bind mounts, which CRIU restores as external mounts
//! from the restore's spec: there is nothing to do here.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};
use oci_spec::runtime::Spec;

use super::super::mounts::clean;
use crate::error::{Error, Result};
use crate::rootfs::devices::{create_node, spec_node, Node};
use crate::rootfs::resolve::{open_in_root, resolve};

/// What to make in the restored container's `/dev`: the spec's devices.
pub struct Plan {
    nodes: Vec<Node>,
}

impl Plan {
    /// `None` when device nodes are binds (a user namespace) or the spec has none.
    pub fn new(spec: &Spec, userns: bool) -> Option<Plan> {
        let devices = spec.linux().as_ref()?.devices().as_ref()?;
        if userns || devices.is_empty() {
            return None;
        }
        Some(Plan {
            nodes: devices.iter().map(spec_node).collect(),
        })
    }

    /// Make the nodes in the root of the restored task `pid` (through `/proc/PID/root`, which
    /// resolves in its mount namespace) and drop the GPU nodes not asked for.
    pub fn apply(&self, pid: i32) -> Result<()> {
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let rootfd = open(
            &root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(Error::sys_path("open", &root))?;
        let wanted: Vec<String> = self.nodes.iter().map(|n| clean(&n.path)).collect();
        for dir in ["/dev", "/dev/nvidia-caps"] {
            remove_stale(&root, rootfd.as_fd(), dir, &wanted)?;
        }
        for node in &self.nodes {
            create_node(&root, rootfd.as_fd(), node)?;
        }
        Ok(())
    }
}

/// Remove `dir`'s GPU nodes (`nvidiaN`, `nvidia-capN`) that are not in `wanted`: they name
/// devices of the node the container was dumped on.
fn remove_stale(
    root: &Path,
    rootfd: std::os::fd::BorrowedFd<'_>,
    dir: &str,
    wanted: &[String],
) -> Result<()> {
    let rel = resolve(root, dir)?;
    let fd = match open_in_root(rootfd, &rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
        Ok(fd) => fd,
        // (no such dir: nothing to remove)
        Err(_) => return Ok(()),
    };
    let mut listing =
        nix::dir::Dir::from_fd(fd).map_err(Error::sys_path("opendir", root.join(&rel)))?;
    let names: Vec<String> = listing
        .iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type() == Some(nix::dir::Type::CharacterDevice))
        .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
        .filter(|n| is_gpu_node(n))
        .collect();
    for name in names {
        if wanted.contains(&format!("{dir}/{name}")) {
            continue;
        }
        unlinkat(listing.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir).map_err(|errno| {
            Error::SysPath {
                syscall: "unlink",
                path: format!("{dir}/{name}").into(),
                errno,
            }
        })?;
    }
    Ok(())
}

/// `nvidia0`, `nvidia-cap12`: one GPU's or one MIG capability's node (not `nvidiactl`,
/// `nvidia-uvm`, which every GPU container has).
fn is_gpu_node(name: &str) -> bool {
    ["nvidia", "nvidia-cap"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_per_gpu_nodes_are_stale_candidates() {
        for n in ["nvidia0", "nvidia12", "nvidia-cap3"] {
            assert!(is_gpu_node(n), "{n}");
        }
        for n in [
            "nvidiactl",
            "nvidia-uvm",
            "nvidia-modeset",
            "nvidia",
            "null",
        ] {
            assert!(!is_gpu_node(n), "{n}");
        }
        assert_eq!(
            clean("/dev//nvidia-caps/nvidia-cap3"),
            "/dev/nvidia-caps/nvidia-cap3"
        );
    }

    #[test]
    fn nothing_to_do_in_a_user_namespace_or_without_devices() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"devices": [{"path": "/dev/nvidia3", "type": "c", "major": 195, "minor": 3}]}
        }))
        .unwrap();
        assert!(Plan::new(&spec, true).is_none());
        assert_eq!(Plan::new(&spec, false).unwrap().nodes.len(), 1);
        let bare: Spec =
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2"})).unwrap();
        assert!(Plan::new(&bare, false).is_none());
    }
}
