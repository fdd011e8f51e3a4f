//! Bad linux.resources values and cgroupsPath forms: where the cgroup lands,
//! what a failed create says and that it leaves nothing behind.

use gpurun_integration::*;
use std::path::Path;

/// One past the highest possible cpu: never valid here.
fn missing_cpu() -> String {
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    let last = possible
        .trim()
        .rsplit(['-', ','])
        .next()
        .unwrap()
        .parse::<u32>()
        .unwrap();
    (last + 1).max(64).to_string()
}

#[test]
fn cpuset_missing_cpu_fails_create() {
    if !require_root() || !has_controller("cpuset") {
        return;
    }
    let env = Env::new("cpuset_missing_cpu_fails_create");
    let cpus = missing_cpu();
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["resources"]["cpu"] = json!({"cpus": cpus});
    });
    let id = env.id();
    let out = env.create(&id);
    out.assert_fail();
    // runc: failed to write "64": write /sys/fs/cgroup/cpuset/ID/cpuset.cpus:
    // numerical result out of range
    assert!(
        out.stderr.contains("cpuset.cpus") || out.stderr.contains(&format!("\"{cpus}\"")),
        "error names neither the file nor the value\n{}",
        out.describe()
    );
    env.gpurun(&["state", &id]).assert_err("does not exist");
    env.assert_clean();
}

#[test]
fn bad_values_fail_cleanly() {
    if !require_root() {
        return;
    }
    let env = Env::new("bad_values_fail_cleanly");
    let cases: Vec<(Value, Vec<&str>)> = vec![
        // runc: json: cannot unmarshal string into Go struct field
        // LinuxPids.linux.resources.pids.limit of type int64
        (
            json!({"pids": {"limit": "20"}}),
            vec!["pids.limit", "limit"],
        ),
        // runc: json: cannot unmarshal number -5 into Go struct field
        // LinuxCPU.linux.resources.cpu.shares of type uint64
        (json!({"cpu": {"shares": -5}}), vec!["shares"]),
        // runc: failed to write "-5": write .../memory.limit_in_bytes: invalid argument
        // (v2: memory.max)
        (
            json!({"memory": {"limit": -5}}),
            vec!["memory.limit_in_bytes", "memory.max", "-5"],
        ),
        // Below current usage. runc v1: unable to set memory limit to 4096
        // (current usage: N, peak usage: M)
        (
            json!({"memory": {"limit": 4096}}),
            vec!["4096", "memory.limit_in_bytes", "memory.max"],
        ),
    ];
    for (res, needles) in cases {
        env.config(|s| {
            set_args(s, &["true"]);
            s["linux"]["resources"] = res.clone();
        });
        let id = env.id();
        let out = env.create(&id);
        if cgroup2_host() && res["memory"]["limit"] == 4096 {
            // v2 memory.max below usage is accepted (the kernel reclaims/OOMs).
            if out.ok() {
                env.gpurun(&["delete", "--force", &id]).assert_ok();
            }
            continue;
        }
        out.assert_fail();
        assert!(
            needles.iter().any(|n| out.stderr.contains(n)),
            "{res}: stderr has none of {needles:?}\n{}",
            out.describe()
        );
        env.gpurun(&["state", &id]).assert_err("does not exist");
        let leaks = env.leaks();
        assert!(leaks.is_empty(), "{res} leaked:\n{leaks}");
    }
    env.assert_clean();
}

/// The host dir of `pid`'s pids cgroup (the unified one on v2).
fn pids_dir(pid: i32) -> std::path::PathBuf {
    proc_cgroup_dir(pid, "pids").expect("pids cgroup")
}

#[test]
fn cgroups_path_forms() {
    if !require_root() {
        return;
    }
    let env = Env::new("cgroups_path_forms");
    env.config(|s| set_args(s, &["sleep", "3600"]));
    let me = std::process::id() as i32;
    // Relative paths start at the runtime's own cgroup; on a pure v2 host at its parent (runc:
    // the own one most likely holds processes, so it cannot have controllers for children).
    let own = match cgroup2_host() {
        true => pids_dir(me).parent().unwrap().to_path_buf(),
        false => pids_dir(me),
    };
    let own = if own.starts_with("/sys/fs/cgroup") {
        own
    } else {
        "/sys/fs/cgroup".into()
    };
    let root = if cgroup2_host() {
        Path::new("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup/pids")
    };
    let abs_parent = format!("{CGROUP_PREFIX}-abs-{}", env.marker);
    // (cgroupsPath or None, where the pids cgroup must be)
    let forms = |id: &str| -> Vec<(Option<String>, std::path::PathBuf)> {
        vec![
            (None, own.join(id)),
            (
                Some(format!("{CGROUP_PREFIX}/{id}")),
                own.join(CGROUP_PREFIX).join(id),
            ),
            (
                Some(format!("/{abs_parent}/{id}")),
                root.join(&abs_parent).join(id),
            ),
        ]
    };
    for k in 0..3 {
        let id = env.id();
        let (path, want) = forms(&id).swap_remove(k);
        env.config(|s| {
            set_args(s, &["sleep", "3600"]);
            if let Some(p) = &path {
                s["linux"]["cgroupsPath"] = json!(p);
            }
        });
        env.create_ok(&id);
        let got = pids_dir(env.pid(&id));
        assert_eq!(got, want, "cgroupsPath {path:?}");
        assert!(want.is_dir(), "{}", want.display());
        env.gpurun(&["delete", "--force", &id]).assert_ok();
        assert!(!want.exists(), "{} left after delete", want.display());
    }
    env.assert_clean();
    // The runtime leaves the (empty) parent of an absolute path: remove ours.
    for ent in std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let _ = std::fs::remove_dir(ent.path().join(&abs_parent));
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&abs_parent));
}

/// A cgroup that holds processes of its own must not be given controllers on the way down to
/// the container's: the kernel accepts the threaded ones (pids, cpuset), which makes it a
/// thread root, and its new child "domain invalid" (clone3 into it: EOPNOTSUPP). Seen on a
/// GPU host whose agent runs everything in such a cgroup.
#[test]
fn container_below_a_cgroup_with_processes() {
    if !require_root() {
        return;
    }
    if !cgroup2_host() {
        skip("needs a pure cgroup v2 host (the v2 VM runs it)");
        return;
    }
    let env = Env::new("container_below_a_cgroup_with_processes");
    let own = pids_dir(std::process::id() as i32);
    let parent_name = format!("{CGROUP_PREFIX}-busy-{}", env.marker);
    let parent = own.join(&parent_name);
    std::fs::create_dir(&parent).unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    std::fs::write(parent.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let id = env.id();
    env.config(|s| {
        set_args(s, &["echo", "placed"]);
        s["linux"]["cgroupsPath"] = json!(format!("{parent_name}/{id}"));
    });
    let out = env.run(&id);
    let kind = std::fs::read_to_string(parent.join("cgroup.type")).unwrap_or_default();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let _ = std::fs::remove_dir(&parent);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "placed", "{}", out.describe());
    assert_eq!(kind.trim(), "domain", "the populated parent became {kind}");
    env.assert_clean();
}
