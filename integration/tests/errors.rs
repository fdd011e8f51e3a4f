//! Failure paths: exact runc error wording (stderr and --log JSON), nothing left behind.

use gpurun_integration::*;

/// Run `args` with `--log F --log-format json`; assert failure, `needle` on
/// stderr, and a JSON log line with level error whose msg contains `needle`.
#[track_caller]
fn expect_error(env: &Env, args: &[&str], needle: &str) -> Out {
    let log = env.dir.join(format!("log-{}.json", env.id()));
    let log_s = log.to_str().unwrap();
    let out = env.gpurun_with(&["--log", log_s, "--log-format", "json"], args);
    out.assert_err(needle);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let hit = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| v["level"] == "error" && v["msg"].as_str().is_some_and(|m| m.contains(needle)));
    assert!(
        hit,
        "no JSON error line with {needle:?} in log:\n{text}\n{}",
        out.describe()
    );
    out
}

/// A create that must fail with `needle`, leaving no state behind.
#[track_caller]
fn create_fails(env: &Env, needle: &str) {
    let id = env.id();
    expect_error(
        env,
        &["create", "--bundle", env.bundle.to_str().unwrap(), &id],
        needle,
    );
    env.gpurun(&["state", &id]).assert_err("does not exist");
}

fn sleeper(env: &Env) {
    env.config(|s| set_args(s, &["sleep", "3600"]));
}

#[test]
fn duplicate_create() {
    if !require_root() {
        return;
    }
    let env = Env::new("duplicate_create");
    sleeper(&env);
    let id = env.id();
    env.create_ok(&id);
    let pid = env.pid(&id);
    let b = env.bundle.to_str().unwrap();
    expect_error(
        &env,
        &["create", "--bundle", b, &id],
        "container with given ID already exists",
    );
    assert_eq!(env.pid(&id), pid, "the first container must be untouched");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn missing_container() {
    if !require_root() {
        return;
    }
    let env = Env::new("missing_container");
    for args in [
        &["state", "ghost"][..],
        &["start", "ghost"],
        &["kill", "ghost"],
        &["kill", "--all", "ghost", "9"],
        &["delete", "ghost"],
    ] {
        let out = expect_error(&env, args, "container does not exist");
        // Scripts and suites look for the word (runc's stderr says level=error).
        if is_gpurun() {
            assert!(
                out.stderr
                    .starts_with("gpurun: error: container does not exist"),
                "{}",
                out.describe()
            );
        }
    }
    env.assert_clean();
}

#[test]
fn stopped_container_errors() {
    if !require_root() {
        return;
    }
    let env = Env::new("stopped_container_errors");
    env.config(|s| set_args(s, &["true"]));
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "stopped");
    expect_error(&env, &["kill", &id, "KILL"], "container not running");
    expect_error(
        &env,
        &["start", &id],
        "cannot start a container that has stopped",
    );
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn delete_running_needs_force() {
    if !require_root() {
        return;
    }
    let env = Env::new("delete_running_needs_force");
    sleeper(&env);
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "running");
    let msg = format!("cannot delete container {id} that is not stopped: running");
    expect_error(&env, &["delete", &id], &msg);
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn bad_container_ids() {
    if !require_root() {
        return;
    }
    let env = Env::new("bad_container_ids");
    let b = env.bundle.to_str().unwrap();
    for id in ["../x", "a/b", "..", ".", "a b", "x:y"] {
        expect_error(
            &env,
            &["create", "--bundle", b, id],
            "invalid container ID format",
        );
    }
    expect_error(
        &env,
        &["create", "--bundle", b, ""],
        "container id cannot be empty",
    );
    assert!(!env.dir.join("x").exists() && !env.state.join("a").exists());
    env.assert_clean();
}

#[test]
fn dot_prefixed_id_rejected() {
    if !require_root() || !gpurun_only() {
        return;
    } // runc 1.1.5 accepts ".x"
    let env = Env::new("dot_prefixed_id_rejected");
    expect_error(
        &env,
        &["create", "--bundle", env.bundle.to_str().unwrap(), ".x"],
        "invalid container ID format",
    );
    env.assert_clean();
}

#[test]
fn missing_config() {
    if !require_root() {
        return;
    }
    let env = Env::new("missing_config");
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    create_fails(&env, "JSON specification file config.json not found");
    env.assert_clean();
}

#[test]
fn malformed_config() {
    if !require_root() {
        return;
    }
    let env = Env::new("malformed_config");
    std::fs::write(env.bundle.join("config.json"), "{\"ociVersion\": ").unwrap();
    // runc says "unexpected EOF" (Go's decoder), gpurun names the file and the parse error.
    create_fails(
        &env,
        if is_gpurun() {
            "config.json"
        } else {
            "unexpected"
        },
    );
    env.assert_clean();
}

#[test]
fn unsupported_oci_version() {
    if !require_root() || !gpurun_only() {
        return;
    } // runc accepts 2.0.0
    let env = Env::new("unsupported_oci_version");
    env.config(|s| s["ociVersion"] = json!("2.0.0"));
    create_fails(&env, "2.0.0");
    env.assert_clean();
}

#[test]
fn args_must_not_be_empty() {
    if !require_root() {
        return;
    }
    let env = Env::new("args_must_not_be_empty");
    env.config(|s| s["process"]["args"] = json!([]));
    create_fails(&env, "args must not be empty");
    env.config(|s| {
        s["process"].as_object_mut().unwrap().remove("args");
    });
    create_fails(&env, "args must not be empty");
    env.config(|s| {
        s.as_object_mut().unwrap().remove("process");
    });
    create_fails(&env, "process property must not be empty");
    env.assert_clean();
}

#[test]
fn missing_rootfs() {
    if !require_root() {
        return;
    }
    let env = Env::new("missing_rootfs");
    env.config(|s| s["root"]["path"] = json!("nope"));
    create_fails(&env, "invalid rootfs");
    env.assert_clean();
}

#[test]
fn executable_not_found() {
    if !require_root() {
        return;
    }
    let env = Env::new("executable_not_found");
    env.config(|s| set_args(s, &["/nonexistent"]));
    create_fails(
        &env,
        "exec: \"/nonexistent\": stat /nonexistent: no such file or directory",
    );
    env.config(|s| set_args(s, &["nonexistent"]));
    create_fails(
        &env,
        "exec: \"nonexistent\": executable file not found in $PATH",
    );
    // Docker exits 126 on "permission denied": a directory, or a file without an x bit.
    env.config(|s| set_args(s, &["/tmp"]));
    create_fails(&env, "exec: \"/tmp\": permission denied");
    std::fs::write(env.rootfs().join("noexec"), "#!/bin/sh\n").unwrap();
    env.config(|s| set_args(s, &["/noexec"]));
    create_fails(&env, "exec: \"/noexec\": permission denied");
    env.assert_clean();
}

#[test]
fn unknown_capability() {
    if !require_root() {
        return;
    }
    let env = Env::new("unknown_capability");
    env.config(|s| {
        set_args(s, &["true"]);
        s["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_FOO"));
    });
    if is_gpurun() {
        create_fails(&env, "CAP_FOO");
    } else {
        // runc 1.1.5 only warns and runs the container.
        let out = env.run(&env.id());
        out.assert_ok();
        assert!(
            out.stderr
                .contains("ignoring unknown or unavailable capabilities: [CAP_FOO]"),
            "{}",
            out.describe()
        );
    }
    env.assert_clean();
}

#[test]
fn mount_destination_dotdot_escape() {
    if !require_root() {
        return;
    }
    let env = Env::new("mount_destination_dotdot_escape");
    env.config(|s| {
        set_args(s, &["true"]);
        s["mounts"].as_array_mut().unwrap().push(json!(
            {"destination": "/../../escape", "type": "tmpfs", "source": "tmpfs"}));
    });
    let id = env.id();
    let out = env.run(&id);
    if is_gpurun() {
        out.assert_fail();
    } // runc clamps the destination to <rootfs>/escape and runs.
    for outside in [
        env.bundle.join("escape"),
        env.dir.join("escape"),
        "/escape".into(),
    ] {
        assert!(
            !outside.exists(),
            "{} was created\n{}",
            outside.display(),
            out.describe()
        );
    }
    env.assert_clean();
}

#[test]
fn mount_destination_symlink_escape() {
    if !require_root() {
        return;
    }
    let env = Env::new("mount_destination_symlink_escape");
    let target = env.dir.join("host-target");
    std::fs::create_dir(&target).unwrap();
    // Enough ".." to reach / from anywhere, then the absolute host path.
    let link = format!(
        "{}{}",
        "../".repeat(12),
        target.to_str().unwrap().trim_start_matches('/')
    );
    std::os::unix::fs::symlink(&link, env.rootfs().join("evil")).unwrap();
    assert_eq!(
        std::fs::canonicalize(env.rootfs().join("evil")).unwrap(),
        target,
        "link must point at the host dir"
    );
    env.config(|s| {
        set_args(s, &["true"]);
        s["mounts"].as_array_mut().unwrap().push(json!(
            {"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"}));
    });
    let out = env.run(&env.id());
    if is_gpurun() {
        out.assert_fail();
    } // runc resolves the link inside the rootfs and runs.
    let created: Vec<_> = std::fs::read_dir(&target).unwrap().collect();
    assert!(
        created.is_empty(),
        "host dir gained {created:?}\n{}",
        out.describe()
    );
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !info.contains(target.to_str().unwrap()),
        "host path got a mount"
    );
    env.assert_clean();
}
