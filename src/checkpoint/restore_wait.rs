//! A foreground `restore`: wait for the restored init as `run` does, passing on the signals
//! that reach us, and return its exit status (128+N when killed by signal N).

use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::sys;

use crate::signal::FORWARDED;

/// Become the subreaper of what CRIU restores, so the init (CRIU's child unless CRIU made it
/// our sibling) is reparented to us, and `waitpid` gets its status.
pub fn become_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(Error::sys("prctl(PR_SET_CHILD_SUBREAPER)"))
}

pub fn wait_forwarding(pid: i32) -> Result<i32> {
    let mut forwarded = SigSet::empty();
    FORWARDED.iter().for_each(|s| forwarded.add(*s));
    let previous = forwarded
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(Error::sys("sigprocmask"))?;
    let status = wait(pid, &forwarded);
    let _ = previous.thread_set_mask();
    status
}

fn wait(pid: i32, forwarded: &SigSet) -> Result<i32> {
    let pidfd = sys::pidfd_open(Pid::from_raw(pid)).map_err(Error::sys("pidfd_open"))?;
    let sfd = SignalFd::with_flags(forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(Error::sys("signalfd"))?;
    loop {
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll")(e)),
            Ok(_) => {}
        }
        let exited = fds[0].revents().is_some_and(|r| !r.is_empty());
        if exited {
            return reap(pid);
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), info.ssi_signo as i32);
        }
    }
}

/// The exit status of the init, our child (or reparented to us); 0 with a warning when it is
/// neither (--no-subreaper): nobody can tell its status then.
fn reap(pid: i32) -> Result<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => {
                crate::logging::warn("restored init is not our child: its exit status is unknown");
                return Ok(0);
            }
            Err(e) => return Err(Error::sys("waitpid")(e)),
        }
    }
}
