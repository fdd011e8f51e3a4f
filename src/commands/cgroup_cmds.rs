//! Verbs that work on a container's cgroup: update, pause, resume, ps, events.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde_json::json;

use super::gpu_stats;
use crate::cgroups::stats;
use crate::cli::{PsArgs, UpdateArgs};
use crate::container;
use crate::error::{Error, Result};
use crate::state::Status;

/// `update`: new limits from `--resources FILE|-` (LinuxResources JSON, what containerd's
/// shim sends) or from runc's individual flags.
pub fn update(root: &Path, args: &UpdateArgs) -> Result<i32> {
    let (_dir, state, status) = container::load(root, &args.id)?;
    if status == Status::Stopped {
        return Err(Error::NotRunning);
    }
    let resources = match &args.resources {
        Some(src) => read_resources(src)?,
        None => resources_from_flags(args)?,
    };
    // containerd's CRI sends every resource, the unchanged device rules too: nothing to do then.
    let rules = resources
        .devices()
        .as_deref()
        .filter(|d| !d.is_empty())
        .filter(|d| crate::cgroups::devices::from_spec(d) != state.cgroup.device_rules);
    if rules.is_some() && state.cgroup.unified_host {
        return Err(Error::Unsupported(
            "update: changing device rules on cgroup v2 is not supported".into(),
        ));
    }
    state.cgroup.update_unit(&resources)?;
    state.cgroup.apply(&resources, true)?;
    if let Some(rules) = rules {
        crate::cgroups::devices::apply(&state.cgroup, rules, &[])?;
    }
    Ok(0)
}

fn read_resources(src: &Path) -> Result<LinuxResources> {
    let mut text = String::new();
    if src == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("read", "stdin", e))?;
    } else {
        text = std::fs::read_to_string(src).map_err(|e| Error::io("read", src, e))?;
    }
    serde_json::from_str(&text)
        .map_err(|e| Error::Unsupported(format!("update: invalid resources JSON: {e}")))
}

fn resources_from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    let bytes = |v: &Option<String>, flag: &str| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| {
                parse_bytes(s).ok_or_else(|| {
                    Error::Unsupported(format!("update: invalid value {s:?} for --{flag}"))
                })
            })
            .transpose()
    };
    let mut r = json!({});
    let memory = json!({
        "limit": bytes(&a.memory, "memory")?,
        "reservation": bytes(&a.memory_reservation, "memory-reservation")?,
        "swap": bytes(&a.memory_swap, "memory-swap")?,
    });
    r["memory"] = memory;
    r["cpu"] = json!({
        "shares": a.cpu_shares, "quota": a.cpu_quota, "period": a.cpu_period,
        "realtimePeriod": a.cpu_rt_period, "realtimeRuntime": a.cpu_rt_runtime,
        "cpus": a.cpuset_cpus, "mems": a.cpuset_mems,
    });
    if let Some(limit) = a.pids_limit {
        r["pids"] = json!({ "limit": limit });
    }
    if let Some(w) = a.blkio_weight {
        r["blockIO"] = json!({ "weight": w });
    }
    strip_nulls(&mut r);
    serde_json::from_value(r).map_err(|e| Error::Unsupported(format!("update: {e}")))
}

fn strip_nulls(v: &mut serde_json::Value) {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
        map.retain(|_, v| !v.as_object().is_some_and(|m| m.is_empty()));
    }
}

/// `128M`, `1g`, `512k`, `1048576`, `-1` → bytes (binary multiples, as runc/docker read them).
pub fn parse_bytes(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "-1" {
        return Some(-1);
    }
    let lower = s.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let mult: i64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    Some((n * mult as f64) as i64)
}

pub fn pause(root: &Path, id: &str) -> Result<i32> {
    container::pause(root, id).map(|()| 0)
}

pub fn resume(root: &Path, id: &str) -> Result<i32> {
    container::resume(root, id).map(|()| 0)
}

/// `ps`: the container's processes — a JSON array of host pids, or `ps`'s own table (run with
/// the given options, `-ef` by default) filtered to them, as runc does.
pub fn ps(root: &Path, args: &PsArgs) -> Result<i32> {
    let (_dir, state, _status) = container::load(root, &args.id)?;
    let pids = gpu_stats::container_pids(&state);
    if args.format == crate::cli::ListFormat::Json {
        println!("{}", serde_json::to_string(&pids).expect("pids serialise"));
        return Ok(0);
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(|e| Error::io("run", "ps", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Unsupported("ps: no PID column in ps output".into()))?;
    let rows: Vec<(&str, i32)> = lines
        .filter_map(|line| {
            let p = line.split_whitespace().nth(pid_col)?.parse::<i32>().ok()?;
            pids.contains(&p).then_some((line, p))
        })
        .collect();
    // A GPU container's table gains a GPU column: where each process holds a context, `?`
    // for each when the GPUs cannot be read (the process list is still worth having).
    let minors = gpu_stats::minors(&state);
    if minors.is_empty() {
        println!("{header}");
        rows.iter().for_each(|(line, _)| println!("{line}"));
        return Ok(0);
    }
    let gpus = gpu_stats::readings(&minors, &mut false);
    let cells: Vec<String> = rows
        .iter()
        .map(|&(_, p)| {
            gpus.as_deref()
                .map_or_else(|| "?".into(), |g| crate::gpu::usage::pid_gpus(g, p))
        })
        .collect();
    let width = cells.iter().map(String::len).fold("GPU".len(), usize::max);
    let col = gpu_stats::gpu_column_at(header);
    let row = |line: &str, cell: &str| gpu_stats::with_gpu_column(line, col, cell, width);
    println!("{}", row(header, "GPU"));
    for ((line, _), cell) in rows.iter().zip(&cells) {
        println!("{}", row(line, cell));
    }
    Ok(0)
}

/// `events`: with `--stats` one stats document; otherwise a stats document every interval and
/// an `oom` event whenever the kernel's OOM killer strikes, until the container stops.
pub fn events(root: &Path, id: &str, stats_once: bool, interval: Duration) -> Result<i32> {
    let (dir, state, status) = container::load(root, id)?;
    if status == Status::Stopped {
        return Err(Error::EventsNotRunning(id.into()));
    }
    let emit = |kind: &str, data: serde_json::Value| {
        println!("{}", json!({"type": kind, "id": id, "data": data}));
    };
    // A GPU reading that fails costs the "gpu" key (warned once), never the cgroup stats
    // nor the stream.
    let minors = gpu_stats::minors(&state);
    let mut warned = false;
    let mut stats = || {
        let mut data = stats::stats(&state.cgroup);
        gpu_stats::add(&mut data, &state, &minors, &mut warned);
        data
    };
    if stats_once {
        emit("stats", stats());
        return Ok(0);
    }
    drop(dir); // do not hold the container's lock while streaming
    let mut ooms = stats::oom_kills(&state.cgroup);
    loop {
        let now = stats::oom_kills(&state.cgroup);
        if now > ooms {
            emit("oom", json!({}));
            ooms = now;
        }
        emit("stats", stats());
        if !crate::process::pidinfo::is_alive(state.pid, state.pid_start_time) {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

/// `5s`, `100ms`, `1m`, plain seconds.
pub fn parse_interval(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_intervals() {
        assert_eq!(parse_bytes("128M"), Some(128 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("512KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("-1"), Some(-1));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_interval("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_interval("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_interval("x"), None);
    }
}
