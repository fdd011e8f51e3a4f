//! `update --resources FILE|-` (what containerd's shim sends) and bad values: an update
//! changes exactly what it is given, and a refused one changes nothing (limits read back
//! from the container's cgroup dirs on the host).

mod update_common;

use gpurun_integration::*;
use update_common::*;

#[test]
fn update_resources_from_file_and_stdin() {
    if !require_root() || !has_controller("memory") || !has_controller("pids") {
        return;
    }
    let env = Env::new("update_resources_file");
    let (id, pid) = running(&env);
    let v2 = cgroup2_host();
    let low = if v2 {
        "memory.low"
    } else {
        "memory.soft_limit_in_bytes"
    };
    let file = env.dir.join("resources.json");
    let path = file.to_str().unwrap();
    let r = json!({"memory": {"reservation": 24 << 20}, "pids": {"limit": 30}});
    std::fs::write(&file, r.to_string()).unwrap();
    update_only(
        &env,
        &id,
        pid,
        &["--resources", path],
        &[(low, "25165824"), ("pids.max", "30")],
    );

    // With --resources every other flag is ignored (runc's documented rule).
    std::fs::write(&file, json!({"pids": {"limit": 35}}).to_string()).unwrap();
    update_only(
        &env,
        &id,
        pid,
        &["-r", path, "--pids-limit", "99"],
        &[("pids.max", "35")],
    );

    // `-r -`: from stdin, as containerd's shim sends it.
    let before = limits(pid);
    env.gpurun_stdin(&["update", "-r", "-", &id], r#"{"pids":{"limit":40}}"#)
        .assert_ok();
    let mut want = before.clone();
    want.insert("pids.max".into(), "40".into());
    assert_eq!(limits(pid), want);

    // Broken JSON and a missing file: an error, nothing changed.
    let out = env.gpurun_stdin(&["update", "-r", "-", &id], r#"{"pids": {"limit": "#);
    refused(&out, "", pid, &want);
    assert!(
        !out.stderr.trim().is_empty(),
        "no error message\n{}",
        out.describe()
    );
    let missing = env.dir.join("missing.json");
    let out = env.gpurun(&["update", "-r", missing.to_str().unwrap(), &id]);
    refused(&out, "missing.json", pid, &want);

    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn update_bad_values_fail_and_change_nothing() {
    if !require_root() || !has_controller("cpuset") || !has_controller("memory") {
        return;
    }
    let env = Env::new("update_bad_values");
    let (id, pid) = running(&env);
    let before = limits(pid);
    let bad: [(&[&str], &str); 4] = [
        (&["--memory-reservation", "12x"], "memory-reservation"),
        (&["--pids-limit", "abc"], "pids-limit"),
        (&["--cpuset-cpus", "4095"], "cpuset.cpus"),
        // Below the kernel's 1 ms minimum.
        (&["--cpu-quota", "500"], "500"),
    ];
    for (args, needle) in bad {
        let mut argv = vec!["update"];
        argv.extend(args);
        argv.push(&id);
        refused(&env.gpurun(&argv), needle, pid, &before);
    }
    // All or nothing across flags (gpurun-only: runc's rollback leaves a half-made update).
    if is_gpurun() {
        let out = env.gpurun(&[
            "update",
            "--memory-reservation",
            "16M",
            "--cpuset-cpus",
            "4095",
            &id,
        ]);
        refused(&out, "cpuset.cpus", pid, &before);
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
