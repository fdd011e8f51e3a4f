//! RUN steps: write a bundle (the stage's working rootfs + a config.json made from the image
//! config) and `RUNTIME --root STATE run --bundle DIR ID`, exactly as an engine drives runc.
//! Mount points the runtime had to create in the rootfs are removed again so they do not
//! become part of the step's layer. The step's output is streamed or captured as
//! `--progress`/`-q` say (progress.rs).

use crate::error::{io, Error, Result};
use crate::progress::Capture;
use crate::spec::{config_json, Bind, SpecInput};
use crate::user::Ids;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct RunStep {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub ids: Ids,
    pub network_none: bool,
    /// (host dir, target in the container) for `--mount=type=cache`.
    pub cache_mounts: Vec<(PathBuf, String)>,
    /// CDI device names (`nvidia.com/gpu=all`), passed as the CDI annotation.
    pub devices: Vec<String>,
    /// A dir with a heredoc script, mounted read-only at /dev/pipes (RUN <<EOF with `#!`).
    pub pipes: Option<PathBuf>,
    /// The step's secrets (`--mount=type=secret`), a dir bound read-only at /run/secrets.
    pub secrets: Option<PathBuf>,
}

/// Host files a RUN step with the host network needs for name resolution.
const HOST_FILES: &[&str] = &["/etc/resolv.conf", "/etc/hosts"];

/// Run one step in `bundle` (whose `rootfs/` is the stage's working tree). Returns the exit code.
pub fn run(
    runtime: &Path,
    state_root: &Path,
    bundle: &Path,
    id: &str,
    step: &RunStep,
) -> Result<i32> {
    let rootfs = bundle.join("rootfs");
    let mut binds: Vec<Bind> = Vec::new();
    if !step.network_none {
        for f in HOST_FILES {
            if Path::new(f).is_file() {
                binds.push(Bind {
                    src: f.to_string(),
                    dst: f.to_string(),
                    readonly: true,
                });
            }
        }
    }
    for (host, target) in &step.cache_mounts {
        std::fs::create_dir_all(host).map_err(io(host))?;
        binds.push(Bind {
            src: host.display().to_string(),
            dst: target.clone(),
            readonly: false,
        });
    }
    if let Some(dir) = &step.pipes {
        binds.push(Bind {
            src: dir.display().to_string(),
            dst: "/dev/pipes".into(),
            readonly: true,
        });
    }
    if let Some(dir) = &step.secrets {
        binds.push(Bind {
            src: dir.display().to_string(),
            dst: crate::secret::MOUNT_DIR.into(),
            readonly: true,
        });
    }
    let mut annotations = BTreeMap::new();
    if !step.devices.is_empty() {
        annotations.insert(
            "cdi.k8s.io/gpurun-build".to_string(),
            step.devices.join(","),
        );
    }
    let spec = config_json(&SpecInput {
        args: step.args.clone(),
        env: step.env.clone(),
        cwd: step.cwd.clone(),
        ids: step.ids.clone(),
        own_network: step.network_none,
        binds,
        annotations,
        cgroups_path: Some(id.to_string()),
        hostname: "gpurun-build",
    });
    let cfg = bundle.join("config.json");
    std::fs::write(
        &cfg,
        serde_json::to_vec_pretty(&spec).expect("spec serializes"),
    )
    .map_err(io(&cfg))?;

    // Mount points that are missing now would be created by the runtime: note them.
    let mut dests: Vec<String> = vec!["/proc".into(), "/dev".into(), "/sys".into()];
    dests.extend(
        spec["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["destination"].as_str())
            .filter(|d| !d.starts_with("/dev/") && !d.starts_with("/sys/"))
            .map(String::from),
    );
    let created: Vec<PathBuf> = missing_paths(&rootfs, &dests);
    if !step.cwd.is_empty() {
        let cwd = crate::unpack::resolve(&rootfs, Path::new(step.cwd.trim_start_matches('/')))?;
        std::fs::create_dir_all(&cwd).map_err(io(&cwd))?;
    }
    std::fs::create_dir_all(state_root).map_err(io(state_root))?;
    // tty and -q: the output goes to a file (shown as a status line / only on failure).
    let mut capture: Option<Capture> = None;
    // A signal that came while the step was being prepared: do not start the container.
    let status = crate::cancel::check().and_then(|()| {
        capture = Capture::new()?;
        let (out, err) = match &capture {
            Some(c) => c.stdio()?,
            None => (Stdio::inherit(), Stdio::inherit()),
        };
        let child = Command::new(runtime)
            .arg("--root")
            .arg(state_root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                Error::Usage(format!("cannot execute runtime {}: {e}", runtime.display()))
            })?;
        supervise(child, runtime, state_root, id, capture.as_mut())
    });
    if let Some(c) = capture {
        let ok = matches!(&status, Ok(s) if s.success());
        c.finish(!ok, crate::cancel::signal().is_some());
    }
    // Clean up even after a failure: the container's state and what the runtime created.
    let _ = Command::new(runtime)
        .arg("--root")
        .arg(state_root)
        .args(["delete", "--force", id])
        .stderr(Stdio::null())
        .status();
    for p in created.iter().rev() {
        let _ = std::fs::remove_dir(p).or_else(|_| remove_if_empty_file(p));
    }
    let _ = std::fs::remove_file(&cfg);
    let status = status?;
    if crate::cancel::signal().is_some() {
        // Whatever the step's exit status, it was interrupted: its tree is not a layer.
        crate::cancel::check()?;
    }
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

/// Wait for `RUNTIME run`; on SIGINT/SIGTERM stop the container through the runtime (`kill ID
/// KILL`, repeated: the first may come before the container exists) so it is not left running
/// unsupervised, and as a last resort kill the runtime process itself.
fn supervise(
    mut child: std::process::Child,
    runtime: &Path,
    state_root: &Path,
    id: &str,
    mut capture: Option<&mut Capture>,
) -> Result<std::process::ExitStatus> {
    let wait_err = |e| Error::Usage(format!("waiting for runtime {}: {e}", runtime.display()));
    let mut kills = 0u32;
    let mut last_kill: Option<Instant> = None;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait().map_err(wait_err)? {
            return Ok(st);
        }
        if crate::cancel::signal().is_some()
            && last_kill.is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        {
            crate::cancel::note_container_stopped();
            kills += 1;
            last_kill = Some(Instant::now());
            let _ = Command::new(runtime)
                .arg("--root")
                .arg(state_root)
                .args(["kill", id, "KILL"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if kills > 10 {
                let _ = child.kill();
            }
        }
        if let Some(c) = capture.as_deref_mut() {
            c.tick();
        }
        // Polling keeps this single-threaded. A short step (gpurun starts a container in a
        // few ms) is seen at once; a long one costs a wake-up every 50 ms at most.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn remove_if_empty_file(p: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(p)?.len() == 0 {
        std::fs::remove_file(p)?;
    }
    Ok(())
}

/// Of `dests` (absolute paths in the container), the rootfs paths that do not exist yet,
/// including missing parents, outermost first.
fn missing_paths(rootfs: &Path, dests: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in dests {
        let mut cur = rootfs.to_path_buf();
        for c in Path::new(d.trim_start_matches('/')).components() {
            cur.push(c);
            if std::fs::symlink_metadata(&cur).is_err() && !out.contains(&cur) {
                out.push(cur.clone());
            }
        }
    }
    out
}
