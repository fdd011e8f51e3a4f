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
