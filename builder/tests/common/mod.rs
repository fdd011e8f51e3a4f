//! Helpers for the builder's tests: run `gpurun-build` with the real gpurun as its runtime,
//! a private cache dir per test, and check that builds leave nothing behind.
#![allow(dead_code)]

pub use gpurun_integration::{bin, require_root, Env, Out};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Pids of the gpurun-build processes each cache dir has seen: RUN containers are named
/// `gpurun-build-<pid>-…`, so a test checks only its own builds' cgroups (tests run in parallel).
static BUILD_PIDS: Mutex<Vec<(PathBuf, u32)>> = Mutex::new(Vec::new());

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

pub struct Build {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Build {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "build failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn fails_with(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }
    /// Lines like `[3/9] CACHED RUN …`.
    pub fn cached(&self) -> usize {
        self.stdout
            .lines()
            .filter(|l| l.contains("] CACHED "))
            .count()
    }
    pub fn executed(&self) -> usize {
        self.stdout
            .lines()
            .filter(|l| l.contains("] done in "))
            .count()
    }
    /// The digest printed for `--oci-layout`/`--oci-archive`.
    pub fn digest(&self) -> String {
        let l = self
            .stdout
            .lines()
            .find(|l| l.starts_with("oci "))
            .expect("an OCI output line");
        l.rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_string()
    }
}

/// `gpurun-build --runtime <gpurun> --cache-dir <cache> ARGS…`
pub fn build(cache: &Path, args: &[&str]) -> Build {
    build_with(cache, &bin(), args)
}

/// `build` with another runtime binary.
pub fn build_with(cache: &Path, runtime: &Path, args: &[&str]) -> Build {
    let child = spawn_with(cache, runtime, args);
    let out = child.wait_with_output().expect("waiting for gpurun-build");
    Build {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copy a fixture context into `dir` (tests edit their copy).
pub fn fixture(name: &str, dir: &Path) -> PathBuf {
    let dst = dir.join(name);
    let st = Command::new("cp")
        .arg("-a")
        .arg(Path::new(FIXTURES).join(name))
        .arg(&dst)
        .status();
    assert!(st.is_ok_and(|s| s.success()), "copying fixture {name}");
    dst
}

/// Write a context dir with a Dockerfile and files.
pub fn context(dir: &Path, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    dir.to_path_buf()
}

/// A built bundle's config.json.
pub fn bundle_config(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

/// Run a built bundle with gpurun (the env's private --root; a fresh id the env cleans up).
pub fn run_bundle(env: &Env, bundle: &Path) -> Out {
    env.gpurun(&["run", "--bundle", bundle.to_str().unwrap(), &env.id()])
}

/// Nothing a build may leave: work trees, RUN containers' state, their cgroups.
#[track_caller]
pub fn assert_build_clean(cache: &Path) {
    let entries = |d: &str| -> Vec<String> {
        std::fs::read_dir(cache.join(d))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        entries("work"),
        Vec::<String>::new(),
        "work trees left in {}",
        cache.display()
    );
    assert_eq!(
        entries("run"),
        Vec::<String>::new(),
        "RUN container state left"
    );
    assert_eq!(entries("tmp"), Vec::<String>::new(), "temp files left");
    let prefixes: Vec<String> = BUILD_PIDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(c, _)| c == cache)
        .map(|(_, pid)| format!("gpurun-build-{pid}-"))
        .collect();
    assert!(
        !prefixes.is_empty(),
        "no build ran with {}",
        cache.display()
    );
    let pid = std::process::id() as i32;
    for (_, dir) in gpurun_integration::proc_cgroup_dirs(pid) {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                assert!(
                    !prefixes.iter().any(|p| n.starts_with(p)),
                    "RUN cgroup left: {}",
                    e.path().display()
                );
            }
        }
    }
}

/// Entry names of every layer of the image tagged `tag` in an OCI layout.
pub fn layer_entries(layout: &Path, tag: &str) -> Vec<Vec<String>> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tagged manifest");
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(m["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let out = Command::new("tar")
                .arg("tzf")
                .arg(blob(l["digest"].as_str().unwrap()))
                .output()
                .unwrap();
            assert!(out.status.success(), "tar tzf of a layer failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from)
                .collect()
        })
        .collect()
}

pub fn has_tool(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn base_arg(env: &Env) -> String {
    format!("BASE=dir:{}", env.rootfs().display())
}

/// Skip (with the reason) unless the tool can be run.
pub fn tool_or_skip(tool: &str) -> bool {
    let ok = has_tool(tool);
    if !ok {
        println!("skipped: {tool} not installed");
    }
    ok
}

/// A tool the checks need (containerd, podman): installed with apt-get when missing, as
/// integration/engines/ does (ENGINES_NO_INSTALL=1 skips instead); false, with the reason
/// printed, when it still cannot be run.
pub fn tool_or_install(tool: &str, package: &str) -> bool {
    if !has_tool(tool) && std::env::var_os("ENGINES_NO_INSTALL").is_none() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
    }
    tool_or_skip(tool)
}

/// Start `gpurun-build --runtime <gpurun> --cache-dir <cache> ARGS…` without waiting (tests
/// that signal it); its pid is registered for `assert_build_clean`'s cgroup check.
pub fn spawn_build(cache: &Path, args: &[&str]) -> std::process::Child {
    spawn_with(cache, &bin(), args)
}

/// Start gpurun-build with `runtime`, output captured, its pid registered (see BUILD_PIDS).
fn spawn_with(cache: &Path, runtime: &Path, args: &[&str]) -> std::process::Child {
    spawn_env(cache, runtime, &[], args)
}

/// `build` with extra environment variables.
pub fn build_env(cache: &Path, envs: &[(&str, &str)], args: &[&str]) -> Build {
    let out = spawn_env(cache, &bin(), envs, args)
        .wait_with_output()
        .expect("waiting for gpurun-build");
    Build {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn spawn_env(
    cache: &Path,
    runtime: &Path,
    envs: &[(&str, &str)],
    args: &[&str],
) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_gpurun-build"))
        .envs(envs.iter().copied())
        .arg("--runtime")
        .arg(runtime)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running gpurun-build");
    BUILD_PIDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((cache.to_path_buf(), child.id()));
    child
}

/// Wait (at most `limit`) for a spawned build; None when it is still running then (it is
/// killed, so a failing test leaves no process).
pub fn finish_within(mut child: std::process::Child, limit: std::time::Duration) -> Option<Build> {
    let t = std::time::Instant::now();
    while child.try_wait().ok()?.is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("waiting for gpurun-build");
    Some(Build {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `gpurun-build prune --cache-dir <cache> ARGS…` (with the test's runtime).
pub fn prune(cache: &Path, args: &[&str]) -> Build {
    let out = Command::new(env!("CARGO_BIN_EXE_gpurun-build"))
        .arg("prune")
        .arg("--runtime")
        .arg(bin())
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("running gpurun-build prune");
    Build {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `podman` on a private store under `dir` (vfs: nothing touches the host's images); `args`
/// after the global options.
pub fn podman(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .arg("--root")
        .arg(dir.join("podman-root"))
        .arg("--runroot")
        .arg(dir.join("podman-run"))
        .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
        .args(args)
        .output()
        .expect("running podman")
}

/// Environment of a build that extracts layers instead of stacking snapshots (overlay off).
pub const EXTRACT: &[(&str, &str)] = &[("GPURUN_BUILD_OVERLAY", "0")];

/// Every path under `root` with its type, mode, owner, size, link target and content digest
/// (not times: the two engines write at different moments).
pub fn listing(root: &Path) -> Vec<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("find . -printf '%p %y %m %U:%G %s %l %r\\n' | sort; find . -type f -print0 | sort -z | xargs -0 -r sha256sum")
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

pub fn assert_same_tree(a: &Path, b: &Path) {
    let (la, lb) = (listing(a), listing(b));
    let only_a: Vec<_> = la.iter().filter(|l| !lb.contains(l)).collect();
    let only_b: Vec<_> = lb.iter().filter(|l| !la.contains(l)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "trees differ\nonly in {}: {only_a:#?}\nonly in {}: {only_b:#?}",
        a.display(),
        b.display()
    );
}
