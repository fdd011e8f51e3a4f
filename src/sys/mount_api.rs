//! The new mount API (open_tree, mount_setattr, move_mount): idmapped mounts and recursive
//! mount attributes.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// `open_tree(2)` with OPEN_TREE_CLONE: a detached copy of the mount at `path` (with its
/// submounts when `recursive`), close-on-exec.
pub fn open_tree_clone(path: &std::ffi::CStr, recursive: bool) -> Result<OwnedFd, Errno> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call; integer flags.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    Errno::result(fd).map(|fd| {
        // SAFETY: a fresh fd returned by the kernel, owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
    })
}

/// `struct mount_attr` from `<linux/mount.h>` (MOUNT_ATTR_SIZE_VER0, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` with MOUNT_ATTR_IDMAP: idmap the detached mount `mnt` (and, when
/// `recursive`, its submounts) with the user namespace `userns`.
pub fn mount_setattr_idmap(
    mnt: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    setattr(mnt, recursive, &attr)
}

/// `mount_setattr(2)` of plain attributes (`MOUNT_ATTR_RDONLY`, …, the atime field) on the
/// mount `mnt` is the root of (an O_PATH fd of it), and with `recursive` on every submount.
/// Propagation is left alone.
pub fn mount_setattr(
    mnt: BorrowedFd<'_>,
    recursive: bool,
    attr_set: u64,
    attr_clr: u64,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    setattr(mnt, recursive, &attr)
}

fn setattr(mnt: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH targets `mnt` itself; `attr` is a
    // valid, initialised mount_attr of the size passed, alive for the whole call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `move_mount(2)` of the detached mount `mnt` onto the directory or file `target` (an fd,
/// e.g. O_PATH, so no path is looked up again).
pub fn move_mount_fd(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: empty NUL-terminated paths with the *_EMPTY_PATH flags name the two fds
    // themselves; all other arguments are integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    Errno::result(ret).map(drop)
}
