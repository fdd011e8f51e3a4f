//! Rootless: a real unprivileged user (made by the harness, with /etc/subuid ranges) runs the
//! busybox bundle with `spec --rootless`, through the whole lifecycle, with state under its
//! `XDG_RUNTIME_DIR` and no cgroup; limits it cannot get and bad mappings fail cleanly.
//! Under runc (`GPURUN_BIN=/usr/sbin/runc`) the same behaviour is checked; gpurun's own
//! choices (its state dir name, its error wording, no cgroup mount in the rootless spec) are
//! checked only for gpurun ([`is_gpurun`]).

use gpurun_integration::*;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

/// A rootless Env whose config.json is `<runtime> spec --rootless` (written by the user) with
/// `args`, no terminal (runc's spec asks for one, gpurun's does not), the leak marker and
/// `edit` applied.
fn rootless_bundle(
    name: &str,
    args: &[&str],
    edit: impl FnOnce(&mut Value),
) -> Option<(Env, RootlessUser)> {
    let user = rootless_user()?;
    let env = rootless_env(name, &user);
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    as_user(&env, &user, true, &["spec", "--rootless"]).assert_ok();
    let path = env.bundle.join("config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    set_args(&mut spec, args);
    spec["process"]["terminal"] = json!(false);
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("GPURUN_IT={}", env.marker)));
    edit(&mut spec);
    env.write_config(&spec);
    Some((env, user))
}

#[test]
fn spec_rootless_maps_the_user_to_root_and_runs_busybox() {
    let script = "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; \
                  echo x >/dev/null && echo null-ok; ls /sys/kernel >/dev/null && echo sys-ok";
    let Some((env, user)) = rootless_bundle("rl_spec", &["sh", "-c", script], |_| {}) else {
        return;
    };
    // The spec the user got: runc's ToRootless of the default one.
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(env.bundle.join("config.json")).unwrap())
            .unwrap();
    let ns: Vec<&str> = spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
    assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], user.uid);
    assert_eq!(spec["linux"]["gidMappings"][0]["hostID"], user.gid);
    assert!(spec["linux"]["resources"].is_null());
    let mounts = spec["mounts"].as_array().unwrap();
    // runc 1.1 keeps a /sys/fs/cgroup mount in its rootless spec; gpurun leaves it out.
    if is_gpurun() {
        assert!(mounts.iter().all(|m| m["type"] != "cgroup"), "{mounts:?}");
    }
    assert!(!spec["mounts"].to_string().contains("gid=5"));

    let out = as_user(&env, &user, true, &["run", &env.id()]);
    out.assert_ok();
    let lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines[0], "0", "{}", out.describe());
    assert_eq!(lines[1], "0", "{}", out.describe());
    assert_eq!(lines[2], format!("0 {} 1", user.uid), "{}", out.describe());
    assert_eq!(lines[3], format!("0 {} 1", user.gid), "{}", out.describe());
    assert!(
        out.stdout.contains("null-ok") && out.stdout.contains("sys-ok"),
        "{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn the_whole_lifecycle_works_for_an_unprivileged_user() {
    let Some((env, user)) = rootless_bundle("rl_life", &["sleep", "100"], |_| {}) else {
        return;
    };
    let id = env.id();
    as_user(&env, &user, true, &["create", &id]).assert_ok();
    // State under $XDG_RUNTIME_DIR/gpurun (runc: $XDG_RUNTIME_DIR/runc), the user's.
    let dir = env.state.join(&id);
    assert!(dir.starts_with(env.dir.join("xdg")), "{}", dir.display());
    let meta = std::fs::metadata(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert_eq!(meta.uid(), user.uid);
    let listed = as_user(&env, &user, true, &["list", "-q"]);
    assert_eq!(listed.stdout.trim(), id, "{}", listed.describe());
    let state: Value =
        serde_json::from_str(&as_user(&env, &user, true, &["state", &id]).stdout).unwrap();
    assert_eq!(state["status"], "created");
    as_user(&env, &user, true, &["start", &id]).assert_ok();
    let pid = env.pid(&id);
    // The init runs as the user on the host, and no cgroup was made for it.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = read_status_field(&status, "Uid").unwrap();
    assert!(
        uids.split_whitespace().all(|u| u == user.uid.to_string()),
        "{uids}"
    );
    assert!(
        cgroup_dirs(std::slice::from_ref(&id)).is_empty(),
        "a cgroup was made"
    );
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let exec = as_user(
        &env,
        &user,
        true,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "id -u; readlink /proc/self/ns/user",
        ],
    );
    exec.assert_ok();
    let lines: Vec<&str> = exec.stdout.lines().collect();
    assert_eq!(
        lines,
        ["0", init_ns.to_str().unwrap()],
        "{}",
        exec.describe()
    );
    // `ps` of a container with no cgroup: gpurun lists its processes; runc 1.1 reads them
    // from the cgroup only, and fails.
    if is_gpurun() {
        let ps = as_user(&env, &user, true, &["ps", "--format", "json", &id]);
        let pids: Vec<i32> =
            serde_json::from_str(&ps.stdout).unwrap_or_else(|e| panic!("{e}: {}", ps.describe()));
        assert!(pids.contains(&pid), "{}", ps.describe());
    }
    as_user(&env, &user, true, &["kill", &id, "KILL"]).assert_ok();
    env.wait_status(&id, "stopped");
    as_user(&env, &user, true, &["delete", &id]).assert_ok();
    let listed = as_user(&env, &user, true, &["list", "-q"]);
    assert_eq!(listed.stdout.trim(), "", "{}", listed.describe());
    env.assert_clean();
}

#[test]
fn limits_a_rootless_container_cannot_get_fail_clearly_and_leave_nothing() {
    let Some((env, user)) = rootless_bundle("rl_limits", &["true"], |s| {
        s["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
    }) else {
        return;
    };
    let id = env.id();
    let out = as_user(&env, &user, true, &["run", &id]);
    // gpurun names the field; runc has its own words.
    if is_gpurun() {
        out.assert_err("linux.resources");
    } else {
        out.assert_fail();
    }
    assert!(cgroup_dirs(&[id]).is_empty());
    env.assert_clean();
}

#[test]
fn wider_mappings_go_through_newuidmap_and_bad_ones_fail_cleanly() {
    let script = "cat /proc/self/uid_map /proc/self/gid_map";
    let wide = |user: &RootlessUser| {
        json!([
            {"containerID": 0, "hostID": user.uid, "size": 1},
            {"containerID": 1, "hostID": user.subids.0, "size": 1000}
        ])
    };
    // newuidmap works only as a setuid-root (or file-capability) binary.
    let helper = std::fs::metadata("/usr/bin/newuidmap");
    let setuid = helper
        .as_ref()
        .is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0);
    let fcaps = Command::new("getcap")
        .arg("/usr/bin/newuidmap")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    if !setuid && !fcaps {
        skip(&format!(
            "/usr/bin/newuidmap is missing or not setuid root ({helper:?})"
        ));
        return;
    }
    let Some((env, user)) = rootless_bundle("rl_wide", &["sh", "-c", script], |_| {}) else {
        return;
    };
    let path = env.bundle.join("config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["linux"]["uidMappings"] = wide(&user);
    spec["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": user.gid, "size": 1},
        {"containerID": 1, "hostID": user.subids.0, "size": 1000}
    ]);
    env.write_config(&spec);
    let out = as_user(&env, &user, true, &["run", &env.id()]);
    out.assert_ok();
    let second = format!("1 {} 1000", user.subids.0);
    let lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines.iter().filter(|l| **l == second).count(),
        2,
        "{}",
        out.describe()
    );

    // A range that is not the user's: newuidmap refuses, nothing is left.
    spec["linux"]["uidMappings"][1]["hostID"] = json!(user.subids.0 + user.subids.1);
    env.write_config(&spec);
    let id = env.id();
    as_user(&env, &user, true, &["run", &id]).assert_err("newuidmap");
    assert!(cgroup_dirs(&[id]).is_empty());
    env.assert_clean();
}

#[test]
fn the_default_root_of_a_rootless_caller_is_under_xdg_runtime_dir() {
    let Some((env, user)) = rootless_bundle("rl_root", &["true"], |_| {}) else {
        return;
    };
    // Without XDG_RUNTIME_DIR the default root (/run/gpurun, /run/runc) is refused: gpurun
    // says to set XDG_RUNTIME_DIR, runc that it cannot make its dir.
    let out = as_user(&env, &user, false, &["list"]);
    if is_gpurun() {
        out.assert_err("XDG_RUNTIME_DIR");
    } else {
        out.assert_fail();
    }
    let listed = as_user(&env, &user, true, &["list", "--format", "json"]);
    listed.assert_ok();
    // No containers: gpurun prints an empty array, runc 1.1 a JSON null.
    let none: &[&str] = if is_gpurun() {
        &["[]"]
    } else {
        &["[]", "null"]
    };
    assert!(
        none.contains(&listed.stdout.trim()),
        "{}",
        listed.describe()
    );
    env.assert_clean();
}
