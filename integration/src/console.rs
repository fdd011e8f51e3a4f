//! The receiving end of `--console-socket` (runc's protocol): one connection, one message
//! whose payload is the pty's name and whose SCM_RIGHTS carry the master.

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Accept one connection on `listener` (non-blocking if the listener is: then the runtime
/// must have connected already) and receive the name and fd it sends.
pub fn receive_pty(listener: &UnixListener) -> (String, std::fs::File) {
    let (conn, _) = listener
        .accept()
        .expect("nothing connected to the console socket");
    conn.set_nonblocking(false).unwrap();
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let len = msg.bytes;
    let name = String::from_utf8_lossy(&iov[0][..len]).into_owned();
    let owned = crate::sys::own_received_fd(fd.expect("no fd received"));
    (name, std::fs::File::from(owned))
}

/// Read from a pty master until `needle` has been seen, the other side closed, or 10 s
/// passed; everything read.
pub fn read_until(master: &mut std::fs::File, needle: &str) -> String {
    use std::io::Read;
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !seen.contains(needle) && std::time::Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    seen
}
