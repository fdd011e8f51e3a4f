//! Resolving paths *inside* a container's rootfs, never outside it.
//!
//! Two layers, on purpose:
//! 1. [`resolve`] walks the path component by component, following symlinks the way the
//!    container will see them (absolute links restart at the rootfs), and refuses — with a clear
//!    error — any `..` that would climb above the rootfs. It returns a clean, symlink-free path.
//! 2. Every actual open goes through `openat2(RESOLVE_IN_ROOT)` relative to a rootfs fd, and
//!    mounts target `/proc/self/fd/N` of that fd. Even if the rootfs is changed under us
//!    between 1 and 2 (a component swapped for a symlink, CVE-2021-30465), the kernel keeps the
//!    resolution inside the rootfs.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, Mode};

const MAX_SYMLINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("path {path:?} escapes the container's rootfs{}", via.as_ref().map(|v| format!(" through symlink {v}")).unwrap_or_default())]
    Escapes { path: String, via: Option<String> },
    #[error("path {0:?}: too many levels of symbolic links")]
    Loop(String),
    #[error("{op} {path}: {errno}")]
    Sys {
        op: &'static str,
        path: String,
        errno: Errno,
    },
}

type Result<T> = std::result::Result<T, ResolveError>;

/// Resolve `path` (absolute or relative; both are taken from the container's `/`) against the
/// host directory `root`. Missing components are fine (they will be created); the result never
/// contains `..` or a symlink that existed at the time of the walk.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf> {
    let mut todo: VecDeque<PathBuf> = components(Path::new(path));
    let mut done = PathBuf::new();
    let mut links = 0;
    let mut via: Option<String> = None;
    while let Some(comp) = todo.pop_front() {
        if comp.as_os_str() == ".." {
            if !done.pop() {
                return Err(ResolveError::Escapes {
                    path: path.into(),
                    via,
                });
            }
            continue;
        }
        let candidate = done.join(&comp);
        let host = root.join(&candidate);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ResolveError::Loop(path.into()));
                }
                let target = std::fs::read_link(&host).map_err(|e| ResolveError::Sys {
                    op: "readlink",
                    path: host.display().to_string(),
                    errno: io_errno(&e),
                })?;
                via = Some(format!("/{} -> {}", candidate.display(), target.display()));
                if target.is_absolute() {
                    done = PathBuf::new();
                }
                for c in components(&target).into_iter().rev() {
                    todo.push_front(c);
                }
            }
            _ => done = candidate,
        }
    }
    Ok(done)
}

/// The normal and `..` components of a path (`/` and `.` dropped).
fn components(path: &Path) -> VecDeque<PathBuf> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Open `rel` inside the rootfs fd, the kernel keeping every step inside it.
pub fn open_in_root(rootfd: impl AsFd, rel: &Path, flags: OFlag) -> Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(rootfd, rel, how(flags)).map_err(|errno| ResolveError::Sys {
        op: "open",
        path: rel.display().to_string(),
        errno,
    })
}

/// Create every missing directory of `rel` (clean, relative) and return an `O_PATH` fd of it.
pub fn mkdir_all_in_root(rootfd: impl AsFd, rel: &Path, mode: u32) -> Result<OwnedFd> {
    let rootfd = rootfd.as_fd();
    let mut dir = open_in_root(rootfd, Path::new("."), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let mut sofar = PathBuf::new();
    for comp in rel.iter() {
        sofar.push(comp);
        match mkdirat(dir.as_fd(), comp, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => {
                return Err(ResolveError::Sys {
                    op: "mkdir",
                    path: show(&sofar),
                    errno,
                })
            }
        }
        dir = open_in_root(rootfd, &sofar, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    }
    Ok(dir)
}

/// Make sure `rel` exists as a directory (or, with `file`, an empty regular file) and return
/// an `O_PATH` fd of it — the thing a mount will cover.
pub fn ensure_in_root(rootfd: impl AsFd, rel: &Path, file: bool) -> Result<OwnedFd> {
    let rootfd = rootfd.as_fd();
    if !file {
        return mkdir_all_in_root(rootfd, rel, 0o755);
    }
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().unwrap_or(OsStr::new("."));
    let dir = mkdir_all_in_root(rootfd, parent, 0o755)?;
    match nix::fcntl::openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(errno) => {
            return Err(ResolveError::Sys {
                op: "create",
                path: show(rel),
                errno,
            })
        }
    }
    open_in_root(rootfd, rel, OFlag::O_PATH)
}

/// The magic-link path through which a mount targets exactly the inode an fd refers to.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub fn show(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// The last component, as bytes, for messages and mknodat.
pub fn leaf(rel: &Path) -> &[u8] {
    rel.file_name().map(|n| n.as_bytes()).unwrap_or(b".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn follows_links_inside_and_refuses_escapes() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("/usr", r.join("abs")).unwrap();
        symlink("../../../../tmp", r.join("evil")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        assert_eq!(resolve(r, "/lib/x").unwrap(), PathBuf::from("usr/lib/x"));
        assert_eq!(resolve(r, "abs/lib").unwrap(), PathBuf::from("usr/lib"));
        assert_eq!(
            resolve(r, "/usr/../new/./d").unwrap(),
            PathBuf::from("new/d")
        );
        assert_eq!(resolve(r, "/").unwrap(), PathBuf::new());
        assert!(matches!(
            resolve(r, "/../x"),
            Err(ResolveError::Escapes { .. })
        ));
        assert!(matches!(
            resolve(r, "/evil/x"),
            Err(ResolveError::Escapes { via: Some(_), .. })
        ));
        assert!(matches!(resolve(r, "/loop"), Err(ResolveError::Loop(_))));
    }

    #[test]
    fn creates_inside_root() {
        let t = tempfile::tempdir().unwrap();
        let root =
            nix::fcntl::open(t.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        ensure_in_root(&root, Path::new("a/b/c"), false).unwrap();
        ensure_in_root(&root, Path::new("a/f"), true).unwrap();
        assert!(t.path().join("a/b/c").is_dir());
        assert!(t.path().join("a/f").is_file());
        // An absolute symlink planted after the walk still resolves inside the root.
        symlink("/a", t.path().join("swap")).unwrap();
        ensure_in_root(&root, Path::new("swap/new"), false).unwrap();
        assert!(t.path().join("a/new").is_dir());
    }
}
