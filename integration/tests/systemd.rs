//! The systemd cgroup driver (`--systemd-cgroup`) against a real systemd: the container's
//! cgroup is a transient scope, its limits are unit properties (read back with `systemctl
//! show`) and cgroup files, `update` changes both, device rules survive `daemon-reload`, and
//! `delete` (after `kill -9` too) leaves no unit. Runs where systemd is PID 1 (the VM suite:
//! `VM_SYSTEMD=1 integration/vm/run-suite.sh`); elsewhere only the "no systemd" error test runs.
//! As engines do, `--systemd-cgroup` is given to `create`/`run` only. Rootless and hybrid hosts:
//! `systemd_hosts.rs`.

use gpurun_integration::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn no_systemd_is_a_clear_error_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    if systemd_is_pid1() {
        skip("systemd is PID 1 here");
        return;
    }
    let env = Env::new("no_systemd_is_a_clear_error");
    env.config(|s| set_args(s, &["true"]));
    let (id, path, _) = scoped(&env);
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["cgroupsPath"] = json!(path);
    });
    let out = create_sd(&env, &id);
    assert!(
        !out.ok(),
        "create succeeded without systemd\n{}",
        out.describe()
    );
    if is_gpurun() {
        assert!(
            out.stderr.contains("systemd is not running"),
            "{}",
            out.describe()
        );
    }
    env.assert_clean();
}

#[test]
fn scope_lifecycle_limits_update_and_delete() {
    if !require_systemd() {
        return;
    }
    let env = Env::new("scope_lifecycle");
    let (id, path, unit) = scoped(&env);
    env.config(|s| {
        set_args(s, &["sleep", "300"]);
        s["linux"]["cgroupsPath"] = json!(path);
        s["linux"]["resources"] = json!({
            "memory": {"limit": 64 << 20, "reservation": 0, "swap": 0},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 30},
            "blockIO": {"weight": 0}
        });
    });
    create_sd(&env, &id).assert_ok();
    let pid = env.pid(&id);
    // In the scope from the start: systemd put it there before the init went on.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup.trim(), format!("0::/system.slice/{unit}"));
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(show(&unit, "Delegate"), "yes");
    assert_eq!(show(&unit, "Slice"), "system.slice");
    assert_eq!(show(&unit, "MemoryMax"), "67108864");
    assert_eq!(show(&unit, "TasksMax"), "30");
    assert_eq!(show(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(show(&unit, "CPUWeight"), "20");
    assert_eq!(cgfile(&unit, "memory.max"), "67108864");
    assert_eq!(cgfile(&unit, "pids.max"), "30");
    assert_eq!(cgfile(&unit, "cpu.max"), "50000 100000");
    assert_eq!(cgfile(&unit, "cpu.weight"), "20");
    env.gpurun(&["start", &id]).assert_ok();

    // exec'd processes join the scope; ps, pause/resume and stats work on it.
    env.gpurun(&["exec", "-d", &id, "sleep", "200"]).assert_ok();
    let procs = poll(Duration::from_secs(5), || {
        let n = cgfile(&unit, "cgroup.procs").lines().count();
        (n == 2).then_some(n)
    });
    assert_eq!(
        procs,
        Some(2),
        "cgroup.procs: {}",
        cgfile(&unit, "cgroup.procs")
    );
    let ps = env.gpurun(&["ps", "--format", "json", &id]);
    ps.assert_ok();
    assert!(ps.stdout.contains(&pid.to_string()), "{}", ps.describe());
    env.gpurun(&["pause", &id]).assert_ok();
    assert_eq!(cgfile(&unit, "cgroup.freeze"), "1");
    env.gpurun(&["resume", &id]).assert_ok();
    assert_eq!(cgfile(&unit, "cgroup.freeze"), "0");
    let stats = env.gpurun(&["events", "--stats", &id]);
    stats.assert_ok();
    assert!(stats.stdout.contains("\"pids\""), "{}", stats.describe());

    // update: the unit's properties and the files; a daemon-reload keeps them.
    env.gpurun(&["update", "--memory", "128M", "--pids-limit", "40", &id])
        .assert_ok();
    assert_eq!(show(&unit, "MemoryMax"), "134217728");
    assert_eq!(show(&unit, "TasksMax"), "40");
    assert_eq!(cgfile(&unit, "memory.max"), "134217728");
    systemctl(&["daemon-reload"]);
    assert_eq!(cgfile(&unit, "memory.max"), "134217728");
    assert_eq!(cgfile(&unit, "pids.max"), "40");
    assert_eq!(cgfile(&unit, "cpu.weight"), "20");

    env.gpurun(&["kill", "--all", &id, "KILL"]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    assert_no_unit(&unit);
    env.assert_clean();
}

#[test]
fn kill_9_of_the_init_then_delete_leaves_no_unit() {
    if !require_systemd() {
        return;
    }
    let env = Env::new("kill_9_leaves_no_unit");
    let (id, path, unit) = scoped(&env);
    env.config(|s| {
        set_args(s, &["sleep", "300"]);
        s["linux"]["cgroupsPath"] = json!(path);
        s["linux"]["resources"] = json!({"memory": {"limit": 32 << 20}});
    });
    create_sd(&env, &id).assert_ok();
    env.gpurun(&["start", &id]).assert_ok();
    let pid = env.pid(&id);
    assert!(sys::kill(pid, 9));
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    assert_no_unit(&unit);
    assert!(!systemctl(&["list-units", "--failed", "--all", "--no-legend"]).contains(&unit));
    env.assert_clean();
}

#[test]
fn bad_paths_and_refused_units_leave_nothing() {
    if !require_root() {
        return;
    }
    if !systemd_is_pid1() {
        skip("systemd is not PID 1 here");
        return;
    }
    let env = Env::new("refused_units_leave_nothing");
    // Not slice:prefix:name.
    let id = env.id();
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["cgroupsPath"] = json!("system.slice:only-two");
    });
    let out = create_sd(&env, &id);
    assert!(!out.ok(), "{}", out.describe());
    assert!(
        out.stderr.contains("slice:prefix:name"),
        "{}",
        out.describe()
    );
    // A unit name systemd refuses: its D-Bus error comes back, nothing stays.
    let id = env.id();
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["cgroupsPath"] = json!(format!("system.slice:gpurun-it:{id} x"));
    });
    let out = create_sd(&env, &id);
    assert!(!out.ok(), "{}", out.describe());
    if is_gpurun() {
        assert!(out.stderr.contains("org.freedesktop"), "{}", out.describe());
    }
    env.assert_clean();
}

/// A node of a device whose driver is not loaded: open() gives ENXIO where the device filter
/// lets it through, EPERM where it does not.
fn open_result(env: &Env, id: &str, node: &str) -> String {
    let out = env.gpurun(&[
        "exec",
        id,
        "sh",
        "-c",
        &format!("head -c0 {node} 2>&1; echo rc=$?"),
    ]);
    out.stdout.trim().to_string()
}

#[test]
fn device_rules_survive_daemon_reload() {
    if !require_systemd() {
        return;
    }
    let env = Env::new("device_rules_survive_daemon_reload");
    let (id, path, unit) = scoped(&env);
    // A GPU-like node (the NVIDIA driver makes no /dev/char links) and a disk-like node, on
    // the host (the VM) at the container's paths, with no /dev/char or /dev/block link.
    let nodes = [("/dev/nvidia0", "c", 195, 7), ("/dev/sdz", "b", 8, 240)];
    for (node, kind, major, minor) in nodes {
        let class = if kind == "c" { "char" } else { "block" };
        let _ = std::fs::remove_file(format!("/dev/{class}/{major}:{minor}"));
        let _ = std::fs::remove_file(node);
        let st = Command::new("mknod")
            .args([node, kind, &major.to_string(), &minor.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "mknod {node}");
    }
    env.config(|s| {
        set_args(s, &["sleep", "300"]);
        s["linux"]["cgroupsPath"] = json!(path);
        s["linux"]["devices"] = json!(nodes
            .iter()
            .map(|(p, k, ma, mi)| json!({"path": p, "type": k, "major": ma, "minor": mi, "fileMode": 438}))
            .collect::<Vec<_>>());
        // A node the container may make (mknod is allowed for all) but not open.
        for set in ["bounding", "effective", "permitted"] {
            if let Some(caps) = s["process"]["capabilities"][set].as_array_mut() {
                caps.push(json!("CAP_MKNOD"));
            }
        }
    });
    create_sd(&env, &id).assert_ok();
    env.gpurun(&["start", &id]).assert_ok();
    env.gpurun(&["exec", &id, "mknod", "/dev/denied", "c", "195", "9"])
        .assert_ok();
    let check = |when: &str, gpu_kept: bool| {
        let g = open_result(&env, &id, "/dev/nvidia0");
        let d = open_result(&env, &id, "/dev/sdz");
        let denied = open_result(&env, &id, "/dev/denied");
        assert!(
            denied.contains("Operation not permitted"),
            "{when}: unlisted node: {denied}"
        );
        if gpu_kept {
            assert!(
                !g.contains("Operation not permitted"),
                "{when}: GPU node denied: {g}\n{}",
                show(&unit, "DeviceAllow")
            );
            assert!(
                !d.contains("Operation not permitted"),
                "{when}: disk node denied: {d}\n{}",
                show(&unit, "DeviceAllow")
            );
            assert!(
                env.gpurun(&["exec", &id, "sh", "-c", "echo x > /dev/null"])
                    .ok(),
                "{when}: /dev/null"
            );
        } else {
            println!("{when} (runc): GPU node: {g}; disk node: {d}");
        }
    };
    // runc 1.1 names every node /dev/char/MAJ:MIN for systemd, links only udev makes (and the
    // NVIDIA driver never has): systemd drops those rules, so its program denies both nodes,
    // before any reload here (no udev in the VM) and after one on a real GPU node. gpurun
    // names nodes systemd can resolve: they are kept through any number of reloads.
    check("before daemon-reload", is_gpurun());
    for _ in 0..2 {
        systemctl(&["daemon-reload"]);
    }
    check("after daemon-reload", is_gpurun());
    if is_gpurun() {
        let allow = show(&unit, "DeviceAllow");
        assert!(
            allow.contains("/dev/nvidia0 rwm") && allow.contains("/dev/sdz rwm"),
            "{allow}"
        );
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    assert_no_unit(&unit);
    for (node, ..) in nodes {
        let _ = std::fs::remove_file(node);
    }
    env.assert_clean();
}
