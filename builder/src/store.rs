//! Content-addressed blob store (`<cache>/blobs/sha256/<hex>`, the OCI layout's shape, so
//! outputs can hard-link from it) and the digest helpers every module shares.

use crate::error::{io, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes what passes through it.
pub struct HashWriter<W: Write> {
    pub inner: W,
    pub hasher: Sha256,
    pub len: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn open(root: &Path) -> Result<Store> {
        for d in ["blobs/sha256", "cache", "mounts", "tmp"] {
            std::fs::create_dir_all(root.join(d)).map_err(io(root.join(d)))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// Path of a blob given `sha256:<hex>` or `<hex>`.
    pub fn blob(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    pub fn has(&self, digest: &str) -> bool {
        self.blob(digest).is_file()
    }

    /// A fresh temp path inside the store (same filesystem, so renames are atomic).
    pub fn tmp(&self, tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{tag}-{}-{n}", std::process::id()))
    }

    /// Store `data`; returns (`sha256:<hex>`, size).
    pub fn put(&self, data: &[u8]) -> Result<(String, u64)> {
        let hex = sha256_hex(data);
        let dst = self.blob(&hex);
        if !dst.exists() {
            let tmp = self.tmp("blob");
            std::fs::write(&tmp, data).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
        }
        Ok((format!("sha256:{hex}"), data.len() as u64))
    }

    /// Move a finished temp file into place under its digest.
    pub fn adopt(&self, tmp: &Path, hex: &str) -> Result<()> {
        let dst = self.blob(hex);
        std::fs::rename(tmp, &dst).map_err(io(&dst))
    }

    /// Copy (hard-link when possible) a blob from another place into the store.
    pub fn import(&self, src: &Path, digest: &str) -> Result<()> {
        let dst = self.blob(digest);
        if dst.exists() {
            return Ok(());
        }
        let tmp = self.tmp("import");
        if std::fs::hard_link(src, &tmp).is_err() {
            std::fs::copy(src, &tmp).map_err(io(src))?;
        }
        std::fs::rename(&tmp, &dst).map_err(io(&dst))
    }

    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob(digest);
        std::fs::read(&p).map_err(io(p))
    }
}
