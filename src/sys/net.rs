//! Network interface ioctls (part of the syscall wrappers: see `sys.rs`).

use std::os::fd::AsRawFd;

use nix::errno::Errno;

/// Bring the loopback interface of the current network namespace up (`SIOCSIFFLAGS`), as
/// runc and crun do for a new network namespace: a service on 127.0.0.1 must be reachable
/// from inside the container.
pub fn loopback_up() -> Result<(), Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming "lo" that outlives both calls; SIOCGIFFLAGS fills
    // `ifru_flags`, the union member SIOCSIFFLAGS then reads.
    unsafe {
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
    }
    Ok(())
}
