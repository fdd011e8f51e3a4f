//! COPY/ADD sources: paths and globs inside a source root (the build context, filtered by
//! `.dockerignore`, or another stage's / image's rootfs), never escaping it, plus the digest
//! of what they select (part of the step's cache key).

use crate::context_cache::{hash_file, StatCache};
use crate::error::{io, Error, Result};
use crate::ignore::Ignore;
use crate::layer::walk;
use crate::unpack::{clean, resolve};
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where COPY reads from.
pub struct SourceRoot<'a> {
    pub root: &'a Path,
    /// Some for the build context (Docker applies .dockerignore to it only).
    pub ignore: Option<&'a Ignore>,
}

/// One selected source: its path on the host and its path relative to the source root.
#[derive(Debug, Clone)]
pub struct Selected {
    pub host: PathBuf,
    pub rel: PathBuf,
}

impl SourceRoot<'_> {
    fn excluded(&self, rel: &Path) -> bool {
        self.ignore
            .is_some_and(|i| i.excluded(&rel.to_string_lossy()))
    }

    /// Resolve one (already expanded) source pattern.
    pub fn select(&self, pattern: &str) -> Result<Vec<Selected>> {
        let rel = clean(Path::new(pattern)).ok_or_else(|| {
            Error::Usage(format!(
                "{pattern}: forbidden path outside the build context"
            ))
        })?;
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            let host = if rel.as_os_str().is_empty() {
                self.root.to_path_buf()
            } else {
                resolve(self.root, &rel)?
            };
            if std::fs::symlink_metadata(&host).is_err()
                || (!rel.as_os_str().is_empty() && self.excluded(&rel))
            {
                return Err(Error::Usage(format!(
                    "{pattern}: no such file or directory in the source"
                )));
            }
            return Ok(vec![Selected { host, rel }]);
        }
        let glob = globset::GlobBuilder::new(&rel.to_string_lossy())
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Usage(format!("{pattern}: {e}")))?
            .compile_matcher();
        let mut out = Vec::new();
        walk(self.root, Path::new(""), &mut |r, _| {
            if glob.is_match(r) && !self.excluded(r) {
                out.push(Selected {
                    host: self.root.join(r),
                    rel: r.to_path_buf(),
                });
            }
        })?;
        if out.is_empty() {
            return Err(Error::Usage(format!(
                "{pattern}: no source files were specified (nothing matches)"
            )));
        }
        // a matched dir's children are copied through the dir itself
        let dirs: Vec<PathBuf> = out
            .iter()
            .filter(|s| s.host.is_dir())
            .map(|s| s.rel.clone())
            .collect();
        out.retain(|s| !dirs.iter().any(|d| s.rel != *d && s.rel.starts_with(d)));
        Ok(out)
    }

    /// Entries under a selected dir (relative to it), ignore rules applied; `[""]` for a file.
    pub fn entries(&self, sel: &Selected) -> Result<Vec<PathBuf>> {
        let md = std::fs::symlink_metadata(&sel.host).map_err(io(&sel.host))?;
        if !md.is_dir() {
            return Ok(vec![PathBuf::new()]);
        }
        let mut out = Vec::new();
        walk(&sel.host, Path::new(""), &mut |r, _| {
            if !self.excluded(&sel.rel.join(r)) {
                out.push(r.to_path_buf());
            }
        })?;
        Ok(out)
    }

    /// Digest of the selected sources: names, modes, link targets, file contents (each
    /// regular file as the sha256 of its content, so the build context's stat cache can
    /// stand in for reading it).
    pub fn digest(&self, sels: &[Selected]) -> Result<String> {
        // Only the build context: other roots (a stage's rootfs, a download) are one-off.
        if self.ignore.is_none() {
            return self.digest_with(sels, None);
        }
        crate::context_cache::with_cache(self.root, |c| self.digest_with(sels, c))
    }

    /// `digest`, with `cache` (if any) remembering content digests across builds.
    pub fn digest_with(
        &self,
        sels: &[Selected],
        mut cache: Option<&mut StatCache>,
    ) -> Result<String> {
        if let Some(c) = cache.as_deref_mut() {
            c.begin();
        }
        let mut h = Sha256::new();
        for sel in sels {
            h.update(sel.rel.to_string_lossy().as_bytes());
            h.update([0]);
            for r in self.entries(sel)? {
                let p = if r.as_os_str().is_empty() {
                    sel.host.clone()
                } else {
                    sel.host.join(&r)
                };
                let md = std::fs::symlink_metadata(&p).map_err(io(&p))?;
                h.update(format!("{}\0{:o}\0", r.display(), md.mode()).as_bytes());
                if md.file_type().is_symlink() {
                    h.update(
                        std::fs::read_link(&p)
                            .map_err(io(&p))?
                            .as_os_str()
                            .as_encoded_bytes(),
                    );
                } else if md.is_file() {
                    let d = match cache.as_deref_mut() {
                        Some(c) => c.file_digest(&p, &md)?,
                        None => hash_file(&p)?,
                    };
                    h.update(d);
                }
            }
        }
        if let Some(c) = cache {
            c.save();
        }
        Ok(crate::store::hex(&h.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_globs_ignore_and_escape() {
        let t = tempfile::tempdir().unwrap();
        let c = t.path();
        std::fs::create_dir_all(c.join("src/pkg")).unwrap();
        for f in ["a.py", "b.py", "notes.txt", "src/pkg/m.py", "src/pkg/m.pyc"] {
            std::fs::write(c.join(f), f).unwrap();
        }
        let ig = Ignore::parse("*.txt\n**/*.pyc\n").unwrap();
        let root = SourceRoot {
            root: c,
            ignore: Some(&ig),
        };
        let got: Vec<_> = root
            .select("*.py")
            .unwrap()
            .into_iter()
            .map(|s| s.rel)
            .collect();
        assert_eq!(got, [PathBuf::from("a.py"), PathBuf::from("b.py")]);
        assert!(
            root.select("notes.txt").is_err(),
            "ignored files are not in the context"
        );
        assert!(root.select("../etc/passwd").is_err());
        assert!(root.select("*.none").is_err());
        let src = root.select("src").unwrap();
        let entries = root.entries(&src[0]).unwrap();
        assert_eq!(entries, [PathBuf::from("pkg"), PathBuf::from("pkg/m.py")]);
        let d1 = root.digest(&src).unwrap();
        std::fs::write(c.join("src/pkg/m.pyc"), "changed but ignored").unwrap();
        assert_eq!(d1, root.digest(&src).unwrap());
        std::fs::write(c.join("src/pkg/m.py"), "changed").unwrap();
        assert_ne!(d1, root.digest(&src).unwrap());
    }

    /// A context dir with `files`, a cache dir beside it, and the build context over it.
    fn ctx(t: &Path, files: &[(&str, &str)]) -> PathBuf {
        let c = t.join("ctx");
        for (f, body) in files {
            std::fs::create_dir_all(c.join(f).parent().unwrap()).unwrap();
            std::fs::write(c.join(f), body).unwrap();
        }
        c
    }

    /// One "build": digest of `pats` with a stat cache loaded fresh from `cache`, and how
    /// many files it read / reused.
    fn build(c: &Path, cache: &Path, pats: &[&str]) -> (String, u64, u64) {
        let ig = Ignore::parse("").unwrap();
        let root = SourceRoot {
            root: c,
            ignore: Some(&ig),
        };
        let sels: Vec<_> = pats.iter().flat_map(|p| root.select(p).unwrap()).collect();
        let mut sc = StatCache::open(cache, c);
        let d = root.digest_with(&sels, Some(&mut sc)).unwrap();
        assert_eq!(
            d,
            root.digest_with(&sels, None).unwrap(),
            "same as uncached"
        );
        (d, sc.hashed, sc.reused)
    }

    fn cache_json(cache: &Path) -> (PathBuf, serde_json::Value) {
        let dir = cache.join("context");
        let f = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let v = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        (f, v)
    }

    /// Files last changed in an earlier second than the digest run: their entries are trusted.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }

    #[test]
    fn stat_cache_hit() {
        let t = tempfile::tempdir().unwrap();
        let c = ctx(
            t.path(),
            &[("w.bin", "weights"), ("src/app.py", "print(1)")],
        );
        let cache = t.path().join("cache");
        settle();
        let (d1, hashed, _) = build(&c, &cache, &["w.bin", "src"]);
        assert_eq!(hashed, 2);
        let (d2, hashed, reused) = build(&c, &cache, &["w.bin", "src"]);
        assert_eq!((d2, hashed, reused), (d1, 0, 2), "nothing re-read");
    }

    #[test]
    fn stat_cache_miss_on_same_size_and_mtime() {
        let t = tempfile::tempdir().unwrap();
        let c = ctx(t.path(), &[("w.bin", "weights-1")]);
        let cache = t.path().join("cache");
        settle();
        let (d1, _, _) = build(&c, &cache, &["w.bin"]);
        let f = c.join("w.bin");
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::fs::write(&f, "weights-2").unwrap();
        let file = std::fs::File::options().write(true).open(&f).unwrap();
        file.set_modified(mtime).unwrap();
        let md = std::fs::metadata(&f).unwrap();
        assert_eq!((md.modified().unwrap(), md.len()), (mtime, 9));
        let (d2, hashed, reused) = build(&c, &cache, &["w.bin"]);
        assert_eq!((hashed, reused), (1, 0), "ctime moved: re-read");
        assert_ne!(d1, d2);
    }

    #[test]
    fn stat_cache_racy_entry_is_rehashed() {
        let t = tempfile::tempdir().unwrap();
        let c = ctx(t.path(), &[("w.bin", "weights")]);
        let cache = t.path().join("cache");
        let (good, _, _) = build(&c, &cache, &["w.bin"]);
        // An entry recorded in the second its file last changed, claiming other content (what
        // a same-second write after hashing looks like): not trusted.
        let (file, mut v) = cache_json(&cache);
        let e = &mut v["entries"]["w.bin"];
        let changed = e[0][3].as_i64().unwrap().max(e[0][5].as_i64().unwrap());
        e[1] = changed.into();
        e[2] = "00".repeat(32).into();
        std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
        let (d, hashed, _) = build(&c, &cache, &["w.bin"]);
        assert_eq!((d, hashed), (good.clone(), 1));
        // the same entry one second later is trusted (so the forged content is what counts)
        let (_, mut v) = cache_json(&cache);
        let e = &mut v["entries"]["w.bin"];
        e[1] = (changed + 1).into();
        e[2] = "00".repeat(32).into();
        std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
        let ig = Ignore::parse("").unwrap();
        let root = SourceRoot {
            root: &c,
            ignore: Some(&ig),
        };
        let sels = root.select("w.bin").unwrap();
        let mut sc = StatCache::open(&cache, &c);
        assert_ne!(root.digest_with(&sels, Some(&mut sc)).unwrap(), good);
        assert_eq!(sc.reused, 1);
    }

    #[test]
    fn stat_cache_bad_file_and_bound() {
        let t = tempfile::tempdir().unwrap();
        let files = [("a", "a"), ("b", "b"), ("c", "c")];
        let c = ctx(t.path(), &files);
        let cache = t.path().join("cache");
        settle();
        build(&c, &cache, &["a", "b", "c"]);
        let (file, v) = cache_json(&cache);
        assert_eq!(v["entries"].as_object().unwrap().len(), 3);
        // a later build reads only `a` (changed); `b` is gone, `c` unchanged is kept
        std::fs::remove_file(c.join("b")).unwrap();
        std::fs::write(c.join("a"), "A").unwrap();
        assert_eq!(build(&c, &cache, &["a"]).1, 1);
        let (_, v) = cache_json(&cache);
        let keys: Vec<_> = v["entries"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["a", "c"]);
        // corrupt: everything is read again, nothing fails
        std::fs::write(&file, "{not json").unwrap();
        assert_eq!(build(&c, &cache, &["a", "c"]).1, 2);
        // unwritable (the cache dir is a file): still no error
        let blocked = t.path().join("blocked");
        std::fs::write(&blocked, "").unwrap();
        assert_eq!(build(&c, &blocked, &["a", "c"]).1, 2);
    }
}
