//! The harness's only `unsafe`: thin wrappers around the few libc calls the tests need.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Block until this process holds an exclusive flock on `file` (released when it is closed).
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock only reads the fd number; `file` keeps the fd open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The filesystem type (`f_type`) of the mount holding `path`.
pub fn fs_type(path: &std::ffi::CStr) -> io::Result<i64> {
    // SAFETY: statfs is plain old data; all-zero is a valid value for it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid, writable statfs.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Send `signal` to `pid` (0 only checks that it exists); true when the kernel accepted it.
pub fn kill(pid: i32, signal: i32) -> bool {
    // SAFETY: kill takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// (soft, hard) RLIMIT_NOFILE of this process.
pub fn nofile_limit() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    (lim.rlim_cur, lim.rlim_max)
}

/// Make `r3` and `r4` the spawned program's fds 3 and 4 (without close-on-exec).
pub fn pass_fds_3_and_4(cmd: &mut Command, r3: RawFd, r4: RawFd) {
    // SAFETY: the closure runs between fork and exec and only calls fcntl and dup2, which
    // are async-signal-safe and touch nothing but the child's own fd table.
    unsafe {
        cmd.pre_exec(move || {
            // Via high fds first: dup2 onto itself would keep O_CLOEXEC set.
            let (h3, h4) = (
                libc::fcntl(r3, libc::F_DUPFD, 100),
                libc::fcntl(r4, libc::F_DUPFD, 100),
            );
            if h3 < 0 || h4 < 0 || libc::dup2(h3, 3) < 0 || libc::dup2(h4, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Take ownership of an fd the kernel just installed in this process (SCM_RIGHTS): no one
/// else holds it, so it is closed when the result is dropped.
pub fn own_received_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the fd is open and owned by nobody else (fresh from recvmsg).
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}
