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
    #[error("systemd: {0}")]
    Systemd(String),
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

/// One planned write of a cgroup file. Writers plan every write of a `set` (reading what
/// they must, checking every value) before the first one is made, so a bad value changes
/// nothing; [`apply_writes`] then makes them in order.
#[derive(Debug)]
pub struct Write {
    pub path: PathBuf,
    pub value: String,
    /// What puts the file back if a later write fails; `None`: the file's current content.
    pub undo: Option<String>,
    /// On EINVAL, try once more after the other writes (a cpu period that only fits the
    /// parent's limit once the new quota is in: runc's order).
    pub retry_last: bool,
}

impl Write {
    pub fn new(path: PathBuf, value: impl Into<String>) -> Write {
        Write {
            path,
            value: value.into(),
            undo: None,
            retry_last: false,
        }
    }

    /// A write into a file of `KEY value` lines (`8:0 1048576`, `default 100`): undone by
    /// writing the key's current line back, or `reset` when it has none.
    pub fn keyed(path: PathBuf, key: &str, value: String, reset: String) -> Write {
        let current = read(&path).ok().and_then(|text| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(key))
                .map(str::to_string)
        });
        Write {
            undo: Some(current.unwrap_or(reset)),
            ..Write::new(path, value)
        }
    }
}

/// Make `writes` in order. `undoable`: on a failure, first put back every file already
/// written (`update` is all or nothing); at create the cgroup is simply removed instead.
pub fn apply_writes(writes: Vec<Write>, undoable: bool) -> Result<(), CgroupError> {
    let mut done: Vec<(PathBuf, String)> = Vec::new();
    let mut queue: std::collections::VecDeque<(Write, bool)> =
        writes.into_iter().map(|w| (w, false)).collect();
    let mut result = Ok(());
    while let Some((w, retried)) = queue.pop_front() {
        let undo = match (&w.undo, undoable) {
            (Some(u), true) => Some(u.clone()),
            (None, true) => match read(&w.path) {
                Ok(u) => Some(u),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            },
            (_, false) => None,
        };
        match write(&w.path, &w.value) {
            Ok(()) => done.extend(undo.map(|u| (w.path, u))),
            Err(CgroupError::Write { source, .. })
                if w.retry_last && !retried && source.raw_os_error() == Some(libc::EINVAL) =>
            {
                queue.push_back((w, true))
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_err() {
        for (path, old) in done.iter().rev() {
            let _ = write(path, old);
        }
    }
    result
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
    for d in missing_dirs(dir) {
        match std::fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Mkdir { path: d, source }),
        }
    }
    Ok(())
}

/// `dir` and those of its parents that do not exist yet, outermost first.
pub fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut p = dir;
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    missing.reverse();
    missing
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_puts_back_what_was_written() {
        let t = tempfile::tempdir().unwrap();
        let (a, keyed, dir) = (t.path().join("a"), t.path().join("k"), t.path().join("d"));
        std::fs::write(&a, "1\n").unwrap();
        std::fs::write(&keyed, "8:0 7\n8:16 1\n").unwrap();
        std::fs::create_dir(&dir).unwrap();
        let writes = vec![
            Write::new(a.clone(), "2"),
            Write::keyed(keyed.clone(), "8:0", "8:0 5".into(), "8:0 0".into()),
            Write::new(dir.clone(), "3"), // EISDIR
        ];
        assert!(matches!(
            apply_writes(writes, true),
            Err(CgroupError::Read { .. })
        ));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(&keyed).unwrap(), "8:0 7");
        // Without undo (create), what was written stays.
        let writes = vec![Write::new(a.clone(), "2"), Write::new(dir, "3")];
        assert!(matches!(
            apply_writes(writes, false),
            Err(CgroupError::Write { .. })
        ));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "2");
    }
}
