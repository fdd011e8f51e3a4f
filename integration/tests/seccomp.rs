//! linux.seccomp: real containers under real filters — errno and defaultErrnoRet, argument
//! filters, kill/trap/log actions, `exec`, no_new_privs off, and bad profiles that must fail
//! `create` leaving nothing behind. Whole profiles (Podman's, gpurun's default) are in
//! `seccomp_profiles.rs`.

use gpurun_integration::*;

const SIGSYS_EXIT: i32 = 128 + libc::SIGSYS;

fn with_profile(env: &Env, script: &str, profile: Value) -> Out {
    env.config(|s| {
        set_args(s, &["sh", "-c", script]);
        s["linux"]["seccomp"] = profile;
    });
    env.run(&env.id())
}

fn deny(names: &[&str], action: &str) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": names, "action": action}]})
}

#[test]
fn denied_syscalls_return_the_configured_errno() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_errno");
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["link", "linkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    ]});
    let out = with_profile(
        &env,
        "mkdir /tmp/d; echo mkdir=$?; link /bin/sh /tmp/l; echo link=$?; rmdir /tmp; echo ok",
        profile,
    );
    out.assert_ok();
    assert!(
        out.stdout.contains("mkdir=1\nlink=1\n"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("Function not implemented"),
        "{}",
        out.describe()
    );
    // rmdir is not filtered: it fails for its own reason (busy mount point / not empty).
    assert!(!out
        .stderr
        .contains("rmdir: '/tmp': Operation not permitted"));
    env.assert_clean();
}

#[test]
fn default_errno_ret_applies_to_unlisted_calls() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_default_errno");
    let mut profile = shipped_seccomp_profile();
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        rule["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n != "mkdir" && n != "mkdirat");
    }
    assert_eq!(profile["defaultErrnoRet"], 38);
    let out = with_profile(&env, "mkdir /tmp/d; echo mkdir=$?; echo alive", profile);
    out.assert_ok();
    assert!(out.stdout.contains("mkdir=1\nalive"), "{}", out.describe());
    assert!(
        out.stderr.contains("Function not implemented"),
        "{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn argument_filters_hold() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_args");
    let script = "linux32 true; echo l32=$?; linux64 true; echo l64=$?";
    // personality(PER_LINUX32 = 8) denied, any other value allowed.
    let eq = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"],
        "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]});
    // The allow-list form: only personality(0) (PER_LINUX) passes.
    let ne = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"],
        "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]}]});
    // MASKED_EQ: (arg & 0xff) == 8.
    let masked = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"],
        "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}]});
    for profile in [eq, ne, masked] {
        let out = with_profile(&env, script, profile.clone());
        out.assert_ok();
        assert!(
            out.stdout.contains("l32=1\nl64=0"),
            "{profile}\n{}",
            out.describe()
        );
        assert!(out
            .stderr
            .contains("personality(0x8): Operation not permitted"));
    }
    env.assert_clean();
}

#[test]
fn kill_and_trap_end_the_process_with_sigsys() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_kill");
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
    ] {
        env.config(|s| {
            set_args(s, &["mkdir", "/tmp/d"]);
            s["linux"]["seccomp"] = deny(&["mkdir", "mkdirat"], action);
        });
        let out = env.run(&env.id());
        assert_eq!(out.code, SIGSYS_EXIT, "{action}\n{}", out.describe());
    }
    env.assert_clean();
}

#[test]
fn log_allows_and_flags_are_accepted() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_log");
    let mut profile = deny(&["mkdir", "mkdirat"], "SCMP_ACT_LOG");
    // runc 1.1 refuses every flag ("not yet supported"); newer runc and gpurun take them.
    if is_gpurun() {
        profile["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);
    }
    // /dev is a tmpfs: writable although the root is read-only.
    let out = with_profile(&env, "mkdir /dev/d && test -d /dev/d && echo made", profile);
    out.assert_ok();
    assert!(out.stdout.contains("made"), "{}", out.describe());
    env.assert_clean();
}

#[test]
fn exec_gets_the_container_filter() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_exec");
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        s["linux"]["seccomp"] = deny(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO");
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let script = "mkdir /tmp/e; echo rc=$?; grep Seccomp: /proc/self/status";
    let out = env.gpurun(&["exec", &id, "sh", "-c", script]);
    out.assert_ok();
    assert!(
        out.stdout.contains("rc=1\nSeccomp:\t2"),
        "{}",
        out.describe()
    );
    // process.json (containerd's way) gets it too.
    let process = env.dir.join("process.json");
    let spec = env.base_spec();
    let mut p = spec["process"].clone();
    p["args"] = json!(["sh", "-c", script]);
    std::fs::write(&process, p.to_string()).unwrap();
    let out = env.gpurun(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert!(
        out.stdout.contains("rc=1\nSeccomp:\t2"),
        "{}",
        out.describe()
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn without_no_new_privs_the_filter_still_goes_in_and_caps_stay_dropped() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_nnp_off");
    for uid in [0, 1000] {
        env.config(|s| {
            set_args(s, &["sh", "-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; hostname x; echo rc=$?"]);
            s["process"]["noNewPrivileges"] = json!(false);
            s["process"]["user"] = json!({"uid": uid, "gid": uid});
            s["linux"]["seccomp"] = shipped_seccomp_profile();
        });
        let out = env.run(&env.id());
        out.assert_ok();
        let eff = if uid == 0 {
            cap_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        } else {
            0
        };
        let want = format!("CapEff:\t{eff:016x}\nNoNewPrivs:\t0\nSeccomp:\t2\n");
        assert!(
            out.stdout.starts_with(&want),
            "uid {uid}: want {want:?}\n{}",
            out.describe()
        );
        assert!(out.stdout.contains("rc=1"), "{}", out.describe());
    }
    env.assert_clean();
}

#[test]
fn bad_profiles_fail_create_and_leave_nothing() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_bad");
    let rule = |r: Value| json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [r]});
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_EXPLODE"}),
            "unknown action \"SCMP_ACT_EXPLODE\"",
        ),
        (
            rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SIMILAR"}]})),
            "unknown operator \"SCMP_CMP_SIMILAR\"",
        ),
        (
            rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]})),
            "argument index 6 is out of range",
        ),
        (
            rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"})),
            "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath",
        ),
    ];
    // More NOTIFY cases (a missing agent, `write`) are in seccomp_notify.rs.
    for (profile, needle) in &cases {
        env.config(|s| s["linux"]["seccomp"] = profile.clone());
        let id = env.id();
        let out = env.create(&id);
        out.assert_fail();
        if is_gpurun() {
            assert!(out.stderr.contains(*needle), "{needle}\n{}", out.describe());
        }
        env.gpurun(&["state", &id]).assert_err("does not exist");
        let leaks = env.leaks();
        assert!(leaks.is_empty(), "{profile}: {leaks}");
    }
    env.assert_clean();
}
