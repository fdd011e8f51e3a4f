//! `/dev` inside the container: the default device nodes, `linux.devices`, and the standard
//! symlinks. Nodes are made with mknodat relative to a directory fd resolved inside the rootfs,
//! so a rootfs that pre-plants symlinks under /dev cannot redirect them to the host.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fchmodat, fstatat, makedev, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::resolve::{mkdir_all_in_root, resolve, show};
use crate::error::{Error, Result};

/// A device node to create: path inside the container, kind, numbers, mode and owner.
pub struct Node {
    pub path: String,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (runtime-spec "Default Devices").
pub fn default_nodes() -> Vec<Node> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Node {
        path: format!("/dev/{name}"),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub fn spec_node(d: &LinuxDevice) -> Node {
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    Node {
        path: d.path().to_string_lossy().into_owned(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

/// In a user namespace mknod is not allowed: bind the host's node at the same path over an
/// empty file instead (runc does the same).
pub fn bind_node(rootfs: &Path, rootfd: BorrowedFd<'_>, node: &Node) -> Result<()> {
    let rel = resolve(rootfs, &node.path)?;
    let target = super::resolve::ensure_in_root(rootfd, &rel, true)?;
    mount(
        Some(node.path.as_str()),
        &super::resolve::fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|errno| Error::SysPath {
        syscall: "bind device",
        path: node.path.clone().into(),
        errno,
    })
}

/// Create `node` inside the rootfs. An existing node of the same kind and numbers is kept;
/// anything else at that path (a file, a planted symlink) is replaced.
pub fn create_node(rootfs: &Path, rootfd: BorrowedFd<'_>, node: &Node) -> Result<()> {
    let rel = resolve(rootfs, &node.path)?;
    let name = rel
        .file_name()
        .ok_or_else(|| Error::Unsupported(format!("invalid device path {}", node.path)))?;
    // An O_PATH directory fd serves as dirfd for every *at call below.
    let dir = mkdir_all_in_root(rootfd, rel.parent().unwrap_or(Path::new("")), 0o755)?;
    let shown = show(&rel);
    let fail = |syscall| {
        let path = shown.clone();
        move |errno| Error::SysPath {
            syscall,
            path: path.into(),
            errno,
        }
    };
    let dev = makedev(node.major, node.minor);
    match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if (st.st_mode & SFlag::S_IFMT.bits()) == node.kind.bits() && st.st_rdev == dev => {}
        Ok(st) if (st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR.bits() => {
            return Err(Error::Unsupported(format!(
                "cannot create device {}: a directory is in the way",
                node.path
            )));
        }
        Ok(_) => {
            unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir).map_err(fail("unlink"))?;
            mknodat(
                dir.as_fd(),
                name,
                node.kind,
                Mode::from_bits_truncate(node.mode),
                dev,
            )
            .map_err(fail("mknod"))?;
        }
        Err(Errno::ENOENT) => mknodat(
            dir.as_fd(),
            name,
            node.kind,
            Mode::from_bits_truncate(node.mode),
            dev,
        )
        .map_err(fail("mknod"))?,
        Err(errno) => return Err(fail("stat")(errno)),
    }
    // mknod honours the umask: set the exact mode, and the owner, explicitly.
    // (The node was made or checked just above, by us, before any container process exists.)
    fchmodat(
        dir.as_fd(),
        name,
        Mode::from_bits_truncate(node.mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(fail("chmod"))?;
    fchownat(
        dir.as_fd(),
        name,
        Some(Uid::from_raw(node.uid)),
        Some(Gid::from_raw(node.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(fail("chown"))?;
    Ok(())
}

/// The standard /dev symlinks (fd, stdin, stdout, stderr, ptmx → the container's devpts).
pub fn create_symlinks(rootfs: &Path, rootfd: BorrowedFd<'_>) -> Result<()> {
    let rel = resolve(rootfs, "/dev")?;
    let dir = mkdir_all_in_root(rootfd, &rel, 0o755)?;
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ];
    for (name, target) in links {
        // Replace whatever is there (an image's own /dev/ptmx node, a planted link).
        match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) | Err(Errno::EISDIR) => {}
            Err(errno) => {
                return Err(Error::SysPath {
                    syscall: "unlink",
                    path: format!("/dev/{name}").into(),
                    errno,
                })
            }
        }
        match symlinkat(target, dir.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => {
                return Err(Error::SysPath {
                    syscall: "symlink",
                    path: format!("/dev/{name}").into(),
                    errno,
                })
            }
        }
    }
    // /dev/shm must exist even when the spec does not mount it.
    let shm = resolve(rootfs, "/dev/shm")?;
    mkdir_all_in_root(rootfd, &shm, 0o1777)?;
    Ok(())
}
