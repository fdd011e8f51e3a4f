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
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).map_err(|_| Errno::E2BIG)?,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `filter`, valid for `len` instructions for the whole call; the
    // kernel copies the program and keeps no reference to our memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            (flags | NEW_LISTENER) as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    let fd = Errno::result(ret)?;
    // SAFETY: with NEW_LISTENER a successful seccomp() returns a new descriptor that nothing
    // else in this process knows of: we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
