//! The GPU part of `events` and `ps`: a container's GPUs read through the `gpurun-nvml`
//! helper, only for a container that has an nvidiaN node in its /dev, so that any other
//! container pays one readdir and no exec.

use crate::error::Result;
use crate::gpu::usage::{self, GpuReading};
use crate::state::State;

/// The container's processes (host pids): its cgroup's, or for a rootless container
/// without a cgroup, the init's tree (as `ps` finds them).
pub fn container_pids(state: &State) -> Vec<i32> {
    if state.cgroup.procs_files().next().is_none()
        && crate::process::pidinfo::is_alive(state.pid, state.pid_start_time)
    {
        return crate::rootless::process_tree(state.pid);
    }
    state.cgroup.pids()
}

/// The GPUs the container was given (/dev/nvidiaN minors); empty for a non-GPU container.
pub fn minors(state: &State) -> Vec<u32> {
    if !crate::process::pidinfo::is_alive(state.pid, state.pid_start_time) {
        return Vec::new();
    }
    usage::container_minors(state.pid)
}

/// The helper's readings of `minors`; nothing is loaded or run when there are none.
pub fn readings(minors: &[u32]) -> Result<Vec<GpuReading>> {
    if minors.is_empty() {
        return Ok(Vec::new());
    }
    let cfg = crate::gpu::Config::load()?;
    Ok(usage::query(&cfg.nvml_library, minors)?)
}

/// Add `"gpu"` to a stats document for a GPU container (`minors` not empty).
pub fn add(stats: &mut serde_json::Value, state: &State, minors: &[u32]) -> Result<()> {
    if minors.is_empty() {
        return Ok(());
    }
    let pids = container_pids(state);
    let gpus: Vec<_> = readings(minors)?
        .iter()
        .map(|r| usage::container_stats(r, &pids))
        .collect();
    if let Some(map) = stats.as_object_mut() {
        map.insert(
            "gpu".into(),
            serde_json::to_value(gpus).expect("gpu stats serialise"),
        );
    }
    Ok(())
}
