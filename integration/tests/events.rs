//! `events` as engines read it: the stream (stats every interval), OOM notifications on it,
//! and the refusal on a stopped container. (`events --stats` on a running container:
//! cgroups_cmds.rs.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gpurun_integration::*;

/// `events ARGS` in the background, stdout to a file; killed on drop.
struct Stream {
    child: Child,
    out: PathBuf,
}

impl Stream {
    fn start(env: &Env, args: &[&str]) -> Stream {
        let out = env.dir.join("events.out");
        let err = env.dir.join("events.err");
        let child = Command::new(bin())
            .arg("--root")
            .arg(&env.state)
            .arg("events")
            .args(args)
            .envs(env.extra_env.borrow().iter().cloned())
            .env("GPURUN_IT", &env.marker)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(err).unwrap())
            .spawn()
            .unwrap();
        Stream { child, out }
    }

    /// The JSON documents printed so far (a partial last line is left for later).
    fn docs(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    }

    /// Wait up to `secs` until `want` holds for the documents so far; returns them.
    #[track_caller]
    fn wait(&mut self, secs: u64, what: &str, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let got = poll(Duration::from_secs(secs), || {
            let docs = self.docs();
            want(&docs).then_some(docs)
        });
        got.unwrap_or_else(|| {
            let exited = self.child.try_wait().unwrap();
            let docs = self.docs();
            let types: Vec<&Value> = docs.iter().map(|d| &d["type"]).collect();
            let last = docs.last().map(Value::to_string).unwrap_or_default();
            panic!(
                "events: no {what} in {secs}s (exited: {exited:?}); types {types:?}; last {last}"
            )
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_streams_stats_at_the_default_interval() {
    if !require_root() {
        return;
    }
    let env = Env::new("events_stream");
    let id = env.running(|s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    });
    let mut stream = Stream::start(&env, &[&id]);
    // runc prints the first document after one interval (5 s), gpurun at once.
    let docs = stream.wait(20, "two stats documents", |d| d.len() >= 2);
    for d in &docs {
        assert_eq!(d["type"], "stats", "{d}");
        assert_eq!(d["id"], id.as_str(), "{d}");
        assert_eq!(d["data"]["pids"]["current"], 1, "{d}");
        assert_eq!(d["data"]["memory"]["usage"]["limit"], 64 << 20, "{d}");
        let usage = d["data"]["memory"]["usage"]["usage"].as_u64();
        assert!(usage.is_some_and(|u| u > 0), "{d}");
    }
    assert!(
        stream.child.try_wait().unwrap().is_none(),
        "events exited while the container runs"
    );
    drop(stream);
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn events_reports_an_oom_kill() {
    if !require_root() || !has_controller("memory") {
        return;
    }
    let env = Env::new("events_oom");
    let id = env.running(|s| {
        let mut mem = json!({"limit": 32 << 20});
        let swap = if cgroup2_host() {
            "memory.swap.max"
        } else {
            "memory.memsw.limit_in_bytes"
        };
        let own = proc_cgroup_dir(std::process::id() as i32, "memory");
        if own.is_some_and(|d| d.join(swap).exists()) {
            mem["swap"] = json!(32 << 20); // no swapping out of the OOM
        }
        s["linux"]["resources"]["memory"] = mem;
    });
    let mut stream = Stream::start(&env, &["--interval", "1s", &id]);
    // runc registers for OOM notifications before its first document.
    stream.wait(10, "a first stats document", |d| !d.is_empty());
    let is_oom = |d: &Value| d["type"] == "oom";
    assert!(!stream.docs().iter().any(is_oom), "oom before any hog");
    // busybox tail keeps a newline-free input in memory.
    let hog = "dd if=/dev/zero bs=1M count=200 2>/dev/null | tail >/dev/null; echo rc=$?";
    let out = env.gpurun(&["exec", &id, "sh", "-c", hog]);
    assert!(
        out.stdout.contains("rc=137"),
        "hog not OOM-killed\n{}",
        out.describe()
    );
    let docs = stream.wait(10, "an oom event", |d| d.iter().any(is_oom));
    let oom = docs.iter().find(|d| is_oom(d)).unwrap();
    assert_eq!(oom["id"], id.as_str(), "{oom}");
    // The container itself lives on: the stream goes on with stats.
    let n = docs.len();
    stream.wait(10, "stats after the oom", |d| {
        d.len() > n && d[n..].iter().any(|x| x["type"] == "stats")
    });
    drop(stream);
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// runc: `container with id ID is not running`, for `--stats` and the stream alike.
#[test]
fn events_on_a_stopped_container_fails() {
    if !require_root() {
        return;
    }
    let env = Env::new("events_stopped");
    env.config(|s| set_args(s, &["true"]));
    let id = env.id();
    let bundle = env.bundle.to_str().unwrap();
    env.gpurun(&["run", "--keep", "--bundle", bundle, &id])
        .assert_ok();
    assert_eq!(env.status(&id).as_deref(), Some("stopped"));
    let stats = env.gpurun(&["events", "--stats", &id]);
    let stream = env.gpurun(&["events", "--interval", "1s", &id]);
    env.gpurun(&["delete", &id]).assert_ok();
    stats.assert_err("not running");
    stream.assert_err("not running");
    env.assert_clean();
}
