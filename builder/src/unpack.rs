//! Applying layers to a directory: OCI whiteouts (`.wh.NAME` deletes NAME from lower layers,
//! `.wh..wh..opq` empties a directory of lower-layer contents), and paths resolved inside the
//! root so neither `..` nor a symlink in the image can write outside it; PAX xattrs restored.

use crate::error::{io, Error, Result};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Lexically clean `p` into a relative path (`/a/../b` → `b`); None if it climbs out.
pub fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

/// Resolve the parent dirs of `rel` inside `root`, following symlinks as if `root` were `/`
/// (an image's `/lib -> usr/lib`); the last component is not followed.
pub fn resolve(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut cur = PathBuf::new();
    let mut todo: Vec<PathBuf> = rel
        .components()
        .rev()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.to_str() {
            Some("/") | Some(".") => continue,
            Some("..") => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let next = cur.join(&c);
        if todo.is_empty() {
            return Ok(root.join(next));
        }
        let full = root.join(&next);
        match std::fs::read_link(&full) {
            Ok(target) => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::Usage(format!(
                        "{}: too many levels of symlinks",
                        rel.display()
                    )));
                }
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                todo.extend(
                    target
                        .components()
                        .rev()
                        .map(|c| PathBuf::from(c.as_os_str())),
                );
            }
            Err(_) => cur = next,
        }
    }
    Ok(root.join(cur))
}

/// Remove whatever is at `p` (file, link or tree); absent is fine.
pub fn remove(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => std::fs::remove_dir_all(p).map_err(io(p)),
        Ok(_) => std::fs::remove_file(p).map_err(io(p)),
        Err(_) => Ok(()),
    }
}

/// Apply one layer blob (gzip or plain tar) to `root`.
pub fn apply(blob: &Path, root: &Path) -> Result<()> {
    let f = std::fs::File::open(blob).map_err(io(blob))?;
    let mut head = [0u8; 2];
    let mut f = std::io::BufReader::new(f);
    let n = {
        use std::io::BufRead;
        let buf = f.fill_buf().map_err(io(blob))?;
        let n = buf.len().min(2);
        head[..n].copy_from_slice(&buf[..n]);
        n
    };
    let reader: Box<dyn Read> = if n == 2 && head == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    apply_tar(reader, root).map_err(|e| match e {
        Error::Io { path, source } => Error::Usage(format!(
            "layer {}: {}: {source}",
            blob.display(),
            path.display()
        )),
        e => e,
    })
}

pub fn apply_tar(reader: impl Read, root: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_preserve_mtime(true);
    ar.set_unpack_xattrs(false);
    let mut this_layer: HashSet<PathBuf> = HashSet::new();
    for entry in ar.entries().map_err(io(root))? {
        let mut entry = entry.map_err(io(root))?;
        let raw = entry.path().map_err(io(root))?.into_owned();
        let Some(rel) = clean(&raw) else { continue };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let name = rel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == ".wh..wh..opq" {
            let dir = resolve(root, &parent.join("x"))?.with_file_name("");
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if !this_layer.contains(&parent.join(e.file_name())) {
                        remove(&e.path())?;
                    }
                }
            }
            continue;
        }
        if let Some(victim) = name.strip_prefix(".wh.") {
            // `.wh..` / `.wh...` would name the directory itself or its parent
            if !matches!(victim, "" | "." | "..") {
                remove(&resolve(root, &parent.join(victim))?)?;
            }
            continue;
        }
        let dst = resolve(root, &rel)?;
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(io(p))?;
        }
        let kind = entry.header().entry_type();
        let attrs = crate::xattrs::from_entry(&mut entry).map_err(io(&dst))?;
        let existing = std::fs::symlink_metadata(&dst).ok();
        if !(kind.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir())) {
            remove(&dst)?;
        }
        if kind.is_hard_link() {
            let target = entry.link_name().map_err(io(&dst))?.and_then(|t| clean(&t));
            let Some(target) = target else { continue };
            let src = resolve(root, &target)?;
            std::fs::hard_link(&src, &dst).map_err(io(&dst))?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            special(&entry, &dst)?;
        } else {
            entry.unpack(&dst).map_err(io(&dst))?;
        }
        if !attrs.is_empty() && !kind.is_symlink() {
            // after unpack's chown, which would clear a file capability
            crate::xattrs::write(&dst, &attrs)?;
        }
        this_layer.insert(rel);
    }
    Ok(())
}

/// Device nodes and fifos (the tar crate would write them as empty regular files).
fn special<R: Read>(entry: &tar::Entry<'_, R>, dst: &Path) -> Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let h = entry.header();
    let kind = if h.entry_type().is_character_special() {
        SFlag::S_IFCHR
    } else if h.entry_type().is_block_special() {
        SFlag::S_IFBLK
    } else {
        SFlag::S_IFIFO
    };
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    let mode = Mode::from_bits_truncate(h.mode().unwrap_or(0o600));
    mknod(dst, kind, mode, makedev(major.into(), minor.into())).map_err(|e| io(dst)(e.into()))?;
    let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(io(dst))?;
    std::fs::set_permissions(
        dst,
        std::os::unix::fs::PermissionsExt::from_mode(h.mode().unwrap_or(0o600)),
    )
    .map_err(io(dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("/a/./b/../c")).unwrap(), Path::new("a/c"));
        assert!(clean(Path::new("../x")).is_none());
        assert!(clean(Path::new("a/../../x")).is_none());
    }

    #[test]
    fn resolve_stays_inside() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::os::unix::fs::symlink("/../../../etc", r.join("evil")).unwrap();
        assert_eq!(
            resolve(r, Path::new("lib/x.so")).unwrap(),
            r.join("usr/lib/x.so")
        );
        assert_eq!(
            resolve(r, Path::new("evil/passwd")).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(resolve(r, Path::new("lib")).unwrap(), r.join("lib"));
    }
}
