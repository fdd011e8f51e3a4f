//! CRIU through its RPC, as runc drives it: `criu swrk FD` on one end of a socketpair,
//! protobuf requests (`rpc.rs`, the messages of CRIU's `images/rpc.proto` that gpurun uses),
//! notifications answered as they come (hooks, the restored pid, a terminal's master fd).
//!
//! The images and work directories, and any fd CRIU must inherit, are passed as fds open in
//! gpurun without close-on-exec, so `criu swrk` inherits them under the same numbers.

mod rpc;
mod swrk;

use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

/// What can go wrong talking to CRIU. Messages name the binary, the version or the log.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error("criu not found ({0}): install criu 3.15 or later")]
    NotFound(String),
    #[error("criu {found} is too old: gpurun needs {need} or later")]
    TooOld { found: String, need: String },
    /// CRIU answered a request with failure; `log` is its log file.
    #[error("criu failed: {op}: {msg} (log file: {log})", log = .log.display())]
    Failed {
        op: &'static str,
        msg: String,
        log: PathBuf,
    },
    #[error("criu rpc: {0}")]
    Rpc(String),
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A CRIU version (VERSION request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub sublevel: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.sublevel)
    }
}

/// The request kinds gpurun sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dump,
    PreDump,
    Restore,
}

/// CRIU's cgroup handling (`--manage-cgroups-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgMode {
    #[default]
    Soft,
    Full,
    Strict,
    Ignore,
}

/// The options of one request (CRIU's `criu_opts`, the fields gpurun sets).
#[derive(Debug, Default)]
pub struct Opts {
    /// Open dirs; their fd numbers go into the request and `criu swrk` inherits them.
    pub images_dir: Option<OwnedFd>,
    pub work_dir: Option<OwnedFd>,
    /// File name of CRIU's log, in the work dir.
    pub log_file: String,
    /// The root task to dump (dump/pre-dump).
    pub pid: Option<i32>,
    /// The container's root, as CRIU must see it (restore).
    pub root: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    /// Images of a pre-dump, relative to the images dir.
    pub parent_img: Option<String>,
    pub track_mem: bool,
    pub auto_dedup: bool,
    pub manage_cgroups: bool,
    pub cg_mode: CgMode,
    /// Where restored cgroups go: (controller or "" for all, path).
    pub cg_roots: Vec<(String, String)>,
    /// External bind mounts: (key, value) — dump: (dest, dest); restore: (dest, source).
    pub ext_mounts: Vec<(String, String)>,
    /// External resources, e.g. `net[4026531992]:extRootNetNS`.
    pub external: Vec<String>,
    /// Fds for CRIU to use in place of a dumped file: (key, fd number in gpurun), e.g.
    /// ("pipe:[1234]", 1). Fds 0-2 are CRIU's own stdio (gpurun's); others must be open
    /// without close-on-exec.
    pub inherit_fds: Vec<(String, RawFd)>,
    /// Restore: namespaces joined by path that CRIU enters for the restored tasks:
    /// ("ipc" | "uts", path), as runc's JoinNs.
    pub join_ns: Vec<(String, PathBuf)>,
    /// Namespaces (CLONE_NEW* bits) CRIU leaves empty (`--empty-ns network`).
    pub empty_ns: u32,
    /// Ask for notifications (hooks at setup-namespaces / post-restore, …).
    pub notify_scripts: bool,
    /// Restore: send the restored terminal's master fd (an orphan-pts-master notification).
    pub orphan_pts_master: bool,
    /// Restore: the restored init becomes gpurun's child (CRIU's sibling), as with runc, so a
    /// foreground restore can wait for it even without being a subreaper.
    pub rst_sibling: bool,
    /// Restore: LSM profile ("apparmor:NAME", "selinux:LABEL") and mount context.
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
    /// Dump: the cgroup CRIU freezes the tasks with (instead of ptrace alone); a paused
    /// container stays frozen, as it was.
    pub freeze_cgroup: Option<PathBuf>,
}

/// A notification CRIU sends while it works.
#[derive(Debug)]
pub struct Notification {
    /// The script name: "pre-dump", "post-dump", "setup-namespaces", "post-restore",
    /// "orphan-pts-master", …
    pub script: String,
    /// The restored init's pid (post-restore, setup-namespaces).
    pub pid: i32,
    /// An fd CRIU sent with it (orphan-pts-master: the terminal's master).
    pub fd: Option<OwnedFd>,
}

/// What the caller does while CRIU works.
pub trait Handler {
    /// `criu swrk` is running as `pid`, before the request is sent: the restore puts it into
    /// the container's cgroups here, so the restored tasks land there.
    fn started(&mut self, _pid: i32) -> Result<(), CriuError> {
        Ok(())
    }
    /// A notification; an error makes CRIU abort the dump or restore.
    fn notify(&mut self, _n: Notification) -> Result<(), CriuError> {
        Ok(())
    }
}

/// CRIU's answer to a successful request.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Restore: the restored init's pid.
    pub restored_pid: Option<i32>,
}

/// The `criu` binary: $GPURUN_CRIU, else `criu` on PATH.
pub fn binary() -> PathBuf {
    std::env::var_os("GPURUN_CRIU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("criu"))
}

/// The version of `criu` (a VERSION request; NotFound when it cannot be run).
pub fn version(criu: &std::path::Path) -> Result<Version, CriuError> {
    swrk::version(criu)
}

/// Send one request and answer its notifications until CRIU replies.
pub fn call(
    criu: &std::path::Path,
    kind: Kind,
    opts: Opts,
    handler: &mut dyn Handler,
) -> Result<Outcome, CriuError> {
    swrk::call(criu, kind, opts, handler)
}

/// The oldest CRIU gpurun drives (the cgroup v2 freezer, the notifications it relies on).
pub const MIN_VERSION: Version = Version {
    major: 3,
    minor: 15,
    sublevel: 0,
};

/// The version of `criu`, or TooOld (naming the version found) before MIN_VERSION.
pub fn check_version(criu: &std::path::Path) -> Result<Version, CriuError> {
    let v = version(criu)?;
    if v < MIN_VERSION {
        return Err(CriuError::TooOld {
            found: v.to_string(),
            need: MIN_VERSION.to_string(),
        });
    }
    Ok(v)
}
