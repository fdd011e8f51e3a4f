//! The runtime's error type. Messages name what failed (path, id, syscall, errno) and reuse
//! runc's wording where engines match on it (containerd's shim, Podman, buildah).

use std::path::PathBuf;

use nix::errno::Errno;

use crate::rootfs::resolve::ResolveError;
use crate::spec::SpecError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container with given ID already exists (container with id exists: {0})")]
    Exists(String),
    #[error("container does not exist: {0}")]
    NotExist(String),
    #[error("container id cannot be empty")]
    EmptyId,
    #[error(
        "invalid container ID format: {0:?} (allowed: [A-Za-z0-9][A-Za-z0-9_+.-]*, no \"..\")"
    )]
    InvalidId(String),
    #[error("container not running")]
    NotRunning,
    #[error("no such process")]
    NoSuchProcess,
    #[error("cannot start a container that has stopped")]
    StartStopped,
    #[error("cannot start an already {0} container")]
    StartNotCreated(&'static str),
    #[error("cannot delete container {id} that is not stopped: {status}")]
    DeleteNotStopped { id: String, status: &'static str },
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    #[error("container {0} did not exit after SIGKILL")]
    KillTimeout(String),
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Resolve(#[from] ResolveError),
    #[error("{0}")]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error("{0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("{0}")]
    Criu(#[from] crate::criu::CriuError),
    /// A hook failed: "error running <phase> hook #<i>: …" (runc's wording).
    #[error("{0}")]
    Hook(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    #[error("container {0} is not running")]
    PauseNotRunning(String),
    #[error("container with id {0} is not running")]
    EventsNotRunning(String),
    #[error("{op} {path}: {}", crate::sys::errno_text(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{syscall}: {errno}")]
    Sys { syscall: &'static str, errno: Errno },
    #[error("{syscall} {path}: {errno}")]
    SysPath {
        syscall: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("state {path}: {source}")]
    State {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// An error the container's init reported over the sync channel (already a full sentence).
    #[error("container init: {0}")]
    Init(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Gpu(#[from] crate::gpu::GpuError),
    #[error("{0}")]
    Lsm(#[from] crate::lsm::LsmError),
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn sys(syscall: &'static str) -> impl FnOnce(Errno) -> Self {
        move |errno| Error::Sys { syscall, errno }
    }

    pub fn sys_path(syscall: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(Errno) -> Self {
        let path = path.into();
        move |errno| Error::SysPath {
            syscall,
            path,
            errno,
        }
    }
}
