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
    // runtime-spec lifecycle: every hook before the user's program runs sees `created`.
    for phase in ["prestart", "createRuntime", "createContainer"] {
        assert_eq!(field(phase, 1), "created", "{phase}\n{log}");
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

/// runtime-spec 1.3 lifecycle step 9: a failing poststart hook fails `start` and stops the
/// container; `delete` then runs the poststop hooks. Step 13: a failing poststop hook is a
/// warning and the remaining poststop hooks still run.
/// gpurun-only: runc 1.1.5 fails `create` itself when a poststart hook is /bin/false, and stops
/// the poststop phase at the first failure.
#[test]
fn failing_poststart_stops_the_container_failing_poststop_does_not_stop_the_rest() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("hooks_post_failing");
    let done = env.dir.join("poststop-ran");
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        s["hooks"] = json!({
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}],
            "poststop": [
                {"path": "/bin/false"},
                {"path": "/bin/sh", "args": ["sh", "-c", format!("echo $1 >> {}", done.display()), "x", "second"]},
            ],
        });
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id])
        .assert_err("error running poststart hook #0");
    assert_eq!(env.status(&id).as_deref(), Some("stopped"));
    let log = env.dir.join("runtime.log");
    env.gpurun_with(&["--log", log.to_str().unwrap()], &["delete", &id])
        .assert_ok();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("warning") && logged.contains("error running poststop hook #0"),
        "the failure is a logged warning: {logged}"
    );
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default(),
        "second\n",
        "the hook after the failing one ran once"
    );
    env.gpurun(&["state", &id]).assert_err("does not exist");
    env.assert_clean();
}

/// Poststart hooks run only once the user's program has been exec'd (lifecycle step 9 after
/// step 8): a slow startContainer hook keeps the init in gpurun until it is done.
/// gpurun-only: runc 1.1.5 returns from `start` (and runs poststart) before startContainer
/// hooks have finished.
#[test]
fn poststart_runs_after_the_users_program_is_executed() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("hooks_poststart_exec");
    let seen = env.dir.join("seen");
    // The init's executable when poststart runs: the container's sleep (busybox), not gpurun.
    let probe = format!(
        "pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); readlink /proc/$pid/exe > {}",
        seen.display()
    );
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        s["hooks"] = json!({
            "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "1"]}],
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", probe]}],
        });
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let exe = std::fs::read_to_string(&seen).unwrap();
    let exe = exe.trim();
    assert!(
        !exe.is_empty() && !exe.contains("gpurun"),
        "poststart saw the init before its execve: {exe}"
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// A hook without `env` runs with runc's environment: the runtime's own for the runtime-side
/// phases, the container process's for startContainer; `env` given means exactly that.
#[test]
fn hooks_without_env_get_runcs_environment() {
    if !require_root() {
        return;
    }
    let env = Env::new("hooks_env");
    let logdir = env.dir.join("hooklog");
    std::fs::create_dir_all(&logdir).unwrap();
    let host = format!(
        "cat >/dev/null; echo \"$1 it=$GPURUN_IT app=$APP_VAR given=$GIVEN\" >> {}/log",
        logdir.display()
    );
    let inside =
        "cat >/dev/null; echo \"$1 it=$GPURUN_IT app=$APP_VAR given=$GIVEN\" >> /hooklog/log";
    let hook = |script: &str, phase: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", script, "hook", phase]});
    env.config(|s| {
        set_args(s, &["true"]);
        s["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("APP_VAR=app"));
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/hooklog", "type": "bind", "source": logdir, "options": ["rbind", "rw"]
        }));
        let mut given = hook(&host, "given");
        given["env"] = json!(["GIVEN=yes"]);
        s["hooks"] = json!({
            "prestart": [hook(&host, "prestart"), given],
            "startContainer": [hook(inside, "startContainer")],
            "poststop": [hook(&host, "poststop")],
        });
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    let log = std::fs::read_to_string(logdir.join("log")).unwrap();
    let it = &env.marker;
    for want in [
        format!("prestart it={it} app= given="),
        "given it= app= given=yes".to_string(),
        // The container's env: GPURUN_IT is in process.env too (the leak marker).
        format!("startContainer it={it} app=app given="),
        format!("poststop it={it} app= given="),
    ] {
        assert!(log.lines().any(|l| l == want), "no {want:?} in\n{log}");
    }
    env.assert_clean();
}

/// runtime-spec lifecycle step 7: a failing startContainer hook is `start`'s error, and the
/// container is stopped. `start` waits for the init's execve without the container's lock:
/// `state` answers while a slow startContainer hook runs.
/// gpurun-only: runc 1.1.5's `start` returns before startContainer hooks run, and succeeds.
#[test]
fn start_reports_a_failing_start_container_hook_and_does_not_hold_the_lock() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("hooks_start_container_fails");
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        s["hooks"] = json!({
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no-gpu-here >&2; exit 4"]}],
        });
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id])
        .assert_err("error running startContainer hook #0");
    assert_eq!(env.status(&id).as_deref(), Some("stopped"));
    env.gpurun(&["delete", &id]).assert_ok();

    let gate = env.dir.join("gate");
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        // The hook (run inside the container) holds start until the test makes the gate file.
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/gate", "type": "bind", "source": env.dir, "options": ["rbind", "rw"]
        }));
        s["hooks"] = json!({
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "while [ ! -e /gate/gate ]; do sleep 0.05; done"]}],
        });
    });
    let id = env.id();
    env.create_ok(&id);
    let mut start = std::process::Command::new(bin())
        .args(["--root", env.state.to_str().unwrap(), "start", &id])
        .env("GPURUN_IT", &env.marker)
        .spawn()
        .unwrap();
    // `state` and `kill` get the lock while start waits for the hook (once start has opened
    // the exec fifo, the container is running).
    let running = poll(std::time::Duration::from_secs(10), || {
        (env.status(&id).as_deref() == Some("running")).then_some(())
    });
    assert!(running.is_some(), "status {:?}", env.status(&id));
    assert!(
        start.try_wait().unwrap().is_none(),
        "start returned before the hook finished"
    );
    std::fs::write(&gate, "").unwrap();
    assert!(start.wait().unwrap().success());
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
