//! `criu swrk`: spawn, send a request, answer notifications, read the response.
//!
//! CRIU gets one end of a SOCK_SEQPACKET socketpair (each message one protobuf), open without
//! close-on-exec so the child inherits it under the number given on its command line.

use super::rpc::{self, CriuReq, CriuResp};
use super::{CgMode, CriuError, Handler, Kind, Notification, Opts, Outcome, Version};
use nix::sys::socket::{send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use prost::Message;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `criu swrk` and our end of its socket.
struct Swrk {
    child: Child,
    sock: Option<OwnedFd>,
}

impl Swrk {
    /// `inherit`: fds (open close-on-exec) CRIU must get under the same numbers; they are
    /// inheritable only across this spawn, so hooks and other children never see them.
    fn spawn(criu: &Path, inherit: &[RawFd]) -> Result<Swrk, CriuError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| rpc_err("socketpair", e))?;
        // Only CRIU's end is inherited.
        nix::fcntl::fcntl(
            &theirs,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(|e| rpc_err("fcntl", e))?;
        set_cloexec(inherit, false)?;
        // CRIU's stdio is ours: a restore may hand it to the restored process.
        let spawned = Command::new(criu)
            .arg("swrk")
            .arg(theirs.as_raw_fd().to_string())
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    CriuError::NotFound(format!("{}: {e}", criu.display()))
                }
                _ => CriuError::Io {
                    path: criu.to_path_buf(),
                    source: e,
                },
            });
        set_cloexec(inherit, true)?;
        let child = spawned?;
        // Closing our copy of CRIU's end: if CRIU dies, reads see EOF instead of hanging.
        drop(theirs);
        Ok(Swrk {
            child,
            sock: Some(ours),
        })
    }

    fn send(&self, req: &CriuReq) -> Result<(), CriuError> {
        let sock = self.sock.as_ref().expect("socket open");
        send(sock.as_raw_fd(), &req.encode_to_vec(), MsgFlags::empty())
            .map_err(|e| rpc_err("send", e))?;
        Ok(())
    }

    /// The next response and an fd sent with it; None when CRIU closed the socket.
    fn recv(&self) -> Result<Option<(CriuResp, Option<OwnedFd>)>, CriuError> {
        let sock = self.sock.as_ref().expect("socket open");
        let mut buf = vec![0u8; 64 * 1024];
        let (n, fd) = crate::sys::fd::recv_with_fd(sock.as_fd(), &mut buf)
            .map_err(|e| rpc_err("recvmsg", e))?;
        if n == 0 {
            return Ok(None);
        }
        let resp = CriuResp::decode(&buf[..n])
            .map_err(|e| CriuError::Rpc(format!("malformed response: {e}")))?;
        Ok(Some((resp, fd)))
    }

    /// Close the socket (CRIU exits on EOF, a pre-dump's swrk included) and reap CRIU.
    fn finish(mut self) -> std::io::Result<std::process::ExitStatus> {
        self.sock.take();
        self.child.wait()
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        // An error path: never leave CRIU behind as a zombie.
        if self.sock.take().is_some() {
            let _ = self.child.wait();
        }
    }
}

fn rpc_err(what: &str, e: nix::errno::Errno) -> CriuError {
    CriuError::Rpc(format!("{what}: {e}"))
}

pub fn version(criu: &Path) -> Result<Version, CriuError> {
    let swrk = Swrk::spawn(criu, &[])?;
    swrk.send(&CriuReq {
        r#type: rpc::VERSION,
        opts: None,
        notify_success: None,
    })?;
    let resp = swrk.recv()?;
    let _ = swrk.finish();
    match resp {
        Some((
            CriuResp {
                success: true,
                version: Some(v),
                ..
            },
            _,
        )) => Ok(Version {
            major: v.major_number.max(0) as u32,
            minor: v.minor_number.max(0) as u32,
            sublevel: v.sublevel.unwrap_or(0).max(0) as u32,
        }),
        // CRIU before 3.0 has no VERSION request.
        _ => Err(CriuError::TooOld {
            found: "older than 3.0 (no version request)".into(),
            need: super::MIN_VERSION.to_string(),
        }),
    }
}

pub fn call(
    criu: &Path,
    kind: Kind,
    opts: Opts,
    handler: &mut dyn Handler,
) -> Result<Outcome, CriuError> {
    let (req_type, op) = match kind {
        Kind::Dump => (rpc::DUMP, "dump"),
        Kind::PreDump => (rpc::PRE_DUMP, "pre-dump"),
        Kind::Restore => (rpc::RESTORE, "restore"),
    };
    let log = log_path(&opts);
    // `opts` (its dir fds) stays alive until CRIU is done.
    let req = CriuReq {
        r#type: req_type,
        opts: Some(encode_opts(&opts)),
        notify_success: None,
    };
    let mut inherit: Vec<RawFd> = [&opts.images_dir, &opts.work_dir]
        .into_iter()
        .flatten()
        .map(|fd| fd.as_raw_fd())
        .collect();
    inherit.extend(
        opts.inherit_fds
            .iter()
            .map(|(_, fd)| *fd)
            .filter(|fd| *fd > 2),
    );
    let swrk = Swrk::spawn(criu, &inherit)?;
    handler.started(swrk.child.id() as i32)?;
    swrk.send(&req)?;
    let failed = |msg: String| CriuError::Failed {
        op,
        msg,
        log: log.clone(),
    };
    // A handler's error fails the request; CRIU's answer to that is then not the news.
    let mut handler_err = None;
    let outcome = loop {
        let Some((resp, fd)) = swrk.recv()? else {
            let status = swrk.finish();
            return Err(handler_err
                .unwrap_or_else(|| failed(format!("criu exited without answering ({status:?})"))));
        };
        if resp.r#type == rpc::NOTIFY && resp.success {
            let n = resp.notify.unwrap_or_default();
            let result = handler.notify(Notification {
                script: n.script.unwrap_or_default(),
                pid: n.pid.unwrap_or(0),
                fd,
            });
            let ok = result.is_ok();
            if let Err(e) = result {
                handler_err.get_or_insert(e);
            }
            swrk.send(&CriuReq {
                r#type: rpc::NOTIFY,
                opts: None,
                notify_success: Some(ok),
            })?;
            continue;
        }
        if let Some(e) = handler_err {
            return Err(e);
        }
        if !resp.success {
            let msg = match (resp.cr_errmsg, resp.cr_errno) {
                (Some(m), _) if !m.is_empty() => m,
                (_, Some(errno)) if errno != 0 => nix::errno::Errno::from_raw(errno).to_string(),
                _ => last_error(&log).unwrap_or_else(|| "request failed".into()),
            };
            return Err(failed(msg));
        }
        if resp.r#type != req_type {
            return Err(CriuError::Rpc(format!(
                "unexpected response type {} to {op}",
                resp.r#type
            )));
        }
        break Outcome {
            restored_pid: resp.restore.map(|r| r.pid),
        };
    };
    // A pre-dump's swrk waits for more requests and exits non-zero on EOF: only the answer
    // counts (as in runc).
    let _ = swrk.finish();
    drop(opts);
    Ok(outcome)
}

/// The last error CRIU logged (what runc prints from the log too): CRIU's answer rarely says.
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| l.contains("Error ("))?;
    // "(00.012345) Error (criu/x.c:12): what" → "what"
    let what = line.split_once("): ").map_or(line, |(_, w)| w);
    Some(what.trim().to_string())
}

/// Where CRIU writes its log: the work dir (else the images dir) + log_file.
fn log_path(opts: &Opts) -> PathBuf {
    let dir = opts
        .work_dir
        .as_ref()
        .or(opts.images_dir.as_ref())
        .and_then(|fd| std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok())
        .unwrap_or_default();
    dir.join(&opts.log_file)
}

fn encode_opts(o: &Opts) -> rpc::CriuOpts {
    let some = |b: bool| b.then_some(true);
    rpc::CriuOpts {
        images_dir_fd: o.images_dir.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        work_dir_fd: o.work_dir.as_ref().map(|fd| fd.as_raw_fd()),
        pid: o.pid,
        leave_running: some(o.leave_running),
        ext_unix_sk: some(o.ext_unix_sk),
        tcp_established: some(o.tcp_established),
        shell_job: some(o.shell_job),
        file_locks: some(o.file_locks),
        log_level: Some(4),
        log_file: (!o.log_file.is_empty()).then(|| o.log_file.clone()),
        notify_scripts: some(o.notify_scripts),
        root: o.root.as_ref().map(|p| p.to_string_lossy().into_owned()),
        parent_img: o.parent_img.clone(),
        track_mem: some(o.track_mem),
        auto_dedup: some(o.auto_dedup),
        ext_mnt: o
            .ext_mounts
            .iter()
            .map(|(key, val)| rpc::ExtMountMap {
                key: key.clone(),
                val: val.clone(),
            })
            .collect(),
        manage_cgroups: some(o.manage_cgroups),
        manage_cgroups_mode: o.manage_cgroups.then_some(match o.cg_mode {
            CgMode::Soft => rpc::CG_SOFT,
            CgMode::Full => rpc::CG_FULL,
            CgMode::Strict => rpc::CG_STRICT,
            CgMode::Ignore => rpc::CG_IGNORE,
        }),
        cg_root: o
            .cg_roots
            .iter()
            .map(|(ctrl, path)| rpc::CgroupRoot {
                ctrl: (!ctrl.is_empty()).then(|| ctrl.clone()),
                path: path.clone(),
            })
            .collect(),
        join_ns: o
            .join_ns
            .iter()
            .map(|(ns, path)| rpc::JoinNamespace {
                ns: ns.clone(),
                ns_file: path.to_string_lossy().into_owned(),
            })
            .collect(),
        inherit_fd: o
            .inherit_fds
            .iter()
            .map(|(key, fd)| rpc::InheritFd {
                key: key.clone(),
                fd: *fd,
            })
            .collect(),
        external: o.external.clone(),
        empty_ns: (o.empty_ns != 0).then_some(o.empty_ns),
        orphan_pts_master: some(o.orphan_pts_master),
        rst_sibling: some(o.rst_sibling),
        lsm_profile: o.lsm_profile.clone(),
        lsm_mount_context: o.lsm_mount_context.clone(),
        freeze_cgroup: o
            .freeze_cgroup
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
    }
}

/// Set or clear close-on-exec on `fds` (held open by the caller for the call).
fn set_cloexec(fds: &[RawFd], on: bool) -> Result<(), CriuError> {
    for fd in fds {
        crate::sys::fd::set_cloexec(*fd, on).map_err(|e| rpc_err("fcntl(F_SETFD)", e))?;
    }
    Ok(())
}
