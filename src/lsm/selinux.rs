//! SELinux: `process.selinuxLabel` is the context of the process' next `execve` and of the
//! session keyring the init creates; `linux.mountLabel` labels the filesystems gpurun mounts
//! (as go-selinux's `label` package does it for runc).

use std::path::Path;

use nix::sys::statfs::{statfs, FsType};

use super::procattr::AttrDir;
use super::LsmError;

/// `SELINUX_MAGIC` from `<linux/magic.h>`.
const SELINUX_MAGIC: FsType = FsType(0xf97c_ff8c);

/// go-selinux's `GetEnabled`: selinuxfs is mounted and a policy is loaded (before one is,
/// every process is `kernel`).
pub fn is_enabled() -> bool {
    selinuxfs_mounted()
        && std::fs::read("/proc/thread-self/attr/current").is_ok_and(|c| {
            let c = c.strip_suffix(b"\0").unwrap_or(&c);
            !c.is_empty() && c != b"kernel"
        })
}

fn selinuxfs_mounted() -> bool {
    let at_default =
        statfs("/sys/fs/selinux").is_ok_and(|fs| fs.filesystem_type() == SELINUX_MAGIC);
    at_default
        || std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
            m.lines().any(|l| {
                l.split(" - ")
                    .nth(1)
                    .is_some_and(|t| t.starts_with("selinuxfs "))
            })
        })
}

/// `user:role:type[:level]`, in one piece: a label is written to the kernel as it is.
pub fn check_label(what: &'static str, label: &str) -> Result<(), LsmError> {
    // (Commas are fine: an MLS range has them, and the mount option is quoted.)
    let why = if label.contains(['\0', '\n', '"']) {
        "contains a NUL, newline or quote"
    } else if label.split(':').count() < 3 {
        "is not a context (user:role:type[:level])"
    } else {
        return Ok(());
    };
    Err(LsmError::Invalid {
        what,
        value: label.to_string(),
        why,
    })
}

/// The context of this thread's next `execve`.
pub fn set_exec_label(attrs: &AttrDir, label: &str) -> Result<(), LsmError> {
    attrs.write("exec", label.as_bytes())
}

/// Run `f` (which creates the session keyring) with `label` as the context of new keys,
/// then go back to the default. runc does the same around its keyring join.
pub fn with_key_label<T, E: From<LsmError>>(
    attrs: &AttrDir,
    label: &str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    attrs.write("keycreate", label.as_bytes())?;
    let result = f();
    attrs.write("keycreate", b"")?;
    result
}

/// Mount data with the `context=` option for `label` added (go-selinux's
/// `FormatMountLabel`): every file of the new mount has that context.
pub fn with_context(data: Option<&str>, label: Option<&str>) -> Option<String> {
    match (data.filter(|d| !d.is_empty()), label) {
        (d, None) => d.map(String::from),
        (None, Some(l)) => Some(format!("context=\"{l}\"")),
        (Some(d), Some(l)) => Some(format!("{d},context=\"{l}\"")),
    }
}

/// Label one file (a mount's root whose filesystem takes no `context=`, such as mqueue).
pub fn set_file_label(path: &Path, label: &str) -> Result<(), LsmError> {
    crate::sys::set_xattr(path, "security.selinux", label.as_bytes()).map_err(|errno| {
        LsmError::Attr {
            op: "setxattr security.selinux",
            path: path.display().to_string(),
            errno,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_data() {
        let l = Some("system_u:object_r:container_file_t:s0:c1,c2");
        assert_eq!(with_context(None, None), None);
        assert_eq!(
            with_context(Some("mode=755"), None).as_deref(),
            Some("mode=755")
        );
        assert_eq!(
            with_context(Some("mode=755"), l).as_deref(),
            Some("mode=755,context=\"system_u:object_r:container_file_t:s0:c1,c2\"")
        );
        assert_eq!(
            with_context(Some(""), Some("u:r:t")).as_deref(),
            Some("context=\"u:r:t\"")
        );
    }

    #[test]
    fn labels() {
        assert!(check_label("l", "system_u:system_r:container_t:s0").is_ok());
        assert!(check_label("l", "u:r:t").is_ok());
        assert!(check_label("l", "container_t").is_err());
        assert!(check_label("l", "u:r:t\",x").is_err());
        assert!(check_label("l", "u:r:t:s0:c1,c2").is_ok());
    }
}
