//! `run --keep`, `run -d`, and `delete` without `--force` in each state: what engines rely
//! on (Podman keeps stopped containers; containerd deletes created ones that never started).

use std::time::Duration;

use gpurun_integration::*;

#[test]
fn run_keep_leaves_a_stopped_container_until_delete() {
    if !require_root() {
        return;
    }
    let env = Env::new("run_keep");
    env.config(|s| set_args(s, &["sh", "-c", "echo kept; exit 3"]));
    let id = env.id();
    let bundle = env.bundle.to_str().unwrap();
    let out = env.gpurun(&["run", "--keep", "--bundle", bundle, &id]);
    assert_eq!(out.code, 3, "the container's status\n{}", out.describe());
    assert!(out.stdout.contains("kept"), "{}", out.describe());
    let state = env.state(&id).expect("--keep kept no state");
    assert_eq!(state["status"], "stopped", "{state}");
    assert_eq!(state["id"], id.as_str(), "{state}");
    assert!(
        std::fs::read_dir(&env.state).is_ok_and(|mut d| d.next().is_some()),
        "no state dir"
    );
    env.gpurun(&["update", "--pids-limit", "5", &id])
        .assert_err("not running");
    // Gone from `list` only once deleted.
    let listed = |env: &Env| env.gpurun(&["list", "-q"]).stdout.lines().any(|l| l == id);
    assert!(listed(&env), "stopped container not listed");
    env.gpurun(&["delete", &id]).assert_ok();
    assert!(env.state(&id).is_none(), "state after delete");
    assert!(!listed(&env), "listed after delete");
    env.assert_clean();
}

#[test]
fn run_detached_returns_with_the_container_running() {
    if !require_root() {
        return;
    }
    let env = Env::new("run_detached");
    env.config(|s| set_args(s, &["sh", "-c", "echo up; exec sleep 3600"]));
    let id = env.id();
    let pid_file = env.dir.join("init.pid");
    let bundle = env.bundle.to_str().unwrap();
    let mut out = env.gpurun(&[
        "run",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--bundle",
        bundle,
        &id,
    ]);
    out.assert_ok();
    env.wait_output(&mut out, "up\n");
    let state = env.state(&id).unwrap();
    assert_eq!(state["status"], "running", "{state}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(state["pid"], pid, "pid file vs state");
    assert!(alive(pid));
    env.gpurun(&["kill", &id, "KILL"]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    assert!(env.state(&id).is_none());
    env.assert_clean();
}

/// runc deletes a created container without `--force`: its init, waiting to be started, is
/// killed and nothing is left.
#[test]
fn delete_created_without_force() {
    if !require_root() {
        return;
    }
    let env = Env::new("delete_created");
    env.config(|s| set_args(s, &["sh", "-c", "echo RAN"]));
    let id = env.id();
    let mut out = env.create_ok(&id);
    env.wait_status(&id, "created");
    let pid = env.pid(&id);
    assert!(alive(pid));
    env.gpurun(&["delete", &id]).assert_ok();
    let gone = poll(Duration::from_secs(5), || (!alive(pid)).then_some(()));
    assert!(gone.is_some(), "init {pid} outlived delete");
    assert!(env.state(&id).is_none(), "state after delete");
    out.reread();
    assert!(
        !out.stdout.contains("RAN"),
        "the process ran\n{}",
        out.describe()
    );
    env.assert_clean();
}

/// A running or paused container is not deleted without `--force` (runc: "cannot delete
/// container ID that is not stopped: running"), and is left as it was.
#[test]
fn delete_running_or_paused_without_force_fails() {
    if !require_root() {
        return;
    }
    let env = Env::new("delete_running");
    env.config(|s| set_args(s, &["sleep", "3600"]));
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "running");
    let pid = env.pid(&id);
    env.gpurun(&["delete", &id]).assert_err("not stopped");
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    assert!(alive(pid));
    env.gpurun(&["pause", &id]).assert_ok();
    env.gpurun(&["delete", &id]).assert_err("not stopped");
    assert_eq!(env.status(&id).as_deref(), Some("paused"));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    let gone = poll(Duration::from_secs(5), || (!alive(pid)).then_some(()));
    assert!(gone.is_some(), "init {pid} outlived delete --force");
    env.assert_clean();
}
