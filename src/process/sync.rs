//! The parent ↔ init synchronisation protocol.
//!
//! One `SOCK_SEQPACKET` socketpair (message boundaries for free, close-on-exec on both ends)
//! carries these messages, in this order:
//!
//! | step | direction     | message      | sent when                                         | the receiver then                                  |
//! |------|---------------|--------------|---------------------------------------------------|----------------------------------------------------|
//! | 0    | parent → init | `Mapped`     | only with a user namespace or the systemd driver: the parent wrote the init's uid/gid maps (new user namespace; joined by path: entered before the clone) and put the init in its cgroup (a process inside the namespace may not; systemd's scope can only be made once the init's pid exists) | becomes root of its namespace (if any), then goes on |
//! | 1    | init → parent | `Hooks`      | namespaces, mounts and /dev are ready, before pivot_root; only if the spec has hooks of the create phases | runs prestart + createRuntime hooks with the init's pid, replies `HooksDone` |
//! | 2    | parent → init | `HooksDone(state)` | the hooks succeeded; carries the state JSON | runs createContainer hooks, continues: pivot_root, paths, user, capabilities (startContainer hooks later, before exec) |
//! | 2b   | init → parent | `SeccompListener` + fd | only with SCMP_ACT_NOTIFY rules: the filters are in (after the user switch, before `Ready`); the listener fd rides in SCM_RIGHTS | sends it with the container process state to the seccomp agent, replies `SeccompDone` |
//! | 2c   | parent → init | `SeccompDone` | the agent has the listener                       | goes on: `Ready` (an exec'd process: execve); its own copy of the fd is closed already |
//! | 3    | init → parent | `Ready`      | all set up; args[0] resolved. The init still dies with the parent (PR_SET_PDEATHSIG) | writes the pid file (state.json names the init since the clone) |
//! | 4    | parent → init | `Persisted`  | the state and pid file are on disk                | clears PR_SET_PDEATHSIG: from now on it outlives `create` |
//! | 5    | init → parent | `Detached`   | the death signal is cleared                       | exits (`create`) or starts it (`run`)             |
//! | any  | init → parent | `Error(msg)` | any step failed; the init then exits 1            | kills and reaps the init, removes the state dir, reports `msg` |
//! | any  | (EOF)         | —            | the init died without a word                       | as `Error`, with "init exited unexpectedly"        |
//!
//! Before step 0 the parent has recorded the init's pid and start time in state.json (and,
//! before the clone, the cgroup it is about to make): `delete --force` finds everything a
//! killed `create` made. Until step 4 the init also dies with the parent (PR_SET_PDEATHSIG,
//! armed first thing, then a check that the parent is still there); after it, the state names
//! it. Every moment is thus safe to kill `create` at (integration/tests/faults.rs kills it at
//! each of [`crate::fault::POINTS`]).
//!
//! An `exec`'d process uses the same channel for 2b–2c only (right before its execve), and for
//! `Error`; end-of-file then means the exec happened.
//!
//! After `Detached` the channel is closed: `start` talks to the init only through the exec fifo
//! (see [`crate::container::start`]).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    send, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    Mapped,
    Hooks,
    /// Carries the container's state JSON for the hooks the init runs itself.
    HooksDone(String),
    /// The seccomp notify listener, which rides along in SCM_RIGHTS.
    SeccompListener,
    /// The parent has passed the listener on to the seccomp agent.
    SeccompDone,
    Ready,
    Persisted,
    Detached,
    Error(String),
}

/// One end of the channel.
pub struct Channel(OwnedFd);

/// Both ends: the parent keeps one, the init the other.
pub fn channel() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(Error::sys("socketpair"))?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let bytes = serde_json::to_vec(msg).expect("sync messages always serialise");
        send(self.0.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)
            .map_err(Error::sys("send sync message"))?;
        Ok(())
    }

    /// Send `msg` with `fd` in SCM_RIGHTS.
    pub fn send_fd(&self, msg: &Msg, fd: BorrowedFd) -> Result<()> {
        let bytes = serde_json::to_vec(msg).expect("sync messages always serialise");
        let fds = [fd.as_raw_fd()];
        sendmsg::<UnixAddr>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(Error::sys("sendmsg sync message"))?;
        Ok(())
    }

    /// The next message, or `None` once the other end has closed. A descriptor sent with it
    /// is closed.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_fd()?.map(|(msg, _)| msg))
    }

    /// The next message and the descriptor sent with it, if any (received close-on-exec).
    pub fn recv_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        let (n, fd) = crate::sys::fd::recv_with_fd(self.0.as_fd(), &mut buf)
            .map_err(Error::sys("recvmsg sync message"))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(|m| Some((m, fd)))
            .map_err(|e| Error::Init(format!("malformed sync message: {e}")))
    }

    /// Whether the other end is closed: for a child that has just armed PR_SET_PDEATHSIG, a
    /// parent that died before that (the signal will never come).
    pub fn peer_gone(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::empty())];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP))
    }

    /// Wait for exactly `expected`; an `Error` from the other side becomes our error.
    pub fn expect(&self, expected: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == expected => Ok(()),
            Some(Msg::Error(msg)) => Err(Error::Init(msg)),
            Some(other) => Err(Error::Init(format!(
                "unexpected sync message {other:?}, wanted {expected:?}"
            ))),
            None => Err(Error::Init("init exited unexpectedly".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_eof() {
        let (a, b) = channel().unwrap();
        a.send(&Msg::Hooks).unwrap();
        a.send(&Msg::Error("mount /x: EPERM".into())).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Msg::Hooks));
        assert!(matches!(b.expect(Msg::Ready), Err(Error::Init(m)) if m == "mount /x: EPERM"));
        assert!(!b.peer_gone());
        drop(a);
        assert!(b.peer_gone());
        assert!(matches!(b.expect(Msg::Ready), Err(Error::Init(m)) if m.contains("unexpectedly")));
    }

    #[test]
    fn descriptor_passing() {
        use std::os::fd::AsFd;
        let (a, b) = channel().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        a.send_fd(&Msg::SeccompListener, w.as_fd()).unwrap();
        drop(w);
        let (msg, fd) = b.recv_fd().unwrap().unwrap();
        assert_eq!(msg, Msg::SeccompListener);
        nix::unistd::write(fd.unwrap(), b"x").unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut byte), Ok(1));
        a.send(&Msg::SeccompDone).unwrap();
        assert_eq!(
            b.recv_fd().unwrap().map(|(m, fd)| (m, fd.is_none())),
            Some((Msg::SeccompDone, true))
        );
    }
}
