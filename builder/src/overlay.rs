//! Overlayfs for the working tree of a stage: each layer's snapshot is a lower directory, a
//! step writes into a fresh upper directory, and that upper directory, walked, is the step's
//! layer (and then the new layer's snapshot). Mounts live in the builder's own mount
//! namespace, so none outlives the builder, whatever ends it.

use crate::error::{io, Error, Result};
use crate::layer::Change;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

const OPAQUE: &str = "trusted.overlay.opaque";

/// Enter a private mount namespace (host mounts still propagate in, ours never out). Must run
/// before any thread starts: unsharing the namespace also unshares the fs context. False when
/// not permitted (not root): the builder then extracts layers instead.
pub fn private_mounts() -> bool {
    use nix::sched::{unshare, CloneFlags};
    if unshare(CloneFlags::CLONE_NEWNS).is_err() {
        return false;
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .is_ok()
}

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, OPAQUE), Ok(Some(v)) if v == b"y")
}

/// Mount an overlay at `target`: `lowers` top first; with `upper` = (upperdir, workdir) it is
/// writable, else read-only (overlayfs needs two lowers then: callers add an empty one).
pub fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
) -> Result<()> {
    let absolute = options(lowers, upper, None);
    // The options are one page at most: with many layers, name the lowers relative to their
    // common parent (overlayfs resolves them from the caller's working directory).
    let (data, cwd) = match lowers.first().and_then(|l| l.parent()) {
        Some(parent)
            if absolute.len() > 4000 && lowers.iter().all(|l| l.parent() == Some(parent)) =>
        {
            (
                options(lowers, upper, Some(parent)),
                Some(parent.to_path_buf()),
            )
        }
        _ => (absolute, None),
    };
    let fail = |msg: String| Error::Overlay {
        target: target.to_path_buf(),
        msg,
    };
    if data.len() > 4000 {
        return Err(fail(format!(
            "{} layers are too many to stack in one overlay",
            lowers.len()
        )));
    }
    let back = std::env::current_dir().ok();
    if let Some(c) = &cwd {
        std::env::set_current_dir(c).map_err(io(c))?;
    }
    let flags = if upper.is_some() {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    let mut res = mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(data.as_str()),
    );
    if res == Err(nix::errno::Errno::EINVAL) && data.ends_with(",volatile") {
        // before Linux 5.10 there is no volatile: unmounts then sync (slower, same result);
        // the pinned features stay pinned (a default of metacopy=on would break the layers)
        let synced = data.trim_end_matches(",volatile");
        res = mount(
            Some("overlay"),
            target,
            Some("overlay"),
            flags,
            Some(synced),
        );
    }
    if let (Some(_), Some(b)) = (&cwd, back) {
        let _ = std::env::set_current_dir(b);
    }
    res.map_err(|e| fail(e.to_string()))
}

/// `lowerdir=…[,upperdir=…,workdir=…]` with redirects, metacopy and the index off: an upper
/// directory must hold whole files and plain names to be a layer.
fn options(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, rel_to: Option<&Path>) -> String {
    let name = |p: &Path| -> String {
        let p = rel_to.and_then(|r| p.strip_prefix(r).ok()).unwrap_or(p);
        // ':' and ',' separate options; store paths are ours and never hold them
        p.display().to_string()
    };
    let lower: Vec<String> = lowers.iter().map(|l| name(l)).collect();
    let mut o = format!("lowerdir={}", lower.join(":"));
    if let Some((u, w)) = upper {
        o.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    o.push_str(",redirect_dir=off,metacopy=off,index=off");
    if upper.is_some() {
        // No syncs of the upper filesystem (overlayfs syncs it all at unmount: ~0.1 s a step
        // under write load). An upper dir a crash cut short is never used: the step reruns.
        o.push_str(",volatile");
    }
    o
}

/// Unmount `target` if something is mounted there.
pub fn unmount(target: &Path) {
    let _ = umount2(target, MntFlags::MNT_DETACH);
}

/// The changes an upper directory holds, in layer order: whiteout devices become `.wh.NAME`,
/// opaque directories `.wh..wh..opq`, everything else is added. The root itself is not.
pub fn upper_changes(upper: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    // parents before children; a whiteout is a device, never descended into
    crate::layer::walk(upper, Path::new(""), &mut |rel, md| {
        if is_whiteout(md) {
            out.push(Change::Whiteout(rel.to_path_buf()));
            return;
        }
        out.push(Change::Add(rel.to_path_buf()));
        if md.is_dir() && is_opaque(&upper.join(rel)) {
            out.push(Change::Opaque(rel.to_path_buf()));
        }
    })?;
    Ok(out)
}

/// Set every added entry's mtime later than `epoch` to it (SOURCE_DATE_EPOCH).
pub fn clamp_mtimes(upper: &Path, changes: &[Change], epoch: u64) -> Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    // children first: setting a child's time does not move its parent's mtime, but keep the
    // order anyway so a directory's own time is the last one written
    for c in changes.iter().rev() {
        let Change::Add(rel) = c else { continue };
        let p = upper.join(rel);
        let md = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        if md.mtime() > epoch as i64 {
            let t = TimeSpec::new(epoch as i64, 0);
            utimensat(
                nix::fcntl::AT_FDCWD,
                &p,
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| io(&p)(e.into()))?;
        }
    }
    Ok(())
}

/// What a layer snapshot touches, for undoing it: paths it adds (dirs flagged) and paths it
/// deletes or empties (whiteouts, opaque dirs: the whole tree below is replaced).
pub fn touched(snapshot: &Path) -> Result<Vec<(PathBuf, Touch)>> {
    let mut out = Vec::new();
    for c in upper_changes(snapshot)? {
        let (p, t) = match c {
            Change::Whiteout(p) | Change::Opaque(p) => (p, Touch::Tree),
            Change::Add(p) => {
                let dir = std::fs::symlink_metadata(snapshot.join(&p)).is_ok_and(|m| m.is_dir());
                (p, if dir { Touch::Dir } else { Touch::Entry })
            }
        };
        out.push((p, t));
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Touch {
    /// A directory's metadata (and children listed on their own).
    Dir,
    /// A file, link or device.
    Entry,
    /// The name and everything below it.
    Tree,
}

/// A read-only merged view of some layers' snapshots, unmounted and removed on drop.
pub struct View {
    pub root: PathBuf,
}

impl View {
    /// `lowers` top first; `empty` (an empty dir) goes below them all.
    pub fn mount(at: PathBuf, lowers: &[PathBuf], empty: &Path) -> Result<View> {
        std::fs::create_dir_all(&at).map_err(io(&at))?;
        let mut all = lowers.to_vec();
        all.push(empty.to_path_buf());
        if let Err(e) = mount_overlay(&at, &all, None) {
            let _ = std::fs::remove_dir(&at);
            return Err(e);
        }
        Ok(View { root: at })
    }
}

impl Drop for View {
    fn drop(&mut self) {
        unmount(&self.root);
        let _ = std::fs::remove_dir(&self.root);
    }
}
