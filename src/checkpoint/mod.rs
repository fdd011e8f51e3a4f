//! `checkpoint` and `restore`: a running container to CRIU images and back, runc's way. The
//! container's bind mounts are external to CRIU (re-bound from the bundle at restore), its
//! stdio is recorded in `descriptors.json` and handed back at restore, cgroups are created by
//! gpurun and given to CRIU, hooks run from CRIU's notifications, and CUDA processes are
//! brought to a checkpointable state first (`cuda.rs`).

pub mod args;
mod cuda;
mod descriptors;
mod dump;
mod mounts;
mod options;
mod restore;

use crate::error::Result;
use std::path::Path;

/// `gpurun checkpoint`.
pub fn checkpoint(root: &Path, args: &args::CheckpointArgs) -> Result<()> {
    dump::checkpoint(root, args)
}

/// `gpurun restore`: returns the exit code (the restored container's, without --detach).
pub fn restore(root: &Path, args: &args::RestoreArgs, systemd_cgroup: bool) -> Result<i32> {
    restore::restore(root, args, systemd_cgroup)
}
