//! The seccomp notify listener (part of the syscall wrappers: see `sys.rs`).

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER` from `<linux/seccomp.h>`.
pub const NEW_LISTENER: u32 = 8;

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags | NEW_LISTENER, prog)`: install one BPF filter and
/// return its notify listener (the kernel opens it close-on-exec).
pub fn seccomp_set_mode_filter_listener(
    flags: u32,
    filter: &[libc::sock_filter],
) -> Result<OwnedFd, Errno> {
    let fd = super::seccomp_filter(flags | NEW_LISTENER, filter)?;
    // SAFETY: with NEW_LISTENER a successful seccomp() returns a new descriptor that nothing
    // else in this process knows of: we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
