//! Persistent container state: `<root>/<id>/state.json` plus the `exec.fifo` whose presence
//! means "created, not yet started".
//!
//! `state.json` is written atomically (temp file + rename). It keeps the init's start time so a
//! recycled pid is never mistaken for the container (see [`crate::process::pidinfo`]).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[allow(deprecated)]
use nix::fcntl::{flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::process::pidinfo;

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What gpurun remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/PID/stat), to detect pid reuse.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Whether the container has its own pid namespace (then killing the init kills all).
    pub own_pid_ns: bool,
    /// The container's cgroup directories (removed by `delete`).
    #[serde(default)]
    pub cgroup: Cgroup,
    /// The spec's hooks, kept for poststart (`start`) and poststop (`delete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// `linux.seccomp`, kept for `exec` (the bundle's config.json may change after create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<crate::seccomp::Profile>,
    /// The container's `process` as at create (GPU edits included): the base of an `exec`
    /// (runc keeps its config in its state too; config.json may change after create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<serde_json::Value>,
    /// `linux.personality` and `linux.memoryPolicy`, kept for `exec` (runc applies them to
    /// exec'd processes as well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<oci_spec::runtime::LinuxMemoryPolicy>,
    /// The resctrl group for `linux.intelRdt`, whether gpurun made it (only then does
    /// `delete` remove it), and the container's MON group (`delete` always removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resctrl: Option<crate::intelrdt::Group>,
    /// `create --no-new-keyring`: `exec`'d processes then keep their own session keyring too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_new_keyring: bool,
}

/// The OCI state as printed by `state` and `list --format json` (runc's field set).
#[derive(Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
    pub owner: &'static str,
}

impl State {
    /// The OCI state as JSON, what hooks get on stdin.
    pub fn oci_json(&self, status: Status) -> Vec<u8> {
        serde_json::to_vec(&self.oci(status)).expect("state serialises")
    }

    pub fn oci(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            // runc reports pid 0 once the init is gone
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.annotations,
            owner: "",
        }
    }
}

/// Container ids become directory names: allow only runc's safe alphabet.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::EmptyId);
    }
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_+.-".contains(c));
    if first_ok && rest_ok && !id.contains("..") && id.len() <= 1024 {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// The state directory of one container, locked for the lifetime of this value so operations
/// on one id are serialised.
pub struct ContainerDir {
    pub path: PathBuf,
    pub id: String,
    // Held only for its flock; dropped (unlocked) with the value.
    lock: File,
}

impl ContainerDir {
    /// Create the directory for a new container. `mkdir` is atomic, so of two concurrent
    /// creates of one id exactly one wins.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| Error::io("mkdir", root, e))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.into()))
            }
            Err(e) => return Err(Error::io("mkdir", &path, e)),
        }
        match Self::lock(path.clone(), id) {
            Ok(dir) => Ok(dir),
            Err(e) => {
                let _ = fs::remove_dir_all(&path);
                Err(e)
            }
        }
    }

    /// Open and lock the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        let path = root.join(id);
        let dir = Self::lock(path, id)?;
        if !dir.path.join(STATE_FILE).exists() {
            // A create still in progress, or one that failed and is being cleaned up.
            return Err(Error::NotExist(id.into()));
        }
        Ok(dir)
    }

    fn lock(path: PathBuf, id: &str) -> Result<ContainerDir> {
        let file = match File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist(id.into()))
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let lock = flock_exclusive(file).map_err(Error::sys_path("flock", &path))?;
        Ok(ContainerDir {
            path,
            id: id.to_string(),
            lock,
        })
    }

    pub fn lock_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.lock.as_fd()
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<State> {
        let path = self.path.join(STATE_FILE);
        let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::State { path, source })
    }

    /// Write state.json atomically: a reader sees the old or the new file, never half of one.
    pub fn save(&self, state: &State) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let dst = self.path.join(STATE_FILE);
        let bytes = serde_json::to_vec(state).map_err(|source| Error::State {
            path: dst.clone(),
            source,
        })?;
        let mut f = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(&bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, &dst).map_err(|e| Error::io("rename", &dst, e))
    }

    /// The live status: the init is alive (same pid *and* start time) and either still waits on
    /// the exec fifo (created) or has exec'd (running).
    pub fn status(&self, state: &State) -> Status {
        if !pidinfo::is_alive(state.pid, state.pid_start_time) {
            Status::Stopped
        } else if self.fifo_path().exists() {
            Status::Created
        } else if state.cgroup.is_frozen() {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// Remove the directory (the lock dies with `self`). state.json goes last but for the
    /// directory itself: a removal cut short leaves a state the next `delete` finishes from.
    /// MPS leases recorded there are given back first.
    pub fn remove(self) -> Result<()> {
        crate::gpu::mps::release_dir(&self.path);
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        use std::os::unix::fs::MetadataExt;
        let dev = fs::metadata(&self.path).map(|m| m.dev()).ok();
        let entries = fs::read_dir(&self.path).into_iter().flatten().flatten();
        for entry in entries.filter(|e| e.file_name() != STATE_FILE) {
            let path = entry.path();
            // never into a mount (a restore's rootfs bind a killed gpurun left): detach it
            let mounted = fs::metadata(&path).is_ok_and(|m| Some(m.dev()) != dev);
            let removed = match entry.file_type().is_ok_and(|t| t.is_dir()) {
                true if mounted => {
                    let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
                    fs::remove_dir(&path)
                }
                true => fs::remove_dir_all(&path),
                false => fs::remove_file(&path),
            };
            gone(removed).map_err(|e| Error::io("remove", &path, e))?;
        }
        let state = self.path.join(STATE_FILE);
        gone(fs::remove_file(&state)).map_err(|e| Error::io("remove", &state, e))?;
        gone(fs::remove_dir(&self.path)).map_err(|e| Error::io("remove", &self.path, e))
    }
}

fn flock_exclusive(file: File) -> nix::Result<File> {
    #[allow(deprecated)] // nix's Flock wrapper would move the File; the plain call is enough here
    flock(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        FlockArg::LockExclusive,
    )?;
    Ok(file)
}

/// Ids of all containers under `root` (those whose state is complete).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read_dir", root, e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Write a pid file atomically (engines poll for it and must never read a partial number).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).map_err(|e| Error::io("resolve", path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, pid.to_string()).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1", "A.b_c+d", "0"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", "../x", "a/b", ".x", "-x", "a..b", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn sample(id: &str) -> State {
        State {
            oci_version: "1.0.2".into(),
            id: id.into(),
            pid: std::process::id() as i32,
            pid_start_time: pidinfo::start_time(std::process::id() as i32).unwrap(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            annotations: HashMap::new(),
            own_pid_ns: true,
            cgroup: Cgroup::default(),
            hooks: None,
            seccomp: None,
            process: None,
            personality: None,
            memory_policy: None,
            resctrl: None,
            no_new_keyring: false,
        }
    }

    #[test]
    fn create_save_load_status() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ContainerDir::create(tmp.path(), "c1").unwrap();
        let st = sample("c1");
        dir.save(&st).unwrap();
        assert_eq!(dir.load().unwrap().pid, st.pid);
        assert_eq!(dir.status(&st), Status::Running);
        nix::unistd::mkfifo(
            &dir.fifo_path(),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert_eq!(dir.status(&st), Status::Created);
        let mut recycled = st.clone();
        recycled.pid_start_time += 1;
        assert_eq!(dir.status(&recycled), Status::Stopped);
        drop(dir);
        assert!(matches!(
            ContainerDir::create(tmp.path(), "c1"),
            Err(Error::Exists(_))
        ));
        let dir = ContainerDir::open(tmp.path(), "c1").unwrap();
        dir.remove().unwrap();
        assert!(matches!(
            ContainerDir::open(tmp.path(), "c1"),
            Err(Error::NotExist(_))
        ));
        assert_eq!(list_ids(tmp.path()).unwrap(), Vec::<String>::new());
    }
}
