//! Resources as Docker sends them: every field the user did not set comes as zero, at create
//! and on `docker update`. Zero means "not set" (runc's reading); `update` changes only what it
//! is given, and a failed update changes nothing.

use gpurun_integration::*;

/// `linux.resources` of a `docker run` without limits (Docker 20.10).
fn docker_unset() -> Value {
    json!({
        "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0},
        "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                "realtimePeriod": 0, "cpus": "", "mems": ""},
        "blockIO": {"weight": 0},
        "pids": {"limit": 0}
    })
}

#[test]
fn zero_resources_are_left_unset() {
    if !require_root() {
        return;
    }
    let env = Env::new("zero_resources_are_left_unset");
    let shares = cg("cpu/cpu.shares", "cpu.weight");
    let mem = cg("memory/memory.limit_in_bytes", "memory.max");
    let quota = cg("cpu/cpu.cfs_quota_us", "cpu.max");
    let pids = cg("pids/pids.max", "pids.max");
    probe(&env, &[shares, mem, quota, pids], |s| {
        s["linux"]["resources"] = docker_unset();
    });
    let id = env.id();
    let mut out = env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let v = dump(&env, &mut out, 1);
    // The kernel's defaults: not the lowest weight there is (what writing 0 would give).
    assert_eq!(get(&v, shares), cg("1024", "100"));
    assert_eq!(get(&v, mem), cg("9223372036854771712", "max"));
    assert_eq!(get(&v, quota), cg("-1", "max 100000"));
    assert_eq!(get(&v, pids), "max");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn update_changes_only_what_it_is_given() {
    if !require_root() {
        return;
    }
    let env = Env::new("update_changes_only_what_it_is_given");
    let mem = cg("memory/memory.limit_in_bytes", "memory.max");
    let low = cg("memory/memory.soft_limit_in_bytes", "memory.low");
    let shares = cg("cpu/cpu.shares", "cpu.weight");
    let quota = cg("cpu/cpu.cfs_quota_us", "cpu.max");
    let period = cg("cpu/cpu.cfs_period_us", "cpu.max");
    let pids = cg("pids/pids.max", "pids.max");
    probe(&env, &[mem, low, shares, quota, period, pids], |s| {
        s["linux"]["resources"] = json!({
            "memory": {"limit": 64 << 20, "reservation": 32 << 20},
            "cpu": {"shares": 512}, "pids": {"limit": 20}
        });
    });
    let id = env.id();
    let mut out = env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    dump(&env, &mut out, 1);
    let unchanged = |v: &[(String, String)]| {
        assert_eq!(get(v, mem), "67108864");
        assert_eq!(get(v, low), "33554432");
        assert_eq!(get(v, shares), cg("512", "20"));
        assert_eq!(get(v, pids), "20");
    };

    // `docker update --cpus 1`: everything else comes as zero.
    let mut update = docker_unset();
    update["cpu"]["quota"] = json!(100000);
    update["cpu"]["period"] = json!(100000);
    env.gpurun_stdin(&["update", "--resources", "-", &id], &update.to_string())
        .assert_ok();
    env.gpurun(&["kill", &id, "USR1"]).assert_ok();
    let v = dump(&env, &mut out, 2);
    unchanged(&v);
    assert_eq!(get(&v, quota), cg("100000", "100000 100000"));

    // A period alone keeps the quota.
    env.gpurun(&["update", "--cpu-period", "50000", &id])
        .assert_ok();
    env.gpurun(&["kill", &id, "USR1"]).assert_ok();
    let v = dump(&env, &mut out, 3);
    unchanged(&v);
    assert_eq!(get(&v, quota), cg("100000", "100000 50000"));
    assert_eq!(get(&v, period), cg("50000", "100000 50000"));

    // All or nothing (gpurun-only: runc's rollback re-applies the config it has already
    // changed, so a half-made update stays — on v1 only cpuset's turn before memory hides it).
    if is_gpurun() {
        // The reservation is written first, then the kernel refuses the cpuset.
        let failing = json!({"memory": {"reservation": 16 << 20}, "cpu": {"cpus": "999"}});
        env.gpurun_stdin(&["update", "--resources", "-", &id], &failing.to_string())
            .assert_fail();
        // Refused before any write: the kernel would clamp shares of 1 to 2.
        env.gpurun_stdin(
            &["update", "--resources", "-", &id],
            r#"{"cpu":{"shares":1}}"#,
        )
        .assert_err("the minimum allowed cpu-shares is 2");
    }
    env.gpurun(&["kill", &id, "USR1"]).assert_ok();
    let v = dump(&env, &mut out, 4);
    unchanged(&v);
    assert_eq!(get(&v, quota), cg("100000", "100000 50000"));

    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// containerd's CRI (`UpdateContainerResources`) sends the container's whole resources, its
/// unchanged device rules included: accepted, and the limits change.
#[test]
fn update_with_the_unchanged_device_rules_changes_the_limits() {
    if !require_root() {
        return;
    }
    let env = Env::new("update_unchanged_devices");
    let mem = cg("memory/memory.limit_in_bytes", "memory.max");
    let rules = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
    ]);
    probe(&env, &[mem], |s| {
        s["linux"]["resources"] = json!({"devices": rules, "memory": {"limit": 64 << 20}});
    });
    let id = env.id();
    let mut out = env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    assert_eq!(get(&dump(&env, &mut out, 1), mem), "67108864");
    let update = json!({"devices": rules, "memory": {"limit": 128 << 20}});
    env.gpurun_stdin(&["update", "--resources", "-", &id], &update.to_string())
        .assert_ok();
    env.gpurun(&["kill", &id, "USR1"]).assert_ok();
    assert_eq!(get(&dump(&env, &mut out, 2), mem), "134217728");
    // Changed rules cannot be applied on cgroup v2 yet (gpurun-only: runc replaces its program).
    if cgroup2_host() && is_gpurun() {
        let changed = json!({"devices": [{"allow": true, "access": "rwm"}]});
        env.gpurun_stdin(&["update", "--resources", "-", &id], &changed.to_string())
            .assert_err("changing device rules on cgroup v2 is not supported");
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
