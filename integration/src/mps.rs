//! CUDA MPS sharing on the fake GPU host: the stand-in control binary
//! (testdata/mps/nvidia-cuda-mps-control, which logs its calls) and what tests ask of it.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::{mock_nvml, set_args, Env, FakeGpuHost};

pub const STANDIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/mps/nvidia-cuda-mps-control"
);
pub const SHARE: &str = "gpurun.io/mps.active-thread-percentage";
pub const MEMORY: &str = "gpurun.io/mps.pinned-memory-limit";

pub struct Mps {
    pub root: PathBuf,
}

impl Mps {
    /// Point the fake host's config at a private MPS root and the stand-in.
    pub fn new(env: &Env, host: &FakeGpuHost) -> Mps {
        let root = env.dir.join("mps");
        let extra = format!(
            "mps-root = {:?}\nmps-control = {STANDIN:?}\nmps-cdi-devices = true\n",
            root.display().to_string()
        );
        host.write_config_with(&mock_nvml().display().to_string(), &extra);
        Mps { root }
    }

    pub fn dir(&self, uuid: &str) -> PathBuf {
        self.root.join(uuid)
    }

    pub fn log(&self, uuid: &str) -> String {
        std::fs::read_to_string(self.dir(uuid).join("log/standin.log")).unwrap_or_default()
    }

    pub fn starts(&self, uuid: &str) -> usize {
        self.log(uuid)
            .lines()
            .filter(|l| l.starts_with("start "))
            .count()
    }

    pub fn leases(&self, uuid: &str) -> usize {
        std::fs::read_dir(self.dir(uuid).join("leases"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The stand-in daemon's pid while it runs (its own pid file; see [`Mps::recorded`]).
    pub fn daemon(&self, uuid: &str) -> Option<i32> {
        let p = self.dir(uuid).join("pipe/nvidia-cuda-mps-control.pid");
        let pid: i32 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// The daemon's pid as gpurun recorded it (daemon.json).
    pub fn recorded(&self, uuid: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir(uuid).join("daemon.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    /// The environment the daemon was started with (the stand-in's daemon.env).
    pub fn daemon_env(&self, uuid: &str) -> String {
        std::fs::read_to_string(self.dir(uuid).join("log/daemon.env")).unwrap_or_default()
    }

    /// Wait (up to 5 s) until the daemon is gone.
    pub fn wait_gone(&self, uuid: &str) -> bool {
        (0..250).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.daemon(uuid).is_none()
        })
    }
}

/// Spec edit: `vars` in the env, `ann` as annotations.
pub fn with(vars: &[&str], ann: &[(&str, &str)]) -> impl FnOnce(&mut Value) {
    let vars: Vec<String> = vars.iter().map(|v| v.to_string()).collect();
    let ann: serde_json::Map<String, Value> =
        ann.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    move |s: &mut Value| {
        let e = s["process"]["env"].as_array_mut().unwrap();
        e.extend(vars.into_iter().map(Value::from));
        s["annotations"] = Value::Object(ann);
    }
}

/// A create that must fail with `want` and leave no state dir, lease or daemon.
#[track_caller]
pub fn refused(env: &Env, mps: &Mps, uuid: &str, edit: impl FnOnce(&mut Value), want: &str) {
    let (leases, starts) = (mps.leases(uuid), mps.starts(uuid));
    let had_dir = mps.dir(uuid).exists();
    env.config(|s| {
        set_args(s, &["true"]);
        edit(s);
    });
    let id = env.id();
    let out = env.create(&id);
    out.assert_err(want);
    assert!(
        !env.state.join(&id).exists(),
        "state dir left: {}",
        out.describe()
    );
    assert_eq!(mps.leases(uuid), leases, "lease left by {id}");
    assert_eq!(mps.starts(uuid), starts, "daemon started for {id}");
    assert_eq!(mps.dir(uuid).exists(), had_dir, "GPU dir made for {id}");
}

/// What the container sees: its MPS env, the pipe dir, the daemon's file in /dev/shm.
pub fn inside(env: &Env, id: &str) -> String {
    let out = env.gpurun(&[
        "exec", id, "sh", "-c",
        "env | grep ^CUDA_MPS | sort; test -d \"$CUDA_MPS_PIPE_DIRECTORY\" && echo pipe-dir; cat /dev/shm/standin; ls /dev | grep '^nvidia[0-9]'",
    ]);
    out.assert_ok();
    out.stdout
}
