//! BPF device programs (`BPF_PROG_TYPE_CGROUP_DEVICE`): on a cgroup v2 host the runtime loads
//! one per container and attaches it to the container's cgroup; it must be unloaded once the
//! container is deleted (the kernel frees it with the cgroup unless someone holds an fd on it
//! or pinned it).

use crate::sys;
use std::collections::BTreeSet;
use std::path::PathBuf;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn is_cgroup2(dir: &std::path::Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    sys::fs_type(&c).is_ok_and(|t| t == CGROUP2_SUPER_MAGIC)
}

/// Ids of the device programs attached to those of `dirs` that are cgroup v2 dirs.
pub fn attached_device_progs(dirs: &[PathBuf]) -> Vec<u32> {
    let mut ids = Vec::new();
    for d in dirs.iter().filter(|d| is_cgroup2(d)) {
        let Ok(f) = std::fs::File::open(d) else {
            continue;
        };
        for id in sys::bpf_prog_query(&f, sys::BPF_CGROUP_DEVICE).unwrap_or_default() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Those of `ids` still loaded. Program ids are allocated cyclically over 2^31, so an id is
/// not reused by another program within a test run.
pub fn still_loaded(ids: &[u32]) -> Vec<u32> {
    ids.iter()
        .copied()
        .filter(|id| matches!(sys::bpf_prog_type(*id), Ok(Some(_))))
        .collect()
}

/// Every loaded device program; None where programs cannot be listed (not root, no bpf(2)).
pub fn device_progs() -> Option<BTreeSet<u32>> {
    let ids = sys::bpf_prog_ids().ok()?;
    Some(
        ids.into_iter()
            .filter(|id| {
                matches!(sys::bpf_prog_type(*id), Ok(Some(t)) if t == sys::BPF_PROG_TYPE_CGROUP_DEVICE)
            })
            .collect(),
    )
}
