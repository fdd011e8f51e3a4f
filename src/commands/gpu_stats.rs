//! The GPU part of `events` and `ps`: a container's GPUs read through the `gpurun-nvml`
//! helper, only for a container that has an nvidiaN node in its /dev, so that any other
//! container pays one readdir and no exec.
//!
//! The GPU readings are an extra: when the GPU config or the helper fails (NVML cannot load,
//! a transient NVML error), `events` keeps its cgroup stats without `"gpu"` and `ps` shows
//! `?`, after one warning.

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

/// The helper's readings of `minors` (nothing is loaded or run when there are none), or
/// `None` when they cannot be had. The first failure is warned about on stderr (the caller's:
/// `events` and `ps` start no container) and in the --log file; `warned` keeps a stream
/// from repeating it every interval.
pub fn readings(minors: &[u32], warned: &mut bool) -> Option<Vec<GpuReading>> {
    if minors.is_empty() {
        return Some(Vec::new());
    }
    let got = crate::gpu::Config::load().and_then(|cfg| usage::query(&cfg.nvml_library, minors));
    match got {
        Ok(r) => Some(r),
        Err(e) => {
            if !std::mem::replace(warned, true) {
                let msg = format!("gpu usage left out: {e}");
                eprintln!("gpurun: warning: {msg}");
                crate::logging::warn(&msg);
            }
            None
        }
    }
}

/// Add `"gpu"` to a stats document for a GPU container (`minors` not empty) whose GPUs
/// could be read.
pub fn add(stats: &mut serde_json::Value, state: &State, minors: &[u32], warned: &mut bool) {
    if minors.is_empty() {
        return;
    }
    let Some(readings) = readings(minors, warned) else {
        return;
    };
    let pids = container_pids(state);
    let gpus: Vec<_> = readings
        .iter()
        .map(|r| usage::container_stats(r, &pids))
        .collect();
    if let Some(map) = stats.as_object_mut() {
        map.insert(
            "gpu".into(),
            serde_json::to_value(gpus).expect("gpu stats serialise"),
        );
    }
}

/// Where `ps`'s GPU column goes in `header`: before a trailing free-text command column
/// (CMD, COMMAND, ARGS: it holds spaces, a column after it could not be told apart), as the
/// index of that field; `None`: appended.
pub fn gpu_column_at(header: &str) -> Option<usize> {
    let fields: Vec<&str> = header.split_whitespace().collect();
    let last = fields.last()?;
    matches!(*last, "CMD" | "COMMAND" | "ARGS").then_some(fields.len() - 1)
}

/// `line` with `gpu` added as ps's GPU column: before field `col` (see [`gpu_column_at`]),
/// padded to `width`, or at the end.
pub fn with_gpu_column(line: &str, col: Option<usize>, gpu: &str, width: usize) -> String {
    let at = col.and_then(|c| fields(line).nth(c)).map(|(at, _)| at);
    match at {
        Some(at) => format!("{}{gpu:<width$} {}", &line[..at], &line[at..]),
        None => format!("{line} {gpu}"),
    }
}

/// The whitespace-separated fields of `line` with their byte offsets.
fn fields(line: &str) -> impl Iterator<Item = (usize, &str)> {
    line.split_whitespace()
        .map(move |f| (f.as_ptr() as usize - line.as_ptr() as usize, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_ps_gpu_column_before_the_command() {
        let h = "UID          PID    PPID  C STIME TTY          TIME CMD";
        let col = gpu_column_at(h);
        assert_eq!(col, Some(7));
        assert_eq!(
            with_gpu_column(h, col, "GPU", 3),
            "UID          PID    PPID  C STIME TTY          TIME GPU CMD"
        );
        let l = "root        42       1  0 10:00 ?        00:00:00 sleep 3600 --x y";
        assert_eq!(
            with_gpu_column(l, col, "0,1", 3),
            "root        42       1  0 10:00 ?        00:00:00 0,1 sleep 3600 --x y"
        );
        assert_eq!(
            with_gpu_column(l, col, "-", 3),
            "root        42       1  0 10:00 ?        00:00:00 -   sleep 3600 --x y"
        );
        // `ps aux` ends with COMMAND; `-o args` with ARGS where ps names it so.
        assert_eq!(gpu_column_at("USER PID %CPU COMMAND"), Some(3));
        assert!(gpu_column_at("PID ARGS").is_some());
        // No command column last (`-o pid,stat`): appended.
        assert_eq!(gpu_column_at("  PID STAT"), None);
        assert_eq!(
            with_gpu_column("  PID STAT", None, "GPU", 3),
            "  PID STAT GPU"
        );
        assert_eq!(with_gpu_column("   42 S", None, "?", 3), "   42 S ?");
        // A row without its command field (none seen, but never panics): appended.
        assert_eq!(with_gpu_column("1 2", Some(5), "-", 3), "1 2 -");
    }
}
