//! The per-GPU lease registry and control daemon. `<mps-root>/<uuid>/leases/` holds one file
//! per sharing container (named after its state dir, so containers of different `--root`s
//! never collide) with its share and memory; every read or change happens under a flock of
//! `<mps-root>/<uuid>`. A lease whose container has no `mps.json` any more (its state dir was
//! cleared without gpurun, or its create died before recording) is stale and pruned.
//! The daemon is started with the first lease and stopped with the last one; its pid and
//! start time are in `daemon.json`.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(deprecated)]
use nix::fcntl::{flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::{err, Lease, ANN_MEMORY, ANN_SHARE, RECORD};
use crate::error::{Error, Result};
use crate::gpu::GpuError;
use crate::process::pidinfo;

/// A lease file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    state_dir: PathBuf,
    share: u32,
    memory: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Daemon {
    pid: i32,
    start_time: u64,
}

/// The pid file the control daemon writes in its pipe directory.
const PID_FILE: &str = "nvidia-cuda-mps-control.pid";

/// FNV-1a: a short, stable name for a state dir.
fn key(state_dir: &Path) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in state_dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    let id = state_dir.file_name().unwrap_or_default().to_string_lossy();
    format!("{id}-{h:016x}.json")
}

fn lock(dir: &Path) -> Result<File> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| Error::io("open", dir, e))?;
    #[allow(deprecated)] // as in state.rs: the plain call keeps the File
    flock(std::os::fd::AsRawFd::as_raw_fd(&f), FlockArg::LockExclusive)
        .map_err(Error::sys_path("flock", dir))?;
    Ok(f)
}

/// The live leases of the GPU at `dir` (the lock held), stale ones removed.
fn live(dir: &Path) -> Vec<(PathBuf, Entry)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir.join("leases"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = e.path();
        let entry = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
        match entry {
            Some(en) if en.state_dir.join(RECORD).exists() => out.push((path, en)),
            _ => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    out
}

/// Whether `lease` fits beside `others`.
pub fn admit(lease: &Lease, others: impl Iterator<Item = (u32, u64)>) -> Result<(), GpuError> {
    let (mut share, mut memory) = (0u32, 0u64);
    for (s, m) in others {
        share += s;
        memory = memory.saturating_add(m);
    }
    let gpu = &lease.gpu;
    if share + lease.share > 100 {
        return Err(err(format!(
            "{gpu}: shares would total {}% (> 100%): {share}% leased, {}% asked by {ANN_SHARE}",
            share + lease.share,
            lease.share
        )));
    }
    let total = memory.saturating_add(lease.memory);
    if lease.memory > 0 && total > lease.memory_total {
        return Err(err(format!(
            "{gpu}: memory limits would total {total} bytes (> the device's {}): {memory} leased, {} asked by {ANN_MEMORY}",
            lease.memory_total, lease.memory
        )));
    }
    Ok(())
}

fn entries(live: &[(PathBuf, Entry)], skip: &Path) -> Vec<(u32, u64)> {
    live.iter()
        .filter(|(p, _)| p != skip)
        .map(|(_, e)| (e.share, e.memory))
        .collect()
}

/// Would `lease` fit now? Makes nothing (no registry yet: nothing leased).
pub fn check(lease: &Lease) -> Result<(), GpuError> {
    if !lease.dir.is_dir() {
        return admit(lease, std::iter::empty());
    }
    let _lock = lock(&lease.dir).map_err(|e| err(e.to_string()))?;
    admit(lease, entries(&live(&lease.dir), Path::new("")).into_iter())
}

fn mkdirs(dir: &Path) -> Result<()> {
    for (d, mode) in [
        (dir.to_path_buf(), 0o755),
        (dir.join("leases"), 0o700),
        (dir.join("pipe"), 0o755),
        (dir.join("log"), 0o755),
        (dir.join("shm"), 0o1777),
    ] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&d)
            .map_err(|e| Error::io("mkdir", &d, e))?;
        // Exact modes despite the umask: shm/ is the clients' /dev/shm (sticky, world-writable).
        fs::set_permissions(&d, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", &d, e))?;
    }
    Ok(())
}

/// Take `lease` for the container at `state_dir`: admit it, write its file, start the daemon
/// if none runs.
pub fn take(lease: &Lease, state_dir: &Path) -> Result<()> {
    mkdirs(&lease.dir)?;
    let _lock = lock(&lease.dir)?;
    let own = lease.dir.join("leases").join(key(state_dir));
    let live = live(&lease.dir);
    admit(lease, entries(&live, &own).into_iter())?;
    let entry = Entry {
        state_dir: state_dir.to_path_buf(),
        share: lease.share,
        memory: lease.memory,
    };
    let tmp = own.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec(&entry).expect("lease serialises"))
        .and_then(|()| fs::rename(&tmp, &own))
        .map_err(|e| Error::io("write", &own, e))?;
    if daemon_alive(&lease.dir).is_none() {
        start(lease)?;
    }
    Ok(())
}

/// Give back the lease of the container at `state_dir`; the last one stops the daemon.
pub fn give_back(lease: &Lease, state_dir: &Path) -> Result<()> {
    if !lease.dir.is_dir() {
        return Ok(());
    }
    let _lock = lock(&lease.dir)?;
    let own = lease.dir.join("leases").join(key(state_dir));
    match fs::remove_file(&own) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("remove", &own, e))
        }
        _ => {}
    }
    if live(&lease.dir).is_empty() {
        stop(lease)?;
    }
    Ok(())
}

fn daemon_alive(dir: &Path) -> Option<Daemon> {
    let d: Daemon = serde_json::from_slice(&fs::read(dir.join("daemon.json")).ok()?).ok()?;
    pidinfo::is_alive(d.pid, d.start_time).then_some(d)
}

fn daemon_env(cmd: &mut Command, dir: &Path) {
    cmd.env("CUDA_MPS_PIPE_DIRECTORY", dir.join("pipe"))
        .env("CUDA_MPS_LOG_DIRECTORY", dir.join("log"))
        .stdin(Stdio::null());
}

/// Start the control daemon bound to the GPU, in a mount namespace of its own whose /dev/shm
/// is the GPU's `shm/` (the one its clients get): the host's /dev/shm stays out of containers.
fn start(lease: &Lease) -> Result<()> {
    let dir = &lease.dir;
    let mps_err = |msg: String| {
        Error::Gpu(err(format!(
            "{}: control daemon {}: {msg}",
            lease.gpu,
            lease.control.display()
        )))
    };
    let pid_file = dir.join("pipe").join(PID_FILE);
    let _ = fs::remove_file(&pid_file);
    let log_path = dir.join("log").join("gpurun-start.log");
    let log = File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("dup", &log_path, e))?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount --bind \"$1\" /dev/shm && exec \"$2\" -d")
        .arg("sh")
        .arg(dir.join("shm"))
        .arg(&lease.control)
        .env("CUDA_VISIBLE_DEVICES", &lease.gpu)
        // The daemon outlives gpurun: it must hold none of our pipes.
        .stdout(log)
        .stderr(log2);
    daemon_env(&mut cmd, dir);
    let status = cmd.status().map_err(|e| mps_err(format!("unshare: {e}")))?;
    let said = || {
        fs::read_to_string(&log_path)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    if !status.success() {
        return Err(mps_err(format!("-d failed ({status}): {}", said())));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        match pid.and_then(|p| Some((p, pidinfo::start_time(p)?))) {
            Some(found) => break found,
            None if Instant::now() > deadline => {
                return Err(mps_err(format!(
                    "no live pid in {} after 10s: {}",
                    pid_file.display(),
                    said()
                )))
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let d = Daemon {
        pid: pid.0,
        start_time: pid.1,
    };
    let path = dir.join("daemon.json");
    let mut f = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
    f.write_all(&serde_json::to_vec(&d).expect("daemon serialises"))
        .map_err(|e| Error::io("write", &path, e))
}

/// `quit` through the control binary, then make sure the daemon is gone (SIGKILL after 10 s).
fn stop(lease: &Lease) -> Result<()> {
    let dir = &lease.dir;
    let Some(d) = daemon_alive(dir) else {
        let _ = fs::remove_file(dir.join("daemon.json"));
        return Ok(());
    };
    let mut cmd = Command::new(&lease.control);
    daemon_env(&mut cmd, dir);
    let quit = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(b"quit\n")?;
            }
            child.wait()
        });
    if let Err(e) = quit {
        crate::logging::warn(&format!("gpu: MPS: {}: quit: {e}", lease.gpu));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pidinfo::is_alive(d.pid, d.start_time) {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(d.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = fs::remove_file(dir.join("daemon.json"));
    Ok(())
}
