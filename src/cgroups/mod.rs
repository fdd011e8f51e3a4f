//! cgroups: where a container's cgroup lives and what is written into it.
//!
//! One [`Cgroup`] value covers every hierarchy the host mounts: on a pure cgroup v2 host one
//! directory; on v1 and hybrid hosts (v1 controllers plus a cgroup2 at `unified`) one directory
//! per mounted hierarchy, like runc's cgroupfs driver. Limits go to the hierarchy that owns the
//! controller ([`v1`] or [`v2`] writers); device rules go through [`devices`] (v1 files or an
//! eBPF program on v2). This module imports nothing from the container or process layers.

mod create;
pub mod devices;
pub mod ebpf;
pub mod fs;
pub mod path;
pub mod resources;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use fs::CgroupError;

pub type Result<T> = std::result::Result<T, CgroupError>;

pub const ROOT: &str = "/sys/fs/cgroup";

/// One cgroup hierarchy mounted on the host below `/sys/fs/cgroup`.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Directory name under /sys/fs/cgroup (`memory`, `cpu,cpuacct`, `unified`, or "" for a
    /// pure v2 host where the cgroup2 mount is /sys/fs/cgroup itself).
    pub name: String,
    pub v2: bool,
    /// v1 controllers (and `name=…` for named hierarchies); empty for cgroup2.
    pub controllers: Vec<String>,
    /// Super options to mount it again inside a container (e.g. `cpu,cpuacct`, `none,name=systemd`).
    pub mount_data: String,
}

impl Hierarchy {
    pub fn mountpoint(&self) -> PathBuf {
        Path::new(ROOT).join(&self.name)
    }
}

/// The hierarchies mounted on this host, from /proc/self/mountinfo — read once per process
/// (the init, forked from `create`, inherits the parsed list).
pub fn hierarchies() -> &'static [Hierarchy] {
    static HIERARCHIES: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    HIERARCHIES.get_or_init(|| {
        let info = read_proc("/proc/self/mountinfo");
        info.lines().filter_map(parse_mountinfo_line).collect()
    })
}

/// Read a procfs file in one go (procfs reports size 0, so the default growth would start
/// with tiny reads).
pub(crate) fn read_proc(path: &str) -> String {
    use std::io::Read;
    let mut text = String::with_capacity(16 * 1024);
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    text
}

fn parse_mountinfo_line(line: &str) -> Option<Hierarchy> {
    let (pre, post) = line.split_once(" - ")?;
    let mountpoint = pre.split(' ').nth(4)?;
    let mut post = post.split(' ');
    let fstype = post.next()?;
    let super_opts = post.nth(1)?;
    if fstype != "cgroup" && fstype != "cgroup2" {
        return None;
    }
    let name = if mountpoint == ROOT {
        ""
    } else {
        mountpoint
            .strip_prefix(ROOT)?
            .strip_prefix('/')
            .filter(|n| !n.contains('/'))?
    };
    let opts: Vec<&str> = super_opts
        .split(',')
        .filter(|o| *o != "rw" && *o != "ro")
        .collect();
    let v2 = fstype == "cgroup2";
    let controllers: Vec<String> = if v2 {
        Vec::new()
    } else {
        opts.iter()
            .filter(|o| !o.contains('=') || o.starts_with("name="))
            .filter(|o| {
                !matches!(
                    **o,
                    "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode"
                )
            })
            .map(|o| o.to_string())
            .collect()
    };
    let mount_data = if opts.iter().any(|o| o.starts_with("name=")) && !opts.contains(&"none") {
        format!("none,{}", opts.join(","))
    } else {
        opts.join(",")
    };
    Some(Hierarchy {
        name: name.to_string(),
        v2,
        controllers,
        mount_data,
    })
}

/// A container's cgroup: its directory in every hierarchy. Persisted in state.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cgroup {
    /// v1 hierarchy name (`memory`, `cpu,cpuacct`, `name=systemd` dirs) → directory.
    #[serde(default)]
    pub v1: BTreeMap<String, PathBuf>,
    /// The cgroup2 directory: the whole cgroup on a pure v2 host, `unified/…` on hybrid hosts.
    #[serde(default)]
    pub v2: Option<PathBuf>,
    /// True when the host is pure cgroup v2 (every controller lives in `v2`).
    #[serde(default)]
    pub unified_host: bool,
    /// Directories gpurun created (innermost last), removed again by `remove`.
    #[serde(default)]
    pub created: Vec<PathBuf>,
    /// The container's `linux.resources.devices`, as applied at create: an `update` that sends
    /// them again unchanged (containerd's CRI sends all resources) has nothing to change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_rules: Vec<devices::Rule>,
    /// `--systemd-cgroup`: the transient unit systemd made for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
}

/// Who makes and owns the container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Manager {
    /// gpurun, in cgroupfs (runc's default).
    Cgroupfs,
    /// systemd, as a transient unit (`--systemd-cgroup`); `rootless`: the user's manager.
    Systemd { rootless: bool },
}

impl Cgroup {
    /// The directory of the v1 hierarchy that has `controller`, if any.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(name, _)| name.split(',').any(|c| c == controller))
            .map(|(_, dir)| dir.as_path())
    }

    /// Write `resources` (limits only; device rules are applied at create), as runc does:
    /// zero values mean "not set", and every value is checked before the first write.
    /// `undoable` (`update`): a write that fails puts back the files already written, so the
    /// cgroup is left as it was.
    pub fn apply(&self, r: &LinuxResources, undoable: bool) -> Result<()> {
        let r = resources::effective(r);
        resources::validate(&r)?;
        let writes = if self.unified_host {
            v2::plan(self.v2.as_deref().expect("pure v2 host has a v2 dir"), &r)?
        } else {
            v1::plan(self, &r)?
        };
        fs::apply_writes(writes, undoable)
    }

    /// An fd of the cgroup2 directory (the whole cgroup on a pure v2 host, `unified/…` on a
    /// hybrid one) for clone3's CLONE_INTO_CGROUP: the process is then born inside it, without
    /// the cost of a migration. `None` without a cgroup2 directory.
    pub fn clone_into_fd(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        use nix::fcntl::{open, OFlag};
        let Some(dir) = &self.v2 else { return Ok(None) };
        open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(Some)
        .map_err(|errno| CgroupError::Open {
            path: dir.clone(),
            errno,
        })
    }

    /// Every cgroup.procs file the process must be written into (v1 hierarchies + cgroup2).
    pub fn procs_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.v1
            .values()
            .chain(self.v2.iter())
            .map(|d| d.join("cgroup.procs"))
    }

    /// Move the calling process into the cgroup (the init does this itself, before it runs
    /// anything of the user's and before it unshares its cgroup namespace). `in_v2`: clone3
    /// already placed it in the cgroup2 directory ([`Cgroup::clone_into_fd`]).
    ///
    /// The caller must be single-threaded. In each v1 hierarchy it writes `0` (itself) to
    /// `tasks`, which moves its one thread, i.e. the whole process. Unlike a write to
    /// `cgroup.procs`, a thread moving itself does not take the kernel's global threadgroup
    /// rwsem for writing (Linux 5.2), whose first writer after an idle spell waits for an RCU
    /// grace period: 5–15 ms per container on a quiet host (bench/README.md).
    pub fn join_self(&self, in_v2: bool) -> Result<()> {
        for dir in self.v1.values() {
            fs::write(&dir.join("tasks"), "0")?;
        }
        match (&self.v2, in_v2) {
            (Some(dir), false) => fs::write(&dir.join("cgroup.procs"), "0"),
            _ => Ok(()),
        }
    }

    /// Move `pid` into the cgroup (for an init in a user namespace, which cannot itself write
    /// the host-owned cgroup.procs files).
    pub fn add(&self, pid: i32) -> Result<()> {
        for procs in self.procs_files() {
            fs::write(&procs, &pid.to_string())?;
        }
        Ok(())
    }

    /// Pids of every process in the container's cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let dir = self
            .v2
            .as_deref()
            .filter(|_| self.unified_host)
            .or_else(|| self.v1_dir("pids"))
            .or_else(|| self.v1.values().next().map(|p| p.as_path()));
        let Some(dir) = dir else { return Vec::new() };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Freeze or thaw every process of the container; returns once the kernel reports it done.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        if self.unified_host {
            return v2::set_frozen(
                self.v2.as_deref().expect("pure v2 host has a v2 dir"),
                frozen,
            );
        }
        match self.v1_dir("freezer") {
            Some(dir) => v1::set_frozen(dir, frozen),
            None => Err(CgroupError::Unsupported(
                "no freezer cgroup on this host".into(),
            )),
        }
    }

    pub fn is_frozen(&self) -> bool {
        if self.unified_host {
            return self.v2.as_deref().is_some_and(v2::is_frozen);
        }
        self.v1_dir("freezer").is_some_and(v1::is_frozen)
    }

    /// Remove every directory gpurun made (innermost first). The processes must be gone; the
    /// kernel may take a moment to release a cgroup whose last task just died.
    pub fn remove(&self) {
        if let Some(unit) = &self.systemd {
            if let Err(e) = systemd::stop(unit) {
                crate::logging::warn(&e.to_string());
            }
            // systemd removes the unit's cgroup; the v1 hierarchies it does not manage are ours.
            for dir in self.v1.values().chain(self.v2.iter()) {
                fs::rmdir_retry(dir);
            }
        }
        for dir in self.created.iter().rev() {
            fs::rmdir_retry(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let v1 = "35 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct";
        let h = parse_mountinfo_line(v1).unwrap();
        assert_eq!(
            (h.name.as_str(), h.v2, h.mount_data.as_str()),
            ("cpu,cpuacct", false, "cpu,cpuacct")
        );
        assert_eq!(h.controllers, vec!["cpu", "cpuacct"]);
        let named = "36 25 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd";
        let h = parse_mountinfo_line(named).unwrap();
        assert_eq!(h.mount_data, "none,xattr,name=systemd");
        assert_eq!(h.controllers, vec!["name=systemd"]);
        let unified = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";
        let h = parse_mountinfo_line(unified).unwrap();
        assert!(h.v2 && h.name.is_empty());
        assert!(parse_mountinfo_line("22 1 0:5 / /proc rw - proc proc rw").is_none());
        assert!(
            parse_mountinfo_line("40 25 0:40 / /sys/fs/cgroup/a/b rw - cgroup cgroup rw,pids")
                .is_none()
        );
    }
}
