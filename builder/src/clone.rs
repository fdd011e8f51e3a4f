//! Copying a tree with everything an image keeps: owners, modes, times, kept xattrs, device
//! nodes, symlinks, and hard links within the copy. Used to write a bundle's rootfs from
//! layer snapshots (a copy: the bundle may be changed by the containers it runs).

use crate::error::{io, Result};
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Copies hard links as links when both names are copied by the same `Cloner`.
#[derive(Default)]
pub struct Cloner {
    links: HashMap<(u64, u64), PathBuf>,
    /// A file with more than one name was copied.
    pub copied_links: bool,
}

impl Cloner {
    /// Copy `src` (any kind, a directory with its contents) to `dst`, which must not exist.
    pub fn copy(&mut self, src: &Path, dst: &Path) -> Result<()> {
        let md = std::fs::symlink_metadata(src).map_err(io(src))?;
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(dst).map_err(io(dst))?;
            let mut names: Vec<_> = std::fs::read_dir(src)
                .map_err(io(src))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(io(src))?;
            names.sort();
            for n in names {
                self.copy(&src.join(&n), &dst.join(&n))?;
            }
        } else if ft.is_file() {
            if md.nlink() > 1 {
                self.copied_links = true;
                if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                    return std::fs::hard_link(first, dst).map_err(io(dst));
                }
                self.links.insert((md.dev(), md.ino()), dst.to_path_buf());
            }
            std::fs::copy(src, dst).map_err(io(dst))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(src).map_err(io(src))?;
            std::os::unix::fs::symlink(target, dst).map_err(io(dst))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            use nix::sys::stat::{mknod, Mode, SFlag};
            let kind = SFlag::from_bits_truncate(md.mode() & SFlag::S_IFMT.bits());
            mknod(dst, kind, Mode::from_bits_truncate(md.mode()), md.rdev())
                .map_err(|e| io(dst)(e.into()))?;
        } else {
            return Ok(()); // a socket is not part of an image
        }
        set_meta(src, dst, &md)
    }
}

/// Give `dst` the owner, mode, kept xattrs and times of `src` (metadata `md`).
pub fn set_meta(src: &Path, dst: &Path, md: &std::fs::Metadata) -> Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid())).map_err(io(dst))?;
    if !md.file_type().is_symlink() {
        // after the chown, which clears set-id bits and file capabilities
        std::fs::set_permissions(dst, std::os::unix::fs::PermissionsExt::from_mode(md.mode()))
            .map_err(io(dst))?;
        crate::xattrs::replace(src, dst)?;
    }
    let t = |s: i64, ns: i64| TimeSpec::new(s, ns);
    utimensat(
        nix::fcntl::AT_FDCWD,
        dst,
        &t(md.atime(), md.atime_nsec()),
        &t(md.mtime(), md.mtime_nsec()),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io(dst)(e.into()))
}
