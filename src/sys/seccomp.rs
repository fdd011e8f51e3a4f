//! seccomp(2): installing filters (plain, or with a notify listener) and probing flags (part
//! of the syscall wrappers: see `sys.rs`).

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
    let fd = seccomp_filter(flags | NEW_LISTENER, filter)?;
    // SAFETY: with NEW_LISTENER a successful seccomp() returns a new descriptor that nothing
    // else in this process knows of: we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: install one BPF filter. Unlike
/// seccompiler's `apply_filter` this does not set no_new_privs: the caller decides (the
/// runtime-spec makes it `process.noNewPrivileges`' choice).
pub fn seccomp_set_mode_filter(flags: u32, filter: &[libc::sock_filter]) -> Result<(), Errno> {
    seccomp_filter(flags, filter).map(drop)
}

/// The `seccomp(SECCOMP_SET_MODE_FILTER)` call itself: its return value (with
/// NEW_LISTENER, the listener's fd).
fn seccomp_filter(flags: u32, filter: &[libc::sock_filter]) -> Result<libc::c_long, Errno> {
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
            flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(ret)
}

/// Whether the kernel knows the filter `flags`: it validates them before reading the program,
/// so a NULL program gives EFAULT for known flags and EINVAL for unknown ones (libseccomp's probe).
pub fn seccomp_filter_flags_known(flags: u32) -> bool {
    // SAFETY: with a NULL program the kernel installs nothing; it only checks the flags and
    // then fails to copy from address 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    ret == -1 && Errno::last() == Errno::EFAULT
}
