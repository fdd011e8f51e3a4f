//! A stage's working tree (`<work>/rootfs`, the rootfs of its RUN bundles). With overlayfs it
//! is the layers' snapshots stacked under a fresh upper directory: nothing is extracted that
//! an earlier build already extracted, and a step's changes are its upper directory. Without
//! overlayfs (not root, a filesystem it refuses) the layers are extracted into it, and a
//! step's changes are found by comparing metadata before and after.

use crate::error::{io, Result};
use crate::layer::{Layer, Snapshot};
use crate::overlay;
use crate::snapshots::Snapshots;
use crate::store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Overlayfs can be used: set once by `main` after entering a private mount namespace, and
/// cleared for good by the first mount that fails.
static OVERLAY: AtomicBool = AtomicBool::new(false);

pub fn enable_overlay() {
    OVERLAY.store(true, Ordering::Relaxed);
}

pub fn overlay_enabled() -> bool {
    OVERLAY.load(Ordering::Relaxed)
}

enum State {
    /// Nothing mounted or extracted.
    Empty,
    /// An overlay of this many layers is mounted (its upper dir holds the current step's work).
    Mounted(usize),
    /// This many layers are extracted in the directory.
    Extracted(usize),
}

pub struct WorkTree {
    pub work: PathBuf,
    state: State,
    /// Metadata before the current step (extraction only).
    before: Option<Snapshot>,
}

impl WorkTree {
    pub fn new(work: PathBuf) -> WorkTree {
        WorkTree {
            work,
            state: State::Empty,
            before: None,
        }
    }

    pub fn rootfs_path(&self) -> PathBuf {
        self.work.join("rootfs")
    }

    fn upper(&self) -> PathBuf {
        self.work.join("upper")
    }

    /// The tree holding every one of `layers`.
    pub fn rootfs(&mut self, store: &Store, layers: &[Layer]) -> Result<PathBuf> {
        let root = self.rootfs_path();
        match self.state {
            State::Mounted(n) if n == layers.len() => return Ok(root),
            State::Extracted(n) => {
                for l in &layers[n..] {
                    crate::unpack::apply(&store.blob(&l.digest), &root)?;
                }
                self.state = State::Extracted(layers.len());
                return Ok(root);
            }
            State::Mounted(_) => self.release(),
            State::Empty => {}
        }
        if overlay_enabled() {
            match self.mount(store, layers) {
                Ok(()) => return Ok(root),
                // a bad layer is an error either way; only a refused mount means "extract"
                Err(e @ crate::error::Error::Overlay { .. }) => {
                    eprintln!(
                        "warning: overlayfs not usable here ({e}); extracting layers instead"
                    );
                    OVERLAY.store(false, Ordering::Relaxed);
                    self.release();
                }
                Err(e) => return Err(e),
            }
        }
        crate::unpack::remove(&root)?;
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        for l in layers {
            crate::unpack::apply(&store.blob(&l.digest), &root)?;
        }
        self.state = State::Extracted(layers.len());
        Ok(root)
    }

    fn mount(&mut self, store: &Store, layers: &[Layer]) -> Result<()> {
        let snaps = Snapshots::new(store);
        let mut lowers = snaps.lowers(store, layers)?;
        lowers.push(snaps.empty()?);
        let (root, upper, wd) = (self.rootfs_path(), self.upper(), self.work.join("ovl"));
        // fresh upper and work dirs (a volatile mount marks its work dir as not reusable)
        crate::unpack::remove(&upper)?;
        crate::unpack::remove(&wd)?;
        for d in [&root, &upper, &wd] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        overlay::mount_overlay(&root, &lowers, Some((&upper, &wd)))?;
        self.state = State::Mounted(layers.len());
        Ok(())
    }

    /// Before a step changes the tree (which must hold every layer).
    pub fn begin(&mut self) -> Result<()> {
        if let State::Extracted(_) = self.state {
            self.before = Some(crate::layer::snapshot(&self.rootfs_path())?);
        }
        Ok(())
    }

    /// After the step: its layer (None: it changed nothing), written to the store. With
    /// overlayfs the upper dir becomes the layer's snapshot and the tree is remounted with it
    /// when next needed.
    pub fn finish(&mut self, store: &Store, layers: &[Layer]) -> Result<Option<Layer>> {
        match self.state {
            State::Mounted(_) => {
                self.release();
                let upper = self.upper();
                let changes = overlay::upper_changes(&upper)?;
                if let Some(epoch) = crate::layer::source_epoch() {
                    // as the layer has them, so later steps see what a fresh build sees
                    overlay::clamp_mtimes(&upper, &changes, epoch)?;
                }
                let layer = crate::layer::write_changes(store, &upper, &changes)?;
                if let Some(l) = &layer {
                    let all: Vec<Layer> = layers.iter().chain([l]).cloned().collect();
                    let chain = crate::snapshots::chain_ids(&all)
                        .pop()
                        .expect("one layer at least");
                    Snapshots::new(store).adopt(&upper, &chain)?;
                }
                Ok(layer)
            }
            State::Extracted(n) => {
                let before = self.before.take().unwrap_or_default();
                let layer = crate::layer::diff(store, &self.rootfs_path(), &before)?;
                self.state = State::Extracted(n + usize::from(layer.is_some()));
                Ok(layer)
            }
            State::Empty => Ok(None),
        }
    }

    /// A tree with all `n` layers extracted, which may be moved away (into a bundle).
    pub fn extracted(&self, n: usize) -> bool {
        matches!(self.state, State::Extracted(k) if k == n)
    }

    /// The tree was moved away, or is no longer needed mounted.
    pub fn release(&mut self) {
        if let State::Mounted(_) = self.state {
            overlay::unmount(&self.rootfs_path());
        }
        self.state = State::Empty;
    }

    pub fn cleanup(&self) {
        overlay::unmount(&self.rootfs_path());
        let _ = remove_tree(&self.work);
    }
}

fn remove_tree(p: &Path) -> std::io::Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p)?;
    }
    Ok(())
}
