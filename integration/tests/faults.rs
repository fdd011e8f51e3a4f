//! Fault injection: the runtime SIGKILLed at any moment of `create`, `run`, `exec` or
//! `delete` (a node OOM-killing the shim, an operator's `kill -9`), then `delete --force`:
//! nothing may be left — no cgroup, mount, process, state dir, BPF program or open file.
//!
//! Two ways to kill: at each named point (gpurun's test-only `GPURUN_FAULT=<point>`, listed
//! in src/fault.rs), and at random delays spread over the command's lifetime (any runtime;
//! runc leaves `runc init` processes and cgroups behind, so there the test only reports).

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gpurun_integration::*;

/// A spec that makes everything a create can make: limits in every hierarchy (device
/// rules included), a prestart hook, namespaces.
fn full_spec(env: &Env, args: &[&str]) {
    env.config(|s| {
        set_args(s, args);
        s["linux"]["resources"] = json!({
            "memory": {"limit": 64 << 20},
            "pids": {"limit": 64},
            "cpu": {"shares": 512},
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
        });
        s["hooks"] = json!({"prestart": [{"path": "/bin/true"}]});
    });
}

/// The runtime with `args`, not waited for; `fault` set as GPURUN_FAULT.
fn spawn(env: &Env, args: &[&str], fault: Option<&str>) -> Child {
    let mut cmd = Command::new(bin());
    cmd.arg("--root").arg(&env.state).args(args);
    cmd.env("GPURUN_IT", &env.marker);
    if let Some(point) = fault {
        cmd.env("GPURUN_FAULT", point);
    }
    cmd.current_dir(&env.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().expect("spawn runtime")
}

/// Wait for `child`; whether it died of SIGKILL.
fn killed(mut child: Child) -> bool {
    let status = poll(Duration::from_secs(60), || child.try_wait().unwrap())
        .expect("runtime did not finish in 60 s");
    status.signal() == Some(libc::SIGKILL)
}

/// Every point gpurun defines (src/fault.rs), so that a new one cannot go untested.
fn defined_points() -> Vec<String> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../src/fault.rs"))
        .expect("src/fault.rs");
    let list = src.split("POINTS: &[&str] = &[").nth(1).expect("POINTS");
    let list = list.split("];").next().unwrap();
    list.lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .map(String::from)
        .collect()
}

/// Processes of the container `id` that are still the runtime (a half-made init or exec).
fn runtime_processes(env: &Env, id: &str) -> Vec<i32> {
    let Some(pid) = env.state(id).and_then(|s| s["pid"].as_i64()) else {
        return Vec::new();
    };
    proc_cgroup_dirs(pid as i32)
        .into_iter()
        .filter_map(|d| std::fs::read_to_string(d.1.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.parse().ok())
                .collect::<Vec<i32>>()
        })
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == bin()))
        .collect()
}

#[test]
fn killed_at_each_point() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("faults_points");
    let points = defined_points();
    assert!(points.len() >= 10, "src/fault.rs lists {points:?}");
    let bundle = env.bundle.to_str().unwrap().to_string();
    for point in &points {
        let id = env.id();
        let verb = match point.as_str() {
            "started" => "run",
            "exec-cloned" => "exec",
            p if p.starts_with("delete-") => "delete",
            _ => "create",
        };
        full_spec(&env, &["sleep", "1000"]);
        match verb {
            "create" => {
                let child = spawn(&env, &["create", "--bundle", &bundle, &id], Some(point));
                assert!(killed(child), "create never reached {point}");
                // Until deleted, the id stays taken (the state dir is there from the start).
                env.create(&id).assert_err("already exists");
            }
            "run" => {
                let child = spawn(&env, &["run", "-d", "--bundle", &bundle, &id], Some(point));
                assert!(killed(child), "run never reached {point}");
                assert_eq!(env.status(&id).as_deref(), Some("running"), "{point}");
            }
            "exec" => {
                env.create_ok(&id);
                env.gpurun(&["start", &id]).assert_ok();
                let args = ["exec", &id, "sleep", "999"];
                assert!(
                    killed(spawn(&env, &args, Some(point))),
                    "never reached {point}"
                );
                // The exec'd process dies with `exec` while it is being set up.
                let left = poll(Duration::from_secs(2), || {
                    runtime_processes(&env, &id).is_empty().then_some(())
                });
                assert!(
                    left.is_some(),
                    "{point}: {:?}",
                    runtime_processes(&env, &id)
                );
            }
            _ => {
                env.create_ok(&id);
                env.gpurun(&["start", &id]).assert_ok();
                let child = spawn(&env, &["delete", "--force", &id], Some(point));
                assert!(killed(child), "delete never reached {point}");
                // What the killed delete left, the next one (without --force) finishes.
                assert_eq!(env.status(&id).as_deref(), Some("stopped"), "{point}");
                env.gpurun(&["delete", &id]).assert_ok();
            }
        }
        env.gpurun(&["delete", "--force", &id]).assert_ok();
        let leaks = env.leaks();
        assert!(
            leaks.is_empty(),
            "killed at {point}, then delete --force:\n{leaks}"
        );
    }
    env.assert_clean();
}

/// A small deterministic generator: the seed is printed, so a failure can be replayed
/// (`FAULT_SEED=…`).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The runtime's arguments for one container id.
type Argv<'a> = Box<dyn Fn(&str) -> Vec<String> + 'a>;

/// Another runtime's leftovers (reported, not failed on), removed so that the next kill is
/// judged on its own: its processes killed, its cgroups removed, its state deleted.
fn clear_leftovers(env: &Env) {
    let leaks = env.leaks_now();
    for pid in leaks
        .pids
        .iter()
        .chain(leaks.holders.iter().map(|h| &h.pid))
    {
        sys::kill(*pid, libc::SIGKILL);
    }
    for id in &leaks.state_entries {
        let _ = env.gpurun(&["delete", "--force", id]);
    }
    let _ = poll(Duration::from_secs(2), || {
        let mut dirs = env.leaks_now().cgroups;
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        dirs.is_empty().then_some(())
    });
    let _ = std::fs::remove_dir_all(&env.state);
}

/// How long `args` takes when left alone (median of 5), to spread the kills over it.
fn lifetime(env: &Env, args: &dyn Fn(&str) -> Vec<String>) -> Duration {
    let mut took: Vec<Duration> = (0..5)
        .map(|_| {
            let id = env.id();
            let argv = args(&id);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let t = Instant::now();
            let child = spawn(env, &argv, None);
            assert!(!killed(child));
            let took = t.elapsed();
            env.gpurun(&["delete", "--force", &id]).assert_ok();
            took
        })
        .collect();
    took.sort();
    took[2]
}

#[test]
fn killed_at_random_moments() {
    if !require_root() {
        return;
    }
    let env = Env::new("faults_random");
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap_or_default().as_nanos() as u64 ^ std::process::id() as u64
        });
    eprintln!("faults_random: FAULT_SEED={seed}");
    let mut rng = Lcg(seed);
    let bundle = env.bundle.to_str().unwrap().to_string();
    // exec's container: made when its turn comes (the leak check runs while it does not exist)
    let host = env.id();
    let kills_per_verb = 25;
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let verbs: [(&str, Argv); 4] = [
        (
            "create",
            Box::new(|id: &str| {
                vec![
                    "create".into(),
                    "--bundle".into(),
                    bundle.clone(),
                    id.into(),
                ]
            }),
        ),
        (
            "run -d",
            Box::new(|id: &str| {
                let b = bundle.clone();
                vec!["run".into(), "-d".into(), "--bundle".into(), b, id.into()]
            }),
        ),
        (
            "run",
            // The container exits by itself shortly: the kill lands in create, start or wait.
            Box::new(|id: &str| vec!["run".into(), "--bundle".into(), bundle.clone(), id.into()]),
        ),
        (
            "exec",
            Box::new(|_id: &str| {
                let h = host.clone();
                vec!["exec".into(), h, "sleep".into(), "0.3".into()]
            }),
        ),
    ];
    for (verb, args) in &verbs {
        if *verb == "run" {
            full_spec(&env, &["sleep", "0.05"]);
        } else {
            full_spec(&env, &["sleep", "1000"]);
        }
        if *verb == "exec" {
            env.create_ok(&host);
            env.gpurun(&["start", &host]).assert_ok();
        }
        let span = lifetime(&env, args.as_ref());
        let (mut hit, mut finished) = (0, 0);
        for _ in 0..kills_per_verb {
            let id = env.id();
            let argv = args(&id);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let delay = Duration::from_micros(rng.below(span.as_micros() as u64 * 6 / 5));
            let mut child = spawn(&env, &argv, None);
            std::thread::sleep(delay);
            let _ = child.kill();
            match killed(child) {
                true => hit += 1,
                false => finished += 1,
            }
            if *verb == "exec" {
                let left = poll(Duration::from_secs(2), || {
                    runtime_processes(&env, &host).is_empty().then_some(())
                });
                if left.is_none() {
                    failures.push(format!("exec killed after {delay:?}: half-made process"));
                }
                continue;
            }
            let deleted = env.gpurun(&["delete", "--force", &id]);
            let leaks = env.leaks();
            if !deleted.ok() || !leaks.is_empty() {
                failures.push(format!(
                    "{verb} killed after {delay:?}: delete --force {}\n{leaks}",
                    deleted.describe()
                ));
                match is_gpurun() {
                    true => break,
                    false => clear_leftovers(&env),
                }
            }
        }
        report.push(format!(
            "{verb}: {kills_per_verb} kills over {span:?}: {hit} mid-way, {finished} after it finished"
        ));
    }
    env.gpurun(&["delete", "--force", &host]).assert_ok();
    eprintln!(
        "faults_random ({}):\n  {}",
        bin().display(),
        report.join("\n  ")
    );
    if is_gpurun() {
        assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
        env.assert_clean();
    } else {
        // gpurun-only: runc leaves `runc init` processes and cgroups (reported above).
        eprintln!(
            "{} of {} kills left something with this runtime:\n{}",
            failures.len(),
            kills_per_verb * verbs.len(),
            failures.join("\n")
        );
        clear_leftovers(&env);
        env.assert_clean();
    }
}
