//! Executing COPY/ADD into a rootfs: Docker's destination rules (a trailing `/`, several
//! sources or an existing directory make the destination a directory; a source directory's
//! contents are copied, not the directory itself), `--chown`, `--chmod`, ADD's extraction of
//! local tar archives (archive.rs), and heredoc sources.

use crate::archive::{decompress, tar_archive};
use crate::context::{Selected, SourceRoot};
use crate::error::{io, Error, Result};
use crate::unpack::{apply_tar, clean, resolve};
use crate::user::Ids;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct CopyOpts {
    pub chown: Option<Ids>,
    pub chmod: Option<u32>,
    /// ADD: unpack local tar archives.
    pub extract: bool,
    /// How many sources the instruction has (several: the destination is a directory).
    pub sources: usize,
}

/// Destination path relative to the rootfs (relative `dest` is under `workdir`).
pub fn dest_rel(dest: &str, workdir: &str) -> Result<PathBuf> {
    let joined = if dest.starts_with('/') {
        PathBuf::from(dest)
    } else {
        Path::new(workdir).join(dest)
    };
    clean(&joined).ok_or_else(|| Error::Usage(format!("{dest}: bad destination")))
}

/// Is the destination a directory? (`dest` as written, before cleaning.)
pub fn dest_is_dir(rootfs: &Path, dest: &str, rel: &Path, n_sources: usize) -> bool {
    dest.ends_with('/')
        || dest.ends_with("/.")
        || dest == "."
        || dest == ".."
        || n_sources > 1
        || resolve(rootfs, &rel.join("x")).is_ok_and(|p| p.parent().is_some_and(Path::is_dir))
}

/// Create missing parents of `p` (inside the rootfs) as root-owned 0755 dirs, as Docker does.
fn mkparents(p: &Path) -> Result<()> {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    Ok(())
}

pub fn copy_sources(
    rootfs: &Path,
    src: &SourceRoot<'_>,
    sels: &[Selected],
    dest: &str,
    dest_rel: &Path,
    opts: &CopyOpts,
) -> Result<()> {
    let into_dir = dest_is_dir(rootfs, dest, dest_rel, sels.len().max(opts.sources))
        || sels.iter().any(|s| s.host.is_dir());
    for sel in sels {
        let md = std::fs::symlink_metadata(&sel.host).map_err(io(&sel.host))?;
        if md.is_dir() {
            for r in src.entries(sel)? {
                let target = resolve(rootfs, &dest_rel.join(&r))?;
                put(&sel.host.join(&r), &target, opts)?;
            }
            let top = resolve(rootfs, &dest_rel.join("x"))?;
            if let Some(d) = top.parent() {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            continue;
        }
        let target_rel = if into_dir {
            dest_rel.join(sel.rel.file_name().unwrap_or_default())
        } else {
            dest_rel.to_path_buf()
        };
        let archive = opts.extract && md.is_file();
        if let Some(c) = archive.then(|| tar_archive(&sel.host)).flatten() {
            let dir = resolve(rootfs, &dest_rel.join("x"))?.with_file_name("");
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let f = std::fs::File::open(&sel.host).map_err(io(&sel.host))?;
            apply_tar(decompress(std::io::BufReader::new(f), c), &dir)?;
            continue;
        }
        put(&sel.host, &resolve(rootfs, &target_rel)?, opts)?;
    }
    Ok(())
}

/// Write a heredoc source (`COPY <<EOF /dst`).
pub fn copy_inline(
    rootfs: &Path,
    name: &str,
    body: &str,
    dest: &str,
    dest_rel: &Path,
    n_sources: usize,
    opts: &CopyOpts,
) -> Result<()> {
    let rel = if dest_is_dir(rootfs, dest, dest_rel, n_sources) {
        dest_rel.join(name)
    } else {
        dest_rel.to_path_buf()
    };
    let target = resolve(rootfs, &rel)?;
    mkparents(&target)?;
    crate::unpack::remove(&target)?;
    std::fs::write(&target, body).map_err(io(&target))?;
    let mode = opts.chmod.unwrap_or(0o644);
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
        .map_err(io(&target))?;
    chown(
        &target,
        opts.chown.as_ref().map_or((0, 0), |i| (i.uid, i.gid)),
    )
}

fn chown(p: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).map_err(io(p))
}

/// Copy one entry (file, dir, symlink) to `target`, keeping mode and mtime.
fn put(host: &Path, target: &Path, opts: &CopyOpts) -> Result<()> {
    let md = std::fs::symlink_metadata(host).map_err(io(host))?;
    mkparents(target)?;
    let ft = md.file_type();
    let existing = std::fs::symlink_metadata(target).ok();
    if !(ft.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir())) {
        crate::unpack::remove(target)?;
    }
    let mode = opts.chmod.unwrap_or(md.mode() & 0o7777);
    if ft.is_symlink() {
        let link = std::fs::read_link(host).map_err(io(host))?;
        std::os::unix::fs::symlink(&link, target).map_err(io(target))?;
    } else if ft.is_dir() {
        std::fs::create_dir_all(target).map_err(io(target))?;
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))
            .map_err(io(target))?;
    } else if ft.is_file() {
        std::fs::copy(host, target).map_err(io(target))?;
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))
            .map_err(io(target))?;
        let f = std::fs::File::options()
            .write(true)
            .open(target)
            .map_err(io(target))?;
        if let Ok(t) = md.modified() {
            f.set_modified(t).map_err(io(target))?;
        }
    } else {
        return Err(Error::Usage(format!(
            "{}: special files cannot be copied",
            host.display()
        )));
    }
    chown(
        target,
        opts.chown.as_ref().map_or((0, 0), |i| (i.uid, i.gid)),
    )?;
    if ft.is_symlink() {
        return Ok(());
    }
    // after chown, which clears a file capability (COPY --from keeps setcap's work)
    crate::xattrs::copy(host, target)
}
