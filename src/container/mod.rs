//! Container lifecycle verbs on the parent side: create, start, kill, delete.

pub mod create;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::process::{parent, pidinfo};
use crate::state::{ContainerDir, State, Status};
use crate::sys;

/// Load a container and its live status.
pub fn load(root: &Path, id: &str) -> Result<(ContainerDir, State, Status)> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load()?;
    let status = dir.status(&state);
    Ok((dir, state, status))
}

/// `start`: release the init parked on the exec fifo. The init holds the fifo open for
/// reading, so a non-blocking open for writing succeeds exactly while it is alive and waiting.
pub fn start(root: &Path, id: &str) -> Result<()> {
    start_dir(&ContainerDir::open(root, id)?)
}

/// `start` on a container whose directory we already hold (locked).
pub fn start_dir(dir: &ContainerDir) -> Result<()> {
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Created => {}
        Status::Stopped => return Err(Error::StartStopped),
        other => return Err(Error::StartNotCreated(other.as_str())),
    }
    let path = dir.fifo_path();
    let fifo = match open(
        &path,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENXIO) | Err(Errno::ENOENT) => return Err(Error::StartStopped),
        Err(e) => return Err(Error::sys_path("open", &path)(e)),
    };
    nix::unistd::write(&fifo, &[0]).map_err(Error::sys_path("write", &path))?;
    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))
}

/// A pidfd for the container's init, or `None` if it is gone. Opening the pidfd first and
/// checking the start time after means the fd is pinned to the right process, never to a
/// recycled pid.
fn init_pidfd(state: &State) -> Option<OwnedFd> {
    let fd = sys::pidfd_open(nix::unistd::Pid::from_raw(state.pid)).ok()?;
    pidinfo::is_alive(state.pid, state.pid_start_time).then_some(fd)
}

/// `kill [--all] ID SIGNAL`.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let (_dir, state, status) = load(root, id)?;
    let pidfd = match (status, init_pidfd(&state)) {
        (Status::Stopped, _) | (_, None) if all => return Ok(()),
        (Status::Stopped, _) | (_, None) => return Err(Error::NotRunning),
        (_, Some(fd)) => fd,
    };
    if all && state.own_pid_ns && signal != libc::SIGKILL {
        signal_pid_namespace(state.pid, signal);
    }
    // SIGKILL of a pid namespace's init takes down every process in it.
    match sys::pidfd_send_signal(pidfd.as_fd(), signal) {
        Ok(()) => Ok(()),
        Err(Errno::ESRCH) if all => Ok(()),
        Err(Errno::ESRCH) => Err(Error::NoSuchProcess),
        Err(e) => Err(Error::sys("pidfd_send_signal")(e)),
    }
}

/// Signal every process that shares the init's pid namespace, except the init itself.
fn signal_pid_namespace(init: i32, signal: i32) {
    let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        if pid != init && std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|n| n == ns) {
            if let Ok(fd) = sys::pidfd_open(nix::unistd::Pid::from_raw(pid)) {
                let _ = sys::pidfd_send_signal(fd.as_fd(), signal);
            }
        }
    }
}

/// `delete [--force] ID`. A created container is always deleted (as runc does); a running one
/// only with `--force`, after SIGKILL has actually taken it down.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let (dir, state, status) = match load(root, id) {
        Ok(loaded) => loaded,
        // containerd deletes twice (`delete` then `delete --force`); the second must succeed.
        Err(Error::NotExist(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    match status {
        Status::Stopped => {}
        Status::Running | Status::Creating if !force => {
            return Err(Error::DeleteNotStopped {
                id: id.into(),
                status: status.as_str(),
            })
        }
        _ => kill_and_wait(id, &state)?,
    }
    dir.remove()
}

fn kill_and_wait(id: &str, state: &State) -> Result<()> {
    let Some(pidfd) = init_pidfd(state) else {
        return Ok(());
    };
    match sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => return Err(Error::sys("pidfd_send_signal")(e)),
    }
    if parent::wait_pidfd(&pidfd, 10_000) {
        Ok(())
    } else {
        Err(Error::KillTimeout(id.into()))
    }
}
