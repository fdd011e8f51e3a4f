//! process.terminal with --console-socket: the pty master arrives over the socket
//! (SCM_RIGHTS), the container's stdio is the pty slave and its controlling terminal.

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use gpurun_integration::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Accept one connection on `listener` and receive the fd it sends (runc's protocol).
fn receive_master(listener: &UnixListener) -> (String, std::fs::File) {
    let (conn, _) = listener.accept().unwrap();
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
    // SAFETY: the kernel just installed this fd for us via SCM_RIGHTS.
    let owned = unsafe { OwnedFd::from_raw_fd(fd.expect("no fd received")) };
    (name, std::fs::File::from(owned))
}

#[test]
fn console_socket_gets_the_pty_master() {
    if !require_root() {
        return;
    }
    let env = Env::new("console_socket");
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    env.config(|s| {
        set_args(
            s,
            &[
                "sh",
                "-c",
                "tty; test -t 0 && echo stdin-is-a-tty; read line; echo got:$line",
            ],
        );
        s["process"]["terminal"] = json!(true);
    });
    let id = env.id();
    let create = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| receive_master(&listener));
        let out = env.gpurun(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            env.bundle.to_str().unwrap(),
            &id,
        ]);
        (out, receiver.join().unwrap())
    });
    let (out, (name, mut master)) = create;
    out.assert_ok();
    assert_eq!(name, "/dev/ptmx", "runc sends the master's file name");
    env.gpurun(&["start", &id]).assert_ok();
    master.write_all(b"hello\n").unwrap();
    // Read what the container printed until it has answered.
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !seen.contains("got:hello") && Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(seen.contains("/dev/pts/0"), "{seen:?}");
    assert!(seen.contains("stdin-is-a-tty"), "{seen:?}");
    assert!(seen.contains("got:hello"), "{seen:?}");
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn terminal_without_console_socket_fails_cleanly() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("terminal_no_socket");
    env.config(|s| s["process"]["terminal"] = json!(true));
    let id = env.id();
    env.create(&id).assert_err("console-socket");
    env.assert_clean();
}
