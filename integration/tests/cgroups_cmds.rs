//! Commands acting on a container's cgroups (update, pause/resume, ps,
//! events --stats, kill --all) and cgroup cleanup on every exit path.

use gpurun_integration::*;
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn update_changes_limits() {
    if !require_root() {
        return;
    }
    let env = Env::new("update_changes_limits");
    let mem = cg("memory/memory.limit_in_bytes", "memory.max");
    let pids = cg("pids/pids.max", "pids.max");
    let quota = cg("cpu/cpu.cfs_quota_us", "cpu.max");
    probe(&env, &[mem, pids, quota], |s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        s["linux"]["resources"]["pids"] = json!({"limit": 20});
    });
    let id = env.id();
    let mut out = env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let v = dump(&env, &mut out, 1);
    assert_eq!(get(&v, mem), "67108864");
    assert_eq!(get(&v, pids), "20");

    env.gpurun(&["update", "--memory", "128M", &id]).assert_ok();
    env.gpurun(&["kill", &id, "USR1"]).assert_ok();
    let v = dump(&env, &mut out, 2);
    assert_eq!(get(&v, mem), "134217728");
    assert_eq!(get(&v, pids), "20");

    // What containerd sends.
    let res = r#"{"memory":{"limit":100663296},"cpu":{"quota":20000,"period":100000},"pids":{"limit":30}}"#;
    env.gpurun_stdin(&["update", "--resources", "-", &id], res)
        .assert_ok();
    env.gpurun(&["kill", &id, "USR1"]).assert_ok();
    let v = dump(&env, &mut out, 3);
    assert_eq!(get(&v, mem), "100663296");
    assert_eq!(get(&v, pids), "30");
    assert_eq!(get(&v, quota), cg("20000", "20000 100000"));

    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn pause_resume_freezes() {
    if !require_root() {
        return;
    }
    let env = Env::new("pause_resume_freezes");
    env.config(|s| {
        set_args(
            s,
            &[
                "sh",
                "-c",
                "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/c; sleep 0.01; done",
            ],
        );
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let pid = env.pid(&id);
    let counter = PathBuf::from(format!("/proc/{pid}/root/dev/shm/c"));
    let read = || -> u64 {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        poll(Duration::from_secs(5), || (read() > 2).then_some(())).is_some(),
        "no counting"
    );

    env.gpurun(&["pause", &id]).assert_ok();
    assert_eq!(env.status(&id).as_deref(), Some("paused"));
    let dir = proc_cgroup_dir(pid, "freezer").expect("freezer cgroup");
    if cgroup2_host() {
        assert_eq!(
            std::fs::read_to_string(dir.join("cgroup.freeze"))
                .unwrap()
                .trim(),
            "1"
        );
    } else {
        let st = std::fs::read_to_string(dir.join("freezer.state")).unwrap();
        assert_eq!(st.trim(), "FROZEN");
    }
    let frozen = read();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read(), frozen, "counter moved while paused");

    env.gpurun(&["resume", &id]).assert_ok();
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    assert!(
        poll(Duration::from_secs(5), || (read() > frozen).then_some(())).is_some(),
        "counter stuck after resume"
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// Start `sh -c 'sleep 100 & sleep 100 & wait'`; returns the 3 host pids.
fn three_procs(env: &Env, id: &str, edit: impl FnOnce(&mut Value)) -> Vec<i32> {
    env.config(|s| {
        set_args(s, &["sh", "-c", "sleep 100 & sleep 100 & wait"]);
        edit(s);
    });
    env.create_ok(id);
    env.gpurun(&["start", id]).assert_ok();
    let mut pids = poll(Duration::from_secs(5), || {
        let p = marked_pids(&env.marker);
        (p.len() == 3).then_some(p)
    })
    .unwrap_or_else(|| panic!("want 3 processes, have {:?}", marked_pids(&env.marker)));
    pids.sort();
    pids
}

#[test]
fn ps_lists_container_processes() {
    if !require_root() {
        return;
    }
    let env = Env::new("ps_lists_container_processes");
    let id = env.id();
    let want = three_procs(&env, &id, |_| {});
    let init = env.pid(&id);
    assert!(want.contains(&init));

    let out = env.gpurun(&["ps", "--format", "json", &id]);
    out.assert_ok();
    let v: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.describe()));
    let mut got: Vec<i32> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p.as_i64().unwrap() as i32)
        .collect();
    got.sort();
    assert_eq!(got, want, "{}", out.describe());

    // The table: `ps -ef` columns, one row per process. runc runs the host's
    // ps(1), which fails in some VMs ("Unable to get system boot time").
    let host_ps = std::process::Command::new("ps").arg("-ef").output();
    if !host_ps.is_ok_and(|o| o.status.success()) {
        skip("part: ps table (host ps -ef does not work here)");
        env.gpurun(&["delete", "--force", &id]).assert_ok();
        env.assert_clean();
        return;
    }
    let out = env.gpurun(&["ps", &id]);
    out.assert_ok();
    let mut lines = out.stdout.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.contains("PID") && h.contains("CMD")),
        "{}",
        out.describe()
    );
    let mut rows: Vec<i32> = lines
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    rows.sort();
    assert_eq!(rows, want, "{}", out.describe());

    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn events_stats() {
    if !require_root() {
        return;
    }
    let env = Env::new("events_stats");
    let id = env.id();
    three_procs(&env, &id, |s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20})
    });
    let out = env.gpurun(&["events", "--stats", &id]);
    out.assert_ok();
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("{e}\n{}", out.describe()));
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id.as_str(), "{v}");
    let d = &v["data"];
    assert!(
        d["memory"]["usage"]["usage"]
            .as_u64()
            .is_some_and(|u| u > 0),
        "{v}"
    );
    assert_eq!(d["memory"]["usage"]["limit"], 64 << 20, "{v}");
    assert_eq!(d["pids"]["current"], 3, "{v}");
    assert!(
        d["cpu"]["usage"]["total"].as_u64().is_some_and(|u| u > 0),
        "{v}"
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn kill_all_without_pid_namespace() {
    if !require_root() {
        return;
    }
    let env = Env::new("kill_all_without_pid_namespace");
    let id = env.id();
    let pids = three_procs(&env, &id, |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    env.gpurun(&["kill", "--all", &id, "KILL"]).assert_ok();
    let gone = poll(Duration::from_secs(5), || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
    assert!(
        gone.is_some(),
        "alive after kill --all: {:?}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}

/// All host cgroup dirs of `pid`, asserting each is named after `id`.
#[track_caller]
fn cgroup_dirs_named(pid: i32, id: &str) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = proc_cgroup_dirs(pid).into_iter().map(|(_, d)| d).collect();
    assert!(!dirs.is_empty());
    for d in &dirs {
        assert!(d.ends_with(id) && d.is_dir(), "{} for {id}", d.display());
    }
    if !cgroup2_host() && std::path::Path::new("/sys/fs/cgroup/unified").is_dir() {
        // Hybrid: the unified hierarchy gets one too.
        assert!(
            dirs.iter().any(|d| d.starts_with("/sys/fs/cgroup/unified")),
            "no unified cgroup: {dirs:?}"
        );
    }
    dirs
}

#[track_caller]
fn assert_gone(dirs: &[PathBuf], when: &str) {
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "{when}: left {left:?}");
}

#[test]
fn cgroups_removed_on_every_exit_path() {
    if !require_root() {
        return;
    }
    let env = Env::new("cgroups_removed_on_every_exit_path");
    let rel = |s: &mut Value, id: &str| {
        s["linux"]["cgroupsPath"] = json!(format!("{CGROUP_PREFIX}/{id}"))
    };

    // Exited by itself, then delete.
    let id = env.id();
    env.config(|s| {
        set_args(s, &["true"]);
        rel(s, &id);
    });
    env.create_ok(&id);
    let dirs = cgroup_dirs_named(env.pid(&id), &id);
    let seen = env.leaks_now().cgroups;
    assert!(
        dirs.iter().all(|d| seen.contains(d)),
        "leak check misses some of {dirs:?}: {seen:?}"
    );
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    assert_gone(&dirs, "exit + delete");

    // kill KILL + delete; unset cgroupsPath.
    let id = env.id();
    env.config(|s| set_args(s, &["sleep", "3600"]));
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let dirs = cgroup_dirs_named(env.pid(&id), &id);
    env.gpurun(&["kill", &id, "KILL"]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    assert_gone(&dirs, "kill + delete");

    // run: the container sees itself in its cgroup (no cgroup namespace here, so the paths
    // are the host's), nothing is left after.
    let id = env.id();
    env.config(|s| {
        set_args(s, &["sh", "-c", "cat /proc/self/cgroup"]);
        rel(s, &id);
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup");
    });
    let out = env.run(&id);
    out.assert_ok();
    let own = format!("/{CGROUP_PREFIX}/{id}");
    let memory = out.stdout.lines().find(|l| {
        let mut f = l.splitn(3, ':');
        f.nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == "memory"))
            || (cgroup2_host() && l.starts_with("0::"))
    });
    assert!(
        memory.is_some_and(|l| l.ends_with(&own)),
        "the container is not in {own}: {}",
        out.describe()
    );
    if !cgroup2_host() && std::path::Path::new("/sys/fs/cgroup/unified").is_dir() {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("0::") && l.ends_with(&own)),
            "not in its unified cgroup {own}: {}",
            out.describe()
        );
    }
    assert!(
        cgroup_dirs(std::slice::from_ref(&id)).is_empty(),
        "after run: {:?}",
        cgroup_dirs(&[id])
    );

    // create fails after the cgroup exists: args[0] not found.
    let id = env.id();
    env.config(|s| {
        set_args(s, &["/no/such/binary"]);
        rel(s, &id);
    });
    env.create(&id).assert_fail();
    assert!(
        cgroup_dirs(std::slice::from_ref(&id)).is_empty(),
        "after failed create: {:?}",
        cgroup_dirs(&[id])
    );
    env.assert_clean();
}
