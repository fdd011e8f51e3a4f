//! The parent side of creating an init: clone it, drive the sync protocol, and clean up on
//! failure so a failed create leaves no process behind.

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::sync::{self, Channel, Msg};
use super::{init, CreatePlan};
use crate::error::{Error, Result};
use crate::namespaces::{clone_in_pid_ns, Join};
use crate::sys::{self, Forked};

/// A freshly cloned init, owned by this process until it is `Ready`.
pub struct Init {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    chan: Channel,
}

/// Clone the init into its namespaces. In the child this never returns. The caller records
/// the pid, then calls [`Init::place`].
pub fn spawn(plan: &CreatePlan) -> Result<Init> {
    let (parent_end, child_end) = sync::channel()?;
    // The cgroup namespace is unshared by the init once it is inside its cgroup, so that the
    // namespace is rooted there (clone would root it at *our* cgroup).
    let flags = (plan.namespaces.new - CloneFlags::CLONE_NEWCGROUP).bits();
    // With systemd the cgroup does not exist yet: the init is born outside it and moved.
    let cgroup_dir = match plan.cgroup.placed_by_parent() {
        true => None,
        false => plan.cgroup.clone_into_fd()?,
    };
    let forked = clone_in_pid_ns(plan.namespaces.pid.as_ref(), || {
        match &plan.namespaces.user {
            Some(user) => clone_in_user_ns(user, flags),
            None => sys::clone_fork(flags, cgroup_dir.as_ref().map(|fd| fd.as_fd()))
                .map_err(Error::sys("clone3")),
        }
    })?;
    match forked {
        Forked::Child { in_cgroup } => {
            // No host directory fd may stay open in the container (CVE-2024-21626).
            drop(cgroup_dir);
            drop(parent_end);
            init::run(plan, child_end, in_cgroup)
        }
        Forked::Parent { pid, pidfd } => Ok(Init {
            pid,
            pidfd,
            chan: parent_end,
        }),
    }
}

/// A user namespace joined by path is entered first (runc's order), so that the namespaces
/// the clone creates belong to it: by a short-lived intermediate process (we must stay in
/// ours), whose clone uses CLONE_PARENT so the init is still our child. Returns in the init
/// and in this process (with the init's pid), never in the intermediate.
fn clone_in_user_ns(user: &Join, flags: i32) -> Result<Forked> {
    let (rx, tx) = nix::unistd::pipe().map_err(Error::sys("pipe"))?;
    match sys::clone_fork(0, None).map_err(Error::sys("clone3"))? {
        Forked::Child { .. } => {
            drop(rx);
            let forked = setns(user.fd.as_fd(), CloneFlags::CLONE_NEWUSER)
                .and_then(|()| sys::clone_fork(flags | libc::CLONE_PARENT, None));
            let report = match forked {
                Ok(Forked::Child { in_cgroup }) => return Ok(Forked::Child { in_cgroup }),
                Ok(Forked::Parent { pid, .. }) => pid.as_raw(),
                Err(errno) => -(errno as i32),
            };
            let _ = nix::unistd::write(&tx, &report.to_ne_bytes());
            sys::exit_now(0)
        }
        Forked::Parent { pid, .. } => {
            drop(tx);
            let mut buf = [0u8; 4];
            let n = nix::unistd::read(&rx, &mut buf);
            let _ = waitpid(pid, None);
            let init = match (n, i32::from_ne_bytes(buf)) {
                (Ok(4), p) if p > 0 => Pid::from_raw(p),
                (Ok(4), e) => {
                    return Err(Error::sys_path("setns + clone3", &user.path)(
                        nix::errno::Errno::from_raw(-e),
                    ))
                }
                _ => return Err(Error::Init("intermediate process died".into())),
            };
            // Our child (CLONE_PARENT): its pid cannot be reused before we reap it.
            let pidfd = sys::pidfd_open(init).map_err(Error::sys("pidfd_open"))?;
            Ok(Forked::Parent { pid: init, pidfd })
        }
    }
}

impl Init {
    /// Step 0 of sync.rs: give the init in its new user namespace an identity (a user
    /// namespace joined by path has its maps already), and put it in its cgroup: systemd's
    /// unit, made now that the init's pid exists, or the cgroupfs one it may not join itself
    /// from inside a user namespace. Nothing to do otherwise. On error the init is killed.
    pub fn place(&self, plan: &CreatePlan) -> Result<()> {
        let userns = plan.namespaces.has(CloneFlags::CLONE_NEWUSER);
        if !userns && !plan.cgroup.placed_by_parent() {
            return Ok(());
        }
        let result = self.place_in(plan, userns);
        if result.is_err() {
            self.kill_and_reap();
        }
        result
    }

    fn place_in(&self, plan: &CreatePlan, userns: bool) -> Result<()> {
        let linux = plan.bundle.spec.linux().as_ref();
        if plan.namespaces.new.contains(CloneFlags::CLONE_NEWUSER) {
            let linux = linux.expect("validated: a user namespace comes with linux.uidMappings");
            crate::userns::write_mappings(self.pid, linux)?;
        }
        if plan.cgroup.placed_by_parent() {
            plan.cgroup.start_unit(
                self.pid.as_raw(),
                plan.id,
                linux.and_then(|l| l.resources().as_ref()),
                linux
                    .and_then(|l| l.devices().as_deref())
                    .unwrap_or_default(),
            )?;
        } else if userns {
            plan.cgroup.add(self.pid.as_raw())?;
        }
        self.chan.send(&Msg::Mapped)
    }

    pub(super) fn new(pid: Pid, pidfd: OwnedFd, chan: Channel) -> Init {
        Init { pid, pidfd, chan }
    }

    /// The error the child reported, or `None` once the channel closed without one (for an
    /// exec'd process: its close-on-exec end went away with the exec). Its seccomp listener
    /// (sync.rs 2b) goes to `on_listener` on the way.
    pub(super) fn recv_error(
        &self,
        mut on_listener: impl FnMut(OwnedFd) -> Result<()>,
    ) -> Option<String> {
        loop {
            match self.chan.recv_fd() {
                Ok(Some((Msg::SeccompListener, Some(fd)))) => {
                    if let Err(e) = self.pass_listener(fd, &mut on_listener) {
                        return Some(e.to_string());
                    }
                }
                Ok(Some((Msg::Error(msg), _))) => return Some(msg),
                Ok(Some((other, _))) => return Some(format!("unexpected sync message {other:?}")),
                Ok(None) => return None,
                Err(e) => return Some(e.to_string()),
            }
        }
    }

    /// Sync.rs 2b–2c: hand the listener to the agent, then let the process go on (the agent
    /// already has it when the process makes its first notified call).
    fn pass_listener(
        &self,
        fd: OwnedFd,
        on_listener: &mut impl FnMut(OwnedFd) -> Result<()>,
    ) -> Result<()> {
        on_listener(fd)?;
        self.chan.send(&Msg::SeccompDone)
    }

    /// Drive the protocol until the init reports `Ready` (steps 1–3 of sync.rs); `run_hooks` is
    /// called when it asks for the pre-pivot hooks, `on_listener` with its seccomp listener
    /// (2b). On any error the init is killed and reaped.
    pub fn wait_ready(
        &self,
        mut run_hooks: impl FnMut(Pid) -> Result<String>,
        mut on_listener: impl FnMut(OwnedFd) -> Result<()>,
    ) -> Result<()> {
        let result = (|| loop {
            match self.chan.recv_fd()? {
                Some((Msg::Ready, _)) => return Ok(()),
                Some((Msg::Hooks, _)) => {
                    let state = run_hooks(self.pid)?;
                    self.chan.send(&Msg::HooksDone(state))?;
                }
                Some((Msg::SeccompListener, Some(fd))) => {
                    self.pass_listener(fd, &mut on_listener)?
                }
                Some((Msg::Error(msg), _)) => return Err(Error::Init(msg)),
                Some((other, _)) => {
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
