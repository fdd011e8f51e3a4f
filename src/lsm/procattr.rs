//! Writing this thread's LSM attributes under `/proc/thread-self/attr/`.
//!
//! Inside the container `/proc` is the container's: an `exec`'d process runs where a
//! privileged container could have mounted something else over it, and a write into a fake
//! `attr/exec` would leave the process unconfined (CVE-2019-16884). So the file opened must
//! be on a real procfs. The kernel only lets a task write its own attributes, and only with
//! the credentials it opened the file with: open and write happen back to back.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

use super::LsmError;

/// Write `value` to `/proc/thread-self/attr/<attr>` in one `write`.
pub fn write(attr: &str, value: &[u8]) -> Result<(), LsmError> {
    let path = format!("/proc/thread-self/attr/{attr}");
    let fail = |op, errno| LsmError::Attr {
        op,
        path: path.clone(),
        errno,
    };
    let fd = open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| fail("open", e))?;
    match fstatfs(fd.as_fd()) {
        Ok(fs) if fs.filesystem_type() == PROC_SUPER_MAGIC => {}
        Ok(_) => return Err(not_procfs(&path)),
        Err(e) => return Err(fail("fstatfs", e)),
    }
    loop {
        match nix::unistd::write(&fd, value) {
            Err(Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(fail("write", e)),
        }
    }
}

/// Whether `/proc/thread-self/attr/<attr>` exists (the AppArmor-specific directory is
/// missing on kernels before 5.8 and where AppArmor is not built in).
pub fn exists(attr: &str) -> bool {
    std::path::Path::new("/proc/thread-self/attr")
        .join(attr)
        .exists()
}

fn not_procfs(path: &str) -> LsmError {
    LsmError::Invalid {
        what: "lsm attribute file",
        value: path.to_string(),
        why: "is not on procfs (something is mounted over the container's /proc)",
    }
}
