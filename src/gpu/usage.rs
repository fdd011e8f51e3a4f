//! Per-container GPU usage: which GPUs a container was given (the nvidiaN nodes in its own
//! /dev), the `gpurun-nvml --usage` helper's readings of them ([`super::usage_query`]), and
//! those readings cut down to the container's own processes for `events` and `ps`.
//!
//! NVML reports host pids, and the helper runs on the host: the readings are matched against
//! the cgroup's host pids, whatever pid namespace the container has.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::GpuError;

/// The major of /dev/nvidiaN (fixed by the driver; uvm and caps majors are dynamic).
pub const NVIDIA_MAJOR: u64 = 195;

/// One GPU as the helper reads it: the whole device, every process on it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GpuReading {
    pub index: u32,
    pub minor: u32,
    pub uuid: String,
    pub name: String,
    /// Degrees C; `None` where the GPU cannot say.
    pub temperature: Option<u32>,
    /// mW; `None` where the board does not report power.
    pub power_draw: Option<u32>,
    pub memory_total: u64,
    pub memory_used: u64,
    pub util_gpu: Option<u32>,
    pub util_memory: Option<u32>,
    pub processes: Vec<ProcReading>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcKind {
    Compute,
    Graphics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcReading {
    pub pid: u32,
    pub used_memory: u64,
    pub kind: ProcKind,
}

/// A process utilisation sample: SM and memory-controller percent over the sample period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub pid: u32,
    pub sm: u32,
    pub mem: u32,
    /// CPU time of the sample, µs.
    pub timestamp: u64,
}

/// `events` stats: one GPU seen from one container (camelCase, as runc's stats).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuStats {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_draw: Option<u32>,
    pub memory: Memory,
    pub utilization: Utilization,
    pub processes: Vec<ProcStats>,
    pub used_memory: u64,
    pub sm: u32,
    pub mem: u32,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub total: u64,
    pub used: u64,
}

#[derive(Debug, Serialize)]
pub struct Utilization {
    pub gpu: u32,
    pub memory: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcStats {
    pub pid: u32,
    pub used_memory: u64,
    #[serde(rename = "type")]
    pub kind: ProcKind,
    pub sm: u32,
    pub mem: u32,
}

/// The minors of the `nvidiaN` character devices (major 195) in `dev`, sorted.
pub fn minors_in(dev: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("nvidia")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| {
            // symlink_metadata: a node, never what a link in the container points at.
            let md = e.path().symlink_metadata().ok()?;
            let (major, minor) = split_dev(md.rdev());
            (md.file_type().is_char_device() && major == NVIDIA_MAJOR).then_some(minor as u32)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The GPUs in the container's own /dev, seen through its init: this works whichever way
/// the nodes got there (NVIDIA_VISIBLE_DEVICES, CDI, a hook) and needs no saved state.
pub fn container_minors(init_pid: i32) -> Vec<u32> {
    minors_in(&PathBuf::from(format!("/proc/{init_pid}/root/dev")))
}

/// Linux's dev_t encoding (glibc's major()/minor()).
fn split_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// Run `gpurun-nvml --usage LIBRARY MINOR...` and read its answer.
pub fn query(library: &str, minors: &[u32]) -> Result<Vec<GpuReading>, GpuError> {
    let minors: Vec<String> = minors.iter().map(u32::to_string).collect();
    let mut args = vec!["--usage", library];
    args.extend(minors.iter().map(String::as_str));
    super::nvml::ask_helper(&args)
}

/// Each pid's newest sample: NVML hands back every buffered sample, and summing them all
/// would count a busy process several times.
fn latest_samples(samples: &[Sample]) -> BTreeMap<u32, &Sample> {
    let mut by_pid: BTreeMap<u32, &Sample> = BTreeMap::new();
    for s in samples {
        let e = by_pid.entry(s.pid).or_insert(s);
        if s.timestamp > e.timestamp {
            *e = s;
        }
    }
    by_pid
}

/// `r` seen from a container whose (host) pids are `pids`: the whole GPU's readings, and
/// the processes, memory and utilisation of the container's own processes only.
pub fn container_stats(r: &GpuReading, pids: &[i32]) -> GpuStats {
    let ours = |pid: u32| pids.iter().any(|&p| p >= 0 && p as u32 == pid);
    let samples = latest_samples(&r.samples);
    let processes: Vec<ProcStats> = r
        .processes
        .iter()
        .filter(|p| ours(p.pid))
        .map(|p| {
            let s = samples.get(&p.pid);
            ProcStats {
                pid: p.pid,
                used_memory: p.used_memory,
                kind: p.kind,
                sm: s.map_or(0, |s| s.sm),
                mem: s.map_or(0, |s| s.mem),
            }
        })
        .collect();
    // A pid with both a compute and a graphics context has one sample: count it once.
    let sampled = samples.values().filter(|s| ours(s.pid));
    let (sm, mem) = sampled.fold((0, 0), |(sm, mem), s| (sm + s.sm, mem + s.mem));
    GpuStats {
        index: r.index,
        uuid: r.uuid.clone(),
        name: r.name.clone(),
        temperature: r.temperature,
        power_draw: r.power_draw,
        memory: Memory {
            total: r.memory_total,
            used: r.memory_used,
        },
        utilization: Utilization {
            gpu: r.util_gpu.unwrap_or(0),
            memory: r.util_memory.unwrap_or(0),
        },
        used_memory: processes.iter().map(|p| p.used_memory).sum(),
        processes,
        sm,
        mem,
    }
}

/// For `ps`: the indices of the GPUs where `pid` holds a context, `0,1`, or `-`.
pub fn pid_gpus(readings: &[GpuReading], pid: i32) -> String {
    let on: Vec<String> = readings
        .iter()
        .filter(|r| r.processes.iter().any(|p| pid >= 0 && p.pid == pid as u32))
        .map(|r| r.index.to_string())
        .collect();
    match on.is_empty() {
        true => "-".into(),
        false => on.join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, used_memory: u64, kind: ProcKind) -> ProcReading {
        ProcReading {
            pid,
            used_memory,
            kind,
        }
    }

    fn sample(pid: u32, sm: u32, mem: u32, timestamp: u64) -> Sample {
        Sample {
            pid,
            sm,
            mem,
            timestamp,
        }
    }

    fn reading() -> GpuReading {
        GpuReading {
            index: 1,
            minor: 0,
            uuid: "GPU-1".into(),
            name: "H100".into(),
            temperature: Some(41),
            power_draw: None,
            memory_total: 80 << 30,
            memory_used: 7 << 30,
            util_gpu: Some(90),
            util_memory: Some(40),
            processes: vec![
                proc(100, 1 << 30, ProcKind::Compute),
                proc(101, 2 << 30, ProcKind::Compute),
                proc(101, 0, ProcKind::Graphics),
                proc(200, 4 << 30, ProcKind::Compute), // another container's
            ],
            samples: vec![
                sample(100, 10, 5, 1),
                sample(100, 30, 6, 3), // newer: wins
                sample(101, 20, 2, 2),
                sample(200, 50, 50, 3),
                sample(102, 7, 1, 3), // ours, sampled, context gone since
            ],
        }
    }

    #[test]
    fn only_the_containers_pids_count() {
        let s = container_stats(&reading(), &[1, 100, 101, 102]);
        let pids: Vec<u32> = s.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [100, 101, 101]);
        assert_eq!(s.used_memory, 3 << 30);
        assert_eq!((s.sm, s.mem), (30 + 20 + 7, 6 + 2 + 1));
        assert_eq!((s.processes[0].sm, s.processes[0].mem), (30, 6));
        assert_eq!(s.memory.used, 7 << 30, "the whole GPU's");
        let none = container_stats(&reading(), &[5]);
        assert!(none.processes.is_empty());
        assert_eq!((none.used_memory, none.sm, none.mem), (0, 0, 0));
    }

    #[test]
    fn json_shape() {
        let v = serde_json::to_value(container_stats(&reading(), &[101])).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "index",
            "uuid",
            "name",
            "temperature",
            "memory",
            "utilization",
            "processes",
            "usedMemory",
            "sm",
            "mem",
        ];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys, want,
            "powerDraw left out when the board has none: {v}"
        );
        assert_eq!(
            v["memory"],
            serde_json::json!({"total": 80u64 << 30, "used": 7u64 << 30})
        );
        assert_eq!(
            v["utilization"],
            serde_json::json!({"gpu": 90, "memory": 40})
        );
        assert_eq!(
            v["processes"][1],
            serde_json::json!({"pid": 101, "usedMemory": 0, "type": "graphics", "sm": 20, "mem": 2})
        );
        let mut r = reading();
        r.power_draw = Some(350_000);
        let v = serde_json::to_value(container_stats(&r, &[])).unwrap();
        assert_eq!(v["powerDraw"], 350_000);
    }

    #[test]
    fn ps_column() {
        let mut other = reading();
        other.index = 0;
        other.processes = vec![proc(101, 1, ProcKind::Compute)];
        let rs = [other, reading()];
        assert_eq!(pid_gpus(&rs, 101), "0,1");
        assert_eq!(pid_gpus(&rs, 100), "1");
        assert_eq!(pid_gpus(&rs, 7), "-");
    }

    #[test]
    fn dev_numbers_and_nodes() {
        // makedev(195, 3) and a large minor, as glibc encodes them.
        assert_eq!(split_dev((195 << 8) | 3), (195, 3));
        assert_eq!(
            split_dev((0x1234 << 12 & !0xfffff) | (195 << 8) | 0x34),
            (195, 0x1234)
        );
        let dir = std::env::temp_dir().join(format!("gpurun-usage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Not char devices, and a name that is not nvidiaN: nothing.
        std::fs::write(dir.join("nvidia0"), "").unwrap();
        std::fs::write(dir.join("nvidiactl"), "").unwrap();
        assert!(minors_in(&dir).is_empty());
        assert!(minors_in(Path::new("/nonexistent")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
