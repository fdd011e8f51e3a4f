//! The built-in hook's work in the container's root, run by the init after the mounts and
//! before pivot_root: the developer symlinks (`libcuda.so`), the driver's `params` with
//! `ModifyDeviceFiles: 0` in the tmpfs over `/proc/driver/nvidia`, and the container's ld cache.
//!
//! ldconfig: `@PATH` is the host's binary, anything else a path in the container's root (with
//! `PATH.real`, Ubuntu's name, tried first). Either way it runs as `ldconfig -r ROOTFS DIRS…`
//! (glibc's ldconfig is a static binary on the distributions that ship one), under resource
//! limits and a timeout; a rootfs with no ldconfig of its own uses the host's.
//! `builtin` instead makes the soname links and rewrites the container's cache in-process
//! (no process spawned: the fast path, see bench/gpu.sh).

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{mount, MsFlags};

use crate::hooks::Hook;
use crate::rootfs::resolve;

const PROC_DRIVER: &str = "/proc/driver/nvidia";
const LDCONFIG_TIMEOUT_MS: u64 = 30_000;
/// The `ldconfig` setting that writes the cache in-process.
pub const BUILTIN: &str = "builtin";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RootEdits {
    /// (link, target) pairs, link paths as seen in the container.
    pub symlinks: Vec<(String, String)>,
    /// Container directories holding the driver's libraries.
    pub lib_dirs: Vec<String>,
    pub ldconfig: String,
    /// Soname links (path in the container, cache fields) of the driver's libraries, for
    /// `ldconfig = "builtin"`.
    /// Each with the file name of the library it names.
    pub sonames: Vec<(super::ldsocache::Entry, String)>,
    /// New content of `/proc/driver/nvidia/params` (when the host has a loaded driver).
    pub proc_params: Option<String>,
}

/// The host's driver parameters with `ModifyDeviceFiles: 0`, if a driver is loaded.
pub fn proc_params() -> Option<String> {
    let text = std::fs::read_to_string(format!("{PROC_DRIVER}/params")).ok()?;
    let mut out: String = text
        .lines()
        .filter(|l| !l.starts_with("ModifyDeviceFiles:"))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str("ModifyDeviceFiles: 0\n");
    Some(out)
}

/// [`RootEdits`] bound to a rootfs: what the init runs as a built-in createContainer hook.
pub struct ContainerHook<'a> {
    pub rootfs: &'a Path,
    pub edits: &'a RootEdits,
}

impl Hook for ContainerHook<'_> {
    fn run(&self, _state: &[u8]) -> Result<(), String> {
        run(self.rootfs, self.edits).map_err(|e| format!("nvidia: {e}"))
    }
}

pub fn run(rootfs: &Path, edits: &RootEdits) -> Result<(), String> {
    for (link, target) in &edits.symlinks {
        let rel = resolve::resolve(rootfs, link).map_err(|e| e.to_string())?;
        let host = rootfs.join(&rel);
        if host.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(target, &host)
                .map_err(|e| format!("symlink {link} -> {target}: {e}"))?;
        }
    }
    if let Some(params) = &edits.proc_params {
        write_params(rootfs, params)?;
    }
    if edits.ldconfig == BUILTIN {
        if !edits.sonames.is_empty() {
            builtin_cache(rootfs, edits)?;
        }
    } else if !edits.lib_dirs.is_empty() {
        run_ldconfig(rootfs, edits)?;
    }
    Ok(())
}

/// `ldconfig = "builtin"`: what ldconfig would do for the driver's libraries, in-process — the
/// soname links (an existing symlink is replaced, as ldconfig does) and the container's cache
/// rewritten with their entries added (ldsocache_write.rs), via a temp file and a rename.
fn builtin_cache(rootfs: &Path, edits: &RootEdits) -> Result<(), String> {
    for (e, file) in &edits.sonames {
        let rel = resolve::resolve(rootfs, &e.path).map_err(|e| e.to_string())?;
        let host = rootfs.join(&rel);
        match host.symlink_metadata() {
            Ok(md) if !md.file_type().is_symlink() => continue,
            Ok(_) => std::fs::remove_file(&host).map_err(|err| format!("{}: {err}", e.path))?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(file, &host)
            .map_err(|err| format!("symlink {} -> {file}: {err}", e.path))?;
    }
    let etc = resolve::resolve(rootfs, "/etc").map_err(|e| e.to_string())?;
    let rootfd = open_root(rootfs)?;
    resolve::mkdir_all_in_root(rootfd.as_fd(), &etc, 0o755).map_err(|e| e.to_string())?;
    let cache = rootfs.join(&etc).join("ld.so.cache");
    let existing = match std::fs::read(&cache) {
        Ok(bytes) => super::ldsocache::parse(&bytes)
            .map_err(|e| format!("/etc/ld.so.cache of the container: {e}"))?,
        Err(_) => Vec::new(),
    };
    let added: Vec<_> = edits.sonames.iter().map(|(e, _)| e.clone()).collect();
    let bytes = super::ldsocache_write::write(&existing, &added);
    let tmp = rootfs.join(&etc).join("ld.so.cache~");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| format!("/etc/ld.so.cache~: {e}"))?;
    use std::io::Write;
    f.write_all(&bytes)
        .map_err(|e| format!("/etc/ld.so.cache~: {e}"))?;
    std::fs::rename(&tmp, &cache).map_err(|e| format!("/etc/ld.so.cache: {e}"))
}

fn open_root(rootfs: &Path) -> Result<std::os::fd::OwnedFd, String> {
    nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", rootfs.display()))
}

fn write_params(rootfs: &Path, params: &str) -> Result<(), String> {
    let rel = resolve::resolve(rootfs, PROC_DRIVER).map_err(|e| e.to_string())?;
    let dir = rootfs.join(&rel);
    std::fs::write(dir.join("params"), params)
        .map_err(|e| format!("write {PROC_DRIVER}/params: {e}"))?;
    mount(
        None::<&str>,
        &dir,
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("remount {PROC_DRIVER} read-only: {e}"))
}

/// The ldconfig to run: the host's for `@PATH`, else the container's `PATH.real` or `PATH`,
/// else the host's default.
pub fn ldconfig_binary(rootfs: &Path, configured: &str) -> PathBuf {
    if let Some(host) = configured.strip_prefix('@') {
        return host.into();
    }
    for candidate in [format!("{configured}.real"), configured.to_string()] {
        if let Ok(rel) = resolve::resolve(rootfs, &candidate) {
            let p = rootfs.join(rel);
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("/sbin/ldconfig")
}

fn run_ldconfig(rootfs: &Path, edits: &RootEdits) -> Result<(), String> {
    // ldconfig writes ROOTFS/etc/ld.so.cache: a minimal image may have no /etc.
    let etc = resolve::resolve(rootfs, "/etc").map_err(|e| e.to_string())?;
    let rootfd = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", rootfs.display()))?;
    resolve::mkdir_all_in_root(rootfd.as_fd(), &etc, 0o755).map_err(|e| e.to_string())?;
    let bin = ldconfig_binary(rootfs, &edits.ldconfig);
    let out =
        nix::sys::memfd::memfd_create(c"gpurun-ldconfig", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map(std::fs::File::from)
            .map_err(|e| format!("memfd: {e}"))?;
    let mut child = Command::new(&bin)
        .arg("-r")
        .arg(rootfs)
        .args(&edits.lib_dirs)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out.try_clone().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("ldconfig {}: {e}", bin.display()))?;
    // Bounded: 10 s of CPU, 1 GiB of address space, 64 MiB per file.
    let pid = child.id() as i32;
    for (res, limit) in [
        (libc::RLIMIT_CPU, 10),
        (libc::RLIMIT_AS, 1 << 30),
        (libc::RLIMIT_FSIZE, 64 << 20),
    ] {
        let _ = crate::sys::set_rlimit_of(pid, res, limit, limit);
    }
    let pidfd =
        crate::sys::pidfd_open(nix::unistd::Pid::from_raw(pid)).map_err(|e| e.to_string())?;
    if !crate::hooks::wait_with_timeout(pidfd.as_fd(), Some(LDCONFIG_TIMEOUT_MS)) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("ldconfig {} timed out", bin.display()));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    let mut msg = String::new();
    let mut out = out;
    use std::io::Seek;
    let _ = out.rewind().and_then(|_| out.read_to_string(&mut msg));
    Err(format!(
        "ldconfig {} -r {}: {status}: {}",
        bin.display(),
        rootfs.display(),
        msg.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldconfig_choice() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            ldconfig_binary(t.path(), "@/sbin/ldconfig"),
            Path::new("/sbin/ldconfig")
        );
        // No ldconfig in the image: the host's.
        assert_eq!(
            ldconfig_binary(t.path(), "/sbin/ldconfig"),
            Path::new("/sbin/ldconfig")
        );
        std::fs::create_dir(t.path().join("sbin")).unwrap();
        std::fs::write(t.path().join("sbin/ldconfig"), "").unwrap();
        assert_eq!(
            ldconfig_binary(t.path(), "/sbin/ldconfig"),
            t.path().join("sbin/ldconfig")
        );
        std::fs::write(t.path().join("sbin/ldconfig.real"), "").unwrap();
        assert_eq!(
            ldconfig_binary(t.path(), "/sbin/ldconfig"),
            t.path().join("sbin/ldconfig.real")
        );
    }
}
