//! The systemd cgroup driver on the other hosts engines meet: a rootless user's own systemd
//! (`user@UID.service`), and a hybrid-cgroup host (v1 controllers + `unified`) where the scope
//! lives in every hierarchy. Run in the systemd VMs of `integration/vm/run-suite.sh`.

use gpurun_integration::*;
use std::process::Command;
use std::time::Duration;

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
