//! cgroup v1: one directory per hierarchy, each controller's files in its own.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::fs::{read, write, Write};
use super::{v2, Cgroup, CgroupError, Result};

fn missing(controller: &str) -> CgroupError {
    CgroupError::Unsupported(format!(
        "the {controller} controller is not mounted on this host"
    ))
}

fn dir<'a>(cg: &'a Cgroup, controller: &str) -> Result<&'a Path> {
    cg.v1_dir(controller).ok_or_else(|| missing(controller))
}

/// The writes that apply `r` ([`super::resources::effective`]'s: only what was asked for),
/// every value checked before the first write is made.
pub fn plan(cg: &Cgroup, r: &LinuxResources) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if let Some(m) = r
        .memory()
        .as_ref()
        .filter(|m| **m != LinuxMemory::default())
    {
        plan_memory(dir(cg, "memory")?, m, &mut w)?;
    }
    if let Some(c) = r.cpu() {
        plan_cpu(cg, c, &mut w)?;
    }
    if let Some(p) = r.pids() {
        let v = match p.limit() {
            l if l < 0 => "max".to_string(),
            l => l.to_string(),
        };
        w.push(Write::new(dir(cg, "pids")?.join("pids.max"), v));
    }
    if let Some(b) = r
        .block_io()
        .as_ref()
        .filter(|b| **b != LinuxBlockIo::default())
    {
        plan_blkio(dir(cg, "blkio")?, b, &mut w);
    }
    plan_hugetlb_and_unified(cg, r, &mut w)?;
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            w.push(Write::new(
                dir(cg, "net_cls")?.join("net_cls.classid"),
                id.to_string(),
            ));
        }
        for p in n.priorities().iter().flatten() {
            w.push(Write::keyed(
                dir(cg, "net_prio")?.join("net_prio.ifpriomap"),
                p.name(),
                format!("{} {}", p.name(), p.priority()),
                format!("{} 0", p.name()),
            ));
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(missing("rdma"));
    }
    Ok(w)
}

/// The current value of a v1 byte limit (`-1` for the kernel's "unlimited", a huge number).
fn current_limit(path: &Path) -> Result<i64> {
    Ok(read(path)?
        .parse::<i64>()
        .ok()
        .filter(|v| *v < 1 << 62)
        .unwrap_or(-1))
}

/// memory.memsw.limit_in_bytes (memory + swap) may never be below memory.limit_in_bytes: which
/// of the two goes first depends on where the limits move (runc's order), and a value that
/// would break the rule with the other one's current value is refused up front.
fn plan_memory(d: &Path, m: &LinuxMemory, w: &mut Vec<Write>) -> Result<()> {
    let limit_file = d.join("memory.limit_in_bytes");
    let memsw = d.join("memory.memsw.limit_in_bytes");
    let has_memsw = memsw.exists();
    let limit = m.limit();
    // "Unlimited memory" with swap unset means unlimited swap too (runc).
    let swap = match (limit, m.swap()) {
        (Some(-1), None) if has_memsw => Some(-1),
        (_, swap) => swap,
    };
    if swap.is_some() && !has_memsw {
        return Err(CgroupError::Unsupported(
            "memory.swap: this kernel has no swap accounting (memory.memsw.limit_in_bytes)".into(),
        ));
    }
    let limit_write = |v: i64| Write::new(limit_file.clone(), v.to_string());
    let swap_write = |v: i64| Write::new(memsw.clone(), v.to_string());
    let above = |limit: i64, swap: i64| limit != -1 && swap != -1 && limit > swap;
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let current = current_limit(&limit_file)?;
            // Growing: memsw first; shrinking (or from unlimited): the limit first.
            if s == -1 || (current != -1 && current < s) {
                w.extend([swap_write(s), limit_write(l)]);
            } else {
                w.extend([limit_write(l), swap_write(s)]);
            }
        }
        (Some(l), None) => {
            if has_memsw {
                let s = current_limit(&memsw)?;
                if above(l, s) {
                    return Err(CgroupError::Invalid(format!(
                        "memory limit {l} is above the memory+swap limit {s}: set memory.swap too"
                    )));
                }
            }
            w.push(limit_write(l));
        }
        (None, Some(s)) => {
            let l = current_limit(&limit_file)?;
            if above(l, s) || (s != -1 && l == -1) {
                return Err(CgroupError::Invalid(format!(
                    "memory+swap limit ({s}) should be >= memory limit ({})",
                    if l == -1 {
                        "unlimited".into()
                    } else {
                        l.to_string()
                    }
                )));
            }
            w.push(swap_write(s));
        }
        (None, None) => {}
    }
    if let Some(v) = m.reservation() {
        w.push(Write::new(
            d.join("memory.soft_limit_in_bytes"),
            v.to_string(),
        ));
    }
    if let Some(s) = m.swappiness() {
        w.push(Write::new(d.join("memory.swappiness"), s.to_string()));
    }
    // As crun: only where this kernel still has TCP buffer accounting; nothing to fail on.
    let tcp = d.join("memory.kmem.tcp.limit_in_bytes");
    if let Some(v) = m.kernel_tcp().filter(|_| tcp.exists()) {
        w.push(Write::new(tcp, v.to_string()));
    }
    if m.disable_oom_killer() == Some(true) {
        // oom_control reads as `oom_kill_disable N` lines but takes a bare N.
        let file = d.join("memory.oom_control");
        let was = read(&file).unwrap_or_default();
        let undo = if was.contains("oom_kill_disable 1") {
            "1"
        } else {
            "0"
        };
        w.push(Write {
            undo: Some(undo.into()),
            ..Write::new(file, "1")
        });
    }
    Ok(())
}

fn plan_cpu(cg: &Cgroup, c: &LinuxCpu, w: &mut Vec<Write>) -> Result<()> {
    let files: [(&str, Option<String>); 7] = [
        ("cpu.shares", c.shares().map(|v| v.to_string())),
        ("cpu.cfs_period_us", c.period().map(|v| v.to_string())),
        ("cpu.cfs_quota_us", c.quota().map(|v| v.to_string())),
        ("cpu.cfs_burst_us", c.burst().map(|v| v.to_string())),
        (
            "cpu.rt_period_us",
            c.realtime_period().map(|v| v.to_string()),
        ),
        (
            "cpu.rt_runtime_us",
            c.realtime_runtime().map(|v| v.to_string()),
        ),
        ("cpu.idle", c.idle().map(|v| v.to_string())),
    ];
    if files.iter().any(|(_, v)| v.is_some()) {
        let d = dir(cg, "cpu")?;
        for (file, value) in files {
            if let Some(v) = value {
                w.push(Write {
                    // A shorter period may only fit the parent's limit with the new quota.
                    retry_last: file == "cpu.cfs_period_us" && c.quota().is_some(),
                    ..Write::new(d.join(file), v)
                });
            }
        }
    }
    for (file, value) in [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())] {
        if let Some(v) = value {
            w.push(Write::new(dir(cg, "cpuset")?.join(file), v.clone()));
        }
    }
    Ok(())
}

fn plan_blkio(d: &Path, b: &LinuxBlockIo, w: &mut Vec<Write>) {
    if let Some(v) = b.weight() {
        w.push(Write::new(d.join("blkio.weight"), v.to_string()));
    }
    if let Some(v) = b.leaf_weight() {
        w.push(Write::new(d.join("blkio.leaf_weight"), v.to_string()));
    }
    let device_line = |file: &str, key: String, value: String| {
        Write::keyed(
            d.join(file),
            &key,
            format!("{key} {value}"),
            format!("{key} 0"),
        )
    };
    for wd in b.weight_device().iter().flatten() {
        let key = format!("{}:{}", wd.major(), wd.minor());
        if let Some(v) = wd.weight() {
            w.push(device_line(
                "blkio.weight_device",
                key.clone(),
                v.to_string(),
            ));
        }
        if let Some(v) = wd.leaf_weight() {
            w.push(device_line("blkio.leaf_weight_device", key, v.to_string()));
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            let key = format!("{}:{}", t.major(), t.minor());
            w.push(device_line(file, key, t.rate().to_string()));
        }
    }
}

/// hugetlb may be a v1 controller or (on hybrid hosts like ours) live in the unified
/// hierarchy; the `unified` map needs the cgroup2 directory.
fn plan_hugetlb_and_unified(cg: &Cgroup, r: &LinuxResources, w: &mut Vec<Write>) -> Result<()> {
    for h in r.hugepage_limits().iter().flatten() {
        let file = match (cg.v1_dir("hugetlb"), &cg.v2) {
            (Some(d), _) => d.join(format!("hugetlb.{}.limit_in_bytes", h.page_size())),
            (None, Some(d)) => d.join(format!("hugetlb.{}.max", h.page_size())),
            (None, None) => return Err(missing("hugetlb")),
        };
        w.push(Write::new(file, h.limit().to_string()));
    }
    if let Some(map) = r.unified().as_ref().filter(|m| !m.is_empty()) {
        let d = cg.v2.as_deref().ok_or_else(|| {
            CgroupError::Unsupported("linux.resources.unified needs cgroup v2".into())
        })?;
        v2::plan_unified(d, map, w)?;
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpus/mems, and no task may join it then: copy
/// them down from the nearest ancestor that has them (runc does the same).
pub fn init_cpuset(mountpoint: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mountpoint) else {
        return Ok(());
    };
    let mut current = mountpoint.to_path_buf();
    for comp in rel.components() {
        let parent = current.clone();
        current.push(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if read(&current.join(file))?.is_empty() {
                let inherited = read(&parent.join(file))?;
                write(&current.join(file), &inherited)?;
            }
        }
    }
    Ok(())
}

pub fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let file = dir.join("freezer.state");
    // "FREEZING" is a transient state: re-write until the kernel reports it done.
    super::fs::wait_until(
        || format!("{} did not reach {want}", file.display()),
        || {
            write(&file, want)?;
            Ok(read(&file)? == want)
        },
    )
}

pub fn is_frozen(dir: &Path) -> bool {
    read(&dir.join("freezer.state")).is_ok_and(|s| s == "FROZEN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A v1 cgroup of plain files, with the values a new cgroup has.
    fn fake_cgroup(t: &Path) -> Cgroup {
        let mut cg = Cgroup::default();
        for (name, files) in [
            (
                "memory",
                &[
                    ("memory.limit_in_bytes", "9223372036854771712"),
                    ("memory.memsw.limit_in_bytes", "9223372036854771712"),
                ][..],
            ),
            (
                "cpu,cpuacct",
                &[("cpu.shares", "1024"), ("cpu.cfs_quota_us", "-1")][..],
            ),
            ("blkio", &[("blkio.weight", "500")][..]),
            ("pids", &[("pids.max", "max")][..]),
        ] {
            let d = t.join(name);
            std::fs::create_dir(&d).unwrap();
            for (f, v) in files {
                std::fs::write(d.join(f), v).unwrap();
            }
            cg.v1.insert(name.to_string(), d);
        }
        cg
    }

    fn resources(v: serde_json::Value) -> LinuxResources {
        super::super::resources::effective(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn dockers_unset_resources_write_nothing() {
        let t = tempfile::tempdir().unwrap();
        let cg = fake_cgroup(t.path());
        let docker = resources(json!({
            "memory": {"limit": 0, "reservation": 0, "swap": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0}, "pids": {"limit": 0}
        }));
        assert!(plan(&cg, &docker).unwrap().is_empty());
    }

    #[test]
    fn memory_and_swap_go_in_an_order_the_kernel_accepts() {
        let t = tempfile::tempdir().unwrap();
        let cg = fake_cgroup(t.path());
        let files = |r| -> Vec<String> {
            plan(&cg, &resources(r))
                .unwrap()
                .iter()
                .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        // From unlimited: the limit first, then memsw.
        assert_eq!(
            files(json!({"memory": {"limit": 1 << 20, "swap": 2 << 20}})),
            ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        );
        std::fs::write(t.path().join("memory/memory.limit_in_bytes"), "1048576").unwrap();
        // Growing past the current limit: memsw first.
        assert_eq!(
            files(json!({"memory": {"limit": 4 << 20, "swap": 8 << 20}})),
            ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
        );
        // Swap alone, below the current limit: refused before any write.
        assert!(plan(&cg, &resources(json!({"memory": {"swap": 1024}}))).is_err());
    }
}
