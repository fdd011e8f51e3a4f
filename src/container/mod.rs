//! Container lifecycle verbs on the parent side: create, start, kill, delete.

pub mod create;
pub mod exec;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::hooks::{self, Phase};
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

/// `start`: release the init parked on the exec fifo, then (without the container's lock, so
/// `kill`, `state` and `delete` are not held up by slow startContainer hooks) wait for its
/// execve and run the poststart hooks.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let released = release(&dir)?;
    drop(dir);
    released.finish()
}

/// A container whose init has been woken: it runs the startContainer hooks, then execs.
pub struct Released {
    state: State,
    /// Our write end of the exec fifo.
    fifo: OwnedFd,
}

/// The first half of `start`, under the lock of `dir`: write the byte the init waits for.
/// The init holds the fifo open for reading, so a non-blocking open for writing succeeds
/// exactly while it is alive and waiting.
pub fn release(dir: &ContainerDir) -> Result<Released> {
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
    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
    Ok(Released { state, fifo })
}

impl Released {
    /// The second half of `start`: once the init has exec'd the user's program (lifecycle
    /// step 8), the poststart hooks (step 9). A startContainer hook or the execve that failed
    /// is start's error (step 7; the init has exited: the container is stopped).
    pub fn finish(self) -> Result<()> {
        let state = &self.state;
        wait_for_exec(&self.fifo);
        if let Some(msg) = init_failure(&self.fifo) {
            return Err(Error::Init(msg));
        }
        // runtime-spec 1.3, step 9: a failing poststart hook is an error, the container is
        // stopped, and `delete` goes on from there (poststop hooks included).
        if let Err(e) = hooks::run_spec_hooks(
            Phase::Poststart,
            state.hooks.as_ref(),
            &state.oci_json(Status::Running),
        ) {
            if let Some(pidfd) = init_pidfd(state) {
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                parent::wait_pidfd(&pidfd, 10_000);
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Until the init has exec'd the user's program: its copy of the exec fifo is close-on-exec
/// and the only reader, so our write end reports POLLERR once that copy is gone — at the
/// execve, or when the init exits before it. startContainer hooks run in between; their
/// timeouts bound the wait.
fn wait_for_exec(fifo: &OwnedFd) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        // No events asked: only POLLERR/POLLHUP, which poll always reports, wake us.
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Ok(_) | Err(_) => return,
        }
    }
}

/// What an init that failed after `start` woke it wrote into the exec fifo (`E` + its error,
/// see `process::init::run`): still in the pipe, which our write end keeps alive.
fn init_failure(fifo: &OwnedFd) -> Option<String> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let reader = open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = nix::unistd::read(&reader, &mut buf).ok()?;
    let text = buf[..n].strip_prefix(b"E")?;
    Some(String::from_utf8_lossy(text).into_owned())
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
    if all {
        // Every process of the container, also after its init has gone (containerd relies on
        // `kill --all` succeeding then).
        signal_all(&state, signal);
        return Ok(());
    }
    let pidfd = match (status, init_pidfd(&state)) {
        (Status::Stopped, _) | (_, None) => return Err(Error::NotRunning),
        (_, Some(fd)) => fd,
    };
    match sys::pidfd_send_signal(pidfd.as_fd(), signal) {
        Ok(()) => Ok(()),
        Err(Errno::ESRCH) => Err(Error::NoSuchProcess),
        Err(e) => Err(Error::sys("pidfd_send_signal")(e)),
    }
}

/// Signal every process in the container's cgroup. The cgroup is frozen meanwhile (if it has a
/// freezer) so nothing can fork past the signal; a paused container stays paused unless the
/// signal is SIGKILL, which only takes effect once thawed.
fn signal_all(state: &State, signal: i32) {
    let cg = &state.cgroup;
    let was_frozen = cg.is_frozen();
    let froze = !was_frozen && cg.set_frozen(true).is_ok();
    let mut pids = cg.pids();
    if pids.is_empty() && pidinfo::is_alive(state.pid, state.pid_start_time) {
        // No cgroup (rootless): the init's process tree is the container.
        pids = crate::rootless::process_tree(state.pid);
    }
    for pid in pids {
        if let Ok(fd) = sys::pidfd_open(nix::unistd::Pid::from_raw(pid)) {
            let _ = sys::pidfd_send_signal(fd.as_fd(), signal);
        }
    }
    if froze || (was_frozen && signal == libc::SIGKILL) {
        let _ = cg.set_frozen(false);
    }
}

/// `delete [--force] ID`. A created container is always deleted (as runc does); a running one
/// only with `--force`, after SIGKILL has actually taken it down. Its cgroup goes with it.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let (dir, state, status) = match load(root, id) {
        Ok(loaded) => loaded,
        // containerd deletes twice (`delete` then `delete --force`); the second must succeed.
        // A directory without state.json here is a create that died before recording anything,
        // or a delete that died after removing it (open() waited for the lock, so neither is
        // in progress): nothing else exists, clear it.
        Err(Error::NotExist(_)) => {
            let _ = std::fs::remove_dir_all(root.join(id));
            return if force {
                Ok(())
            } else {
                Err(Error::NotExist(id.into()))
            };
        }
        Err(e) => return Err(e),
    };
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(Error::DeleteNotStopped {
            id: id.into(),
            status: status.as_str(),
        });
    }
    // Kill what outlived the init — only possible without a pid namespace of its own: the
    // kernel kills every process of a pid namespace when its init dies (runc skips it too).
    // No init recorded (a restore killed while CRIU worked) but a cgroup of ours: whatever
    // is in it was restored for this container.
    let unrecorded = state.pid == 0 && !state.cgroup.created.is_empty();
    if !(status == Status::Stopped && state.own_pid_ns) || unrecorded {
        signal_all(&state, libc::SIGKILL);
    }
    wait_for_exit(id, &state)?;
    crate::fault::point("delete-killed");
    state.cgroup.remove();
    if let Some(group) = &state.resctrl {
        crate::intelrdt::remove(group);
    }
    crate::fault::point("delete-cgroup");
    // poststop failures are warnings: the container is gone either way, and every hook runs.
    for e in hooks::run_poststop_hooks(state.hooks.as_ref(), &state.oci_json(Status::Stopped)) {
        crate::logging::warn(&e.to_string());
    }
    dir.remove()
}

/// Wait (on its pidfd) until the init has exited.
fn wait_for_exit(id: &str, state: &State) -> Result<()> {
    match init_pidfd(state) {
        Some(pidfd) if !parent::wait_pidfd(&pidfd, 10_000) => Err(Error::KillTimeout(id.into())),
        _ => Ok(()),
    }
}

/// `pause`: freeze every process of a running container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (_dir, state, status) = load(root, id)?;
    if status != Status::Running {
        return Err(Error::PauseNotRunning(id.into()));
    }
    Ok(state.cgroup.set_frozen(true)?)
}

/// `resume`: thaw a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (_dir, state, status) = load(root, id)?;
    if status != Status::Paused {
        return Err(Error::NotPaused(id.into()));
    }
    Ok(state.cgroup.set_frozen(false)?)
}
