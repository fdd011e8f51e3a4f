//! Layer snapshots: every layer extracted once, in overlayfs' upper-directory form, under
//! `<cache>/snapshots/<chain id prefix>`, so a stage's tree is a stack of them (overlay.rs)
//! and a rebuild extracts only layers it has never seen. A layer is extracted the way
//! containerd's overlay snapshotter does it: applied onto an overlay of the layers below, so
//! its whiteouts, hard links to lower files and paths through lower symlinks mean what they
//! mean in a plain extraction; the upper dir is the snapshot. A step's upper dir becomes its
//! layer's snapshot as it is. Snapshots are named by chain id (the layer and all below it,
//! as in the OCI image spec), since what a layer's upper dir holds depends on them.

use crate::error::{io, Result};
use crate::layer::Layer;
use crate::overlay;
use crate::store::{sha256_hex, Store};
use std::path::{Path, PathBuf};

/// Hex digits of the chain id naming a snapshot: short, so ~70 stacked layers fit in
/// overlayfs' one-page option string with absolute paths (and more with relative ones).
const NAME_LEN: usize = 24;

/// The OCI chain ids of `layers` (bottom first): the first layer's diff id, then
/// sha256(previous chain id + " " + diff id).
pub fn chain_ids(layers: &[Layer]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(layers.len());
    for l in layers {
        let id = match out.last() {
            None => l.diff_id.clone(),
            Some(prev) => format!(
                "sha256:{}",
                sha256_hex(format!("{prev} {}", l.diff_id).as_bytes())
            ),
        };
        out.push(id);
    }
    out
}

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

    /// Where the snapshot of a chain id is (or would be).
    pub fn path(&self, chain: &str) -> PathBuf {
        let hex = chain.trim_start_matches("sha256:");
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
    /// first, as overlayfs stacks them (the empty dir not included).
    pub fn lowers(&self, store: &Store, layers: &[Layer]) -> Result<Vec<PathBuf>> {
        let mut below: Vec<PathBuf> = Vec::with_capacity(layers.len());
        for (l, chain) in layers.iter().zip(chain_ids(layers)) {
            let p = self.path(&chain);
            if !p.is_dir() {
                self.extract(store, l, &below, &chain)?;
            }
            below.insert(0, p);
        }
        Ok(below)
    }

    /// Apply `layer` onto an overlay of `below` (top first); keep the upper dir.
    fn extract(&self, store: &Store, layer: &Layer, below: &[PathBuf], chain: &str) -> Result<()> {
        let mut lowers = below.to_vec();
        lowers.push(self.empty()?);
        // beside the store's temp files (named with our pid, so `prune` removes what a killed
        // build left), then renamed into place whole
        let (upper, work, mnt) = (
            store.tmp("snapshot"),
            store.tmp("snapshot-work"),
            store.tmp("snapshot-mnt"),
        );
        let res = (|| {
            if below.is_empty() {
                // nothing below for its whiteouts, links or symlinks to refer to: extracted
                // straight into the dir (no overlayfs lookups; the base is the biggest layer)
                std::fs::create_dir_all(&upper).map_err(io(&upper))?;
                return crate::unpack::apply(&store.blob(&layer.digest), &upper);
            }
            for d in [&upper, &work, &mnt] {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            overlay::mount_overlay(&mnt, &lowers, Some((&upper, &work)))?;
            let applied = crate::unpack::apply(&store.blob(&layer.digest), &mnt);
            overlay::unmount(&mnt);
            applied
        })();
        let _ = std::fs::remove_dir_all(&work);
        let _ = std::fs::remove_dir(&mnt);
        match res {
            Ok(()) => self.adopt(&upper, chain),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&upper);
                Err(e)
            }
        }
    }

    /// Keep `dir` (a finished upper directory) as the snapshot of `chain`. A concurrent build
    /// may have made the same one first: then ours is dropped.
    pub fn adopt(&self, dir: &Path, chain: &str) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let dst = self.path(chain);
        if std::fs::rename(dir, &dst).is_err() {
            if !dst.is_dir() {
                return std::fs::rename(dir, &dst).map_err(io(&dst));
            }
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        Ok(())
    }

    /// Are these chain ids' snapshots all there (nothing to extract)?
    pub fn has_all(&self, chains: &[String]) -> bool {
        chains.iter().all(|c| self.path(c).is_dir())
    }
}

/// Snapshots are written without syncing (an overlay's upper dir as it is, extractions): they
/// are trusted only in the boot that wrote them. After a reboot, the first build (holding the
/// store's lock alone, before its shared one) drops them all; they are remade from the
/// blobs, which are synced.
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
    // Alone on the store (a build of this boot, a prune, may be holding it: wait), and
    // looked at again once there: another build may have done it meanwhile.
    let Ok(_lock) = Flock::lock(f, FlockArg::LockExclusive) else {
        return;
    };
    if std::fs::read_to_string(&mark).is_ok_and(|b| b == boot) {
        return;
    }
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
