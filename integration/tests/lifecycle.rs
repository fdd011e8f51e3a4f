//! create / start / state / kill / delete / run / list.

use gpurun_integration::*;

fn sleeper(env: &Env) {
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        s["annotations"] = json!({"org.gpurun.test": "yes"});
    });
}

fn pid_alive(pid: i32) -> bool {
    sys::kill(pid, 0)
}

#[test]
fn create_start_kill_delete() {
    if !require_root() {
        return;
    }
    let env = Env::new("create_start_kill_delete");
    sleeper(&env);
    let id = env.id();
    env.create_ok(&id);

    let st = env.state(&id).expect("state after create");
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0 && pid_alive(pid), "init {pid} not alive");
    assert_eq!(st["bundle"], env.bundle.to_str().unwrap());
    assert!(
        st["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{st}"
    );
    assert_eq!(st["annotations"]["org.gpurun.test"], "yes");

    // The init outlives create: still created, same pid, alive.
    assert_eq!(env.status(&id).as_deref(), Some("created"));
    assert_eq!(env.pid(&id), pid);
    assert!(pid_alive(pid));

    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "running");
    env.gpurun(&["kill", &id, "KILL"]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    env.gpurun(&["state", &id]).assert_err("does not exist");
    env.assert_clean();
}

#[test]
fn kill_signal_spellings() {
    if !require_root() {
        return;
    }
    let env = Env::new("kill_signal_spellings");
    // pid 1 ignores signals without a handler: trap TERM for the default signal.
    env.config(|s| set_args(s, &["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]));
    for sig in [Some("KILL"), Some("SIGKILL"), Some("9"), None] {
        let id = env.id();
        env.create_ok(&id);
        env.gpurun(&["start", &id]).assert_ok();
        env.wait_status(&id, "running");
        let mut args = vec!["kill", id.as_str()];
        args.extend(sig);
        env.gpurun(&args).assert_ok();
        env.wait_status(&id, "stopped");
        env.gpurun(&["delete", &id]).assert_ok();
    }
    env.assert_clean();
}

#[test]
fn run_prints_output_and_exit_code() {
    if !require_root() {
        return;
    }
    let env = Env::new("run_prints_output_and_exit_code");
    let out = env.run(&env.id());
    out.assert_ok();
    assert!(
        out.stdout.contains("hello from gpurun"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("hostname: gpurun"),
        "{}",
        out.describe()
    );
    let out = env.run_args(&["sh", "-c", "echo to-stderr >&2; exit 3"]);
    assert_eq!(out.code, 3, "{}", out.describe());
    assert!(out.stderr.contains("to-stderr"), "{}", out.describe());
    env.assert_clean();
}

#[test]
fn run_self_kill_is_137() {
    if !require_root() {
        return;
    }
    let env = Env::new("run_self_kill_is_137");
    // The init is pid 1 in its pid namespace and ignores signals it has no
    // handler for, so the killed process is a child the shell waits on.
    let out = env.run_args(&["sh", "-c", "sh -c 'kill -9 $$'; exit $?"]);
    assert_eq!(out.code, 137, "{}", out.describe());
    // Without a new pid namespace the init itself can die by signal.
    env.config(|s| {
        set_args(s, &["sh", "-c", "kill -9 $$"]);
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    let out = env.run(&env.id());
    assert_eq!(out.code, 137, "{}", out.describe());
    env.assert_clean();
}

#[test]
fn run_detached_and_pid_file() {
    if !require_root() {
        return;
    }
    let env = Env::new("run_detached_and_pid_file");
    sleeper(&env);
    let id = env.id();
    let pid_file = env.dir.join("init.pid");
    // `run -d` returns while the container goes on running (the sleeper runs for an hour).
    env.gpurun(&[
        "run",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "-b",
        env.bundle.to_str().unwrap(),
        &id,
    ])
    .assert_ok();
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    assert!(alive(env.pid(&id)), "the init is gone after run -d");
    let text = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    assert_eq!(text.trim().parse::<i32>().unwrap(), env.pid(&id));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn create_pid_file() {
    if !require_root() {
        return;
    }
    let env = Env::new("create_pid_file");
    sleeper(&env);
    let id = env.id();
    let pid_file = env.dir.join("create.pid");
    env.gpurun(&[
        "create",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "-b",
        env.bundle.to_str().unwrap(),
        &id,
    ])
    .assert_ok();
    let text = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    assert_eq!(text.trim().parse::<i32>().unwrap(), env.pid(&id));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn list_table_and_json() {
    if !require_root() {
        return;
    }
    let env = Env::new("list_table_and_json");
    sleeper(&env);
    let (a, b) = (env.id(), env.id());
    env.create_ok(&a);
    env.create_ok(&b);
    env.gpurun(&["start", &b]).assert_ok();
    env.wait_status(&b, "running");

    let table = env.gpurun(&["list"]);
    table.assert_ok();
    let header: Vec<&str> = table
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &header[..4],
        ["ID", "PID", "STATUS", "BUNDLE"],
        "{}",
        table.stdout
    );
    for (id, status) in [(&a, "created"), (&b, "running")] {
        let row = table
            .stdout
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .expect("row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], env.pid(id).to_string());
        assert_eq!(cols[2], status);
        assert_eq!(cols[3], env.bundle.to_str().unwrap());
    }

    let json = env.gpurun(&["list", "--format", "json"]);
    json.assert_ok();
    let v: Value = serde_json::from_str(&json.stdout).expect("list json");
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    let b_entry = arr.iter().find(|e| e["id"] == b.as_str()).unwrap();
    assert_eq!(b_entry["status"], "running");
    assert_eq!(b_entry["pid"].as_i64().unwrap() as i32, env.pid(&b));

    let quiet = env.gpurun(&["list", "-q"]);
    let mut ids: Vec<&str> = quiet.stdout.lines().collect();
    ids.sort();
    let mut want = vec![a.as_str(), b.as_str()];
    want.sort();
    assert_eq!(ids, want);

    for id in [&a, &b] {
        env.gpurun(&["delete", "--force", id]).assert_ok();
    }
    let empty = env.gpurun(&["list", "--format", "json"]);
    let v: Value = serde_json::from_str(&empty.stdout).unwrap_or(Value::Null);
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "{}",
        empty.stdout
    );
    env.assert_clean();
}

#[test]
fn delete_force_running() {
    if !require_root() {
        return;
    }
    let env = Env::new("delete_force_running");
    sleeper(&env);
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "running");
    let pid = env.pid(&id);
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.gpurun(&["state", &id]).assert_err("does not exist");
    assert!(
        poll(std::time::Duration::from_secs(2), || (!pid_alive(pid))
            .then_some(()))
        .is_some()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z"))
    );
    env.assert_clean();
}

#[test]
fn delete_force_created() {
    if !require_root() {
        return;
    }
    let env = Env::new("delete_force_created");
    sleeper(&env);
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.gpurun(&["state", &id]).assert_err("does not exist");
    env.assert_clean();
}

#[test]
fn delete_force_missing_is_ok() {
    if !require_root() {
        return;
    }
    let env = Env::new("delete_force_missing_is_ok");
    env.gpurun(&["delete", "--force", "no-such-container"])
        .assert_ok();
    env.assert_clean();
}

#[test]
fn kill_all() {
    if !require_root() {
        return;
    }
    let env = Env::new("kill_all");
    env.config(|s| set_args(s, &["sh", "-c", "sleep 3600 & sleep 3600 & wait"]));
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "running");
    // Both sleeps and the shell carry the marker.
    assert!(poll(std::time::Duration::from_secs(5), || (marked_pids(
        &env.marker
    )
    .len()
        >= 3)
        .then_some(()))
    .is_some());
    env.gpurun(&["kill", "--all", &id, "9"]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn kill_all_after_init_exited() {
    if !require_root() {
        return;
    }
    let env = Env::new("kill_all_after_init_exited");
    env.config(|s| set_args(s, &["true"]));
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "stopped");
    // containerd sends kill --all after the init exited and expects success.
    env.gpurun(&["kill", "--all", &id, "KILL"]).assert_ok();
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn start_prints_container_output() {
    if !require_root() {
        return;
    }
    let env = Env::new("start_prints_container_output");
    env.config(|s| set_args(s, &["sh", "-c", "echo out-$((6*7)); echo err-line >&2"]));
    let id = env.id();
    let mut out = env.create_ok(&id);
    assert!(!out.stdout.contains("out-42"), "ran before start");
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "stopped");
    env.wait_output(&mut out, "out-42");
    assert!(out.stderr.contains("err-line"), "{}", out.describe());
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}
