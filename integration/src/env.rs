//! Per-test environment: temp dir, private state root, fresh bundle, unique ids.

use crate::leak::{bpf_progs_of, Leaks, Scope};
use crate::util::{bin, poll, Out};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

const BUNDLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bundles");
static COUNTER: AtomicUsize = AtomicUsize::new(0);
static BUILD: Once = Once::new();

/// Build `bundles/busybox` once per test binary; an flock guards against
/// other test binaries doing the same at the same time.
fn ensure_busybox_bundle() -> PathBuf {
    let dir = Path::new(BUNDLES).join("busybox");
    BUILD.call_once(|| {
        let lock =
            std::fs::File::create(Path::new(BUNDLES).join(".build.lock")).expect("lock file");
        crate::sys::lock_exclusive(&lock).expect("flock");
        if !dir.join("rootfs/bin/sh").exists() {
            let st = Command::new("sh")
                .arg(Path::new(BUNDLES).join("build.sh"))
                .arg(&dir)
                .status();
            assert!(st.is_ok_and(|s| s.success()), "bundles/build.sh failed");
        }
    });
    dir
}

pub struct Env {
    pub name: String,
    /// `/tmp/gpurun-it/<name>-<pid>-<n>`
    pub dir: PathBuf,
    /// `--root` for the runtime.
    pub state: PathBuf,
    /// Bundle dir with `config.json` and `rootfs/`.
    pub bundle: PathBuf,
    /// Value of `GPURUN_IT` in every container's environment, and in the runtime's (so in its
    /// init's before exec, its helpers' and those of hooks that inherit it).
    pub marker: String,
    /// Extra environment for every runtime invocation (`GPURUN_CONFIG`, …).
    pub extra_env: RefCell<Vec<(String, String)>>,
    ids: RefCell<Vec<String>>,
    /// BPF device programs seen on this Env's containers' cgroups (after each runtime call).
    bpf_progs: RefCell<Vec<u32>>,
    calls: Cell<usize>,
    clean: Cell<bool>,
}

impl Env {
    /// New environment with the default `hello.json` config written.
    pub fn new(name: &str) -> Env {
        assert!(
            bin().is_file(),
            "runtime binary {} not found: build it or set GPURUN_BIN",
            bin().display()
        );
        let busybox = ensure_busybox_bundle();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{name}-{}-{n}", std::process::id());
        let dir = Path::new("/tmp/gpurun-it").join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::create_dir_all(&bundle).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(busybox.join("rootfs"))
            .arg(&bundle)
            .status();
        assert!(st.is_ok_and(|s| s.success()), "copying rootfs failed");
        let env = Env {
            name: name.to_string(),
            state: dir.join("state"),
            bundle,
            dir,
            marker: tag,
            extra_env: RefCell::new(Vec::new()),
            ids: RefCell::new(Vec::new()),
            bpf_progs: RefCell::new(Vec::new()),
            calls: Cell::new(0),
            clean: Cell::new(false),
        };
        env.config(|_| {});
        env
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// A fresh container id, unique across tests and runs; deleted on drop.
    pub fn id(&self) -> String {
        let id = format!("{}-{}", self.marker, self.ids.borrow().len());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// The `hello.json` spec (with the leak marker in process.env).
    pub fn base_spec(&self) -> Value {
        let text = std::fs::read_to_string(Path::new(BUNDLES).join("configs/hello.json")).unwrap();
        let mut spec: Value = serde_json::from_str(&text).unwrap();
        if let Some(envs) = spec["process"]["env"].as_array_mut() {
            envs.push(json!(format!("GPURUN_IT={}", self.marker)));
        }
        spec
    }

    /// Write config.json = hello.json edited by `edit` (like bats' update_config).
    pub fn config(&self, edit: impl FnOnce(&mut Value)) {
        let mut spec = self.base_spec();
        edit(&mut spec);
        self.write_config(&spec);
    }

    pub fn write_config(&self, spec: &Value) {
        let text = serde_json::to_string_pretty(spec).unwrap();
        std::fs::write(self.bundle.join("config.json"), text).unwrap();
    }

    /// `GPURUN_BIN --root STATE args...`
    pub fn gpurun(&self, args: &[&str]) -> Out {
        self.gpurun_with(&[], args)
    }

    /// Like [`Env::gpurun`] with extra global options (`--log F`, ...) before the command.
    pub fn gpurun_with(&self, globals: &[&str], args: &[&str]) -> Out {
        let k = self.calls.get();
        self.calls.set(k + 1);
        let mut cmd = Command::new(bin());
        cmd.arg("--root").arg(&self.state).args(globals).args(args);
        cmd.envs(self.extra_env.borrow().iter().cloned());
        cmd.env("GPURUN_IT", &self.marker);
        cmd.current_dir(&self.dir);
        let out = self.dir.join("out");
        let out = Out::exec(
            cmd,
            out.join(format!("{k}.stdout")),
            out.join(format!("{k}.stderr")),
        );
        self.note_bpf_progs();
        out
    }

    /// Record the BPF device programs attached to this Env's containers' cgroups now, for
    /// the leak check to see them unloaded: ids, unlike a count, are this test's alone.
    fn note_bpf_progs(&self) {
        // Only containers that exist now (their state dir is there): scanning every id the
        // Env ever handed out would make each call cost O(ids) (the soak makes thousands).
        let live: Vec<String> = std::fs::read_dir(&self.state)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let ids: Vec<String> = self
            .ids
            .borrow()
            .iter()
            .filter(|id| live.contains(id))
            .cloned()
            .collect();
        if ids.is_empty() {
            return;
        }
        let mut seen = self.bpf_progs.borrow_mut();
        for p in bpf_progs_of(&ids) {
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
    }

    /// Run any command with its output in this Env's files and the leak marker in its
    /// environment (as [`Env::gpurun`] does).
    pub fn command_out(&self, mut cmd: Command) -> Out {
        let k = self.calls.get();
        self.calls.set(k + 1);
        cmd.env("GPURUN_IT", &self.marker);
        let out = self.dir.join("out");
        let out = Out::exec(
            cmd,
            out.join(format!("{k}.stdout")),
            out.join(format!("{k}.stderr")),
        );
        self.note_bpf_progs();
        out
    }

    /// Like [`Env::gpurun`] with `input` on stdin (`update --resources -`).
    pub fn gpurun_stdin(&self, args: &[&str], input: &str) -> Out {
        let k = self.calls.get();
        self.calls.set(k + 1);
        let out = self.dir.join("out");
        let inp = out.join(format!("{k}.stdin"));
        std::fs::write(&inp, input).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--root").arg(&self.state).args(args);
        cmd.envs(self.extra_env.borrow().iter().cloned());
        cmd.env("GPURUN_IT", &self.marker);
        cmd.current_dir(&self.dir);
        let out = Out::exec_stdin(
            cmd,
            std::fs::File::open(&inp).unwrap().into(),
            out.join(format!("{k}.stdout")),
            out.join(format!("{k}.stderr")),
        );
        self.note_bpf_progs();
        out
    }

    fn bundle_str(&self) -> &str {
        self.bundle.to_str().unwrap()
    }

    /// `run --bundle B ID` in the foreground: exit code is the container's.
    pub fn run(&self, id: &str) -> Out {
        self.gpurun(&["run", "--bundle", self.bundle_str(), id])
    }

    /// Run a fresh container with `args` and the default spec otherwise.
    pub fn run_args(&self, args: &[&str]) -> Out {
        self.config(|s| crate::set_args(s, args));
        self.run(&self.id())
    }

    /// Run a fresh container `sh -c script` with `edit` applied to the spec;
    /// asserts exit 0 and returns its output.
    #[track_caller]
    pub fn sh(&self, script: &str, edit: impl FnOnce(&mut Value)) -> Out {
        self.config(|s| {
            crate::set_args(s, &["sh", "-c", script]);
            edit(s);
        });
        let out = self.run(&self.id());
        out.assert_ok();
        out
    }

    /// `create --bundle B ID`. The init inherits this Out's files: call
    /// `out.reread()` later to see what the container printed.
    pub fn create(&self, id: &str) -> Out {
        self.gpurun(&["create", "--bundle", self.bundle_str(), id])
    }

    /// A fresh container running `sleep 3600`, `edit` applied to the spec first.
    #[track_caller]
    pub fn running(&self, edit: impl FnOnce(&mut Value)) -> String {
        self.config(|s| {
            crate::set_args(s, &["sleep", "3600"]);
            edit(s);
        });
        let id = self.id();
        self.create_ok(&id);
        self.gpurun(&["start", &id]).assert_ok();
        self.wait_status(&id, "running");
        id
    }

    /// `create` then assert it succeeded.
    #[track_caller]
    pub fn create_ok(&self, id: &str) -> Out {
        let out = self.create(id);
        out.assert_ok();
        out
    }

    /// Parsed `state ID`, None when it fails.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.gpurun(&["state", id]);
        if !out.ok() {
            return None;
        }
        Some(
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("state JSON: {e}\n{}", out.describe())),
        )
    }

    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id)
            .and_then(|s| s["status"].as_str().map(String::from))
    }

    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        let out = self.gpurun(&["state", id]);
        let st: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        st["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("no pid in state\n{}", out.describe())) as i32
    }

    /// Poll `state` until status is `want` (5 s max).
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let got = poll(Duration::from_secs(5), || {
            (self.status(id).as_deref() == Some(want)).then_some(())
        });
        assert!(
            got.is_some(),
            "{id} never reached {want:?}, last: {:?}",
            self.status(id)
        );
    }

    /// Poll the files of `out` (a create) until stdout contains `needle` (5 s max).
    #[track_caller]
    pub fn wait_output(&self, out: &mut Out, needle: &str) -> String {
        let found = poll(Duration::from_secs(5), || {
            out.reread();
            out.stdout.contains(needle).then_some(())
        });
        assert!(
            found.is_some(),
            "output never contained {needle:?}\n{}",
            out.describe()
        );
        out.stdout.clone()
    }

    /// Every leak (see [`Leaks`]): state dirs, mounts, marked processes, processes using the
    /// test's dir, sockets and fifos, cgroups, BPF device programs, network namespaces (2 s
    /// grace).
    pub fn leaks(&self) -> Leaks {
        self.find_leaks(Duration::from_secs(2))
    }

    /// What is there right now, without waiting for anything to vanish.
    pub fn leaks_now(&self) -> Leaks {
        self.find_leaks(Duration::ZERO)
    }

    fn find_leaks(&self, grace: Duration) -> Leaks {
        let ids = self.ids.borrow();
        let bpf_progs = self.bpf_progs.borrow();
        let scope = Scope {
            state: &self.state,
            dir: &self.dir,
            bundle: &self.bundle,
            marker: &self.marker,
            ids: &ids,
            bpf_progs: &bpf_progs,
        };
        Leaks::find(&scope, grace)
    }

    /// The leak check every test ends with; removes the temp dir when clean.
    #[track_caller]
    pub fn assert_clean(&self) {
        let leaks = self.leaks();
        assert!(leaks.is_empty(), "test {} leaked:\n{leaks}", self.name);
        self.clean.set(true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.clean.get() {
            return;
        }
        for id in self.ids.borrow().iter() {
            let _ = self.gpurun(&["delete", "--force", id]);
        }
        let leaks = self.leaks();
        if leaks.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            // Keep the dir: a leaked (bind) mount makes removal unsafe.
            eprintln!(
                "test {} leaked (kept {}):\n{leaks}",
                self.name,
                self.dir.display()
            );
            // Don't let a broken runtime's containers (sleep 3600) outlive the test.
            for pid in leaks
                .pids
                .iter()
                .chain(leaks.holders.iter().map(|h| &h.pid))
            {
                crate::sys::kill(*pid, libc::SIGKILL);
            }
            if !std::thread::panicking() {
                panic!("test {} leaked", self.name);
            }
        }
    }
}
