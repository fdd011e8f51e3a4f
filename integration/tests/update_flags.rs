//! `update` as engines call it, beyond `--memory`: the cpu, cpuset, memory-reservation/-swap,
//! pids, blkio and realtime flags (`--resources`: update_resources.rs). Every limit is read back from the
//! container's cgroup dirs on the host, before and after: an update changes exactly the files it
//! is given, and a bad value fails with an error naming it and changes nothing.

mod update_common;

use gpurun_integration::*;
use update_common::*;

/// runc's cpu.shares → cpu.weight conversion (v2).
fn weight(shares: u64) -> String {
    (1 + ((shares - 2) * 9999) / 262142).to_string()
}

/// The flag that sets cpu shares: runc's is `--cpu-share`; gpurun also takes `--cpu-shares`
/// (see `update_cpu_share_is_runcs_flag` for runc's spelling against gpurun).
fn shares_flag() -> &'static str {
    if is_gpurun() {
        "--cpu-shares"
    } else {
        "--cpu-share"
    }
}

#[test]
fn update_cpu_and_cpuset_flags_change_only_their_files() {
    if !require_root() || !has_controller("cpu") || !has_controller("cpuset") {
        return;
    }
    let env = Env::new("update_cpu_cpuset_flags");
    let (id, pid) = running(&env);
    let v2 = cgroup2_host();
    let pick = |v1: &'static str, v2s: &'static str| if v2 { v2s } else { v1 };

    let w = weight(256);
    let shares = if v2 { w.as_str() } else { "256" };
    update_only(
        &env,
        &id,
        pid,
        &[shares_flag(), "256"],
        &[(pick("cpu.shares", "cpu.weight"), shares)],
    );
    let period = [("cpu.cfs_period_us", "200000")];
    let period = if v2 {
        &[("cpu.max", "50000 200000")]
    } else {
        &period
    };
    update_only(&env, &id, pid, &["--cpu-period", "200000"], period);
    let quota = if v2 {
        ("cpu.max", "100000 200000")
    } else {
        ("cpu.cfs_quota_us", "100000")
    };
    update_only(&env, &id, pid, &["--cpu-quota", "100000"], &[quota]);
    let unlimited = if v2 {
        ("cpu.max", "max 200000")
    } else {
        ("cpu.cfs_quota_us", "-1")
    };
    update_only(&env, &id, pid, &["--cpu-quota", "-1"], &[unlimited]);

    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let online = online.trim();
    if online == "0" {
        skip("update --cpuset-cpus: one CPU: no other cpuset to move to");
    } else {
        update_only(
            &env,
            &id,
            pid,
            &["--cpuset-cpus", online],
            &[("cpuset.cpus", online)],
        );
        update_only(
            &env,
            &id,
            pid,
            &["--cpuset-cpus", "0"],
            &[("cpuset.cpus", "0")],
        );
    }
    let nodes = std::fs::read_to_string("/sys/devices/system/node/online").unwrap_or_default();
    let nodes = nodes.trim();
    // Accepted and rewritten either way; a visible change needs a second memory node.
    let change: &[(&str, &str)] = if nodes == "0" || nodes.is_empty() {
        skip("update --cpuset-mems change: one memory node: mems can only be \"0\"");
        &[]
    } else {
        &[("cpuset.mems", nodes)]
    };
    update_only(
        &env,
        &id,
        pid,
        &["--cpuset-mems", if change.is_empty() { "0" } else { nodes }],
        change,
    );

    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// runc's flag is `--cpu-share` (singular); `runc update --cpu-shares` is "flag provided but
/// not defined". A caller written for runc must work unchanged.
#[test]
fn update_cpu_share_is_runcs_flag() {
    if !require_root() || !has_controller("cpu") {
        return;
    }
    let env = Env::new("update_cpu_share_flag");
    let (id, pid) = running(&env);
    let w = weight(300);
    let want = if cgroup2_host() {
        ("cpu.weight", w.as_str())
    } else {
        ("cpu.shares", "300")
    };
    update_only(&env, &id, pid, &["--cpu-share", "300"], &[want]);
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn update_memory_reservation_swap_and_pids() {
    if !require_root() || !has_controller("memory") || !has_controller("pids") {
        return;
    }
    let env = Env::new("update_memory_pids_flags");
    let (id, pid) = running(&env);
    let v2 = cgroup2_host();
    let low = if v2 {
        "memory.low"
    } else {
        "memory.soft_limit_in_bytes"
    };
    let max = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    update_only(
        &env,
        &id,
        pid,
        &["--memory-reservation", "16M"],
        &[(low, "16777216")],
    );
    update_only(
        &env,
        &id,
        pid,
        &["--pids-limit", "50"],
        &[("pids.max", "50")],
    );
    // 0 means "not set" to runc: the limit stays.
    update_only(&env, &id, pid, &["--pids-limit", "0"], &[]);
    update_only(
        &env,
        &id,
        pid,
        &["--pids-limit", "-1"],
        &[("pids.max", "max")],
    );

    let swap = if v2 {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    if limits(pid).contains_key(swap) {
        // v2's memory.swap.max is swap only: runc writes swap - limit.
        let both = [
            (max, "104857600"),
            (swap, if v2 { "104857600" } else { "209715200" }),
        ];
        update_only(
            &env,
            &id,
            pid,
            &["--memory", "100M", "--memory-swap", "200M"],
            &both,
        );
        let unlimited = if v2 { "max" } else { "9223372036854771712" };
        update_only(
            &env,
            &id,
            pid,
            &["--memory-swap", "-1"],
            &[(swap, unlimited)],
        );
    } else {
        skip(&format!(
            "update --memory-swap read-back: no {swap} (swap accounting off)"
        ));
        // Without swap accounting both runtimes set the memory limit and ignore the swap one.
        update_only(
            &env,
            &id,
            pid,
            &["--memory", "100M", "--memory-swap", "200M"],
            &[(max, "104857600")],
        );
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn update_cpu_rt_period_and_runtime() {
    if !require_root() || !has_controller("cpu") {
        return;
    }
    if cgroup2_host() {
        skip("update --cpu-rt-*: cgroup v2 has no realtime group scheduling files");
        return;
    }
    let env = Env::new("update_cpu_rt");
    let (id, pid) = running(&env);
    if !cg_file(pid, "cpu", "cpu.rt_runtime_us").exists() {
        skip("update --cpu-rt-*: no cpu.rt_runtime_us (kernel without RT_GROUP_SCHED)");
    } else {
        let both = [
            ("cpu.rt_period_us", "900000"),
            ("cpu.rt_runtime_us", "1000"),
        ];
        update_only(
            &env,
            &id,
            pid,
            &["--cpu-rt-period", "900000", "--cpu-rt-runtime", "1000"],
            &both,
        );
        // A runtime longer than its period: the kernel refuses it, and nothing changes.
        let before = limits(pid);
        let out = env.gpurun(&["update", "--cpu-rt-runtime", "2000000", &id]);
        refused(&out, "cpu.rt_runtime_us", pid, &before);
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn update_blkio_weight() {
    if !require_root() || !has_controller(if cgroup2_host() { "io" } else { "blkio" }) {
        return;
    }
    let env = Env::new("update_blkio_weight");
    let (id, pid) = running(&env);
    let before = limits(pid);
    let files = [
        "blkio.bfq.weight",
        "blkio.weight",
        "io.bfq.weight",
        "io.weight",
    ];
    match files.iter().find(|f| before.contains_key(**f)) {
        None => {
            skip("update --blkio-weight read-back: no blkio/io weight file (no BFQ/CFQ)");
            // Not applicable here: both runtimes refuse it rather than drop it silently.
            let out = env.gpurun(&["update", "--blkio-weight", "300", &id]);
            refused(&out, "weight", pid, &before);
        }
        Some(file) => {
            env.gpurun(&["update", "--blkio-weight", "300", &id])
                .assert_ok();
            let after = limits(pid);
            // "300" (v1), "default 300" (bfq), or v2's io.weight scale (runc's conversion).
            let want = if *file == "io.weight" {
                (1 + (300 - 10) * 9999 / 990).to_string()
            } else {
                "300".into()
            };
            let got = after[*file]
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .last();
            assert_eq!(got, Some(want.as_str()), "{file}: {after:?}");
            let mut rest = after.clone();
            rest.insert(file.to_string(), before[*file].clone());
            assert_eq!(rest, before, "only {file} may change");
        }
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
