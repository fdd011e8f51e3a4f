//! OCI hooks: all six phases, in order, with the state on stdin, their env/args, the namespace
//! they run in, and what a failing or hanging hook does.

use gpurun_integration::*;

/// A hook running `sh -c script` with `$1` = the phase name and `HOOK_ENV=yes`.
fn sh_hook(script: &str, phase: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script, "hook", phase], "env": ["HOOK_ENV=yes"]})
}

/// gpurun-only: runc 1.1.5 passes createContainer the pid as seen inside the container (1),
/// poststart the status "created", and runs poststart before startContainer can finish.
#[test]
fn all_phases_in_order_with_state() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("hooks_all_phases");
    let logdir = env.dir.join("hooklog");
    std::fs::create_dir_all(&logdir).unwrap();
    let host_log = logdir.join("log");
    // Host-side hooks append "phase status pid env mntns"; the startContainer hook runs inside
    // the container (its path resolved there) and sees the log through a bind mount.
    let host = format!(
        "s=$(cat); echo \"$1 $(echo \"$s\" | sed -n 's/.*\"status\": *\"\\([a-z]*\\)\".*/\\1/p') \
         $(echo \"$s\" | sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p') $HOOK_ENV $(readlink /proc/self/ns/mnt)\" >> {}",
        host_log.display()
    );
    let inside = "cat >/dev/null; echo \"$1 inside $HOOK_ENV\" >> /hooklog/log";
    env.config(|s| {
        set_args(s, &["sh", "-c", "echo started >> /hooklog/log"]);
        s["annotations"] = json!({"org.gpurun.hooks": "yes"});
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/hooklog", "type": "bind", "source": logdir, "options": ["rbind", "rw"]
        }));
        s["hooks"] = json!({
            "prestart": [sh_hook(&host, "prestart")],
            "createRuntime": [sh_hook(&host, "createRuntime")],
            "createContainer": [sh_hook(&host, "createContainer")],
            "startContainer": [sh_hook(inside, "startContainer")],
            "poststart": [sh_hook(&host, "poststart")],
            "poststop": [sh_hook(&host, "poststop")],
        });
    });
    let id = env.id();
    let mut created = env.create_ok(&id);
    let pid = env.pid(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "stopped");
    created.reread();
    assert!(created.stderr.is_empty(), "{}", created.describe());
    env.gpurun(&["delete", &id]).assert_ok();

    let log = std::fs::read_to_string(&host_log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // The container's own line races with poststart: leave it out of the order check.
    let phases: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .filter(|p| *p != "started")
        .collect();
    let want = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    assert_eq!(phases, want, "{log}");
    assert!(log.contains("started"), "{log}");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let field = |phase: &str, n: usize| -> String {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{phase} ")))
            .unwrap_or_else(|| panic!("no {phase}:\n{log}"));
        line.split(' ').nth(n).unwrap_or_default().to_string()
    };
    for phase in ["prestart", "createRuntime", "createContainer", "poststart"] {
        assert_eq!(
            field(phase, 2),
            pid.to_string(),
            "{phase} got the init's pid\n{log}"
        );
        assert_eq!(field(phase, 3), "yes", "{phase} got its env\n{log}");
    }
    assert_eq!(field("poststart", 1), "running", "{log}");
    assert_eq!(field("poststop", 1), "stopped", "{log}");
    // prestart/createRuntime in the runtime's mount namespace, createContainer in the container's.
    assert_eq!(field("prestart", 4), host_mnt.to_str().unwrap(), "{log}");
    assert_eq!(
        field("createRuntime", 4),
        host_mnt.to_str().unwrap(),
        "{log}"
    );
    assert_ne!(
        field("createContainer", 4),
        host_mnt.to_str().unwrap(),
        "{log}"
    );
    assert_eq!(field("startContainer", 1), "inside", "{log}");
    env.assert_clean();
}

/// gpurun-only: runc 1.1.5 leaves the state of a create whose prestart hook failed.
#[test]
fn failing_create_hooks_fail_create_and_leave_nothing() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("hooks_failing");
    for (phase, hook) in [
        (
            "prestart",
            json!({"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 7"]}),
        ),
        (
            "createRuntime",
            json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}),
        ),
        ("createContainer", json!({"path": "/bin/false"})),
        ("prestart", json!({"path": "/nonexistent/hook"})),
    ] {
        env.config(|s| {
            set_args(s, &["true"]);
            s["hooks"] = json!({ phase: [hook] });
        });
        let id = env.id();
        let out = env.create(&id);
        out.assert_fail();
        assert!(
            out.stderr.contains(&format!("{phase} hook")),
            "{}",
            out.describe()
        );
        env.gpurun(&["state", &id]).assert_err("does not exist");
        let leaks = env.leaks();
        assert!(leaks.is_empty(), "{phase} leaked:\n{leaks}");
    }
    env.assert_clean();
}

/// gpurun-only: runc 1.1.5 fails `create` itself when a poststart hook is /bin/false.
#[test]
fn failing_poststart_and_poststop_are_not_fatal() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("hooks_post_failing");
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        s["hooks"] = json!({
            "poststart": [{"path": "/bin/false"}],
            "poststop": [{"path": "/bin/false"}],
        });
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "running");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.gpurun(&["state", &id]).assert_err("does not exist");
    env.assert_clean();
}
