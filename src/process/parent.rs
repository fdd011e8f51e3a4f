//! The parent side of creating an init: clone it, drive the sync protocol, and clean up on
//! failure so a failed create leaves no process behind.

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::sync::{self, Channel, Msg};
use super::{init, CreatePlan};
use crate::error::{Error, Result};
use crate::namespaces::clone_in_pid_ns;
use crate::sys::{self, Forked};

/// A freshly cloned init, owned by this process until it is `Ready`.
pub struct Init {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    chan: Channel,
}

/// Clone the init into its namespaces. In the child this never returns.
pub fn spawn(plan: &CreatePlan) -> Result<Init> {
    let (parent_end, child_end) = sync::channel()?;
    // The cgroup namespace is unshared by the init once it is inside its cgroup, so that the
    // namespace is rooted there (clone would root it at *our* cgroup).
    let flags = (plan.namespaces.new - CloneFlags::CLONE_NEWCGROUP).bits();
    let cgroup_dir = plan.cgroup.clone_into_fd()?;
    let forked = clone_in_pid_ns(plan.namespaces.pid.as_ref(), || {
        sys::clone_fork(flags, cgroup_dir.as_ref().map(|fd| fd.as_fd()))
            .map_err(Error::sys("clone3"))
    })?;
    match forked {
        Forked::Child { in_cgroup } => {
            // No host directory fd may stay open in the container (CVE-2024-21626).
            drop(cgroup_dir);
            drop(parent_end);
            init::run(plan, child_end, in_cgroup)
        }
        Forked::Parent { pid, pidfd } => {
            let init = Init {
                pid,
                pidfd,
                chan: parent_end,
            };
            if plan.namespaces.new.contains(CloneFlags::CLONE_NEWUSER) {
                if let Err(e) = map_user_namespace(plan, &init) {
                    init.kill_and_reap();
                    return Err(e);
                }
            }
            Ok(init)
        }
    }
}

/// Step 0 of sync.rs: give the init in its new user namespace an identity and its cgroup.
fn map_user_namespace(plan: &CreatePlan, init: &Init) -> Result<()> {
    let linux = plan.bundle.spec.linux().as_ref();
    let linux = linux.expect("validated: a user namespace comes with linux.uidMappings");
    crate::userns::write_mappings(init.pid, linux)?;
    plan.cgroup.add(init.pid.as_raw())?;
    init.chan.send(&Msg::Mapped)
}

impl Init {
    pub(super) fn new(pid: Pid, pidfd: OwnedFd, chan: Channel) -> Init {
        Init { pid, pidfd, chan }
    }

    /// The error the child reported, or `None` once the channel closed without one (for an
    /// exec'd process: its close-on-exec end went away with the exec).
    pub(super) fn recv_error(&self) -> Option<String> {
        match self.chan.recv() {
            Ok(Some(Msg::Error(msg))) => Some(msg),
            Ok(Some(other)) => Some(format!("unexpected sync message {other:?}")),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Drive the protocol until the init reports `Ready` (steps 1–3 of sync.rs); `run_hooks` is
    /// called when it asks for the pre-pivot hooks. On any error the init is killed and reaped.
    pub fn wait_ready(&self, mut run_hooks: impl FnMut(Pid) -> Result<String>) -> Result<()> {
        let result = (|| loop {
            match self.chan.recv()? {
                Some(Msg::Ready) => return Ok(()),
                Some(Msg::Hooks) => {
                    let state = run_hooks(self.pid)?;
                    self.chan.send(&Msg::HooksDone(state))?;
                }
                Some(Msg::Error(msg)) => return Err(Error::Init(msg)),
                Some(other) => {
                    return Err(Error::Init(format!("unexpected sync message {other:?}")))
                }
                None => return Err(Error::Init("init exited unexpectedly".into())),
            }
        })();
        if result.is_err() {
            self.kill_and_reap();
        }
        result
    }

    /// Steps 4–5 of sync.rs: tell the init its state is on disk and wait until it no longer
    /// dies with us.
    pub fn detach(&self) -> Result<()> {
        self.chan.send(&Msg::Persisted)?;
        self.chan.expect(Msg::Detached)
    }

    /// SIGKILL the init and reap it (it is our child), so a failed create leaves no process.
    pub fn kill_and_reap(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        let _ = waitpid(self.pid, None);
    }

    /// Wait for the init to exit and return its status the way a shell reports it:
    /// the exit code, or 128 + the signal number.
    pub fn wait_exit(&self) -> Result<i32> {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waitpid")(e)),
            }
        }
    }
}

/// Block until the process behind `pidfd` has exited (works for processes that are not our
/// children too) or `timeout_ms` passes. Returns whether it exited.
pub fn wait_pidfd(pidfd: &OwnedFd, timeout_ms: u16) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}
