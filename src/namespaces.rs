//! Which namespaces a container gets: new ones are created by the clone flags, existing ones
//! (a `path` in the spec) are joined with setns.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::sys::Forked;

/// CLONE_NEWTIME (0x80, not in nix): valid for unshare(2) and setns(2) only; clone(2) reads
/// that bit as part of the exit signal.
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(0x80);

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Time => CLONE_NEWTIME,
    }
}

/// An existing namespace to enter, opened by the parent before clone.
pub struct Join {
    pub flag: CloneFlags,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

pub struct Namespaces {
    /// Namespaces created by clone.
    pub new: CloneFlags,
    /// A new time namespace: made by the init itself (see [`enter_new_time_ns`]), never by
    /// clone, which would put the init in it before its offsets can be written.
    pub new_time: bool,
    /// A user namespace joined by path: entered before the init is cloned, so the namespaces
    /// the clone creates belong to it (see `process::parent::spawn`).
    pub user: Option<Join>,
    /// Namespaces joined by path, in the child (all but pid).
    pub join: Vec<Join>,
    /// A pid namespace to join: entered by the parent for its children around clone.
    pub pid: Option<Join>,
}

impl Namespaces {
    pub fn from_spec(spec: &Spec) -> Result<Namespaces> {
        let mut ns = Namespaces {
            new: CloneFlags::empty(),
            new_time: false,
            user: None,
            join: Vec::new(),
            pid: None,
        };
        let list = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
        for n in list.into_iter().flatten() {
            let flag = clone_flag(n.typ());
            match n.path() {
                None if flag == CLONE_NEWTIME => ns.new_time = true,
                None => ns.new |= flag,
                Some(path) => {
                    let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                        .map_err(Error::sys_path("open namespace", path))?;
                    let join = Join {
                        flag,
                        path: path.clone(),
                        fd,
                    };
                    if flag == CloneFlags::CLONE_NEWPID {
                        ns.pid = Some(join);
                    } else if flag == CloneFlags::CLONE_NEWUSER {
                        ns.user = Some(join);
                    } else {
                        ns.join.push(join);
                    }
                }
            }
        }
        Ok(ns)
    }

    pub fn has(&self, flag: CloneFlags) -> bool {
        self.new.contains(flag)
            || (flag == CLONE_NEWTIME && self.new_time)
            || (flag == CloneFlags::CLONE_NEWUSER && self.user.is_some())
            || self.join.iter().any(|j| j.flag == flag)
            || (flag == CloneFlags::CLONE_NEWPID && self.pid.is_some())
    }

    /// In the init: enter every namespace given by path.
    pub fn join_all(&self) -> Result<()> {
        for j in &self.join {
            setns(j.fd.as_fd(), j.flag).map_err(Error::sys_path("setns", &j.path))?;
        }
        Ok(())
    }
}

/// In the init: a new time namespace with `offsets` (`linux.timeOffsets`), entered by the
/// init itself. unshare(CLONE_NEWTIME) only changes the namespace of our future children, and
/// the offsets can be written only until a process is in it: so unshare, write
/// /proc/self/timens_offsets, then setns into our own `time_for_children` (allowed: we are
/// single-threaded).
pub fn enter_new_time_ns(offsets: &[(String, i64, u32)]) -> Result<()> {
    nix::sched::unshare(CLONE_NEWTIME).map_err(Error::sys("unshare(CLONE_NEWTIME)"))?;
    if !offsets.is_empty() {
        let text: String = offsets
            .iter()
            .map(|(clock, secs, nanos)| format!("{clock} {secs} {nanos}\n"))
            .collect();
        // Both clocks in one write: the kernel takes up to two lines per call.
        std::fs::write("/proc/self/timens_offsets", text)
            .map_err(|e| Error::io("write", "/proc/self/timens_offsets", e))?;
    }
    let path = "/proc/self/ns/time_for_children";
    let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(Error::sys_path("open", path))?;
    setns(fd.as_fd(), CLONE_NEWTIME).map_err(Error::sys_path("setns", path))
}

/// `linux.timeOffsets` as (clock, seconds, nanoseconds), clocks in a fixed order.
pub fn time_offsets(spec: &Spec) -> Vec<(String, i64, u32)> {
    let mut list: Vec<(String, i64, u32)> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .into_iter()
        .flatten()
        .map(|(clock, o)| {
            (
                clock.clone(),
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0),
            )
        })
        .collect();
    list.sort();
    list
}

/// Run `clone` with our children's pid namespace set to `pid`, then (in the parent only: the
/// child now lives in that namespace and could not go back) switch it back, so only the
/// cloned process lands in the joined namespace.
pub fn clone_in_pid_ns(
    pid: Option<&Join>,
    clone: impl FnOnce() -> Result<Forked>,
) -> Result<Forked> {
    let Some(join) = pid else { return clone() };
    let own = open(
        "/proc/self/ns/pid",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::sys_path("open", "/proc/self/ns/pid"))?;
    setns(join.fd.as_fd(), CloneFlags::CLONE_NEWPID)
        .map_err(Error::sys_path("setns", &join.path))?;
    let forked = clone();
    if !matches!(forked, Ok(Forked::Child { .. })) {
        match setns(own.as_fd(), CloneFlags::CLONE_NEWPID) {
            // A rootless `exec` entered the container's user namespace first and has no say
            // over its own pid namespace any more; it forks nothing else, so that is harmless.
            Err(nix::errno::Errno::EPERM) if crate::rootless::is_rootless() => {}
            other => other.map_err(Error::sys("setns back to own pid namespace"))?,
        }
    }
    forked
}
