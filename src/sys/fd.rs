//! Descriptor flags by number, for descriptors a child must inherit under the same number.

use nix::errno::Errno;
use std::os::fd::RawFd;

/// Set (`on`) or clear close-on-exec on `fd`.
pub fn set_cloexec(fd: RawFd, on: bool) -> Result<(), Errno> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD takes an int and touches no memory of ours; a stale number can only
    // fail with EBADF or change a flag, never corrupt memory.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, flags) };
    Errno::result(ret).map(drop)
}

/// Receive one message into `buf` and the descriptor sent with it, if any (close-on-exec;
/// each received fd is owned at once, so extras are closed). Retries on EINTR. Ok((0, _)):
/// the other end has closed.
pub fn recv_with_fd(
    sock: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Option<std::os::fd::OwnedFd>), Errno> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::os::fd::AsRawFd;
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    loop {
        let mut iov = [std::io::IoSliceMut::new(buf)];
        match recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(m) => {
                let mut fd = None;
                for c in m.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for raw in fds {
                            fd = Some(super::own_received_fd(raw));
                        }
                    }
                }
                return Ok((m.bytes, fd));
            }
        }
    }
}

/// Let a child spawned by `cmd` inherit only fds 0-2: everything else this process holds (an
/// engine's `--preserve-fds`, `LISTEN_FDS`, anything opened without O_CLOEXEC) is marked
/// close-on-exec in the child. For helpers that outlive gpurun (a GPU's MPS daemon).
pub fn inherit_only_stdio(cmd: &mut std::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and makes one async-signal-safe
    // syscall (close_range with CLOSE_RANGE_CLOEXEC, which closes nothing); it allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            super::cloexec_from(3).map_err(std::io::Error::from)
        });
    }
}
