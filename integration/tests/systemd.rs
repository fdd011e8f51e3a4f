//! The systemd cgroup driver (`--systemd-cgroup`) against a real systemd: the container's
//! cgroup is a transient scope, its limits are unit properties (read back with `systemctl
//! show`) and cgroup files, `update` changes both, device rules survive `daemon-reload`, and
//! `delete` (after `kill -9` too) leaves no unit. Runs where systemd is PID 1 (the VM suite:
//! `VM_SYSTEMD=1 integration/vm/run-suite.sh`); elsewhere only the "no systemd" error test runs.
//! As engines do, `--systemd-cgroup` is given to `create`/`run` only.

use gpurun_integration::*;
use std::process::Command;
use std::time::Duration;

fn systemd_is_pid1() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
        && std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
}

/// Root and systemd as PID 1 with the cgroup layout `unified` (pure v2) or not (hybrid), or a
/// printed reason. The VM suite boots both.
fn require_systemd_on(unified: bool) -> bool {
    if !require_root() {
        return false;
    }
    if !systemd_is_pid1() {
        println!("skipped: systemd is not PID 1 here (run in the VM: VM_SYSTEMD=1 integration/vm/run-suite.sh)");
        return false;
    }
    if cgroup2_host() != unified {
        println!(
            "skipped: written for a {} host",
            if unified {
                "pure cgroup v2"
            } else {
                "hybrid cgroup"
            }
        );
        return false;
    }
    true
}

fn require_systemd() -> bool {
    require_systemd_on(true)
}

fn systemctl(args: &[&str]) -> String {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `systemctl show -p NAME --value UNIT`.
fn show(unit: &str, prop: &str) -> String {
    systemctl(&["show", "-p", prop, "--value", unit])
        .trim()
        .to_string()
}

fn cgfile(unit: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/system.slice/{unit}/{file}"))
        .unwrap_or_else(|e| format!("<{e}>"))
        .trim()
        .to_string()
}

/// A container id and its cgroupsPath, the way Docker sends them.
fn scoped(env: &Env) -> (String, String, String) {
    let id = env.id();
    let path = format!("system.slice:gpurun-it:{id}");
    let unit = format!("gpurun-it-{id}.scope");
    (id, path, unit)
}

fn create_sd(env: &Env, id: &str) -> Out {
    env.gpurun_with(
        &["--systemd-cgroup"],
        &["create", "--bundle", env.bundle.to_str().unwrap(), id],
    )
}

/// The unit is gone: not loaded, not failed, and its cgroup removed.
#[track_caller]
fn assert_no_unit(unit: &str) {
    let gone = poll(Duration::from_secs(5), || {
        (show(unit, "LoadState") == "not-found").then_some(())
    });
    assert!(
        gone.is_some(),
        "unit {unit} still loaded: {}",
        systemctl(&["status", "--no-pager", unit])
    );
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/system.slice/{unit}")).exists());
}

#[test]
fn no_systemd_is_a_clear_error_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    if systemd_is_pid1() {
        println!("skipped: systemd is PID 1 here");
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
        println!("skipped: systemd is not PID 1 here");
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

#[test]
fn rootless_containers_get_a_scope_from_the_users_manager() {
    if !require_systemd() {
        return;
    }
    let Some(user) = rootless_user() else { return };
    let uid = user.uid.to_string();
    let manager = format!("user@{uid}.service");
    let started = Command::new("systemctl")
        .args(["start", &manager])
        .status()
        .unwrap();
    assert!(started.success(), "systemctl start {manager}");
    let bus = format!("unix:path=/run/user/{uid}/bus");
    let env = rootless_env("rootless_scope", &user);
    let id = env.id();
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    as_user(&env, &user, true, &["spec", "--rootless"]).assert_ok();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(env.bundle.join("config.json")).unwrap())
            .unwrap();
    set_args(&mut config, &["sleep", "300"]);
    config["process"]["terminal"] = json!(false);
    config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("GPURUN_IT={}", env.marker)));
    config["linux"]["cgroupsPath"] = json!(format!(":gpurun-it:{id}"));
    config["linux"]["resources"] = json!({"pids": {"limit": 25}});
    env.write_config(&config);
    let vars = [("DBUS_SESSION_BUS_ADDRESS", bus.as_str())];
    let run = |args: &[&str]| as_user_with(&env, &user, true, &vars, args);
    run(&[
        "--systemd-cgroup",
        "run",
        "-d",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ])
    .assert_ok();
    let state: Value = serde_json::from_str(&run(&["state", &id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let unit = format!("gpurun-it-{id}.scope");
    let want = format!("/user.slice/user-{uid}.slice/{manager}/user.slice/{unit}");
    assert_eq!(cgroup.trim(), format!("0::{want}"));
    let pids_max = std::fs::read_to_string(format!("/sys/fs/cgroup{want}/pids.max")).unwrap();
    assert_eq!(pids_max.trim(), "25");
    run(&["delete", "--force", &id]).assert_ok();
    let gone = poll(Duration::from_secs(5), || {
        (!std::path::Path::new(&format!("/sys/fs/cgroup{want}")).exists()).then_some(())
    });
    assert!(gone.is_some(), "{want} is still there");
    let _ = Command::new("systemctl").args(["stop", &manager]).status();
    env.assert_clean();
}

/// v1 file `file` of the unit's cgroup in hierarchy `h` (hybrid host).
fn v1file(h: &str, unit: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/{h}/system.slice/{unit}/{file}"))
        .unwrap_or_else(|e| format!("<{e}>"))
        .trim()
        .to_string()
}

#[test]
fn hybrid_host_scope_in_every_hierarchy() {
    if !require_systemd_on(false) {
        return;
    }
    let env = Env::new("hybrid_scope");
    let (id, path, unit) = scoped(&env);
    env.config(|s| {
        set_args(s, &["sleep", "300"]);
        s["linux"]["cgroupsPath"] = json!(path);
        s["linux"]["resources"] = json!({
            "memory": {"limit": 64 << 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 30}
        });
    });
    create_sd(&env, &id).assert_ok();
    let pid = env.pid(&id);
    // In the unit's cgroup in every hierarchy: systemd's, the v1 controllers and unified.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let known = [
        "name=systemd",
        "memory",
        "pids",
        "cpu,cpuacct",
        "devices",
        "freezer",
        "",
    ];
    for line in cgroup
        .lines()
        .filter(|l| known.contains(&l.split(':').nth(1).unwrap_or("-")))
    {
        assert!(line.ends_with(&format!("/system.slice/{unit}")), "{cgroup}");
    }
    assert_eq!(show(&unit, "MemoryLimit"), "67108864");
    assert_eq!(show(&unit, "TasksMax"), "30");
    assert_eq!(show(&unit, "CPUShares"), "512");
    assert_eq!(v1file("memory", &unit, "memory.limit_in_bytes"), "67108864");
    assert_eq!(v1file("pids", &unit, "pids.max"), "30");
    assert_eq!(v1file("cpu,cpuacct", &unit, "cpu.shares"), "512");
    assert_eq!(v1file("cpu,cpuacct", &unit, "cpu.cfs_quota_us"), "50000");
    assert!(v1file("devices", &unit, "devices.list").contains("c 1:3 rwm"));
    env.gpurun(&["start", &id]).assert_ok();
    env.gpurun(&["update", "--memory", "128M", &id]).assert_ok();
    assert_eq!(show(&unit, "MemoryLimit"), "134217728");
    systemctl(&["daemon-reload"]);
    assert_eq!(
        v1file("memory", &unit, "memory.limit_in_bytes"),
        "134217728"
    );
    env.gpurun(&["pause", &id]).assert_ok();
    assert_eq!(v1file("freezer", &unit, "freezer.state"), "FROZEN");
    env.gpurun(&["resume", &id]).assert_ok();
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    let gone = poll(Duration::from_secs(5), || {
        let left: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|h| h.path().join("system.slice").join(&unit))
            .filter(|d| d.exists())
            .collect();
        left.is_empty().then_some(())
    });
    assert!(gone.is_some(), "a cgroup of {unit} is left");
    assert_eq!(show(&unit, "LoadState"), "not-found");
    env.assert_clean();
}
