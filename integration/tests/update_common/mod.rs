//! Shared by the `update` tests: a running container with known limits, and its limit files
//! read from its cgroup dirs on the host, before and after an update.

use gpurun_integration::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A running `sleep` with known limits; returns (id, init pid).
pub fn running(env: &Env) -> (String, i32) {
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        s["linux"]["resources"] = json!({
            "memory": {"limit": 64 << 20, "reservation": 32 << 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 20}
        });
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "running");
    let pid = env.pid(&id);
    (id, pid)
}

/// The file `name` of `pid`'s cgroup for `ctrl` on the host.
pub fn cg_file(pid: i32, ctrl: &str, name: &str) -> PathBuf {
    proc_cgroup_dir(pid, ctrl)
        .unwrap_or_else(|| panic!("no {ctrl} cgroup for {pid}"))
        .join(name)
}

/// Every limit file `update` can touch (v1 or v2 names) that exists for `pid`, with its value.
pub fn limits(pid: i32) -> BTreeMap<String, String> {
    let files: &[(&str, &str)] = if cgroup2_host() {
        &[
            ("cpu", "cpu.weight"),
            ("cpu", "cpu.max"),
            ("cpuset", "cpuset.cpus"),
            ("cpuset", "cpuset.mems"),
            ("memory", "memory.max"),
            ("memory", "memory.low"),
            ("memory", "memory.swap.max"),
            ("pids", "pids.max"),
            ("io", "io.weight"),
            ("io", "io.bfq.weight"),
        ]
    } else {
        &[
            ("cpu", "cpu.shares"),
            ("cpu", "cpu.cfs_quota_us"),
            ("cpu", "cpu.cfs_period_us"),
            ("cpu", "cpu.rt_period_us"),
            ("cpu", "cpu.rt_runtime_us"),
            ("cpuset", "cpuset.cpus"),
            ("cpuset", "cpuset.mems"),
            ("memory", "memory.limit_in_bytes"),
            ("memory", "memory.soft_limit_in_bytes"),
            ("memory", "memory.memsw.limit_in_bytes"),
            ("pids", "pids.max"),
            ("blkio", "blkio.weight"),
            ("blkio", "blkio.bfq.weight"),
        ]
    };
    files
        .iter()
        .filter_map(|(ctrl, name)| {
            let text = std::fs::read_to_string(cg_file(pid, ctrl, name)).ok()?;
            Some((name.to_string(), text.trim().to_string()))
        })
        .collect()
}

/// `update ARGS ID` succeeds and afterwards exactly `changes` differ from `before`.
#[track_caller]
pub fn update_only(
    env: &Env,
    id: &str,
    pid: i32,
    args: &[&str],
    changes: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let before = limits(pid);
    let mut argv = vec!["update"];
    argv.extend(args);
    argv.push(id);
    env.gpurun(&argv).assert_ok();
    let after = limits(pid);
    let mut want = before.clone();
    for (file, value) in changes {
        assert!(want.contains_key(*file), "{file} not readable: {before:?}");
        want.insert(file.to_string(), value.to_string());
    }
    assert_eq!(after, want, "update {args:?}: only {changes:?} may change");
    after
}

/// `out` failed, its stderr names `needle`, and no limit changed.
#[track_caller]
pub fn refused(out: &Out, needle: &str, pid: i32, before: &BTreeMap<String, String>) {
    out.assert_err(needle);
    assert_eq!(
        &limits(pid),
        before,
        "a refused update changed limits\n{}",
        out.describe()
    );
}
