//! cgroup v1: one directory per hierarchy, each controller's files in its own.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxResources};

use super::fs::{read, write};
use super::{v2, Cgroup, CgroupError, Result};

fn missing(controller: &str) -> CgroupError {
    CgroupError::Unsupported(format!(
        "the {controller} controller is not mounted on this host"
    ))
}

fn dir<'a>(cg: &'a Cgroup, controller: &str) -> Result<&'a Path> {
    cg.v1_dir(controller).ok_or_else(|| missing(controller))
}

/// v1 takes -1 for "no limit"; any other negative value is passed on for the kernel to
/// refuse (with an error naming the file), as runc does.
pub fn limit_value(v: i64) -> String {
    v.to_string()
}

pub fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        let d = dir(cg, "memory")?;
        if let Some(v) = m.reservation() {
            write(&d.join("memory.soft_limit_in_bytes"), &limit_value(v))?;
        }
        match (m.limit(), m.swap()) {
            (limit, Some(swap)) => {
                let memsw = d.join("memory.memsw.limit_in_bytes");
                if !memsw.exists() {
                    return Err(CgroupError::Unsupported("memory.swap: this kernel has no swap accounting (memory.memsw.limit_in_bytes)".into()));
                }
                // memsw must stay ≥ the memory limit at every step: which goes first depends
                // on whether the limits grow or shrink.
                let limit = limit.map(limit_value);
                let write_limit = || {
                    limit
                        .as_ref()
                        .map_or(Ok(()), |l| write(&d.join("memory.limit_in_bytes"), l))
                };
                if write(&memsw, &limit_value(swap)).is_ok() {
                    write_limit()?;
                } else {
                    write_limit()?;
                    write(&memsw, &limit_value(swap))?;
                }
            }
            (Some(limit), None) => write(&d.join("memory.limit_in_bytes"), &limit_value(limit))?,
            (None, None) => {}
        }
        if let Some(s) = m.swappiness() {
            write(&d.join("memory.swappiness"), &s.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(&d.join("memory.oom_control"), "1")?;
        }
    }
    if let Some(c) = r.cpu() {
        let needs_cpu = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.burst().is_some()
            || c.idle().is_some();
        if needs_cpu {
            let d = dir(cg, "cpu")?;
            let files: [(&str, Option<String>); 7] = [
                ("cpu.shares", c.shares().map(|v| v.to_string())),
                ("cpu.cfs_period_us", c.period().map(|v| v.to_string())),
                ("cpu.cfs_quota_us", c.quota().map(limit_value)),
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
            for (file, value) in files {
                if let Some(v) = value {
                    write(&d.join(file), &v)?;
                }
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let d = dir(cg, "cpuset")?;
            if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                write(&d.join("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                write(&d.join("cpuset.mems"), mems)?;
            }
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() <= 0 {
            "max".to_string()
        } else {
            p.limit().to_string()
        };
        write(&dir(cg, "pids")?.join("pids.max"), &v)?;
    }
    if let Some(b) = r.block_io() {
        apply_blkio(dir(cg, "blkio")?, b)?;
    }
    apply_hugetlb_and_unified(cg, r)?;
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            write(
                &dir(cg, "net_cls")?.join("net_cls.classid"),
                &id.to_string(),
            )?;
        }
        for p in n.priorities().iter().flatten() {
            write(
                &dir(cg, "net_prio")?.join("net_prio.ifpriomap"),
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(missing("rdma"));
    }
    Ok(())
}

fn apply_blkio(d: &Path, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = b.weight() {
        write(&d.join("blkio.weight"), &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        write(&d.join("blkio.leaf_weight"), &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            write(
                &d.join("blkio.weight_device"),
                &format!("{}:{} {w}", wd.major(), wd.minor()),
            )?;
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
            write(
                &d.join(file),
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// hugetlb may be a v1 controller or (on hybrid hosts like ours) live in the unified
/// hierarchy; the `unified` map needs the cgroup2 directory.
fn apply_hugetlb_and_unified(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    for h in r.hugepage_limits().iter().flatten() {
        match (cg.v1_dir("hugetlb"), &cg.v2) {
            (Some(d), _) => write(
                &d.join(format!("hugetlb.{}.limit_in_bytes", h.page_size())),
                &h.limit().to_string(),
            )?,
            (None, Some(d)) => write(
                &d.join(format!("hugetlb.{}.max", h.page_size())),
                &h.limit().to_string(),
            )?,
            (None, None) => return Err(missing("hugetlb")),
        }
    }
    if let Some(map) = r.unified().as_ref().filter(|m| !m.is_empty()) {
        let d = cg.v2.as_deref().ok_or_else(|| {
            CgroupError::Unsupported("linux.resources.unified needs cgroup v2".into())
        })?;
        v2::apply_unified(d, map)?;
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
