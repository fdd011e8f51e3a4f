//! COPY/ADD sources: paths and globs inside a source root (the build context, filtered by
//! `.dockerignore`, or another stage's / image's rootfs), never escaping it, plus the digest
//! of what they select (part of the step's cache key).

use crate::error::{io, Error, Result};
use crate::ignore::Ignore;
use crate::layer::walk;
use crate::unpack::{clean, resolve};
use sha2::{Digest, Sha256};
use std::io::Read;
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

    /// Digest of the selected sources: names, modes, link targets, file contents.
    pub fn digest(&self, sels: &[Selected]) -> Result<String> {
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
                    let mut f = std::fs::File::open(&p).map_err(io(&p))?;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = f.read(&mut buf).map_err(io(&p))?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
            }
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
}
