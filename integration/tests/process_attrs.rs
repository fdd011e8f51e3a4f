//! Per-process attributes of runtime-spec 1.2/1.3, each read back from inside the container:
//! `process.ioPriority`, `process.scheduler`, `linux.personality` and `linux.memoryPolicy` (the
//! init and every exec'd process), `process.execCPUAffinity` (exec'd processes only), and bad
//! values refused at create and at exec with nothing left behind.
//!
//! gpurun-only: runc 1.1.5 predates every one of these fields.

use std::process::Command;

use gpurun_integration::*;

/// Field `n` (numbered as in proc(5)) of a `/proc/PID/stat` line.
fn stat_field(stat: &str, n: usize) -> String {
    let rest = &stat[stat.rfind(')').expect("stat line") + 2..];
    rest.split(' ').nth(n - 3).expect("stat field").to_string()
}

/// (policy, nice, rt_priority) of a `/proc/PID/stat` line: fields 41, 19 and 40.
fn sched_of(stat: &str) -> (String, String, String) {
    (
        stat_field(stat, 41),
        stat_field(stat, 19),
        stat_field(stat, 40),
    )
}

fn sched(p: &str, nice: &str, rt: &str) -> (String, String, String) {
    (p.into(), nice.into(), rt.into())
}

/// `exec --process` with `process` (args, cwd and user added) in container `id`.
fn exec_json(env: &Env, id: &str, mut process: Value, args: &[&str]) -> Out {
    process["args"] = json!(args);
    process["cwd"] = json!("/");
    process["user"] = json!({"uid": 0, "gid": 0});
    process["env"] = json!(["PATH=/bin", format!("GPURUN_IT={}", env.marker)]);
    let file = env.dir.join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    env.gpurun(&["exec", "--process", file.to_str().unwrap(), id])
}

#[test]
fn io_priority_of_init_and_exec() {
    // gpurun-only: runc 1.1.5 predates process.ioPriority
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("io_priority");
    let id = env.running(|s| {
        s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 2})
    });
    // The init, and an exec built from config.json, have the container's.
    let out = env.gpurun(&["exec", &id, "sh", "-c", "ionice -p 1; ionice -p $$"]);
    out.assert_ok();
    assert_eq!(out.stdout, "best-effort: prio 2\nbest-effort: prio 2\n");
    // process.json's own wins; without one, the container's applies (runc's rule).
    let idle = json!({"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}});
    let out = exec_json(&env, &id, idle, &["sh", "-c", "ionice -p $$"]);
    assert_eq!(out.assert_ok().stdout, "idle\n", "{}", out.describe());
    let out = exec_json(&env, &id, json!({}), &["sh", "-c", "ionice -p $$"]);
    assert_eq!(out.assert_ok().stdout, "best-effort: prio 2\n");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn scheduler_of_init_and_exec() {
    // gpurun-only: runc 1.1.5 predates process.scheduler
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("scheduler");
    let id =
        env.running(|s| s["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}));
    let out = env.gpurun(&["exec", &id, "sh", "-c", "cat /proc/1/stat /proc/$$/stat"]);
    let lines: Vec<&str> = out.assert_ok().stdout.lines().collect();
    assert_eq!(
        sched_of(lines[0]),
        sched("3", "7", "0"),
        "init\n{}",
        out.stdout
    );
    assert_eq!(
        sched_of(lines[1]),
        sched("3", "7", "0"),
        "exec\n{}",
        out.stdout
    );
    let idle = json!({"scheduler": {"policy": "SCHED_IDLE"}});
    let out = exec_json(&env, &id, idle, &["sh", "-c", "cat /proc/$$/stat"]);
    assert_eq!(sched_of(&out.assert_ok().stdout), sched("5", "0", "0"));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn scheduler_realtime_reset_on_fork() {
    // gpurun-only: runc 1.1.5 predates process.scheduler
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("scheduler_rt");
    let id = env.running(|s| {
        // With RT group scheduling (cgroup v1) a cgroup has no RT time unless given some.
        if !cgroup2_host() {
            s["linux"]["resources"]["cpu"] =
                json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000});
        }
    });
    // The spec's flag name (oci-spec spells it differently: see attrs::fix_scheduler_flags).
    let rr = json!({"scheduler": {"policy": "SCHED_RR", "priority": 5,
        "flags": ["SCHED_FLAG_RESET_ON_FORK"]}});
    let out = exec_json(
        &env,
        &id,
        rr,
        &["sh", "-c", "cat /proc/$$/stat /proc/self/stat; true"],
    );
    if out.stderr.contains("sched_setattr: EPERM") {
        skip("no real-time CPU time for the container's cgroup on this host");
    } else {
        let lines: Vec<&str> = out.assert_ok().stdout.lines().collect();
        assert_eq!(sched_of(lines[0]), sched("2", "0", "5"), "{}", out.stdout);
        // The child (`; true`: sh forks cat) of a SCHED_FLAG_RESET_ON_FORK process starts as
        // SCHED_OTHER.
        assert_eq!(sched_of(lines[1]), sched("0", "0", "0"), "{}", out.stdout);
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn personality_linux32() {
    // gpurun-only: runc 1.1.5 predates linux.personality
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("personality");
    let id = env.running(|s| s["linux"]["personality"] = json!({"domain": "LINUX32"}));
    let script = "cat /proc/1/personality /proc/self/personality; uname -m";
    let out = env.gpurun(&["exec", &id, "sh", "-c", script]);
    let lines: Vec<&str> = out.assert_ok().stdout.lines().collect();
    assert_eq!(lines[..2], ["00000008", "00000008"], "{}", out.stdout);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(lines[2], "i686", "{}", out.stdout);
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn memory_policy_of_init_and_exec() {
    // gpurun-only: runc 1.1.5 predates linux.memoryPolicy
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("memory_policy");
    // Node 0 exists on every host (also without NUMA).
    let out = env.sh("head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2", |s| {
        s["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]})
    });
    assert_eq!(out.stdout, "prefer=relative:0\n");
    let id = env.running(|s| {
        s["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})
    });
    let script = "for p in 1 $$; do head -n 1 /proc/$p/numa_maps | cut -d ' ' -f 2; done";
    let out = env.gpurun(&["exec", &id, "sh", "-c", script]);
    assert_eq!(out.assert_ok().stdout, "bind=static:0\nbind=static:0\n");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// The CPUs of a list ("0-2,5"): the format of both Cpus_allowed_list and the cpuset files.
fn cpus(list: &str) -> Vec<usize> {
    let n = |s: &str| {
        s.parse::<usize>()
            .unwrap_or_else(|_| panic!("cpu list {list:?}"))
    };
    let mut cpus = Vec::new();
    for r in list.trim().split(',').filter(|r| !r.is_empty()) {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        cpus.extend(n(a)..=n(b));
    }
    cpus
}

/// The CPUs the cpuset of `pid`'s cgroup lets it run on (not all online CPUs where the test
/// runs in a restricted cpuset: CI containers, systemd's AllowedCPUs). On v2 a cgroup without
/// the cpuset controller has the nearest ancestor's; no cpuset at all: the online CPUs.
fn cpuset_cpus(pid: i32) -> Vec<usize> {
    let (mut dir, file) = match proc_cgroup_dir(pid, "cpuset") {
        Some(d) if cgroup2_host() => (Some(d), "cpuset.cpus.effective"),
        Some(d) => (Some(d), "cpuset.effective_cpus"),
        None => (None, ""),
    };
    while let Some(d) = dir {
        if let Ok(list) = std::fs::read_to_string(d.join(file)) {
            return cpus(&list);
        }
        dir = d
            .parent()
            .filter(|p| p.starts_with("/sys/fs/cgroup"))
            .map(Into::into);
    }
    cpus(&std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap())
}

/// The CPUs of a `grep Cpus_allowed_list FILE...` output line.
fn allowed(line: &str) -> Vec<usize> {
    cpus(line.rsplit('\t').next().unwrap())
}

#[test]
fn exec_cpu_affinity() {
    // gpurun-only: runc 1.1.5 predates process.execCPUAffinity
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("exec_cpu_affinity");
    // A container without the field first: which CPUs its cpuset allows.
    let id2 = env.running(|_| {});
    let set = cpuset_cpus(env.pid(&id2));
    let grep = ["grep", "Cpus_allowed_list", "/proc/self/status"];
    if set.len() < 2 {
        skip("needs 2 CPUs in the container's cpuset");
    } else {
        let (first, other) = (set[0].to_string(), set[1].to_string());
        // Only for exec'd processes: the init keeps its affinity (all its cpuset allows).
        let id = env.running(|s| s["process"]["execCPUAffinity"] = json!({"final": other}));
        let files = ["/proc/1/status", "/proc/self/status"];
        let out = env.gpurun(&[&["exec", &id][..], &grep[..2], &files].concat());
        let lines: Vec<&str> = out.assert_ok().stdout.lines().collect();
        assert!(
            lines.len() == 2 && lines[0].starts_with(files[0]),
            "{}",
            out.stdout
        );
        assert_eq!(
            allowed(lines[0]),
            cpuset_cpus(env.pid(&id)),
            "{}",
            out.stdout
        );
        assert_eq!(
            lines[1],
            format!("{}:Cpus_allowed_list:\t{other}", files[1])
        );
        // process.json's own, or else the container's (runc's rule).
        let own = json!({"execCPUAffinity": {"initial": other, "final": first}});
        let out = exec_json(&env, &id, own, &grep);
        assert_eq!(
            out.assert_ok().stdout,
            format!("Cpus_allowed_list:\t{first}\n")
        );
        let out = exec_json(&env, &id, json!({}), &grep);
        assert_eq!(
            out.assert_ok().stdout,
            format!("Cpus_allowed_list:\t{other}\n")
        );
        env.gpurun(&["delete", "--force", &id]).assert_ok();
        // Neither given: all the cpuset allows, not the one CPU `exec` itself was pinned to
        // (runc resets it too; on cgroup v1 moving into the container's cpuset does as well).
        let process = env.dir.join("process2.json");
        let env_vars = ["PATH=/bin".to_string(), format!("GPURUN_IT={}", env.marker)];
        let p = json!({"args": grep, "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": env_vars});
        std::fs::write(&process, p.to_string()).unwrap();
        // A CPU the test itself may run on.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:"));
        let pin = allowed(line.expect("Cpus_allowed_list"))[0].to_string();
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &pin])
            .arg(bin())
            .arg("--root")
            .arg(&env.state);
        cmd.args(["exec", "--process", process.to_str().unwrap(), &id2]);
        let out = env.command_out(cmd);
        assert_eq!(
            allowed(out.assert_ok().stdout.trim_end()),
            set,
            "{}",
            out.stdout
        );
    }
    env.gpurun(&["delete", "--force", &id2]).assert_ok();
    env.assert_clean();
}

/// `create` with `edit` fails with `needle` and leaves no container.
#[track_caller]
fn create_refused(env: &Env, edit: impl FnOnce(&mut Value), needle: &str) {
    env.config(|s| {
        set_args(s, &["true"]);
        edit(s);
    });
    let id = env.id();
    env.create(&id).assert_err(needle);
    env.gpurun(&["state", &id]).assert_err("does not exist");
}

#[test]
fn bad_values_refused() {
    // gpurun-only: runc 1.1.5 predates (and ignores) all of these fields
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("process_attrs_bad");
    let cases: [(&str, &str, Value, &str); 7] = [
        (
            "process",
            "ioPriority",
            json!({"class": "IOPRIO_CLASS_BE", "priority": 9}),
            "config.json: process.ioPriority.priority 9 out of range 0-7",
        ),
        (
            "process",
            "scheduler",
            json!({"policy": "SCHED_OTHER", "nice": 25}),
            "process.scheduler.nice 25 out of range",
        ),
        (
            "process",
            "scheduler",
            json!({"policy": "SCHED_BATCH", "priority": 3}),
            "process.scheduler.priority can only be specified for SCHED_FIFO or SCHED_RR",
        ),
        (
            "process",
            "execCPUAffinity",
            json!({"initial": "3-1"}),
            "process.execCPUAffinity.initial \"3-1\": invalid range 3-1",
        ),
        (
            "linux",
            "personality",
            json!({"domain": "LINUX", "flags": ["X"]}),
            "linux.personality.flags",
        ),
        (
            "linux",
            "memoryPolicy",
            json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
            "linux.memoryPolicy: mode MPOL_DEFAULT requires 0 nodes but got 1",
        ),
        (
            "linux",
            "memoryPolicy",
            json!({"mode": "MPOL_BIND"}),
            "linux.memoryPolicy: mode MPOL_BIND requires at least one node",
        ),
    ];
    for (parent, field, value, needle) in cases {
        create_refused(&env, |s| s[parent][field] = value, needle);
    }
    // A SCHED_DEADLINE init without SCHED_FLAG_RESET_ON_FORK could not fork its
    // startContainer hooks.
    let deadline = json!({"policy": "SCHED_DEADLINE", "runtime": 100000, "deadline": 1000000});
    let edit = |s: &mut Value| {
        s["process"]["scheduler"] = deadline;
        s["hooks"] = json!({"startContainer": [{"path": "/bin/true"}]});
    };
    let needle = "config.json: process.scheduler: SCHED_DEADLINE without SCHED_FLAG_RESET_ON_FORK \
        cannot fork, so the init cannot start hooks.startContainer";
    create_refused(&env, edit, needle);
    // Refused only by the kernel, in the init: no node 63 here.
    let bind = json!({"mode": "MPOL_BIND", "nodes": "63"});
    create_refused(
        &env,
        |s| s["linux"]["memoryPolicy"] = bind,
        "set_mempolicy: EINVAL",
    );
    // And at exec: by the checks, then by the kernel (no CPU 4095).
    let id = env.running(|_| {});
    let bad = json!({"ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": -1}});
    exec_json(&env, &id, bad, &["true"])
        .assert_err("exec: process.ioPriority.priority -1 out of range 0-7");
    let bad = json!({"execCPUAffinity": {"final": "4095"}});
    exec_json(&env, &id, bad, &["true"]).assert_err("error setting final CPU affinity");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
