//! exec: a second process in a running container — namespaces, cgroup, user, env, cwd,
//! process.json, detach + pid file, exit status, and the errors.

use gpurun_integration::*;

#[test]
fn exec_joins_the_container() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_joins");
    let id = env.running(|_| {});
    let init = env.pid(&id);
    let script = "hostname; for n in pid mnt net uts; do readlink /proc/self/ns/$n; done; \
                  cat /proc/1/comm; exit 7";
    let out = env.gpurun(&["exec", &id, "sh", "-c", script]);
    assert_eq!(out.code, 7, "{}", out.describe());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "gpurun", "{}", out.describe());
    for (i, ns) in ["pid", "mnt", "net", "uts"].iter().enumerate() {
        let init_ns = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        assert_eq!(
            lines[1 + i],
            init_ns.to_str().unwrap(),
            "{ns}\n{}",
            out.describe()
        );
    }
    assert_eq!(
        lines[5],
        "sleep",
        "pid 1 is the container's init\n{}",
        out.describe()
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn exec_user_env_cwd_and_process_json() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_options");
    let id = env.running(|_| {});
    let out = env.gpurun(&[
        "exec",
        "--user",
        "1000:1001",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "id -u; id -g; echo $FOO; pwd",
    ]);
    out.assert_ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["1000", "1001", "bar", "/tmp"],
        "{}",
        out.describe()
    );

    let process = env.dir.join("process.json");
    let p = json!({
        "args": ["sh", "-c", "echo from-json $X; pwd"], "cwd": "/etc", "env": ["X=y", "PATH=/bin"],
        "user": {"uid": 0, "gid": 0}, "terminal": false
    });
    std::fs::write(&process, p.to_string()).unwrap();
    let out = env.gpurun(&["exec", "--process", process.to_str().unwrap(), &id]);
    out.assert_ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["from-json y", "/etc"],
        "{}",
        out.describe()
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn exec_detached_with_pid_file_is_in_the_cgroup() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_detached");
    let id = env.running(|_| {});
    let pid_file = env.dir.join("exec.pid");
    let out = env.gpurun(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "100",
    ]);
    out.assert_ok();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let init = env.pid(&id);
    let cg = |p: i32| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(
        cg(pid),
        cg(init),
        "exec'd process shares the init's cgroups"
    );
    let ps = env.gpurun(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&pid) && pids.contains(&init), "{pids:?}");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn exec_errors() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_errors");
    env.gpurun(&["exec", "ghost", "true"])
        .assert_err("does not exist");
    let id = env.running(|_| {});
    env.gpurun(&["exec", &id, "/nonexistent"])
        .assert_err("/nonexistent");
    env.gpurun(&["kill", &id, "KILL"]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["exec", &id, "true"]).assert_err("stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}
