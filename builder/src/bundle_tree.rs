//! A bundle's `rootfs/`, written only as much as needed. A stamp records the layers it holds
//! and a digest of its metadata when written; when it is untouched since (no container
//! changed it):
//! - the new image only adds layers: they are applied;
//! - it shares some bottom layers with the new image (an edit rebuild): the layers above them
//!   are undone, each path they touched put back as the shared layers have it (read from a
//!   merged view of their snapshots), then the new layers are applied.
//!
//! Otherwise it is written whole: moved from an extracted working tree, copied from the
//! layers' snapshots, or extracted.

use crate::clone::{set_meta, Cloner};
use crate::error::{io, Result};
use crate::overlay::{self, Touch, View};
use crate::snapshots::Snapshots;
use crate::stage::Stage;
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct RootfsStamp {
    layers: Vec<String>,
    /// The layers' chain ids (their snapshots' names).
    #[serde(default)]
    chains: Vec<String>,
    tree: String,
}

const STAMP: &str = ".gpurun-build-rootfs.json";

fn tree_digest(rootfs: &Path) -> Result<String> {
    Ok(crate::store::sha256_hex(
        format!("{:?}", crate::layer::snapshot(rootfs)?).as_bytes(),
    ))
}

/// Fill `dir/rootfs` with the stage's layers.
pub fn materialize(store: &Store, stage: &mut Stage, dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    let want: Vec<String> = stage.layers.iter().map(|l| l.digest.clone()).collect();
    let old: Option<RootfsStamp> = std::fs::read(dir.join(STAMP))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    let chains = crate::snapshots::chain_ids(&stage.layers);
    if let Some(old) = old.filter(|o| rootfs.is_dir() && !o.layers.is_empty()) {
        let shared = old
            .layers
            .iter()
            .zip(&want)
            .take_while(|(a, b)| a == b)
            .count();
        if shared > 0 && tree_digest(&rootfs)? == old.tree {
            let undone = shared == old.layers.len()
                || (old.chains.len() == old.layers.len()
                    && undo(store, &rootfs, &chains[..shared], &old.chains[shared..])
                        .is_ok_and(|done| done));
            if undone {
                for l in &stage.layers[shared..] {
                    crate::unpack::apply(&store.blob(&l.digest), &rootfs)?;
                }
                return Ok(());
            }
        }
    }
    crate::unpack::remove(&rootfs)?;
    let _ = std::fs::remove_file(dir.join(STAMP));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if stage.is_materialized() && std::fs::rename(stage.rootfs_path(), &rootfs).is_ok() {
        stage.forget_tree();
        return Ok(());
    }
    if crate::tree::overlay_enabled() && !stage.layers.is_empty() {
        let snaps = Snapshots::new(store);
        let view = View::mount(
            store.tmp("view"),
            &snaps.lowers(store, &stage.layers)?,
            &snaps.empty()?,
        )?;
        return Cloner::default().copy(&view.root, &rootfs);
    }
    std::fs::create_dir_all(&rootfs).map_err(io(&rootfs))?;
    for l in &stage.layers {
        crate::unpack::apply(&store.blob(&l.digest), &rootfs)?;
    }
    Ok(())
}

/// Record what `dir/rootfs` now holds (after config.json's needs, e.g. the working dir, were
/// added to it).
pub fn stamp(stage: &Stage, dir: &Path) -> Result<()> {
    let stamp = RootfsStamp {
        layers: stage.layers.iter().map(|l| l.digest.clone()).collect(),
        chains: crate::snapshots::chain_ids(&stage.layers),
        tree: tree_digest(&dir.join("rootfs"))?,
    };
    let p = dir.join(STAMP);
    std::fs::write(&p, serde_json::to_vec(&stamp).expect("stamp serializes")).map_err(io(&p))
}

/// Put every path the `tail` layers touched back as the `shared` layers have it (both given
/// as chain ids). Ok(false) when it cannot be done here (no overlayfs, a snapshot missing, a
/// hard link to restore): the caller rewrites all.
fn undo(store: &Store, rootfs: &Path, shared: &[String], tail: &[String]) -> Result<bool> {
    let snaps = Snapshots::new(store);
    if !crate::tree::overlay_enabled() || !snaps.has_all(shared) || !snaps.has_all(tail) {
        return Ok(false);
    }
    // every path, with the strongest way it was touched (Tree > Entry > Dir)
    let mut touched: BTreeMap<PathBuf, Touch> = BTreeMap::new();
    for d in tail {
        for (p, t) in overlay::touched(&snaps.path(d))? {
            let e = touched.entry(p).or_insert(t);
            if rank(t) > rank(*e) {
                *e = t;
            }
        }
    }
    let lowers: Vec<PathBuf> = shared.iter().rev().map(|d| snaps.path(d)).collect();
    let view = View::mount(store.tmp("view"), &lowers, &snaps.empty()?)?;
    let mut replaced: Option<PathBuf> = None;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut cloner = Cloner::default();
    for (rel, t) in touched {
        if replaced.as_ref().is_some_and(|r| rel.starts_with(r)) {
            continue;
        }
        let (dst, src) = (rootfs.join(&rel), view.root.join(&rel));
        // the paths come from snapshots, which hold real directories only: a symlink on the
        // way would mean the bundle is not what they describe
        if !real_parents(rootfs, &rel) {
            return Ok(false);
        }
        let want = std::fs::symlink_metadata(&src).ok();
        let have = std::fs::symlink_metadata(&dst).ok();
        let both_dirs =
            want.as_ref().is_some_and(|m| m.is_dir()) && have.is_some_and(|m| m.is_dir());
        if t == Touch::Dir && both_dirs {
            dirs.push(rel);
            continue;
        }
        crate::unpack::remove(&dst)?;
        if want.is_some() {
            cloner.copy(&src, &dst)?;
        }
        replaced = Some(rel);
    }
    if cloner.copied_links {
        // a name restored from a file with other names elsewhere would lose the link
        return Ok(false);
    }
    // deepest first: restoring a child moves its parent's mtime
    for rel in dirs.iter().rev() {
        let src = view.root.join(rel);
        let md = std::fs::symlink_metadata(&src).map_err(io(&src))?;
        set_meta(&src, &rootfs.join(rel), &md)?;
    }
    Ok(true)
}

fn rank(t: Touch) -> u8 {
    match t {
        Touch::Dir => 0,
        Touch::Entry => 1,
        Touch::Tree => 2,
    }
}

/// Are the directories leading to `rel` inside `root` real directories (no symlink)?
fn real_parents(root: &Path, rel: &Path) -> bool {
    let mut cur = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return true;
    };
    for c in parent.components() {
        cur.push(c);
        if !std::fs::symlink_metadata(&cur).is_ok_and(|m| m.is_dir()) {
            return false;
        }
    }
    true
}
