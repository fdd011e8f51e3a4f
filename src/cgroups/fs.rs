//! File operations on cgroupfs, with errors that name the file and the value.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup: write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("cgroup: read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup: mkdir {path}: {source}")]
    Mkdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup: open {path}: {errno}")]
    Open {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("cgroup: {0}")]
    Invalid(String),
    #[error("cgroup: {0}")]
    Unsupported(String),
    #[error("cgroup: bpf {op}: {errno}{log}")]
    Bpf {
        op: &'static str,
        errno: nix::errno::Errno,
        log: String,
    },
}

pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.into(),
        value: value.into(),
        source,
    })
}

pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| CgroupError::Read {
            path: path.into(),
            source,
        })
}

/// Create `dir` and its missing parents, recording each one made (outermost first).
pub fn mkdir_all(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let mut missing = Vec::new();
    let mut p = dir;
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Mkdir { path: d, source }),
        }
    }
    Ok(())
}

/// rmdir a cgroup. A cgroup whose last task has just been killed can stay busy for a moment
/// while the kernel finishes the exit, so EBUSY is retried briefly; a parent that other
/// cgroups still use stays (ENOTEMPTY/EBUSY after the retries), as it should.
pub fn rmdir_retry(dir: &Path) {
    for attempt in 0..50 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(2 << attempt.min(4)))
            }
            _ => return,
        }
    }
}

/// Freezing is asynchronous: retry `done` (which may re-issue the request) every millisecond
/// for up to a second; `what` names the state that was never reached.
pub fn wait_until(
    what: impl FnOnce() -> String,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<(), CgroupError> {
    for _ in 0..1000 {
        if done()? {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(CgroupError::Invalid(what()))
}
