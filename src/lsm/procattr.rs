//! Writing this thread's LSM attributes (`/proc/thread-self/attr/…`).
//!
//! Inside the container `/proc` is the container's, and a container that may mount can put
//! anything there: a fake `attr/exec` (the write "succeeds", the process runs unconfined:
//! CVE-2019-16884), or a symlink to another procfs file that acts on the string written
//! (runc's CVE-2025-52881). So the `attr` directory is opened through the runtime's own
//! procfs before the process enters the container's mount namespace ([`AttrDir::open`]), and
//! every file is opened beneath it without following any link or leaving that mount. The
//! kernel lets a task write only its own attributes, and only with the credentials it opened
//! the file with: each file is opened and written back to back.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

use super::LsmError;

const DIR: &str = "/proc/thread-self/attr";

/// This thread's `attr` directory on the runtime's procfs.
pub struct AttrDir(OwnedFd);

impl AttrDir {
    /// Open it while `/proc` is still the runtime's (before setns/pivot_root).
    pub fn open() -> Result<AttrDir, LsmError> {
        let fd = open(
            DIR,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| fail("open", DIR, errno))?;
        check_procfs(&fd, DIR)?;
        Ok(AttrDir(fd))
    }

    /// Whether `attr` exists (the AppArmor-specific directory is missing on kernels before
    /// 5.8 and where AppArmor is not built in).
    pub fn has(&self, attr: &str) -> bool {
        self.open_beneath(attr, OFlag::O_PATH).is_ok()
    }

    /// Write `value` to `attr` in one `write`.
    pub fn write(&self, attr: &str, value: &[u8]) -> Result<(), LsmError> {
        let path = format!("{DIR}/{attr}");
        let fd = self
            .open_beneath(attr, OFlag::O_WRONLY)
            .map_err(|errno| fail("open", &path, errno))?;
        check_procfs(&fd, &path)?;
        loop {
            match nix::unistd::write(&fd, value) {
                Err(Errno::EINTR) => continue,
                Ok(_) => return Ok(()),
                Err(errno) => return Err(fail("write", &path, errno)),
            }
        }
    }

    fn open_beneath(&self, attr: &str, flags: OFlag) -> nix::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
        openat2(&self.0, attr, how)
    }
}

fn check_procfs(fd: &OwnedFd, path: &str) -> Result<(), LsmError> {
    match fstatfs(fd.as_fd()) {
        Ok(fs) if fs.filesystem_type() == PROC_SUPER_MAGIC => Ok(()),
        Ok(_) => Err(LsmError::Invalid {
            what: "lsm attribute file",
            value: path.to_string(),
            why: "is not on procfs (something is mounted over /proc)",
        }),
        Err(errno) => Err(fail("fstatfs", path, errno)),
    }
}

fn fail(op: &'static str, path: &str, errno: Errno) -> LsmError {
    LsmError::Attr {
        op,
        path: path.to_string(),
        errno,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_dir_resolves_only_beneath_itself() {
        let dir = AttrDir::open().unwrap();
        assert!(dir.has("current"));
        assert!(!dir.has("../status"), "escaped the attr directory");
        assert!(!dir.has("/proc/self/status"));
    }
}
