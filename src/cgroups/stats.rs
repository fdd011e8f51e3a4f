//! `events --stats`: runc's stats document (cpu, memory, pids) read from the cgroup.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::Cgroup;

fn num(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, cpuacct.stat) as a map.
fn keyed(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// "max" (v2) or a huge number (v1) both mean no limit; runc reports the v1 number.
fn limit(path: &Path) -> u64 {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim() == "max" => u64::MAX,
        Ok(s) => s.trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

pub fn stats(cg: &Cgroup) -> Value {
    if cg.unified_host {
        let d = cg.v2.as_deref().expect("pure v2 host has a v2 dir");
        return stats_v2(d);
    }
    let mut data = json!({});
    if let Some(d) = cg.v1_dir("cpuacct") {
        // cpuacct.stat counts USER_HZ ticks (100 per second).
        let ticks = keyed(&d.join("cpuacct.stat"));
        let percpu: Vec<u64> = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        data["cpu"]["usage"] = json!({
            "total": num(&d.join("cpuacct.usage")),
            "percpu": percpu,
            "user": ticks.get("user").copied().unwrap_or(0) * 10_000_000,
            "kernel": ticks.get("system").copied().unwrap_or(0) * 10_000_000,
        });
    }
    if let Some(d) = cg.v1_dir("cpu") {
        let s = keyed(&d.join("cpu.stat"));
        data["cpu"]["throttling"] = json!({
            "periods": s.get("nr_periods"), "throttledPeriods": s.get("nr_throttled"), "throttledTime": s.get("throttled_time"),
        });
    }
    if let Some(d) = cg.v1_dir("memory") {
        data["memory"] = json!({
            "usage": {
                "usage": num(&d.join("memory.usage_in_bytes")),
                "limit": limit(&d.join("memory.limit_in_bytes")),
                "max": num(&d.join("memory.max_usage_in_bytes")),
                "failcnt": num(&d.join("memory.failcnt")),
            },
            "raw": keyed(&d.join("memory.stat")),
        });
    }
    if let Some(d) = cg.v1_dir("pids") {
        data["pids"] =
            json!({"current": num(&d.join("pids.current")), "limit": limit(&d.join("pids.max"))});
    }
    data
}

fn stats_v2(d: &Path) -> Value {
    let cpu = keyed(&d.join("cpu.stat"));
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    let events = keyed(&d.join("memory.events"));
    json!({
        "cpu": {
            "usage": {"total": us("usage_usec"), "user": us("user_usec"), "kernel": us("system_usec")},
            "throttling": {"periods": cpu.get("nr_periods"), "throttledPeriods": cpu.get("nr_throttled"), "throttledTime": us("throttled_usec")},
        },
        "memory": {
            "usage": {
                "usage": num(&d.join("memory.current")),
                "limit": limit(&d.join("memory.max")),
                "max": num(&d.join("memory.peak")),
                "failcnt": events.get("max").copied().unwrap_or(0),
            },
            "raw": keyed(&d.join("memory.stat")),
        },
        "pids": {"current": num(&d.join("pids.current")), "limit": limit(&d.join("pids.max"))},
    })
}

/// How many times the kernel's OOM killer struck in this cgroup.
pub fn oom_kills(cg: &Cgroup) -> u64 {
    let file = if cg.unified_host {
        cg.v2.as_deref().map(|d| d.join("memory.events"))
    } else {
        cg.v1_dir("memory").map(|d| d.join("memory.oom_control"))
    };
    file.map(|f| keyed(&f).get("oom_kill").copied().unwrap_or(0))
        .unwrap_or(0)
}
