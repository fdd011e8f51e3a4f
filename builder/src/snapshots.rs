//! Layer snapshots: every layer extracted once, in overlayfs' lower-directory form, under
//! `<cache>/snapshots/<digest prefix>`, so a stage's tree is a stack of them (overlay.rs) and
//! a rebuild extracts only layers it has never seen. A step's upper directory becomes its
//! layer's snapshot as it is, without extraction.

use crate::error::{io, Result};
use crate::layer::Layer;
use crate::store::Store;
use crate::unpack::Whiteouts;
use std::path::{Path, PathBuf};

/// Hex digits of the layer digest naming a snapshot: short, so ~70 stacked layers fit in
/// overlayfs' one-page option string with absolute paths (and more with relative ones).
const NAME_LEN: usize = 24;

#[derive(Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    pub fn new(store: &Store) -> Snapshots {
        Snapshots {
            dir: store.root.join("snapshots"),
        }
    }

    /// Where the snapshot of a layer is (or would be).
    pub fn path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join(&hex[..NAME_LEN.min(hex.len())])
    }

    /// An empty directory, the bottom of every stack (overlayfs wants at least one lower dir,
    /// two without an upper one).
    pub fn empty(&self) -> Result<PathBuf> {
        let e = self.dir.join("empty");
        std::fs::create_dir_all(&e).map_err(io(&e))?;
        Ok(e)
    }

    /// The snapshots of `layers` (bottom first), extracting those not made yet; returned top
    /// first, as overlayfs stacks them.
    pub fn lowers(&self, store: &Store, layers: &[Layer]) -> Result<Vec<PathBuf>> {
        let mut out = Vec::with_capacity(layers.len());
        for l in layers.iter().rev() {
            let p = self.ensure(store, &l.digest)?;
            // Overlayfs refuses a dir stacked twice (ELOOP). A layer repeated lower down adds
            // nothing: everything it holds, its copy above holds and shadows.
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn ensure(&self, store: &Store, digest: &str) -> Result<PathBuf> {
        let dst = self.path(digest);
        if dst.is_dir() {
            return Ok(dst);
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        // extracted beside the store's temp files (named with our pid, so `prune` removes
        // what a killed build left), then renamed into place whole
        let tmp = store.tmp("snapshot");
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let res = crate::unpack::apply_as(&store.blob(digest), &tmp, Whiteouts::Overlay);
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        self.adopt(&tmp, digest)?;
        Ok(dst)
    }

    /// Keep `dir` (a finished upper directory or extraction) as the snapshot of `digest`. A
    /// concurrent build may have made the same one first: then ours is dropped.
    pub fn adopt(&self, dir: &Path, digest: &str) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let dst = self.path(digest);
        if std::fs::rename(dir, &dst).is_err() {
            if !dst.is_dir() {
                return std::fs::rename(dir, &dst).map_err(io(&dst));
            }
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        Ok(())
    }

    /// Are all these layers' snapshots there (nothing to extract)?
    pub fn has_all(&self, digests: &[String]) -> bool {
        digests.iter().all(|d| self.path(d).is_dir())
    }
}

/// Snapshots are written without syncing (an overlay's upper dir as it is, extractions): they
/// are trusted only in the boot that wrote them. After a reboot, the first build (holding the
/// store's lock alone) drops them all; they are remade from the blobs, which are synced.
pub fn forget_if_rebooted(root: &Path) {
    let dir = root.join("snapshots");
    let Ok(boot) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
        return;
    };
    let mark = dir.join("boot_id");
    if std::fs::read_to_string(&mark).is_ok_and(|b| b == boot) {
        return;
    }
    let _ = std::fs::create_dir_all(root);
    let Ok(f) = std::fs::File::create(root.join("lock")) else {
        return;
    };
    use nix::fcntl::{Flock, FlockArg};
    // Busy: a build of this boot holds the store, so it has checked already.
    let Ok(_lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
        return;
    };
    if dir.exists() {
        let trash = Store {
            root: root.to_path_buf(),
        }
        .tmp("old-snapshots");
        if std::fs::rename(&dir, &trash).is_ok() {
            let _ = std::fs::remove_dir_all(&trash);
        }
    }
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&mark, boot));
}
