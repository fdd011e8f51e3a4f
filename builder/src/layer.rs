//! Layer creation: snapshot a rootfs's metadata before a step, walk it again after, and write
//! the difference as an OCI layer (tar+gzip): added/changed entries, `.wh.NAME` for deletions,
//! `.wh..wh..opq` for a directory that was removed and recreated; xattrs as PAX records.

use crate::error::{io, Result};
use crate::store::{HashWriter, Store};
use std::collections::{BTreeMap, HashMap};
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What identifies one version of an inode: a change to contents, mode or owner moves ctime.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    ino: u64,
    mode: u32,
    ctime: (i64, i64),
}

pub type Snapshot = BTreeMap<PathBuf, Meta>;

fn meta(md: &Metadata) -> Meta {
    Meta {
        ino: md.ino(),
        mode: md.mode(),
        ctime: (md.ctime(), md.ctime_nsec()),
    }
}

/// Metadata of every path under `root` (relative paths; `root` itself excluded).
pub fn snapshot(root: &Path) -> Result<Snapshot> {
    let mut snap = Snapshot::new();
    walk(root, Path::new(""), &mut |rel, md| {
        snap.insert(rel.to_path_buf(), meta(md));
    })?;
    Ok(snap)
}

/// Depth-first, sorted walk (parents before children); does not follow symlinks or cross
/// into other filesystems' mount points' contents beyond what is on disk.
pub fn walk(root: &Path, rel: &Path, f: &mut dyn FnMut(&Path, &Metadata)) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io(&dir))?;
    names.sort();
    for name in names {
        let r = rel.join(&name);
        let p = root.join(&r);
        let md = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        f(&r, &md);
        if md.is_dir() {
            walk(root, &r, f)?;
        }
    }
    Ok(())
}

/// A stored layer: compressed digest (manifest), uncompressed digest (config diff_ids).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
}

/// Write the layer that turns `before` into the current state of `root`; None when nothing
/// changed.
pub fn diff(store: &Store, root: &Path, before: &Snapshot) -> Result<Option<Layer>> {
    let after = snapshot(root)?;
    let mut changes: Vec<Change> = Vec::new();
    let mut opaque: Vec<PathBuf> = Vec::new();
    for (path, m) in &after {
        if opaque.iter().any(|o| path.starts_with(o)) {
            changes.push(Change::Add(path.clone()));
            continue;
        }
        match before.get(path) {
            Some(old) if old == m => {}
            Some(old) if is_dir(old.mode) && is_dir(m.mode) && old.ino != m.ino => {
                // rm -rf dir && mkdir dir: lower contents must not show through
                changes.push(Change::Add(path.clone()));
                changes.push(Change::Opaque(path.clone()));
                opaque.push(path.clone());
            }
            _ => changes.push(Change::Add(path.clone())),
        }
    }
    let mut removed: Vec<&PathBuf> = Vec::new();
    for path in before.keys() {
        if after.contains_key(path) || removed.last().is_some_and(|r| path.starts_with(r)) {
            continue;
        }
        if opaque.iter().any(|o| path.starts_with(o)) {
            continue;
        }
        removed.push(path);
        changes.push(Change::Whiteout(path.clone()));
    }
    if changes.is_empty() {
        return Ok(None);
    }
    changes.sort_by_key(Change::sort_key);
    write_layer(store, root, &changes).map(Some)
}

/// Write the layer of a list of changes read from `root` (None when the list is empty).
pub fn write_changes(store: &Store, root: &Path, changes: &[Change]) -> Result<Option<Layer>> {
    if changes.is_empty() {
        return Ok(None);
    }
    write_layer(store, root, changes).map(Some)
}

/// One entry of a layer: added/changed, a directory made opaque, a deletion.
pub enum Change {
    Add(PathBuf),
    Opaque(PathBuf),
    Whiteout(PathBuf),
}

impl Change {
    fn sort_key(&self) -> (PathBuf, u8) {
        match self {
            Change::Add(p) => (p.clone(), 0),
            Change::Opaque(p) => (p.clone(), 1),
            Change::Whiteout(p) => (p.clone(), 0),
        }
    }
}

fn is_dir(mode: u32) -> bool {
    mode & 0o170000 == 0o040000
}

fn write_layer(store: &Store, root: &Path, changes: &[Change]) -> Result<Layer> {
    let tmp = store.tmp("layer");
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let gz = flate2::write::GzEncoder::new(HashWriter::new(file), flate2::Compression::fast());
    let mut tar = tar::Builder::new(HashWriter::new(gz));
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for c in changes {
        match c {
            Change::Add(rel) => append(&mut tar, root, rel, &mut links)?,
            Change::Opaque(rel) => marker(&mut tar, &rel.join(".wh..wh..opq"))?,
            Change::Whiteout(rel) => {
                let name = format!(
                    ".wh.{}",
                    rel.file_name().unwrap_or_default().to_string_lossy()
                );
                marker(&mut tar, &rel.with_file_name(name))?;
            }
        }
    }
    let fin = |e| io(&tmp)(e);
    let (gz, diff_hex, _) = tar.into_inner().map_err(fin)?.finish();
    let (file, hex, size) = gz.finish().map_err(fin)?.finish();
    file.sync_all().map_err(fin)?;
    store.adopt(&tmp, &hex)?;
    Ok(Layer {
        digest: format!("sha256:{hex}"),
        diff_id: format!("sha256:{diff_hex}"),
        size,
    })
}

/// A layer entry's mtime: with SOURCE_DATE_EPOCH set, none later than it (BuildKit's
/// rewrite-timestamp), so a step rerun later writes the same layer.
fn clamp_mtime(mtime: i64) -> u64 {
    let m = mtime.max(0) as u64;
    source_epoch().map_or(m, |e| m.min(e))
}

/// SOURCE_DATE_EPOCH in seconds, when set.
pub fn source_epoch() -> Option<u64> {
    static EPOCH: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| {
        // checked at every FROM (stage::source_date): a bad value never gets here
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    })
}

type TarOut = tar::Builder<HashWriter<flate2::write::GzEncoder<HashWriter<std::fs::File>>>>;

fn marker(tar: &mut TarOut, rel: &Path) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_mtime(0);
    tar.append_data(&mut h, rel, std::io::empty())
        .map_err(io(rel))
}

/// A PAX extended header carrying the next entry's xattrs (none: nothing written).
fn pax_xattrs(tar: &mut TarOut, rel: &Path, attrs: &[(String, Vec<u8>)]) -> Result<()> {
    if attrs.is_empty() {
        return Ok(());
    }
    let body = crate::xattrs::pax_records(attrs);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    // the name is informational (readers apply the record to the next entry); keep it short
    let mut name = format!("PaxHeaders/{}", rel.display());
    while name.len() > 99 {
        name.pop();
    }
    tar.append_data(&mut h, name, &body[..]).map_err(io(rel))
}

fn append(
    tar: &mut TarOut,
    root: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let p = root.join(rel);
    let md = std::fs::symlink_metadata(&p).map_err(io(&p))?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(clamp_mtime(md.mtime()));
    h.set_size(0);
    let ft = md.file_type();
    let e = io(&p);
    if ft.is_file() && md.nlink() > 1 {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            h.set_entry_type(tar::EntryType::Link);
            return tar.append_link(&mut h, rel, first).map_err(e);
        }
        links.insert((md.dev(), md.ino()), rel.to_path_buf());
    }
    if ft.is_file() || ft.is_dir() {
        pax_xattrs(tar, rel, &crate::xattrs::read(&p)?)?;
    }
    if ft.is_file() {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        let f = std::fs::File::open(&p).map_err(io(&p))?;
        tar.append_data(&mut h, rel, f).map_err(e)
    } else if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        tar.append_data(&mut h, rel, std::io::empty()).map_err(e)
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = std::fs::read_link(&p).map_err(io(&p))?;
        tar.append_link(&mut h, rel, target).map_err(e)
    } else {
        h.set_entry_type(if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            return Ok(()); // sockets have no tar form
        });
        let rdev = md.rdev();
        h.set_device_major(nix::sys::stat::major(rdev) as u32)
            .map_err(io(&p))?;
        h.set_device_minor(nix::sys::stat::minor(rdev) as u32)
            .map_err(io(&p))?;
        tar.append_data(&mut h, rel, std::io::empty()).map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn populate(r: &Path) {
        fs::create_dir_all(r.join("etc/app")).unwrap();
        fs::create_dir_all(r.join("var/cache/pip")).unwrap();
        fs::create_dir_all(r.join("opt/old")).unwrap();
        fs::write(r.join("etc/app/a.conf"), "a").unwrap();
        fs::write(r.join("etc/keep"), "k").unwrap();
        fs::write(r.join("var/cache/pip/wheel"), "w").unwrap();
        fs::write(r.join("opt/old/x"), "x").unwrap();
        fs::write(r.join("opt/old/y"), "y").unwrap();
    }

    fn listing(r: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        walk(r, Path::new(""), &mut |rel, md| {
            let data = if md.is_file() {
                fs::read(r.join(rel)).unwrap()
            } else {
                Vec::new()
            };
            out.push((rel.to_path_buf(), data));
        })
        .unwrap();
        out
    }

    #[test]
    fn diff_then_apply_reproduces_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        populate(&a);
        populate(&b);
        let before = snapshot(&a).unwrap();
        assert!(
            diff(&store, &a, &before).unwrap().is_none(),
            "no change, no layer"
        );
        fs::remove_dir_all(a.join("var/cache")).unwrap(); // whiteout of a tree
        fs::remove_file(a.join("etc/app/a.conf")).unwrap(); // whiteout of a file
        fs::write(a.join("etc/keep"), "changed").unwrap();
        // recreated: opaque (moved away first so the new dir cannot reuse the inode number)
        fs::rename(a.join("opt/old"), t.path().join("graveyard")).unwrap();
        fs::create_dir(a.join("opt/old")).unwrap();
        fs::write(a.join("opt/old/z"), "z").unwrap();
        fs::write(a.join("new"), "n").unwrap();
        let l = diff(&store, &a, &before).unwrap().unwrap();
        let names: Vec<String> = {
            let f = fs::File::open(store.blob(&l.digest)).unwrap();
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
            ar.entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect()
        };
        assert!(names.contains(&"var/.wh.cache".to_string()), "{names:?}");
        assert!(
            !names.iter().any(|n| n.contains(".wh.pip")),
            "only the top-most whiteout: {names:?}"
        );
        assert!(names.contains(&"etc/app/.wh.a.conf".to_string()));
        assert!(names.contains(&"opt/old/.wh..wh..opq".to_string()));
        crate::unpack::apply(&store.blob(&l.digest), &b).unwrap();
        assert_eq!(listing(&a), listing(&b));
        assert!(!b.join("opt/old/x").exists());
    }
}
