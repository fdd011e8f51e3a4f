//! What `linux.resources` asks for, as runc reads it: zero means "not set", and values no
//! kernel interface accepts are refused before anything is written.
//!
//! Docker sends every resource the user did not set as zero (`blockIO.weight: 0`,
//! `cpu.shares: 0`; on `docker update` each field it was not given), and runc leaves those
//! files alone. [`effective`] turns such a spec into one whose unset fields are `None`, so the
//! writers ([`super::v1`], [`super::v2`]) only ever see what was asked for.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxResources, LinuxWeightDevice, LinuxWeightDeviceBuilder,
};

use super::{CgroupError, Result};

/// `r` with runc's zero values turned into "not set".
pub fn effective(r: &LinuxResources) -> LinuxResources {
    let mut r = r.clone();
    let nonzero_i = |v: Option<i64>| v.filter(|v| *v != 0);
    let nonzero_u = |v: Option<u64>| v.filter(|v| *v != 0);
    if let Some(m) = r.memory_mut() {
        m.set_limit(nonzero_i(m.limit()));
        m.set_reservation(nonzero_i(m.reservation()));
        m.set_swap(nonzero_i(m.swap()));
        // Kernel memory limits are gone from the kernel (5.16) and ignored by runc. kernelTCP
        // (NOT RECOMMENDED by the spec) still exists on v1: applied where the file is (v1.rs).
        m.set_kernel(None);
        m.set_kernel_tcp(nonzero_i(m.kernel_tcp()));
    }
    if let Some(c) = r.cpu_mut() {
        c.set_shares(nonzero_u(c.shares()));
        c.set_quota(nonzero_i(c.quota()));
        c.set_period(nonzero_u(c.period()));
        c.set_realtime_runtime(nonzero_i(c.realtime_runtime()));
        c.set_realtime_period(nonzero_u(c.realtime_period()));
        c.set_cpus(c.cpus().clone().filter(|s| !s.is_empty()));
        c.set_mems(c.mems().clone().filter(|s| !s.is_empty()));
    }
    if r.pids().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(b) = r.block_io_mut() {
        effective_blkio(b);
    }
    if let Some(n) = r.network_mut() {
        n.set_class_id(n.class_id().filter(|v| *v != 0));
    }
    r
}

fn effective_blkio(b: &mut LinuxBlockIo) {
    b.set_weight(b.weight().filter(|w| *w != 0));
    b.set_leaf_weight(b.leaf_weight().filter(|w| *w != 0));
    if let Some(devices) = b.weight_device().clone() {
        let devices: Vec<LinuxWeightDevice> = devices
            .into_iter()
            .map(|d| {
                let mut b = LinuxWeightDeviceBuilder::default()
                    .major(d.major())
                    .minor(d.minor());
                if let Some(w) = d.weight().filter(|w| *w != 0) {
                    b = b.weight(w);
                }
                if let Some(w) = d.leaf_weight().filter(|w| *w != 0) {
                    b = b.leaf_weight(w);
                }
                b.build().expect("every field has a default")
            })
            .filter(|d| d.weight().is_some() || d.leaf_weight().is_some())
            .collect();
        b.set_weight_device(Some(devices).filter(|d| !d.is_empty()));
    }
}

/// Checks that need no cgroup file: ranges the kernel would refuse (or, worse, silently
/// clamp) — so that a bad value fails before the first write. `r` is [`effective`]'s.
pub fn validate(r: &LinuxResources) -> Result<()> {
    let invalid = |msg: String| Err(CgroupError::Invalid(msg));
    if let Some(m) = r.memory() {
        for (name, v) in [
            ("limit", m.limit()),
            ("reservation", m.reservation()),
            ("swap", m.swap()),
        ] {
            if let Some(v) = v.filter(|v| *v < -1) {
                return invalid(format!(
                    "linux.resources.memory.{name} {v}: must be -1 (no limit) or ≥ 0"
                ));
            }
        }
        if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
            if limit > 0 && swap > 0 && swap < limit {
                return invalid(format!(
                    "memory+swap limit ({swap}) should be >= memory limit ({limit})"
                ));
            }
        }
        if let Some(s) = m.swappiness().filter(|s| *s > 100) {
            return invalid(format!(
                "invalid memory swappiness value: {s} (valid range is 0-100)"
            ));
        }
    }
    if let Some(c) = r.cpu() {
        // The kernel clamps cpu.shares silently; runc reports the clamp with these words.
        match c.shares() {
            Some(s) if s < 2 => return invalid("the minimum allowed cpu-shares is 2".into()),
            Some(s) if s > 262_144 => {
                return invalid("the maximum allowed cpu-shares is 262144".into())
            }
            _ => {}
        }
        if let Some(q) = c.quota().filter(|q| *q > 0 && *q < 1000) {
            return invalid(format!(
                "cpu quota {q}: must be at least 1000 microseconds (or -1: no limit)"
            ));
        }
        if let Some(p) = c.period().filter(|p| !(1000..=1_000_000).contains(p)) {
            return invalid(format!(
                "cpu period {p}: must be between 1000 and 1000000 microseconds"
            ));
        }
        for (name, list) in [("cpus", c.cpus()), ("mems", c.mems())] {
            if let Some(list) = list.as_deref().filter(|l| !is_cpu_list(l)) {
                return invalid(format!(
                    "linux.resources.cpu.{name} {list:?}: not a list like \"0-3,5\""
                ));
            }
        }
    }
    if let Some(b) = r.block_io() {
        let weights = [b.weight(), b.leaf_weight()].into_iter().chain(
            b.weight_device()
                .iter()
                .flatten()
                .flat_map(|d| [d.weight(), d.leaf_weight()]),
        );
        for w in weights.flatten() {
            if !(10..=1000).contains(&w) {
                return invalid(format!("blkio weight {w}: must be between 10 and 1000"));
            }
        }
    }
    Ok(())
}

/// `0-3,5,7-8`: what cpuset.cpus and cpuset.mems accept.
fn is_cpu_list(s: &str) -> bool {
    let number = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    s.trim().split(',').all(|part| match part.split_once('-') {
        Some((a, b)) => number(a) && number(b),
        None => number(part),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resources(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dockers_zeros_are_unset() {
        // What Docker 20.10 sends for `docker run` without limits, and for `docker update --cpus 1`.
        let r = effective(&resources(json!({
            "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0},
            "cpu": {"shares": 0, "quota": 100000, "period": 100000, "realtimeRuntime": 0,
                    "realtimePeriod": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0, "weightDevice": [{"major": 8, "minor": 0, "weight": 0}]},
            "pids": {"limit": 0}
        })));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "memory": {},
                "cpu": {"quota": 100000, "period": 100000},
                "blockIO": {}
            })
        );
        validate(&r).unwrap();
    }

    #[test]
    fn values_the_kernel_refuses_are_refused_first() {
        let bad = [
            json!({"cpu": {"shares": 1}}),
            json!({"cpu": {"shares": 300000}}),
            json!({"cpu": {"quota": 500}}),
            json!({"cpu": {"period": 100}}),
            json!({"cpu": {"cpus": "0-x"}}),
            json!({"blockIO": {"weight": 5}}),
            json!({"memory": {"limit": -2}}),
            json!({"memory": {"limit": 2000000, "swap": 1000000}}),
            json!({"memory": {"swappiness": 101}}),
        ];
        for v in bad {
            assert!(
                validate(&effective(&resources(v.clone()))).is_err(),
                "{v} passed"
            );
        }
        let good = json!({"cpu": {"shares": 2, "quota": -1, "period": 1000, "cpus": "0-1,3"},
                          "memory": {"limit": -1, "swap": -1}, "blockIO": {"weight": 10}});
        validate(&effective(&resources(good))).unwrap();
    }
}
