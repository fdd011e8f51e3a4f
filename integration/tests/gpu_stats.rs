//! Per-container GPU usage (gpurun-only: runc has no GPU section) on a fake host: the mock
//! NVML reports processes written after start with the containers' real host pids, and
//! `events --stats`, the stream and `ps` must show each container its own GPU(s) and only
//! its own processes.

use std::process::{Command, Stdio};

use gpurun_integration::*;

const GIB: u64 = 1 << 30;

/// 2×H100 (GPU 0 is /dev/nvidia1) with temperature/utilisation on GPU 0, power only on GPU 1.
fn machine() -> Value {
    let mut d = h100x2();
    d["devices"][0]["temperature"] = json!(41);
    d["devices"][0]["utilization"] = json!([75, 30]);
    d["devices"][1]["power_usage"] = json!(312_000);
    d
}

fn stats(env: &Env, id: &str) -> Value {
    let out = env.gpurun(&["events", "--stats", id]);
    out.assert_ok();
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(doc["type"], "stats", "{doc}");
    doc["data"].clone()
}

fn pids(env: &Env, id: &str) -> Vec<u32> {
    let out = env.gpurun(&["ps", "--format", "json", id]);
    out.assert_ok();
    let mut v: Vec<u32> = serde_json::from_str(&out.stdout).unwrap();
    v.sort_unstable();
    v
}

/// `ps`'s row of `pid` (ps -ef: PID is the second field).
fn ps_row(out: &Out, pid: u32) -> &str {
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&pid.to_string()))
        .unwrap_or_else(|| panic!("{pid}: {}", out.stdout))
}

/// The GPU column of `pid`'s row: the field before ps -ef's CMD (the 8th).
fn ps_gpu(out: &Out, pid: u32) -> String {
    ps_row(out, pid)
        .split_whitespace()
        .nth(7)
        .unwrap()
        .to_string()
}

/// The GPUs of `id` cannot be read (`why`): `events --stats` still gives the cgroup stats
/// without "gpu", `ps` a `?` GPU column, each with one warning.
fn assert_gpu_left_out(env: &Env, id: &str, pid: u32, why: &str) {
    let out = env.gpurun(&["events", "--stats", id]);
    out.assert_ok();
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let data = &doc["data"];
    assert!(data.get("gpu").is_none(), "{data}");
    assert!(
        data["pids"]["current"].as_u64() >= Some(1),
        "cgroup stats kept: {data}"
    );
    assert_eq!(
        out.stderr.matches("warning").count(),
        1,
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains(why), "{}", out.describe());
    let out = env.gpurun(&["ps", id]);
    out.assert_ok();
    assert!(
        out.stdout.lines().next().unwrap().ends_with(" GPU CMD"),
        "{}",
        out.stdout
    );
    assert_eq!(ps_gpu(&out, pid), "?", "{}", out.stdout);
    assert!(out.stderr.contains(why), "{}", out.describe());
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn gpu_stats_count_only_the_containers_processes() {
    // gpurun-only: runc has no GPU section in its stats, nor a GPU column in ps.
    let Some((env, host)) = gpu_env("gpu_stats", machine()) else {
        return;
    };
    // A: three processes (sh and two sleeps) on GPU 0; B shares GPU 0; C has no GPU.
    let a = env.running(|s| {
        set_args(s, &["sh", "-c", "sleep 3600 & sleep 3600 & wait"]);
        with_env(&["NVIDIA_VISIBLE_DEVICES=0"])(s);
    });
    let b = env.running(with_env(&["NVIDIA_VISIBLE_DEVICES=0"]));
    let c = env.running(|_| {});
    let all = poll(std::time::Duration::from_secs(5), || {
        Some(pids(&env, &a)).filter(|p| p.len() == 3)
    })
    .expect("A's three processes");
    // pa[0]: A's init (sh), pa[1], pa[2]: its sleeps.
    let init = env.pid(&a) as u32;
    let mut pa = vec![init];
    pa.extend(all.iter().filter(|&&p| p != init));
    let pb = pids(&env, &b);
    assert_eq!(pb.len(), 1);

    // No process on the GPU yet, no sample (NOT_FOUND): a GPU entry, nothing counted.
    let g = stats(&env, &a)["gpu"].clone();
    assert_eq!(g.as_array().map(Vec::len), Some(1), "{g}");
    assert_eq!(g[0]["processes"], json!([]), "{g}");
    assert_eq!((&g[0]["usedMemory"], &g[0]["sm"]), (&json!(0), &json!(0)));

    let host_pid = std::process::id();
    host.write_processes(&json!([
        {"gpu": 0, "pid": pa[1], "used_memory": GIB, "sm": 30, "mem": 5},
        {"gpu": 0, "pid": pa[2], "used_memory": GIB / 4, "type": "graphics", "sm": 10, "mem": 1},
        {"gpu": 0, "pid": pb[0], "used_memory": 2 * GIB, "sm": 50, "mem": 20},
        {"gpu": 0, "pid": host_pid, "used_memory": GIB / 2, "sm": 7, "mem": 7},
        // A's pid on a GPU A was not given: not A's GPU, not in A's stats.
        {"gpu": 1, "pid": pa[1], "used_memory": 3 * GIB, "sm": 90},
    ]));

    let data = stats(&env, &a);
    assert!(
        data["cpu"].is_object() || data["memory"].is_object(),
        "cgroup stats kept: {data}"
    );
    let g = &data["gpu"];
    assert_eq!(g.as_array().map(Vec::len), Some(1), "only GPU 0: {g}");
    let g = &g[0];
    assert_eq!(
        keys(g),
        [
            "index",
            "mem",
            "memory",
            "name",
            "processes",
            "sm",
            "temperature",
            "usedMemory",
            "utilization",
            "uuid"
        ],
        "no powerDraw where the GPU reports none: {g}"
    );
    assert_eq!(g["index"], 0);
    assert_eq!(g["uuid"], host.uuid(0));
    assert_eq!(g["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(g["temperature"], 41);
    assert_eq!(g["utilization"], json!({"gpu": 75, "memory": 30}));
    let whole = GIB + GIB / 4 + 2 * GIB + GIB / 2;
    assert_eq!(g["memory"], json!({"total": 85520809984u64, "used": whole}));
    assert_eq!(g["usedMemory"], GIB + GIB / 4, "{g}");
    assert_eq!((&g["sm"], &g["mem"]), (&json!(40), &json!(6)), "{g}");
    assert_eq!(
        g["processes"],
        json!([
            {"pid": pa[1], "usedMemory": GIB, "type": "compute", "sm": 30, "mem": 5},
            {"pid": pa[2], "usedMemory": GIB / 4, "type": "graphics", "sm": 10, "mem": 1},
        ])
    );
    let g = &stats(&env, &b)["gpu"][0];
    assert_eq!(
        (&g["usedMemory"], &g["sm"]),
        (&json!(2 * GIB), &json!(50)),
        "B: {g}"
    );
    assert_eq!(g["processes"].as_array().unwrap().len(), 1, "B: {g}");

    // ps: a GPU column for a GPU container only, before the command (which has spaces);
    // the JSON form stays a plain pid array.
    let out = env.gpurun(&["ps", &a]);
    out.assert_ok();
    assert!(
        out.stdout.lines().next().unwrap().ends_with(" GPU CMD"),
        "{}",
        out.stdout
    );
    assert_eq!(
        (
            ps_gpu(&out, pa[0]),
            ps_gpu(&out, pa[1]),
            ps_gpu(&out, pa[2])
        ),
        ("-".into(), "0".into(), "0".into())
    );
    assert!(
        ps_row(&out, pa[1]).ends_with(" 0   sleep 3600"),
        "{}",
        out.stdout
    );
    let out = env.gpurun(&["ps", &c]);
    assert!(
        !out.stdout.lines().next().unwrap().contains("GPU"),
        "{}",
        out.stdout
    );
    assert!(
        serde_json::from_str::<Vec<i32>>(&env.gpurun(&["ps", "-f", "json", &a]).stdout).is_ok()
    );
    // `ps -o pid,stat` has no command column: GPU appended.
    let out = env.gpurun(&["ps", &a, "-o", "pid,stat"]);
    out.assert_ok();
    assert!(
        out.stdout.lines().next().unwrap().ends_with(" GPU"),
        "{}",
        out.stdout
    );

    // A non-GPU container never reads the GPU config nor runs the helper. A GPU container
    // whose GPUs cannot be read (config, NVML) keeps its cgroup stats and its ps, warned.
    assert!(stats(&env, &c).get("gpu").is_none());
    std::fs::write(&host.config, "not toml [").unwrap();
    assert!(stats(&env, &c).get("gpu").is_none());
    env.gpurun(&["ps", &c]).assert_ok();
    assert_gpu_left_out(&env, &a, pa[1], "gpu config");
    host.write_config("/nonexistent/libnvidia-ml.so.1");
    assert_gpu_left_out(&env, &a, pa[1], "cannot load NVML");

    for id in [&a, &b, &c] {
        env.gpurun(&["delete", "--force", id]).assert_ok();
    }
    env.assert_clean();
}

#[test]
fn gpu_stats_stream_carries_gpu() {
    // gpurun-only: runc has no GPU section in its stats.
    let Some((env, host)) = gpu_env("gpu_stats_stream", machine()) else {
        return;
    };
    let a = env.running(with_env(&["NVIDIA_VISIBLE_DEVICES=all"]));
    let pa = pids(&env, &a);
    host.write_processes(
        &json!([{"gpu": 1, "pid": pa[0], "used_memory": GIB, "sm": 12, "mem": 3}]),
    );
    let mut cmd = Command::new("timeout");
    cmd.args(["1.5", &bin().display().to_string(), "--root"])
        .arg(&env.state)
        .args(["events", "--interval", "200ms", &a])
        .envs(env.extra_env.borrow().iter().cloned());
    let out = env.command_out(cmd);
    let docs: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(docs.len() >= 2, "{}", out.describe());
    for d in &docs {
        let g = d["data"]["gpu"].as_array().unwrap_or_else(|| panic!("{d}"));
        // Both GPUs, in NVML's order; the process on GPU 1 only.
        let uuids: Vec<&Value> = g.iter().map(|g| &g["uuid"]).collect();
        assert_eq!(uuids, [&json!(host.uuid(0)), &json!(host.uuid(1))], "{d}");
        assert_eq!(g[1]["powerDraw"], 312_000, "{d}");
        assert_eq!(
            (&g[1]["usedMemory"], &g[1]["sm"]),
            (&json!(GIB), &json!(12)),
            "{d}"
        );
        assert_eq!(g[0]["processes"], json!([]), "{d}");
    }

    // A transient NVML error (the mock's process calls fail) costs the stream its "gpu" key
    // (one warning), not its cgroup stats nor its life; the key is back once NVML answers.
    host.write_processes(&json!({"error": 999}));
    let mut cmd = Command::new("timeout");
    cmd.args(["2", &bin().display().to_string(), "--root"])
        .arg(&env.state)
        .args(["events", "--interval", "200ms", &a])
        .envs(env.extra_env.borrow().iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    host.write_processes(
        &json!([{"gpu": 1, "pid": pa[0], "used_memory": GIB, "sm": 12, "mem": 3}]),
    );
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(124), "ran until timeout: {stderr}");
    let docs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let with_gpu: Vec<bool> = docs
        .iter()
        .map(|d| d["data"].get("gpu").is_some())
        .collect();
    assert!(with_gpu.first() == Some(&false), "{stdout}");
    assert!(with_gpu.last() == Some(&true), "{stdout}");
    assert!(
        docs.iter()
            .all(|d| d["data"]["pids"]["current"].as_u64() >= Some(1)),
        "{stdout}"
    );
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
    assert!(stderr.contains("process list"), "{stderr}");
    env.gpurun(&["delete", "--force", &a]).assert_ok();
    env.assert_clean();
}

#[test]
fn gpu_stats_of_a_paused_container() {
    // gpurun-only: runc has no GPU section in its stats. The helper runs on the host and the
    // container's /dev is read through /proc/PID/root: a frozen cgroup changes neither.
    let Some((env, host)) = gpu_env("gpu_stats_paused", machine()) else {
        return;
    };
    let a = env.running(with_env(&["NVIDIA_VISIBLE_DEVICES=0"]));
    let pa = pids(&env, &a);
    host.write_processes(&json!([{"gpu": 0, "pid": pa[0], "used_memory": GIB, "sm": 9}]));
    env.gpurun(&["pause", &a]).assert_ok();
    assert_eq!(env.status(&a).as_deref(), Some("paused"));
    let data = stats(&env, &a);
    assert!(data["pids"]["current"].as_u64() >= Some(1), "{data}");
    let g = &data["gpu"];
    assert_eq!(g.as_array().map(Vec::len), Some(1), "{data}");
    assert_eq!(g[0]["uuid"], host.uuid(0), "{g}");
    assert_eq!(
        (&g[0]["usedMemory"], &g[0]["sm"]),
        (&json!(GIB), &json!(9)),
        "{g}"
    );
    let out = env.gpurun(&["ps", &a]);
    out.assert_ok();
    assert_eq!(ps_gpu(&out, pa[0]), "0", "{}", out.stdout);
    env.gpurun(&["resume", &a]).assert_ok();
    env.gpurun(&["delete", "--force", &a]).assert_ok();
    env.assert_clean();
}
