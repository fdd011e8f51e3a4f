//! `linux.resources` as systemd unit properties, the way runc maps them. systemd writes its
//! unit's cgroup files from these again at every `daemon-reload`; a limit that had no property
//! would be reset then. What systemd has no property for is written to the files only.

use oci_spec::runtime::LinuxResources;

use super::super::v2::{blkio_to_io_weight, shares_to_weight, swap_max};
use super::super::CgroupError;
use super::bus::{Property, Value};

/// systemd's "infinity".
const INFINITY: u64 = u64::MAX;

fn prop(name: &str, value: Value) -> Property {
    (name.to_string(), value)
}

fn limit(v: i64) -> Value {
    Value::U64(if v < 0 { INFINITY } else { v as u64 })
}

/// The accounting a new unit needs so that systemd enables its controllers for it.
pub fn accounting(v2: bool) -> Vec<Property> {
    let io = if v2 {
        "IOAccounting"
    } else {
        "BlockIOAccounting"
    };
    ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"]
        .iter()
        .map(|n| prop(n, Value::Bool(true)))
        .collect()
}

/// Properties for what `r` ([`super::super::resources::effective`]'s: only what is set) asks.
/// `current_limit`: the cgroup's memory limit, for a swap value given without one (`update`).
pub fn resources(
    r: &LinuxResources,
    v2: bool,
    current_limit: impl FnOnce() -> Option<i64>,
) -> Result<Vec<Property>, CgroupError> {
    let mut p = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            p.push(prop(if v2 { "MemoryMax" } else { "MemoryLimit" }, limit(l)));
        }
        if let (true, Some(low)) = (v2, m.reservation()) {
            p.push(prop("MemoryLow", limit(low)));
        }
        if let (true, Some(swap)) = (v2, m.swap()) {
            let lim = m.limit().or_else(current_limit);
            if let Some(v) = swap_max(swap, lim)? {
                let v = if v == "max" {
                    INFINITY
                } else {
                    v.parse().unwrap_or(INFINITY)
                };
                p.push(prop("MemorySwapMax", Value::U64(v)));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares() {
            p.push(match v2 {
                true => prop("CPUWeight", Value::U64(shares_to_weight(shares))),
                false => prop("CPUShares", Value::U64(shares)),
            });
        }
        if let Some(period) = c.period() {
            p.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
        }
        if let Some(quota) = c.quota() {
            p.push(prop(
                "CPUQuotaPerSecUSec",
                Value::U64(quota_per_sec(quota, c.period())),
            ));
        }
        if v2 {
            for (name, list) in [("AllowedCPUs", c.cpus()), ("AllowedMemoryNodes", c.mems())] {
                if let Some(list) = list {
                    p.push(prop(name, Value::Bytes(cpu_mask(list)?)));
                }
            }
        }
    }
    if let Some(pids) = r.pids() {
        p.push(prop("TasksMax", limit(pids.limit())));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        p.push(match v2 {
            true => prop("IOWeight", Value::U64(blkio_to_io_weight(w))),
            false => prop("BlockIOWeight", Value::U64(u64::from(w))),
        });
    }
    if v2 {
        unified(r, &mut p);
    }
    Ok(p)
}

/// `linux.resources.unified` keys systemd owns (runc maps the same ones).
fn unified(r: &LinuxResources, p: &mut Vec<Property>) {
    let Some(map) = r.unified() else { return };
    let bytes = |v: &str| match v.trim() {
        "max" => Some(INFINITY),
        v => v.parse().ok(),
    };
    for (key, value) in map {
        let (name, v) = match key.as_str() {
            "memory.max" => ("MemoryMax", bytes(value)),
            "memory.high" => ("MemoryHigh", bytes(value)),
            "memory.low" => ("MemoryLow", bytes(value)),
            "memory.min" => ("MemoryMin", bytes(value)),
            "memory.swap.max" => ("MemorySwapMax", bytes(value)),
            "pids.max" => ("TasksMax", bytes(value)),
            "cpu.weight" => ("CPUWeight", value.trim().parse().ok()),
            "io.weight" => (
                "IOWeight",
                value
                    .trim()
                    .strip_prefix("default ")
                    .unwrap_or(value.trim())
                    .parse()
                    .ok(),
            ),
            _ => continue,
        };
        if let Some(v) = v {
            p.push(prop(name, Value::U64(v)));
        }
    }
}

/// A quota per period as systemd's CPU time per second, rounded up to its 10 ms steps
/// (runc's rounding: never less CPU than asked). -1: no limit.
pub fn quota_per_sec(quota: i64, period: Option<u64>) -> u64 {
    if quota < 0 {
        return INFINITY;
    }
    let period = period.filter(|p| *p > 0).unwrap_or(100_000);
    let per_sec = (quota as u64).saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000) * 10_000
}

/// A cpuset list (`0-3,8`) as the little-endian bit mask systemd's AllowedCPUs takes.
pub fn cpu_mask(list: &str) -> Result<Vec<u8>, CgroupError> {
    let bad = || CgroupError::Invalid(format!("invalid cpuset list {list:?}"));
    let mut mask = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.trim().parse(), part.trim().parse()),
        };
        let (lo, hi) = (lo.map_err(|_| bad())?, hi.map_err(|_| bad())?);
        if lo > hi || hi >= 8192 {
            return Err(bad());
        }
        for cpu in lo..=hi {
            if mask.len() <= cpu / 8 {
                mask.resize(cpu / 8 + 1, 0);
            }
            mask[cpu / 8] |= 1 << (cpu % 8);
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(quota_per_sec(50_000, Some(100_000)), 500_000);
        assert_eq!(quota_per_sec(1_234, None), 20_000);
        assert_eq!(quota_per_sec(-1, None), INFINITY);
        assert_eq!(cpu_mask("0-3,9").unwrap(), vec![0x0f, 0x02]);
        assert_eq!(cpu_mask("1").unwrap(), vec![0x02]);
        assert!(cpu_mask("3-1").is_err());
    }

    #[test]
    fn docker_run_limits() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 50},
            "unified": {"memory.high": "max"}
        }))
        .unwrap();
        let p = resources(&r, true, || None).unwrap();
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v);
        assert!(matches!(get("MemoryMax"), Some(Value::U64(67108864))));
        assert!(matches!(get("MemorySwapMax"), Some(Value::U64(67108864))));
        assert!(matches!(get("CPUWeight"), Some(Value::U64(39))));
        assert!(matches!(
            get("CPUQuotaPerSecUSec"),
            Some(Value::U64(500_000))
        ));
        assert!(matches!(get("TasksMax"), Some(Value::U64(50))));
        assert!(matches!(get("MemoryHigh"), Some(Value::U64(INFINITY))));
        let v1 = resources(&r, false, || None).unwrap();
        assert!(v1
            .iter()
            .any(|(k, v)| k == "MemoryLimit" && matches!(v, Value::U64(67108864))));
        assert!(v1
            .iter()
            .any(|(k, v)| k == "CPUShares" && matches!(v, Value::U64(1024))));
    }
}
