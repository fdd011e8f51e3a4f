//! `gpurun-build prune`: what a killed or cancelled build left (work trees, temp files, RUN
//! container state, whose names carry the builder's pid), blobs no cache entry reaches, and
//! with `--keep-storage` the least recently used cache entries; `--all` empties the store.
//!
//! Builds hold a shared lock on `<cache>/lock` while they run; prune removes cache entries and
//! blobs only under the exclusive lock, so a blob a running build just wrote (and has not yet
//! recorded in a cache entry) is never taken from under it.

use crate::error::{io, Error, Result};
use nix::fcntl::{Flock, FlockArg};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Opts {
    pub root: PathBuf,
    pub runtime: PathBuf,
    pub all: bool,
    pub keep_storage: Option<u64>,
}

/// What was removed, and how many bytes it held.
#[derive(Default)]
pub struct Freed {
    pub work: usize,
    pub tmp: usize,
    pub run: usize,
    pub entries: usize,
    pub blobs: usize,
    pub mounts: usize,
    /// Extracted layers (snapshots/) whose blob is gone.
    pub snapshots: usize,
    pub bytes: u64,
    /// A build was running: cache entries and blobs were kept.
    pub busy: bool,
}

impl std::fmt::Display for Freed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed {} work dirs, {} temp files, {} RUN containers, {} cache entries, {} blobs, \
             {} extracted layers, {} cache mounts; freed {}",
            self.work,
            self.tmp,
            self.run,
            self.entries,
            self.blobs,
            self.snapshots,
            self.mounts,
            human(self.bytes)
        )
    }
}

/// The lock a build holds (shared) for its whole run; None when the store cannot be locked
/// (a read-only cache dir): the build then goes on unprotected rather than failing.
pub fn build_lock(root: &Path) -> Option<Flock<File>> {
    std::fs::create_dir_all(root).ok()?;
    let f = File::create(root.join("lock")).ok()?;
    Flock::lock(f, FlockArg::LockShared).ok()
}

/// `--keep-storage` value: bytes, or with a K/M/G/T suffix (powers of 1024, "B"/"iB" optional).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: not a size (e.g. 512M, 10GB, 1048576)"))?;
    // (NaN and negatives alike)
    if n.is_nan() || n < 0.0 {
        return Err(format!("{s:?}: not a size"));
    }
    Ok((n * mult as f64) as u64)
}

pub fn prune(o: &Opts) -> Result<Freed> {
    let root = &o.root;
    if !root.is_dir() {
        return Err(Error::Prune {
            path: root.clone(),
            msg: "no such cache dir".into(),
        });
    }
    let mut freed = remove_leftovers(root, &o.runtime, |pid| !alive(pid));
    let lock = File::create(root.join("lock")).map_err(io(root.join("lock")))?;
    let Ok(_lock) = Flock::lock(lock, FlockArg::LockExclusiveNonblock) else {
        freed.busy = true;
        return Ok(freed);
    };
    let cache = root.join("cache");
    let blobs = root.join("blobs/sha256");
    if o.all {
        for (dir, n) in [
            (&cache, &mut freed.entries),
            (&blobs, &mut freed.blobs),
            (&root.join("mounts"), &mut freed.mounts),
        ] {
            for p in entries(dir) {
                freed.bytes += remove(&p);
                *n += 1;
            }
        }
        // the context stat caches (context_cache.rs): small, and remade by the next build
        freed.bytes += remove(&root.join("context"));
        prune_snapshots(root, &mut freed, true);
        return Ok(freed);
    }
    // Cache entries, oldest use first, each with the blobs it reaches.
    let mut uses: Vec<(std::time::SystemTime, PathBuf, BTreeSet<String>)> = Vec::new();
    for p in entries(&cache) {
        let data = std::fs::read(&p).unwrap_or_default();
        let refs = match serde_json::from_slice::<serde_json::Value>(&data) {
            Ok(v) => reach(&blobs, &v),
            // Not an entry (a torn write): nothing can use it.
            Err(_) => {
                freed.bytes += remove(&p);
                freed.entries += 1;
                continue;
            }
        };
        if refs.iter().any(|d| !blobs.join(d).is_file()) {
            // Its layer is gone: `Cache::get` would miss anyway.
            freed.bytes += remove(&p);
            freed.entries += 1;
            continue;
        }
        let used = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        uses.push((used, p, refs));
    }
    uses.sort();
    let mut refcount: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, refs) in &uses {
        for d in refs {
            *refcount.entry(d.clone()).or_default() += 1;
        }
    }
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for p in entries(&blobs) {
        let name = file_name(&p);
        let size = std::fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
        if refcount.contains_key(&name) {
            sizes.insert(name, size);
        } else {
            freed.bytes += remove(&p);
            freed.blobs += 1;
        }
    }
    if let Some(cap) = o.keep_storage {
        let mut total: u64 = sizes.values().sum();
        for (_, p, refs) in &uses {
            if total <= cap {
                break;
            }
            freed.bytes += remove(p);
            freed.entries += 1;
            for d in refs {
                let n = refcount.get_mut(d).expect("counted above");
                *n -= 1;
                if *n == 0 {
                    let size = sizes.remove(d).unwrap_or(0);
                    total -= size;
                    freed.bytes += remove(&blobs.join(d));
                    freed.blobs += 1;
                }
            }
        }
    }
    prune_snapshots(root, &mut freed, false);
    Ok(freed)
}

/// Extracted layers (snapshots/, named by chain id, see snapshots.rs) once any blob went:
/// a snapshot does not name its blob, and the next build remakes what it needs. Called under
/// the exclusive lock: no build has one mounted.
fn prune_snapshots(root: &Path, freed: &mut Freed, all: bool) {
    if freed.blobs == 0 && !all {
        return;
    }
    for p in entries(&root.join("snapshots")) {
        if file_name(&p) != "boot_id" {
            freed.bytes += remove(&p);
            freed.snapshots += 1;
        }
    }
}

/// Work trees, temp files and RUN container state of builds whose pid `gone` says are over;
/// `gone = |pid| pid == own` cleans up after a cancelled build of this process.
pub fn remove_leftovers(root: &Path, runtime: &Path, gone: impl Fn(u32) -> bool) -> Freed {
    let mut freed = Freed::default();
    // work/gpurun-build-<pid>-<seq>-<tag> (Builder::unique)
    for p in entries(&root.join("work")) {
        if builder_pid(&file_name(&p)).is_some_and(&gone) {
            freed.bytes += remove(&p);
            freed.work += 1;
        }
    }
    // tmp/<tag>-<pid>-<n> (Store::tmp)
    for p in entries(&root.join("tmp")) {
        let name = file_name(&p);
        let pid = name.rsplit('-').nth(1).and_then(|s| s.parse().ok());
        if pid.is_some_and(&gone) {
            freed.bytes += remove(&p);
            freed.tmp += 1;
        }
    }
    // run/<container id>: the runtime's state; `delete --force` also stops a container that a
    // killed build left running and removes its cgroup.
    let state = root.join("run");
    for p in entries(&state) {
        let id = file_name(&p);
        if builder_pid(&id).is_some_and(&gone) {
            let _ = Command::new(runtime)
                .arg("--root")
                .arg(&state)
                .args(["delete", "--force", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            freed.bytes += remove(&p);
            freed.run += 1;
        }
    }
    freed
}

/// The pid in `gpurun-build-<pid>-…`.
fn builder_pid(name: &str) -> Option<u32> {
    name.strip_prefix("gpurun-build-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Only liveness is checked: a reused pid keeps a leftover until a later prune, which is
/// harmless, whereas guessing from the process name could delete a live build's tree.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Blob hex digests an entry reaches: every `sha256:` string in it, and in the JSON blobs
/// (manifests, configs) those name.
fn reach(blobs: &Path, v: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![v.clone()];
    while let Some(v) = todo.pop() {
        match v {
            serde_json::Value::String(s) => {
                let Some(hex) = s.strip_prefix("sha256:") else {
                    continue;
                };
                let p = blobs.join(hex);
                // A layer's diff_id is not a blob; only digests present in the store count.
                if !p.is_file() || !out.insert(hex.to_string()) {
                    continue;
                }
                let small = std::fs::metadata(&p).is_ok_and(|m| m.len() < 1 << 20);
                if small {
                    if let Ok(j) = serde_json::from_slice(&std::fs::read(&p).unwrap_or_default()) {
                        todo.push(j);
                    }
                }
            }
            serde_json::Value::Array(a) => todo.extend(a),
            serde_json::Value::Object(m) => todo.extend(m.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    out
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Remove a file or tree; returns the bytes it held (0 when it could not be removed).
fn remove(p: &Path) -> u64 {
    let size = du(p);
    let res = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => return 0,
    };
    if res.is_ok() {
        size
    } else {
        0
    }
}

fn du(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    entries(p).iter().map(|c| du(c)).sum::<u64>()
}

fn human(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("10GB").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn pids_in_names() {
        assert_eq!(builder_pid("gpurun-build-123-4-stage0"), Some(123));
        assert_eq!(builder_pid("other"), None);
    }
}
