//! Files, sockets and fifos: what other processes hold in a test's dir, and what special files
//! the runtime left there.

use super::{mentions, procs};
use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// A process other than this test process that uses something in a test's dir.
#[derive(Clone, PartialEq)]
pub struct Holder {
    pub pid: i32,
    pub comm: String,
    /// What it holds: `fd 1 /tmp/gpurun-it/…/out/3.stdout`, `cwd …`, `cmdline …`.
    pub what: Vec<String>,
}

impl fmt::Debug for Holder {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} ({}): {}", self.pid, self.comm, self.what.join("; "))
    }
}

/// Processes, other than this one, whose fds, cwd, root or exe are under `dir`, whose command
/// line names it, or that hold a unix socket bound under it. Leftover containers hold the
/// test's output files, leftover runtime processes and helpers name its state root or bundle.
/// Tests in parallel share this process, never each other's dirs, so this cannot see them.
pub fn holders(dir: &Path) -> Vec<Holder> {
    let me = std::process::id() as i32;
    let bound = unix_sockets_under(dir);
    let text = dir.to_string_lossy();
    let mut found = Vec::new();
    for pid in procs::pids() {
        if pid == me {
            continue;
        }
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let mut what = Vec::new();
        let cmd = procs::cmdline(pid);
        if mentions(&cmd, &text) {
            what.push(format!("cmdline {cmd}"));
        }
        for link in ["cwd", "root", "exe"] {
            if let Some(t) = link_under(&proc.join(link), dir) {
                what.push(format!("{link} {t}"));
            }
        }
        if let Ok(rd) = std::fs::read_dir(proc.join("fd")) {
            for e in rd.flatten() {
                let fd = e.file_name().to_string_lossy().into_owned();
                if let Some(t) = link_under(&e.path(), dir) {
                    what.push(format!("fd {fd} {t}"));
                } else if let Some(path) = std::fs::read_link(e.path())
                    .ok()
                    .and_then(|t| socket_inode(&t))
                    .and_then(|ino| bound.get(&ino))
                {
                    what.push(format!("fd {fd} unix socket bound at {path}"));
                }
            }
        }
        if !what.is_empty() {
            found.push(Holder {
                pid,
                comm: procs::comm(pid),
                what,
            });
        }
    }
    found
}

/// The target of `link` when it is under `dir` (a deleted file still counts).
fn link_under(link: &Path, dir: &Path) -> Option<String> {
    let t = std::fs::read_link(link).ok()?;
    let s = t.to_string_lossy();
    let path = Path::new(s.strip_suffix(" (deleted)").unwrap_or(&s));
    path.starts_with(dir).then(|| s.into_owned())
}

/// `socket:[1234]` → 1234.
fn socket_inode(target: &Path) -> Option<u64> {
    target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Inode → path of the unix sockets (in this network namespace) bound to a path under `dir`.
fn unix_sockets_under(dir: &Path) -> HashMap<u64, String> {
    let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = *f.get(7)?;
            if !Path::new(path).starts_with(dir) {
                return None;
            }
            Some((f.get(6)?.parse().ok()?, path.to_string()))
        })
        .collect()
}

/// Sockets and fifos under `root` (recursively, not following symlinks, not into `skip`): a
/// runtime's console or notify socket or exec fifo that outlived its container.
pub fn special_files(root: &Path, skip: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() && !skip.contains(&p) {
                todo.push(p);
            } else if ft.is_socket() || ft.is_fifo() {
                found.push(p);
            }
        }
    }
    found
}
