//! A seccomp notify agent for the tests (`linux.seccomp.listenerPath`): it listens on a unix
//! socket, takes each connection's container process state (JSON, the listener fd in
//! SCM_RIGHTS, as the runtime-spec defines it), then answers that listener's notifications
//! with one errno until the listener reports POLLHUP (no process uses the filter any more).
//!
//! Threads: one accepts, one per connection serves its listener. The notify ioctls are in
//! `crate::sys`.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use crate::sys::{notif_recv, notif_send, poll_in};
use serde_json::Value;

/// What the agent saw.
#[derive(Default)]
struct Seen {
    /// The container process state of each connection, and how many fds came with it.
    states: Vec<(Value, usize)>,
    /// (connection, pid, syscall number) of each notification answered; connections count
    /// from 0 in the order their states came.
    notified: Vec<(usize, u32, i32)>,
}

pub struct Agent {
    pub path: PathBuf,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Agent {
    /// Listen at `path`; every notification gets `-errno` back.
    pub fn start(path: PathBuf, errno: i32) -> Agent {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the agent socket");
        listener.set_nonblocking(true).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        // Detached: it ends when its listener hangs up.
                        std::thread::spawn(move || serve(conn, &s, errno));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Agent {
            path,
            seen,
            stop,
            accept: Some(accept),
        }
    }

    /// The container process states received so far, once there are `n` (10 s max).
    #[track_caller]
    pub fn wait_states(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let seen = self.seen.lock().unwrap();
            if seen.states.len() >= n {
                for (state, fds) in &seen.states {
                    assert_eq!(*fds, 1, "one fd with {state}");
                }
                return seen.states.iter().map(|(s, _)| s.clone()).collect();
            }
            drop(seen);
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the agent never got {n} process states");
    }

    /// (connection, host pid, syscall number) of every notification answered so far.
    pub fn notified(&self) -> Vec<(usize, u32, i32)> {
        self.seen.lock().unwrap().notified.clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(mut conn: UnixStream, seen: &Mutex<Seen>, errno: i32) {
    conn.set_nonblocking(false).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let n = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg from the runtime");
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(raw) = c {
                fds.extend(raw.into_iter().map(crate::sys::own_received_fd));
            }
        }
        msg.bytes
    };
    buf.truncate(n);
    // Until the JSON is whole, if the runtime sent it in pieces; not until EOF: runc 1.1.5
    // keeps the connection open.
    let state: Value = loop {
        match serde_json::from_slice(&buf) {
            Ok(v) => break v,
            Err(e) if e.is_eof() => {
                let mut more = [0u8; 4096];
                match conn.read(&mut more) {
                    Ok(0) | Err(_) => panic!("process state JSON cut short: {e}"),
                    Ok(k) => buf.extend_from_slice(&more[..k]),
                }
            }
            Err(e) => panic!("process state JSON: {e}: {}", String::from_utf8_lossy(&buf)),
        }
    };
    let conn = {
        let mut seen = seen.lock().unwrap();
        seen.states.push((state, fds.len()));
        seen.states.len() - 1
    };
    if let Some(listener) = fds.first() {
        answer(conn, listener, seen, errno);
    }
}

/// Answer every notification with `-errno` until nobody uses the filter any more.
fn answer(conn: usize, listener: &OwnedFd, seen: &Mutex<Seen>, errno: i32) {
    loop {
        let revents = match poll_in(listener, 100) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => return,
        };
        if revents & libc::POLLIN != 0 {
            // ENOENT: the caller died before we got to it.
            let Ok(req) = notif_recv(listener) else {
                continue;
            };
            seen.lock()
                .unwrap()
                .notified
                .push((conn, req.pid, req.data.nr));
            let resp = libc::seccomp_notif_resp {
                id: req.id,
                val: 0,
                error: -errno,
                flags: 0,
            };
            let _ = notif_send(listener, &resp);
        } else if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return;
        }
    }
}
