//! The propagation of the container's `/` (`linux.rootfsPropagation`), set as runc sets it:
//! on `/` before anything is mounted (default `rslave`: nothing mounted inside reaches the
//! host), and once more on the new root after pivot_root. With `rshared`, mounts made later
//! inside shared binds reach the host — Kubernetes' `mountPropagation: Bidirectional`.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Spec;

use super::mounts::propagation_flag;
use crate::error::{Error, Result};

fn requested(spec: &Spec) -> Option<MsFlags> {
    let name = spec.linux().as_ref()?.rootfs_propagation().as_deref()?;
    Some(propagation_flag(name).expect("validated in spec::validate"))
}

fn remount_root(flags: MsFlags, what: &'static str) -> Result<()> {
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(Error::sys_path(what, "/"))
}

/// Before the rootfs is bound: `/` gets the requested propagation, and the mount holding the
/// rootfs stops being shared — pivot_root refuses a shared parent, and the rootfs bind would
/// otherwise appear on the host.
pub fn prepare(spec: &Spec, rootfs: &Path) -> Result<()> {
    let flags = requested(spec).unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    remount_root(flags, "set propagation of")?;
    // After a recursive rslave/rprivate (the default) no mount is shared: no mountinfo to read
    // on the common path.
    if flags.contains(MsFlags::MS_REC) && !flags.contains(MsFlags::MS_SHARED) {
        return Ok(());
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    if let Some(parent) = shared_parent(&info, rootfs) {
        mount(
            None::<&str>,
            &parent,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(Error::sys_path(
            "make the rootfs' parent mount private",
            &parent,
        ))?;
    }
    Ok(())
}

/// After pivot_root: the new `/` (a bind of the rootfs, private so far) gets the requested
/// propagation too. A private one is already private.
pub fn finish(spec: &Spec) -> Result<()> {
    match requested(spec) {
        Some(flags) if !flags.contains(MsFlags::MS_PRIVATE) => {
            remount_root(flags, "set rootfs propagation of")
        }
        _ => Ok(()),
    }
}

/// The mount point of the mount that holds `path`, when that mount is shared (mountinfo's
/// optional field `shared:N`).
fn shared_parent(mountinfo: &str, path: &Path) -> Option<PathBuf> {
    let mut best: Option<(PathBuf, bool)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').take_while(|f| *f != "-").collect();
        let Some(point) = fields.get(4).map(|p| PathBuf::from(unescape(p))) else {
            continue;
        };
        let longer = best
            .as_ref()
            .is_none_or(|(b, _)| point.as_os_str().len() >= b.as_os_str().len());
        if path.starts_with(&point) && longer {
            let shared = fields[6..].iter().any(|f| f.starts_with("shared:"));
            best = Some((point, shared));
        }
    }
    best.filter(|(_, shared)| *shared).map(|(p, _)| p)
}

/// mountinfo writes space, tab, newline and backslash in paths as `\NNN` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rootfs_parent_mount_is_found() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /var/lib/docker/overlay2/x/merged rw shared:7 - overlay overlay rw
31 22 0:41 / /srv/my\\040bundles rw master:3 - tmpfs tmpfs rw
32 22 0:42 / /var/lib rw - tmpfs tmpfs rw";
        let merged = Path::new("/var/lib/docker/overlay2/x/merged");
        assert_eq!(shared_parent(info, merged).as_deref(), Some(merged));
        assert_eq!(
            shared_parent(info, Path::new("/home/b/rootfs")).as_deref(),
            Some(Path::new("/"))
        );
        // A slave parent (and a private one) is left alone.
        assert_eq!(
            shared_parent(info, Path::new("/srv/my bundles/rootfs")),
            None
        );
        assert_eq!(shared_parent(info, Path::new("/var/lib/other")), None);
    }
}
