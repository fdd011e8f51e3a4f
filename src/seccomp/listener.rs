//! The runtime → seccomp agent message: the runtime-spec's "container process state", sent
//! once per connection to `linux.seccomp.listenerPath` with the notify listener in SCM_RIGHTS
//! (runc's `sendContainerProcessState`).
//!
//! The connection is made before anything of the container exists, so a missing agent fails
//! `create` (or `exec`) with nothing to undo; the message goes out once the process has
//! installed its filters and passed the listener to the runtime over its sync channel.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{send, sendmsg, ControlMessage, MsgFlags, UnixAddr};

use super::{Profile, Program, SeccompError};

/// The name of the listener in the message's `fds` (the spec's `seccompFd`).
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// A connection to the seccomp agent, for one message.
#[derive(Debug)]
pub struct Agent {
    path: String,
    metadata: Option<String>,
    stream: UnixStream,
}

/// Connect to the profile's agent when the compiled `program` has NOTIFY rules; `None` when
/// it has none (the spec: `listenerPath` is then ignored). `compile` made sure a profile with
/// NOTIFY rules has a path.
pub fn connect(profile: &Profile, program: &Program) -> Result<Option<Agent>, SeccompError> {
    if !program.has_notify() {
        return Ok(None);
    }
    let path = profile.listener_path.clone().unwrap_or_default();
    let stream = UnixStream::connect(&path)
        .map_err(|e| SeccompError::Connect(path.clone(), crate::sys::errno_text(&e)))?;
    Ok(Some(Agent {
        path,
        metadata: profile.listener_metadata.clone(),
        stream,
    }))
}

/// The container process state: the process `pid` (as the runtime sees it), the agent's
/// `metadata`, and the container's OCI `state` JSON.
pub fn process_state(pid: i32, metadata: Option<&str>, state: &[u8]) -> Vec<u8> {
    let state: serde_json::Value = serde_json::from_slice(state).expect("state JSON is valid");
    let mut msg = serde_json::json!({
        "ociVersion": state["ociVersion"].clone(),
        "fds": [SECCOMP_FD_NAME],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = metadata {
        msg["metadata"] = m.into();
    }
    serde_json::to_vec(&msg).expect("JSON serialises")
}

impl Agent {
    /// The connection's descriptor: a child cloned while it is open closes its copy, or the
    /// agent would never see the connection end.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }

    /// Send the process state of `pid` with `listener`. The caller then drops the agent: the
    /// spec wants the connection closed after one message.
    pub fn send(&self, pid: i32, state: &[u8], listener: BorrowedFd) -> Result<(), SeccompError> {
        let msg = process_state(pid, self.metadata.as_deref(), state);
        let fail =
            |e: nix::errno::Errno| SeccompError::Send(self.path.clone(), e.desc().to_lowercase());
        let fds = [listener.as_raw_fd()];
        let sock = self.stream.as_raw_fd();
        // A stream may take the payload in pieces: the fd goes with the first (the spec).
        let mut sent = loop {
            match sendmsg::<UnixAddr>(
                sock,
                &[IoSlice::new(&msg)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(fail)?,
            }
        };
        while sent < msg.len() {
            match send(sock, &msg[sent..], MsgFlags::MSG_NOSIGNAL) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => sent += other.map_err(fail)?,
            }
        }
        Ok(())
    }
}
