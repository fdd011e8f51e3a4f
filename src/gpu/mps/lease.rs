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

/// A lease file's name: the container's id and an FNV-1a hash of its state dir (short, stable,
/// distinct across `--root`s).
pub(super) fn file_name(state_dir: &Path) -> String {
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
        if path.extension().is_none_or(|x| x != "json") {
            // a write cut short (`.tmp`): never a lease
            let _ = fs::remove_file(&path);
            continue;
        }
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
        share = share.saturating_add(s);
        memory = memory.saturating_add(m);
    }
    let gpu = &lease.gpu;
    if share.saturating_add(lease.share) > 100 {
        return Err(err(format!(
            "{gpu}: shares would total {}% (> 100%): {share}% leased, {}% asked by {ANN_SHARE}",
            share.saturating_add(lease.share),
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
    let own = lease.file(state_dir);
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
    let own = lease.file(state_dir);
    match fs::remove_file(&own) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("remove", &own, e))
        }
        _ => {}
    }
    if live(&lease.dir).is_empty() {
        stop(lease)?;
        // An unshared GPU keeps its (locked) directory and the daemon's logs.
        for sub in ["pipe", "shm"] {
            let _ = fs::remove_dir_all(lease.dir.join(sub));
        }
    }
    Ok(())
}

fn daemon_alive(dir: &Path) -> Option<Daemon> {
    let d: Daemon = serde_json::from_slice(&fs::read(dir.join("daemon.json")).ok()?).ok()?;
    pidinfo::is_alive(d.pid, d.start_time).then_some(d)
}

/// A command of the GPU's MPS: only the MPS environment (not the caller's: `NOTIFY_SOCKET`,
/// `LISTEN_*`, other `CUDA_MPS_*`), only fds 0-2, stdin from /dev/null.
fn mps_command(program: impl AsRef<std::ffi::OsStr>, lease: &Lease) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or(DEFAULT_PATH.into()),
        )
        .env("CUDA_MPS_PIPE_DIRECTORY", lease.dir.join("pipe"))
        .env("CUDA_MPS_LOG_DIRECTORY", lease.dir.join("log"))
        .env("CUDA_VISIBLE_DEVICES", &lease.gpu)
        .stdin(Stdio::null());
    crate::sys::fd::inherit_only_stdio(&mut cmd);
    cmd
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Start the control daemon bound to the GPU (`-f`: in the foreground of the process we spawn,
/// so its pid is the child's, never read from a file a container can write), in a mount
/// namespace of its own whose /dev/shm is the GPU's `shm/` (the one its clients get): the
/// host's /dev/shm stays out of containers. The namespace is a slave of the host's, so mounts
/// the host drops later (other containers' rootfs) are not held by it. It runs in a process
/// group of its own, outliving gpurun; it is ready when its `control` pipe exists.
fn start(lease: &Lease) -> Result<()> {
    let dir = &lease.dir;
    let mps_err = |msg: String| {
        Error::Gpu(err(format!(
            "{}: control daemon {}: {msg}",
            lease.gpu,
            lease.control.display()
        )))
    };
    let control = dir.join("pipe").join("control");
    let _ = fs::remove_file(&control);
    let log_path = dir.join("log").join("gpurun-start.log");
    let log = File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("dup", &log_path, e))?;
    let mut cmd = mps_command("unshare", lease);
    cmd.args(["--mount", "--propagation", "slave", "--", "sh", "-c"])
        .arg("mount --bind \"$1\" /dev/shm && exec \"$2\" -f")
        .arg("sh")
        .arg(dir.join("shm"))
        .arg(&lease.control)
        .stdout(log)
        .stderr(log2);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| mps_err(format!("unshare: {e}")))?;
    let said = || {
        fs::read_to_string(&log_path)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Err(format!("exited ({status}): {}", said())),
            _ if control.exists() => break Ok(()),
            _ if Instant::now() > deadline => {
                break Err(format!("no {} after 10s: {}", control.display(), said()))
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let recorded = ready.map_err(&mps_err).and_then(|()| {
        let start_time = pidinfo::start_time(pid)
            .ok_or_else(|| mps_err(format!("pid {pid} gone once ready: {}", said())))?;
        let path = dir.join("daemon.json");
        let d = Daemon { pid, start_time };
        fs::write(&path, serde_json::to_vec(&d).expect("daemon serialises"))
            .map_err(|e| Error::io("write", &path, e))
    });
    if recorded.is_err() {
        // A daemon we could not record would outlive every lease: it goes now.
        let _ = child.kill();
        let _ = child.wait();
    }
    recorded
}

/// `quit` through the control binary (bounded: a wedged daemon must not hold the GPU's lock
/// for ever), then make sure the recorded daemon is gone (SIGKILL after 10 s). A daemon
/// whose record is lost but whose control pipe is there is asked to quit too.
fn stop(lease: &Lease) -> Result<()> {
    let dir = &lease.dir;
    let daemon = daemon_alive(dir);
    if daemon.is_some() || dir.join("pipe/control").exists() {
        if let Err(e) = quit(lease) {
            crate::logging::warn(&format!("gpu: MPS: {}: quit: {e}", lease.gpu));
        }
    }
    if let Some(d) = daemon {
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
    }
    let _ = fs::remove_file(dir.join("daemon.json"));
    Ok(())
}

/// `echo quit | nvidia-cuda-mps-control`, given 5 s.
fn quit(lease: &Lease) -> std::io::Result<()> {
    let mut child = mps_command(&lease.control, lease)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(b"quit\n")?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no answer in 5 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
