//! linux.seccomp with SCMP_ACT_NOTIFY: the listener reaches the agent at `listenerPath` with
//! the container process state (init and `exec`), the agent's answer is what the container
//! sees; a missing agent or a NOTIFY rule without `listenerPath` fails with nothing left.

use gpurun_integration::seccomp_agent::Agent;
use gpurun_integration::*;

/// Distinctive: mkdir on the /dev tmpfs would succeed, and never says this by itself.
const ANSWER: i32 = libc::EXDEV;
const SCRIPT: &str = "mkdir /dev/x; echo rc=$?; test -d /dev/x && echo exists; echo done";

fn notify_profile(listener: Option<&str>) -> Value {
    let mut p = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}
    ]});
    if let Some(path) = listener {
        p["listenerPath"] = json!(path);
        p["listenerMetadata"] = json!("meta-it");
    }
    p
}

#[track_caller]
fn assert_answered(out: &Out) {
    assert!(out.stdout.contains("rc=1\ndone"), "{}", out.describe());
    assert!(
        out.stderr.contains("Invalid cross-device link"),
        "{}",
        out.describe()
    );
}

#[test]
fn init_gets_the_agents_answer() {
    if !require_root() {
        return;
    }
    let env = Env::new("notify_init");
    // no_new_privs off too: the early install then relies on CAP_SYS_ADMIN.
    for nnp in [true, false] {
        let agent = Agent::start(env.dir.join("agent.sock"), ANSWER);
        let path = agent.path.to_str().unwrap().to_string();
        env.config(|s| {
            set_args(s, &["sh", "-c", SCRIPT]);
            s["process"]["noNewPrivileges"] = json!(nnp);
            s["linux"]["seccomp"] = notify_profile(Some(&path));
        });
        let id = env.id();
        let out = env.run(&id);
        out.assert_ok();
        assert_answered(&out);
        let states = agent.wait_states(1);
        assert_eq!(states.len(), 1, "{states:?}");
        let st = &states[0];
        assert_eq!(st["fds"], json!(["seccompFd"]), "{st}");
        assert_eq!(st["metadata"], "meta-it", "{st}");
        assert_eq!(st["state"]["id"], id.as_str(), "{st}");
        assert_eq!(st["state"]["status"], "creating", "{st}");
        assert!(st["pid"].as_i64().unwrap() > 0, "{st}");
        assert_eq!(st["pid"], st["state"]["pid"], "{st}");
        assert!(st["ociVersion"].is_string(), "{st}");
        let mkdir = libc::SYS_mkdir as i32;
        assert!(
            agent.notified().iter().any(|n| n.0 == 0 && n.2 == mkdir),
            "{:?}",
            agent.notified()
        );
    }
    env.assert_clean();
}

#[test]
fn exec_gets_its_own_listener() {
    if !require_root() {
        return;
    }
    let env = Env::new("notify_exec");
    let agent = Agent::start(env.dir.join("agent.sock"), ANSWER);
    let path = agent.path.to_str().unwrap().to_string();
    let id = env.running(|s| s["linux"]["seccomp"] = notify_profile(Some(&path)));
    let init_pid = env.pid(&id);
    let out = env.gpurun(&["exec", &id, "sh", "-c", SCRIPT]);
    out.assert_ok();
    assert_answered(&out);
    let states = agent.wait_states(2);
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(states[0]["pid"], init_pid, "{states:?}");
    let st = &states[1];
    assert_eq!(st["state"]["status"], "running", "{st}");
    assert_eq!(st["state"]["id"], id.as_str(), "{st}");
    assert_eq!(st["state"]["pid"], init_pid, "{st}");
    assert_ne!(st["pid"], init_pid, "the exec'd process: {st}");
    assert_eq!(st["metadata"], "meta-it", "{st}");
    // Answered through the exec's own listener (the second connection).
    let mkdir = libc::SYS_mkdir as i32;
    assert!(
        agent.notified().iter().any(|n| n.0 == 1 && n.2 == mkdir),
        "{:?}",
        agent.notified()
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    drop(agent);
    env.assert_clean();
}

#[test]
fn missing_agent_fails_create_leaving_nothing() {
    if !require_root() {
        return;
    }
    let env = Env::new("notify_missing");
    let path = env.dir.join("nobody.sock");
    env.config(|s| s["linux"]["seccomp"] = notify_profile(Some(path.to_str().unwrap())));
    let out = env.create(&env.id());
    // runc: "… profile: dial unix PATH: connect: no such file or directory".
    out.assert_err("failed to connect with seccomp agent specified in the seccomp profile");
    out.assert_err("no such file or directory");
    if is_gpurun() {
        out.assert_err(&format!(
            "connect {}: no such file or directory",
            path.display()
        ));
    }
    env.assert_clean();
}

#[test]
fn notify_without_listener_path_fails_leaving_nothing() {
    if !require_root() {
        return;
    }
    let env = Env::new("notify_no_path");
    env.config(|s| s["linux"]["seccomp"] = notify_profile(None));
    let out = env.create(&env.id());
    // runc: "seccomp listenerPath is not set", found once its init has the listener.
    out.assert_err("listenerPath");
    if is_gpurun() {
        out.assert_err("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
    }
    env.assert_clean();
}

#[test]
fn notify_on_write_is_refused() {
    if !require_root() {
        return;
    }
    let env = Env::new("notify_write");
    let agent = Agent::start(env.dir.join("agent.sock"), ANSWER);
    env.config(|s| {
        let mut p = notify_profile(Some(agent.path.to_str().unwrap()));
        p["syscalls"][0]["names"] = json!(["mkdir", "write"]);
        s["linux"]["seccomp"] = p;
    });
    let out = env.create(&env.id());
    out.assert_err("SCMP_ACT_NOTIFY cannot be used for the write syscall");
    drop(agent);
    env.assert_clean();
}
