//! Session keyrings (part of the syscall wrappers: see `sys.rs`): `keyctl(2)`, which nix
//! lacks.

use std::ffi::CStr;

use nix::errno::Errno;

const KEYCTL_SETPERM: libc::c_long = 5;
const KEYCTL_DESCRIBE: libc::c_long = 6;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: give the container a session keyring of its
/// own instead of sharing the caller's (keys are not namespaced). Returns its serial.
pub fn join_session_keyring(name: &CStr) -> Result<i32, Errno> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    Errno::result(ret).map(|serial| serial as i32)
}

/// The permission mask of key `serial` (from `KEYCTL_DESCRIBE`: "type;uid;gid;perm;desc").
pub fn keyring_perm(serial: i32) -> Result<u32, Errno> {
    let mut buf = [0u8; 512];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            serial,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let len = (Errno::result(ret)? as usize).min(buf.len());
    let text = std::str::from_utf8(&buf[..len]).map_err(|_| Errno::EINVAL)?;
    text.split(';')
        .nth(3)
        .and_then(|p| u32::from_str_radix(p.trim_end_matches('\0'), 16).ok())
        .ok_or(Errno::EINVAL)
}

/// `keyctl(KEYCTL_SETPERM, serial, perm)`.
pub fn set_keyring_perm(serial: i32, perm: u32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, serial, perm) };
    Errno::result(ret).map(drop)
}
