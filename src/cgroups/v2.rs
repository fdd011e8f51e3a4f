//! cgroup v2: one directory; limits converted from the OCI (v1-shaped) values the way runc
//! converts them, so the same config means the same thing on either host.

use std::collections::HashMap;
use std::path::{Component, Path};

use oci_spec::runtime::{LinuxBlockIo, LinuxResources};

use super::fs::{read, write, Write};
use super::{CgroupError, Result};

/// Enable every available controller on the way from the hierarchy root down to `dir`'s
/// parent, so `dir` gets the controller files.
pub fn enable_controllers(mountpoint: &Path, dir: &Path) -> Result<()> {
    let available = read(&mountpoint.join("cgroup.controllers"))?;
    let Ok(rel) = dir.strip_prefix(mountpoint) else {
        return Ok(());
    };
    let mut current = mountpoint.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for comp in &comps {
        let control = current.join("cgroup.subtree_control");
        let enabled = read(&control).unwrap_or_default();
        let missing: Vec<&str> = available
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        // A cgroup below the root that holds processes must get no controllers: the kernel
        // refuses domain ones ("no internal processes") but accepts threaded ones (pids,
        // cpuset), which would make it a thread root and every new child "domain invalid",
        // unable to hold a process (clone3 into it fails with EOPNOTSUPP).
        if !missing.is_empty() && current != mountpoint && has_processes(&current) {
            break;
        }
        for c in missing {
            // A controller the kernel refuses here shows up as a missing file when a limit
            // needs it.
            let _ = write(&control, &format!("+{c}"));
        }
        current.push(comp);
    }
    Ok(())
}

fn has_processes(dir: &Path) -> bool {
    read(&dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
}

/// runc's cpu.shares (2…262144) → cpu.weight (1…10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        0
    } else {
        1 + (shares.saturating_sub(2) * 9999) / 262_142
    }
}

/// runc's blkio weight (10…1000) → io.weight (1…10000).
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        0
    } else {
        1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
    }
}

/// OCI memory.swap is memory+swap (v1 memsw); cgroup v2 limits swap alone.
pub fn swap_max(swap: i64, limit: Option<i64>) -> Result<Option<String>> {
    let limit = limit.unwrap_or(0);
    if swap == -1 || (limit == -1 && swap == 0) {
        return Ok(Some("max".into()));
    }
    if swap == 0 {
        return Ok(None);
    }
    if limit <= 0 {
        return Err(CgroupError::Invalid(
            "memory.swap needs a memory.limit".into(),
        ));
    }
    if swap < limit {
        return Err(CgroupError::Invalid(format!(
            "memory.swap ({swap}) must be >= memory.limit ({limit})"
        )));
    }
    Ok(Some((swap - limit).to_string()))
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// The writes that apply `r` ([`super::resources::effective`]'s: only what was asked for),
/// every value checked before the first write is made. Values that come in pairs take the
/// other half from the cgroup when it is not given (`update` changes only what it is given).
pub fn plan(d: &Path, r: &LinuxResources) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if let Some(m) = r.memory() {
        let swap = match (m.swap(), m.limit()) {
            (Some(swap), Some(limit)) => swap_max(swap, Some(limit))?,
            (Some(swap), None) => swap_max(swap, Some(current_max(&d.join("memory.max"))?))?,
            // Unlimited memory with swap unset: unlimited swap too (runc).
            (None, Some(-1)) if d.join("memory.swap.max").exists() => Some("max".into()),
            (None, _) => None,
        };
        if let Some(v) = swap {
            w.push(Write::new(d.join("memory.swap.max"), v));
        }
        if let Some(v) = m.limit() {
            w.push(Write::new(d.join("memory.max"), max_or(v)));
        }
        if let Some(v) = m.reservation() {
            w.push(Write::new(d.join("memory.low"), max_or(v)));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares() {
            let weight = shares_to_weight(shares);
            w.push(Write::new(d.join("cpu.weight"), weight.to_string()));
        }
        if c.quota().is_some() || c.period().is_some() {
            w.push(Write::new(
                d.join("cpu.max"),
                cpu_max(d, c.quota(), c.period())?,
            ));
        }
        if let Some(b) = c.burst() {
            w.push(Write::new(d.join("cpu.max.burst"), b.to_string()));
        }
        if let Some(i) = c.idle() {
            w.push(Write::new(d.join("cpu.idle"), i.to_string()));
        }
        for (file, value) in [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())] {
            if let Some(v) = value {
                w.push(Write::new(d.join(file), v.clone()));
            }
        }
    }
    if let Some(p) = r.pids() {
        w.push(Write::new(d.join("pids.max"), max_or(p.limit())));
    }
    if let Some(b) = r.block_io() {
        plan_io(d, b, &mut w);
    }
    for h in r.hugepage_limits().iter().flatten() {
        let file = d.join(format!("hugetlb.{}.max", h.page_size()));
        w.push(Write::new(file, h.limit().to_string()));
    }
    if let Some(map) = r.unified().as_ref().filter(|m| !m.is_empty()) {
        plan_unified(d, map, &mut w)?;
    }
    Ok(w)
}

/// memory.max as a number (-1: `max`).
fn current_max(file: &Path) -> Result<i64> {
    Ok(read(file)?.parse().unwrap_or(-1))
}

/// `cpu.max` is "QUOTA PERIOD" in one file: a period alone keeps the current quota, a quota
/// alone keeps the current period (the kernel does, when the period is left out).
fn cpu_max(d: &Path, quota: Option<i64>, period: Option<u64>) -> Result<String> {
    let quota = match quota {
        Some(q) => max_or(q),
        None => read(&d.join("cpu.max"))?
            .split_whitespace()
            .next()
            .unwrap_or("max")
            .to_string(),
    };
    Ok(match period {
        Some(p) => format!("{quota} {p}"),
        None => quota,
    })
}

fn plan_io(d: &Path, b: &LinuxBlockIo, w: &mut Vec<Write>) {
    let file = d.join("io.weight");
    let line = |key: String, value: String| {
        Write::keyed(
            file.clone(),
            &key,
            format!("{key} {value}"),
            format!("{key} default"),
        )
    };
    if let Some(v) = b.weight().map(blkio_to_io_weight) {
        w.push(Write::keyed(
            file.clone(),
            "default",
            format!("default {v}"),
            "default 100".into(),
        ));
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(v) = wd.weight().map(blkio_to_io_weight) {
            w.push(line(
                format!("{}:{}", wd.major(), wd.minor()),
                v.to_string(),
            ));
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (limit, list) in throttles {
        for t in list.iter().flatten() {
            let key = format!("{}:{}", t.major(), t.minor());
            w.push(Write::keyed(
                d.join("io.max"),
                &key,
                format!("{key} {limit}={}", t.rate()),
                format!("{key} rbps=max wbps=max riops=max wiops=max"),
            ));
        }
    }
}

/// The `unified` map: arbitrary `file: value` pairs, each a plain file of this cgroup.
pub fn plan_unified(d: &Path, map: &HashMap<String, String>, w: &mut Vec<Write>) -> Result<()> {
    let mut keys: Vec<_> = map.keys().collect();
    keys.sort();
    for key in keys {
        let mut comps = Path::new(key).components();
        let plain = matches!(
            (comps.next(), comps.next()),
            (Some(Component::Normal(_)), None)
        );
        if !plain
            || key.starts_with('.')
            || key.starts_with("cgroup.procs")
            || key.starts_with("cgroup.threads")
        {
            return Err(CgroupError::Invalid(format!(
                "unified key {key:?} must name a file of the container's cgroup"
            )));
        }
        w.push(Write::new(d.join(key), map[key].clone()));
    }
    Ok(())
}

pub fn set_frozen(d: &Path, frozen: bool) -> Result<()> {
    write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
    // The freeze completes asynchronously; cgroup.events reports "frozen 1" when it has.
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    super::fs::wait_until(
        || format!("{} did not report {want}", d.display()),
        || Ok(read(&d.join("cgroup.events"))?.lines().any(|l| l == want)),
    )
}

pub fn is_frozen(d: &Path) -> bool {
    read(&d.join("cgroup.freeze")).is_ok_and(|s| s == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(swap_max(-1, Some(100)).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_max(300, Some(100)).unwrap().as_deref(), Some("200"));
        assert_eq!(swap_max(0, Some(100)).unwrap(), None);
        assert!(swap_max(50, Some(100)).is_err());
        assert!(swap_max(50, None).is_err());
    }

    #[test]
    fn writes_into_a_fake_cgroupfs() {
        let t = tempfile::tempdir().unwrap();
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 20},
            "unified": {"memory.high": "50000000"}
        }))
        .unwrap();
        std::fs::write(t.path().join("cpu.max"), "max 100000").unwrap();
        let writes = plan(t.path(), &super::super::resources::effective(&r)).unwrap();
        super::super::fs::apply_writes(writes, false).unwrap();
        let get = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap();
        assert_eq!(get("memory.max"), "67108864");
        assert_eq!(get("memory.swap.max"), "67108864");
        assert_eq!(get("cpu.weight"), "39");
        assert_eq!(get("cpu.max"), "50000 100000");
        assert_eq!(get("cpuset.cpus"), "0");
        assert_eq!(get("pids.max"), "20");
        assert_eq!(get("memory.high"), "50000000");
        let escape: HashMap<String, String> = [("../x".to_string(), "1".to_string())].into();
        assert!(plan_unified(t.path(), &escape, &mut Vec::new()).is_err());
    }
}
