//! A foreground `run` or `exec` of a process with `terminal: true` and no `--console-socket`:
//! as runc does, gpurun receives the pty master itself and joins it to the caller's stdio —
//! caller's stdin → master → caller's stdout — with the caller's terminal (if stdin is one) in
//! raw mode, so that keys like ^C reach the container's line discipline, and its window size
//! copied to the pty now and on every SIGWINCH.
//!
//! The container side is unchanged: it sends the master over a socket exactly as to an
//! engine's console socket; here the socket is one end of a socketpair we hold the other end of.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::sys::termios::{self, SetArg, Termios};

use crate::console::ConsoleSocket;
use crate::error::{Error, Result};
use crate::sys;

/// Our end of the socketpair, before the container exists.
pub struct Attach(OwnedFd);

/// A socketpair: ours, and the one to hand to `create`/`exec` as the console socket.
pub fn socket_pair() -> Result<(Attach, ConsoleSocket)> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(Error::sys("socketpair"))?;
    Ok((Attach(ours), ConsoleSocket::Connected(theirs)))
}

impl Attach {
    /// The master, if the process was given a terminal. Called once `create` or `exec`
    /// returned, when a terminal's master has already been sent, so this never waits.
    pub fn receive(self) -> Result<Option<TtyProxy>> {
        let mut name = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = match recvmsg::<()>(
            self.0.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EAGAIN) => return Ok(None),
            other => other.map_err(Error::sys("receive pty master"))?,
        };
        let master = msg
            .cmsgs()
            .map_err(Error::sys("receive pty master"))?
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .ok_or_else(|| Error::Init("no pty master received from the container".into()))?;
        Ok(Some(TtyProxy::new(sys::own_received_fd(master))))
    }
}

/// The pty master joined to our stdio; restores the caller's terminal mode when dropped.
pub struct TtyProxy {
    master: OwnedFd,
    stdin: std::io::Stdin,
    saved: Option<Termios>,
    stdin_open: bool,
    master_open: bool,
}

impl TtyProxy {
    fn new(master: OwnedFd) -> Self {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        let proxy = TtyProxy {
            master,
            stdin,
            saved,
            stdin_open: true,
            master_open: true,
        };
        proxy.resize();
        proxy
    }

    /// The descriptors to poll: (stdin while it is open, the master while it is open).
    pub fn fds(&self) -> (Option<BorrowedFd<'_>>, Option<BorrowedFd<'_>>) {
        (
            self.stdin_open.then(|| self.stdin.as_fd()),
            self.master_open.then(|| self.master.as_fd()),
        )
    }

    /// stdin is readable: pass what is there to the container (EOF: stop reading it).
    pub fn copy_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(self.stdin.as_fd(), &mut buf) {
            Ok(0) | Err(_) => self.stdin_open = false,
            Ok(n) => {
                if write_all(self.master.as_fd(), &buf[..n]).is_err() {
                    self.stdin_open = false;
                }
            }
        }
    }

    /// The master is readable: copy the container's output to stdout. EIO means every
    /// slave end is closed.
    pub fn copy_master(&mut self) {
        let mut buf = [0u8; 8192];
        match nix::unistd::read(self.master.as_fd(), &mut buf) {
            Ok(0) | Err(_) => self.master_open = false,
            Ok(n) => {
                let _ = write_all(std::io::stdout().as_fd(), &buf[..n]);
            }
        }
    }

    /// After the process exited: whatever output it left in the pty.
    pub fn drain(&mut self) {
        while self.master_open
            && nix::poll::poll(
                &mut [nix::poll::PollFd::new(
                    self.master.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )],
                nix::poll::PollTimeout::ZERO,
            )
            .is_ok_and(|n| n > 0)
        {
            self.copy_master();
        }
    }

    /// Give the pty the caller's window size (on start and on SIGWINCH).
    pub fn resize(&self) {
        if let Ok(ws) = sys::get_winsize(self.stdin.as_fd()) {
            let _ = sys::set_winsize(self.master.as_fd(), &ws);
        }
    }
}

impl Drop for TtyProxy {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(self.stdin.as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> std::result::Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
