//! linux.resources applied to cgroups, checked from inside the container
//! (with a cgroup namespace its own cgroup is the root of each mounted
//! hierarchy), on v1 (hybrid) hosts and pure v2 hosts alike. Commands that
//! act on a container's cgroup (update, pause, ps, events, kill --all) and
//! cleanup are in cgroups_cmds.rs; bad values and cgroupsPath forms in
//! cgroups_paths.rs.

use gpurun_integration::*;
use std::collections::HashMap;
use std::path::Path;

/// Run a container with `edit` applied that prints `file=value` for each of
/// `files` (relative to /sys/fs/cgroup); values with newlines joined by ' '.
#[track_caller]
fn read_inside(
    env: &Env,
    edit: impl FnOnce(&mut Value),
    files: &[&str],
) -> HashMap<String, String> {
    let script = r#"for f in "$@"; do printf '%s=%s\n' "$f" "$(cat /sys/fs/cgroup/$f 2>&1 | tr '\n' ' ')"; done"#;
    env.config(|s| {
        let mut args = vec!["sh", "-c", script, "sh"];
        args.extend(files);
        set_args(s, &args);
        edit(s);
    });
    let out = env.run(&env.id());
    out.assert_ok();
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[track_caller]
fn expect(vals: &HashMap<String, String>, file: &str, want: &str) {
    assert_eq!(
        vals.get(file).map(String::as_str),
        Some(want),
        "{file} in {vals:#?}"
    );
}

/// Does the kernel account swap (v1 memory.memsw.*, v2 memory.swap.max)?
fn swap_accounting() -> bool {
    if !cgroup2_host() {
        return Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    }
    // The v2 root has no memory.swap.max: look in this process's cgroup or a child of the root.
    let own = proc_cgroup_dir(std::process::id() as i32, "memory");
    let children = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path());
    own.into_iter()
        .chain(children)
        .find(|d| d.join("memory.max").exists())
        .is_some_and(|d| d.join("memory.swap.max").exists())
}

fn add_caps(spec: &mut Value, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        let list = spec["process"]["capabilities"][set].as_array_mut().unwrap();
        list.extend(caps.iter().map(|c| json!(c)));
    }
}

#[test]
fn memory_limits_read_back() {
    if !require_root() {
        return;
    }
    let env = Env::new("memory_limits_read_back");
    let swap = swap_accounting();
    let mut mem = json!({"limit": 64 << 20, "reservation": 32 << 20});
    if swap {
        mem["swap"] = json!(128 << 20);
    } else {
        skip("part: swap limit (no swap accounting, memsw, on this kernel)");
    }
    let files = if cgroup2_host() {
        vec!["memory.max", "memory.low", "memory.swap.max"]
    } else {
        vec![
            "memory/memory.limit_in_bytes",
            "memory/memory.soft_limit_in_bytes",
            "memory/memory.memsw.limit_in_bytes",
        ]
    };
    let vals = read_inside(&env, |s| s["linux"]["resources"]["memory"] = mem, &files);
    expect(&vals, files[0], "67108864");
    expect(&vals, files[1], "33554432");
    if swap {
        // v2's memory.swap.max is swap only: runc writes swap - limit.
        expect(&vals, files[2], cg("134217728", "67108864"));
    }
    env.assert_clean();
}

/// `memory.kernelTCP` (NOT RECOMMENDED by the spec): applied on v1 where the kernel still has
/// memory.kmem.tcp.*, as crun does; elsewhere (v2, or a kernel without it) ignored, never an
/// error. gpurun-only: runc 1.1.5 ignores it.
#[test]
fn kernel_tcp_applied_where_the_kernel_has_it() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("kernel_tcp");
    let file = "memory/memory.kmem.tcp.limit_in_bytes";
    let has_it = !cgroup2_host() && Path::new("/sys/fs/cgroup").join(file).exists();
    let vals = read_inside(
        &env,
        |s| s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "kernelTCP": 16 << 20}),
        &[file],
    );
    if has_it {
        expect(&vals, file, "16777216");
    } else {
        skip("part: kernelTCP value (no memory.kmem.tcp on this kernel: the run above shows it is not an error)");
    }
    env.assert_clean();
}

#[test]
fn memory_hog_is_oom_killed() {
    if !require_root() {
        return;
    }
    let env = Env::new("memory_hog_is_oom_killed");
    let mut mem = json!({"limit": 32 << 20});
    if swap_accounting() {
        mem["swap"] = json!(32 << 20); // no swapping out of the OOM
    }
    // busybox tail keeps a newline-free input in memory.
    let oom = cg("memory/memory.oom_control", "memory.events");
    let script = format!(
        "dd if=/dev/zero bs=1M count=200 2>/dev/null | tail >/dev/null; echo rc=$?; \
         cat /sys/fs/cgroup/{oom}"
    );
    let out = env.sh(&script, |s| s["linux"]["resources"]["memory"] = mem);
    println!("{}", out.stdout);
    assert!(
        out.stdout.contains("rc=137"),
        "hog not SIGKILLed\n{}",
        out.describe()
    );
    let kills = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(
        kills.is_some_and(|n| n >= 1),
        "no oom_kill count\n{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn cpu_shares_quota_period_read_back() {
    if !require_root() {
        return;
    }
    let env = Env::new("cpu_shares_quota_period_read_back");
    let cpu = json!({"shares": 512, "quota": 50000, "period": 100000});
    let files = if cgroup2_host() {
        vec!["cpu.weight", "cpu.max"]
    } else {
        vec![
            "cpu/cpu.shares",
            "cpu/cpu.cfs_quota_us",
            "cpu/cpu.cfs_period_us",
        ]
    };
    let vals = read_inside(&env, |s| s["linux"]["resources"]["cpu"] = cpu, &files);
    if cgroup2_host() {
        // runc: weight = 1 + ((shares - 2) * 9999) / 262142
        expect(
            &vals,
            "cpu.weight",
            &(1 + (510 * 9999) / 262142).to_string(),
        );
        expect(&vals, "cpu.max", "50000 100000");
    } else {
        expect(&vals, "cpu/cpu.shares", "512");
        expect(&vals, "cpu/cpu.cfs_quota_us", "50000");
        expect(&vals, "cpu/cpu.cfs_period_us", "100000");
    }
    env.assert_clean();
}

#[test]
fn pids_limit_read_back_and_enforced() {
    if !require_root() {
        return;
    }
    let env = Env::new("pids_limit_read_back_and_enforced");
    let max = cg("pids/pids.max", "pids.max");
    let cur = cg("pids/pids.current", "pids.current");
    let limit = |s: &mut Value| s["linux"]["resources"]["pids"] = json!({"limit": 20});
    let vals = read_inside(&env, limit, &[max]);
    expect(&vals, max, "20");
    // A child shell forks 40 sleeps and dies at the first failed fork. Then,
    // with builtins only (forking may still fail): read pids.current, kill all.
    let script = format!(
        "sh -c 'i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); echo $i; done' \
           >/dev/shm/log 2>/dev/shm/err; \
         read cur < /sys/fs/cgroup/{cur}; kill -9 -1; wait; \
         n=0; while read l; do n=$((n+1)); done < /dev/shm/log; \
         echo started=$n current=$cur; while read l; do echo \"err: $l\"; done < /dev/shm/err"
    );
    let out = env.sh(&script, limit);
    let field = |k: &str| {
        out.stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no {k}\n{}", out.describe()))
    };
    println!("{}", out.stdout);
    let (started, current) = (field("started="), field("current="));
    // sh + child sh + sleeps <= 20
    assert!((10..=18).contains(&started), "{}", out.describe());
    assert!(current <= 20, "{}", out.describe());
    assert!(
        out.stdout.contains("err: "),
        "fork failure not reported\n{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn cpuset_read_back() {
    if !require_root() || !has_controller("cpuset") {
        return;
    }
    let env = Env::new("cpuset_read_back");
    let files = [
        cg("cpuset/cpuset.cpus", "cpuset.cpus"),
        cg("cpuset/cpuset.mems", "cpuset.mems"),
    ];
    let cpu = json!({"cpus": "0", "mems": "0"});
    let vals = read_inside(&env, |s| s["linux"]["resources"]["cpu"] = cpu, &files);
    expect(&vals, files[0], "0");
    expect(&vals, files[1], "0");
    env.assert_clean();
}

#[test]
fn devices_default_allow_list_and_rules() {
    if !require_root() {
        return;
    }
    let env = Env::new("devices_default_allow_list_and_rules");
    // Default spec: deny all + the runtime's implicit allow-list (null, zero,
    // full, random, urandom, tty, ptmx, pts, tun and mknod of anything).
    let script = "mknod /dev/x c 1 3 && echo hi > /dev/x && echo mknod-null-ok; \
                  head -c1 /dev/null && echo null-ok; \
                  mknod /dev/lc c 10 237 && echo mknod-lc-ok; head -c1 /dev/lc; \
                  mknod /dev/sdx b 8 0 && echo mknod-sdx-ok; head -c1 /dev/sdx; true";
    let out = env.sh(script, |s| add_caps(s, &["CAP_MKNOD"]));
    for ok in ["mknod-null-ok", "null-ok", "mknod-lc-ok", "mknod-sdx-ok"] {
        assert!(out.stdout.contains(ok), "no {ok}\n{}", out.describe());
    }
    for dev in ["/dev/lc", "/dev/sdx"] {
        let line = format!("{dev}: Operation not permitted");
        assert!(
            out.stderr.contains(&line),
            "no {line:?}\n{}",
            out.describe()
        );
    }

    // An explicit allow rule lets the container make and open c 10:237 (loop-control; only
    // opening it is tried: reading it fails with EINVAL whatever the cgroup says).
    let script =
        "mknod /dev/lc c 10 237 && echo mknod-lc-ok; true </dev/lc && echo open-lc-ok; true";
    let out = env.sh(script, |s| {
        add_caps(s, &["CAP_MKNOD"]);
        let rule = json!({"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rwm"});
        s["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(rule);
    });
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["mknod-lc-ok", "open-lc-ok"],
        "allow rule ignored\n{}",
        out.describe()
    );

    // A deny rule for c 1:8 (/dev/random) after the spec's defaults.
    let script = "head -c1 /dev/random >/dev/null && echo random-ok; \
                  head -c1 /dev/urandom >/dev/null && echo urandom-ok; true";
    let out = env.sh(script, |s| {
        let rule = json!({"allow": false, "type": "c", "major": 1, "minor": 8, "access": "rwm"});
        s["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(rule);
    });
    assert!(out.stdout.contains("urandom-ok"), "{}", out.describe());
    // runc (and gpurun, for compatibility) append the implicit allow-list after the spec's
    // rules: the spec cannot deny /dev/random.
    assert!(
        out.stdout.lines().any(|l| l == "random-ok"),
        "{}",
        out.describe()
    );
    env.assert_clean();
}
