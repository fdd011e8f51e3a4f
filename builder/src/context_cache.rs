//! Stat cache for build-context digests, as git's index and BuildKit do: a regular file whose
//! (dev, ino, size, mtime, ctime) matches what was recorded when it was last hashed keeps its
//! recorded content sha256, so a no-change rebuild does not re-read GBs of model weights.
//!
//! One JSON file per context (`<cache-dir>/context/<sha256 of its absolute path>.json`),
//! written atomically and only when something was hashed. Losing it only costs re-hashing: a
//! missing, corrupt or unwritable file is never an error.

use crate::error::{io, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bumped when the file's meaning changes: an older file is then ignored.
const VERSION: u32 = 1;

/// File timestamps come from the kernel's coarse clock, which lags the real one by up to a
/// tick: "now" is taken this much earlier so a write just after it cannot look older.
const CLOCK_SLACK_NS: u128 = 20_000_000;

/// dev, ino, size, mtime (s, ns), ctime (s, ns): any write moves ctime, which no one can set.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
struct Stat(u64, u64, u64, i64, i64, i64, i64);

impl Stat {
    fn of(md: &Metadata) -> Stat {
        Stat(
            md.dev(),
            md.ino(),
            md.size(),
            md.mtime(),
            md.mtime_nsec(),
            md.ctime(),
            md.ctime_nsec(),
        )
    }
}

/// A file's stat, the second its digest run started (see `trusted`) and its content sha256.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Entry(Stat, i64, String);

impl Entry {
    /// Racy-git guard: a file changed in the same second it was hashed (or whose clock is
    /// ahead) may have been changed again without its timestamps moving; re-hash it.
    fn trusted(&self) -> bool {
        self.0 .3.max(self.0 .5) < self.1
    }
}

#[derive(Serialize, Deserialize)]
struct Disk {
    version: u32,
    /// For whoever looks at the file.
    root: PathBuf,
    /// Key: path relative to the context root.
    entries: BTreeMap<String, Entry>,
}

/// Recorded content digests of one context's files.
pub struct StatCache {
    root: PathBuf,
    file: PathBuf,
    /// Loaded from disk, not yet confirmed by this process.
    old: BTreeMap<String, Entry>,
    /// Confirmed (hit, or hashed) by this process: what gets written.
    fresh: BTreeMap<String, Entry>,
    /// Something was hashed since the last write.
    dirty: bool,
    /// Second at which the current digest run started.
    now: i64,
    /// Files read / files taken from the cache (tests and timings).
    pub hashed: u64,
    pub reused: u64,
}

/// sha256 of a file's content.
pub fn hash_file(p: &Path) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(p).map_err(io(p))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io(p))?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl StatCache {
    /// The cache of the context at `root`, kept under `dir` (the builder's cache dir).
    pub fn open(dir: &Path, root: &Path) -> StatCache {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let name = crate::store::hex(&Sha256::digest(root.as_os_str().as_encoded_bytes()));
        let file = dir.join("context").join(format!("{name}.json"));
        let old = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Disk>(&b).ok())
            .filter(|d| d.version == VERSION && d.root == root)
            .map(|d| d.entries)
            .unwrap_or_default();
        StatCache {
            root,
            file,
            old,
            fresh: BTreeMap::new(),
            dirty: false,
            now: 0,
            hashed: 0,
            reused: 0,
        }
    }

    /// Start a digest run: entries recorded from now on are trusted only for files last
    /// changed before this second.
    pub fn begin(&mut self) {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        self.now = (ns.saturating_sub(CLOCK_SLACK_NS) / 1_000_000_000) as i64;
    }

    /// Content sha256 of the regular file `path` (`md`: its metadata, taken after `begin`).
    pub fn file_digest(&mut self, path: &Path, md: &Metadata) -> Result<[u8; 32]> {
        let key = path
            .strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let stat = Stat::of(md);
        let known = self.fresh.get(&key).or_else(|| self.old.get(&key));
        if let Some(e) = known.filter(|e| e.0 == stat && e.trusted()) {
            if let Some(d) = unhex(&e.2) {
                let e = e.clone();
                self.old.remove(&key);
                self.fresh.insert(key, e);
                self.reused += 1;
                return Ok(d);
            }
        }
        let d = hash_file(path)?;
        self.hashed += 1;
        self.dirty = true;
        self.old.remove(&key);
        let entry = Entry(stat, self.now, crate::store::hex(&d));
        self.fresh.insert(key, entry);
        Ok(d)
    }

    /// Write the cache if anything was hashed. Entries this process did not use are kept
    /// while their file is unchanged (a later COPY, or the next build after one that failed
    /// early, still wants them); the others are dropped, so the file stays bounded by the
    /// context's files.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        for (k, e) in std::mem::take(&mut self.old) {
            let same = std::fs::symlink_metadata(self.root.join(&k))
                .is_ok_and(|md| md.is_file() && Stat::of(&md) == e.0);
            if same {
                self.fresh.insert(k, e);
            }
        }
        self.dirty = false;
        let disk = Disk {
            version: VERSION,
            root: self.root.clone(),
            entries: std::mem::take(&mut self.fresh),
        };
        let _ = write_atomic(&self.file, &disk);
        self.fresh = disk.entries;
    }
}

/// tmp + rename, so a reader sees the old file or the new one; failures only cost a re-hash.
fn write_atomic(file: &Path, disk: &Disk) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    let res = serde_json::to_vec(disk)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, file));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The builder's cache dir, set once per build (None: no stat cache, every file is hashed).
static CACHE_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
/// Contexts opened by this process, so several COPY steps share one load and one bound.
static OPEN: Mutex<Vec<StatCache>> = Mutex::new(Vec::new());

/// Keep context stat caches under `dir` (the builder's cache dir).
pub fn set_cache_dir(dir: &Path) {
    *CACHE_DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_path_buf());
    OPEN.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Run `f` with the stat cache of the context at `root` (None when no cache dir is set).
pub fn with_cache<R>(root: &Path, f: impl FnOnce(Option<&mut StatCache>) -> R) -> R {
    let Some(dir) = CACHE_DIR.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return f(None);
    };
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    let canon = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let i = match open.iter().position(|c| c.root == canon) {
        Some(i) => i,
        None => {
            open.push(StatCache::open(&dir, root));
            open.len() - 1
        }
    };
    f(Some(&mut open[i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// No-change digest of ~1 GB of "weights", uncached vs stat-cached (timings printed; run
    /// with `--ignored --nocapture`). Files under /var/tmp (real disk, not tmpfs), removed.
    #[test]
    #[ignore = "writes 1 GB"]
    fn timing_1gb_context() {
        let t = tempfile::tempdir_in("/var/tmp").unwrap();
        let c = t.path().join("ctx");
        std::fs::create_dir_all(&c).unwrap();
        let mut block = vec![0u8; 1 << 20];
        for (i, b) in block.iter_mut().enumerate() {
            *b = (i * 7 + i / 4096) as u8;
        }
        for n in 0..4 {
            let mut f = std::fs::File::create(c.join(format!("shard-{n}.bin"))).unwrap();
            for _ in 0..256 {
                std::io::Write::write_all(&mut f, &block).unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let ig = crate::ignore::Ignore::parse("").unwrap();
        let root = crate::context::SourceRoot {
            root: &c,
            ignore: Some(&ig),
        };
        let sels = root.select(".").unwrap();
        let cache = t.path().join("cache");
        let time = |sc: Option<&mut StatCache>| {
            let s = Instant::now();
            let d = root.digest_with(&sels, sc).unwrap();
            (d, s.elapsed())
        };
        let (d0, uncached) = time(None);
        let mut first = StatCache::open(&cache, &c);
        let (d1, cold) = time(Some(&mut first));
        let mut again = StatCache::open(&cache, &c);
        let (d2, warm) = time(Some(&mut again));
        println!("1 GB context digest: uncached {uncached:?}, first cached build {cold:?}, no-change rebuild {warm:?}");
        assert_eq!((d0.as_str(), d1.as_str()), (d2.as_str(), d2.as_str()));
        assert_eq!((first.hashed, again.hashed, again.reused), (4, 0, 4));
    }
}
