//! `exec`: a new process inside a running container. It joins the container's cgroup and every
//! namespace of its init, then sets itself up like the init does (cwd, rlimits, user,
//! capabilities, no_new_privs) and execs. Errors come back over a sync channel; end-of-file on
//! it (the channel is close-on-exec) means the exec happened.

use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::prctl;
use nix::sys::stat::{fstat, Mode};
use nix::unistd::{chroot, fchdir};
use oci_spec::runtime::{LinuxMemoryPolicy, LinuxPersonality, Process};

use super::attrs;
use super::parent::Init;
use super::setup::{
    enter_cwd, environment, exec, join_keyring, lookup_path, needs_admin_for_seccomp, set_rlimits,
    switch_user,
};
use super::sync::{self, Msg};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::lsm::ExecLabels;
use crate::namespaces::{clone_in_pid_ns, Join};
use crate::sys::sched::{self, Mask};
use crate::sys::{self, Forked};

/// The namespaces to enter, in the order runc's nsexec enters them (mount late: it changes
/// our root to the container's), and the user namespace last: until then we act with our
/// host privileges, which every other namespace of the container is subject to.
const NAMESPACES: [(&str, CloneFlags); 8] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    // A time namespace is entered like the others (setns works on a single-threaded
    // process); /proc/PID/ns/time is the one the init runs in.
    ("time", crate::namespaces::CLONE_NEWTIME),
    ("user", CloneFlags::CLONE_NEWUSER),
];

/// The init's namespaces that differ from ours, as fds (checked against pid reuse by the caller).
fn open_namespaces(init: i32) -> Result<Vec<Join>> {
    let mut joins = Vec::new();
    for (name, flag) in NAMESPACES {
        let path = PathBuf::from(format!("/proc/{init}/ns/{name}"));
        let fd = match open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            // A kernel without time namespaces (before 5.6) has no ns/time.
            Err(nix::errno::Errno::ENOENT) if flag == crate::namespaces::CLONE_NEWTIME => continue,
            Err(e) => return Err(Error::sys_path("open", &path)(e)),
        };
        let own = open(
            format!("/proc/self/ns/{name}").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let same = own.is_ok_and(|own| {
            fstat(&own).ok().map(|s| s.st_ino) == fstat(&fd).ok().map(|s| s.st_ino)
        });
        if !same {
            joins.push(Join { flag, path, fd });
        }
    }
    Ok(joins)
}

/// What the exec'd process gets from the container besides its `Process`.
pub struct Extras<'a> {
    pub console: Option<&'a std::os::fd::OwnedFd>,
    pub preserve_fds: i32,
    pub seccomp: Option<&'a crate::seccomp::Program>,
    /// With NOTIFY rules: the connected seccomp agent and the container's OCI state JSON, for
    /// the process state sent with the process' listener.
    pub seccomp_agent: Option<(&'a crate::seccomp::listener::Agent, &'a [u8])>,
    /// `linux.personality` and `linux.memoryPolicy` as at create (runc applies them too).
    pub personality: Option<&'a LinuxPersonality>,
    pub memory_policy: Option<&'a LinuxMemoryPolicy>,
    /// The container's resctrl group (`linux.intelRdt`): exec'd processes join it too (runc).
    pub resctrl: Option<&'a crate::intelrdt::Group>,
    /// The container's id, whose session keyring the process joins (runc's setns init);
    /// `None` after `create --no-new-keyring`.
    pub keyring: Option<&'a str>,
}

/// The init's root directory, opened, when the container shares our mount namespace (no
/// `mount` namespace in its spec, so `joins` has none: its root is a chroot, which setns
/// cannot give an exec'd process).
fn shared_root(init_pid: i32, joins: &[Join]) -> Result<Option<std::os::fd::OwnedFd>> {
    if joins.iter().any(|j| j.flag == CloneFlags::CLONE_NEWNS) {
        return Ok(None);
    }
    let path = format!("/proc/{init_pid}/root");
    open(
        path.as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(Some)
    .map_err(Error::sys_path("open", path.as_str()))
}

/// Start `process` in the container whose init is `init_pid`; returns once it has exec'd.
pub fn spawn(
    init_pid: i32,
    init_start_time: u64,
    cgroup: &Cgroup,
    process: &Process,
    extras: &Extras<'_>,
) -> Result<Init> {
    let mut joins = open_namespaces(init_pid)?;
    let shared_root = shared_root(init_pid, &joins)?;
    // Checked after the opens: if the init is still the process we recorded, the namespace
    // fds are its own and not those of a process that got its pid after it died.
    if !super::pidinfo::is_alive(init_pid, init_start_time) {
        return Err(Error::Unsupported(
            "cannot exec in a stopped container".into(),
        ));
    }
    // A rootless caller has no privilege over the container's other namespaces until it is in
    // the container's user namespace: enter it first (runc's order for rootless), here in the
    // single-threaded parent so the pid namespace below can be entered as well.
    if crate::rootless::is_rootless() {
        if let Some(i) = joins
            .iter()
            .position(|j| j.flag == CloneFlags::CLONE_NEWUSER)
        {
            let user = joins.remove(i);
            setns(user.fd.as_fd(), user.flag).map_err(Error::sys_path("setns", &user.path))?;
        }
    }
    let pid_ns = joins
        .iter()
        .position(|j| j.flag == CloneFlags::CLONE_NEWPID)
        .map(|i| joins.remove(i));
    let (parent_end, child_end) = sync::channel()?;
    let cgroup_dir = cgroup.clone_into_fd()?;
    let forked = clone_in_pid_ns(pid_ns.as_ref(), || {
        with_initial_affinity(process, || {
            sys::clone_fork(0, cgroup_dir.as_ref().map(|fd| fd.as_fd()))
                .map_err(Error::sys("clone3"))
        })
    })?;
    match forked {
        Forked::Child { in_cgroup } => {
            // No host directory fd may stay open in the container (CVE-2024-21626).
            drop(cgroup_dir);
            // Only `exec` itself talks to the seccomp agent, and closes the connection after.
            if let Some((agent, _)) = extras.seccomp_agent {
                sys::close_inherited(agent.raw_fd());
            }
            drop(parent_end);
            // Die with `exec` while being set up (the death signal is cleared just before
            // execve: a process that got that far runs, as it does after a finished exec).
            if prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
                || child_end.peer_gone()
            {
                sys::exit_now(1);
            }
            let err = match child(
                &joins,
                cgroup,
                in_cgroup,
                process,
                extras,
                shared_root.as_ref(),
                &child_end,
            ) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = child_end.send(&Msg::Error(err.to_string()));
            sys::exit_now(1)
        }
        Forked::Parent { pid, pidfd } => {
            drop(child_end);
            crate::fault::point("exec-cloned");
            let proc = Init::new(pid, pidfd, parent_end);
            let on_listener = |fd: std::os::fd::OwnedFd| match extras.seccomp_agent {
                Some((agent, state)) => Ok(agent.send(pid.as_raw(), state, fd.as_fd())?),
                None => Err(Error::Init("seccomp listener without an agent".into())),
            };
            // EOF without an error: the exec went through.
            match proc.recv_error(on_listener) {
                None => Ok(proc),
                Some(msg) => {
                    proc.kill_and_reap();
                    Err(Error::Init(msg))
                }
            }
        }
    }
}

fn child(
    joins: &[Join],
    cgroup: &Cgroup,
    in_cgroup: bool,
    process: &Process,
    extras: &Extras<'_>,
    shared_root: Option<&std::os::fd::OwnedFd>,
    chan: &sync::Channel,
) -> Result<std::convert::Infallible> {
    let Extras {
        console,
        preserve_fds,
        seccomp,
        ..
    } = *extras;
    // First of all: nobody in the container may open our /proc/PID/exe — the host's gpurun
    // binary (CVE-2019-5736). A non-dumpable process' /proc entries are root-owned and closed
    // to ptrace-style access; execve of the user's binary resets it.
    prctl::set_dumpable(false).map_err(Error::sys("prctl(PR_SET_DUMPABLE)"))?;
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(Error::sys("sigprocmask"))?;
    cgroup.join_self(in_cgroup)?;
    // While the host's resctrl mount is still in reach (before setns into the mount namespace).
    if let Some(group) = extras.resctrl {
        crate::intelrdt::place(group, nix::unistd::getpid())?;
    }
    set_final_affinity(process)?;
    // While /proc is still the runtime's (lsm::procattr says why).
    let labels = ExecLabels::prepare(process)?;
    for j in joins {
        setns(j.fd.as_fd(), j.flag).map_err(Error::sys_path("setns", &j.path))?;
    }
    // A container that shares our mount namespace has a chroot for its root: take it too.
    if let Some(root) = shared_root {
        fchdir(root).map_err(Error::sys("fchdir to the init's root"))?;
        chroot(".").map_err(Error::sys("chroot to the init's root"))?;
    }
    if let Some(id) = extras.keyring {
        ExecLabels::with_key_label(labels.as_ref(), || join_keyring(id))?;
    }
    // After setns(mnt): the pty comes from the container's devpts.
    match console {
        Some(socket) => crate::console::setup(socket, false)?,
        None => crate::console::reopen_dev_null()?,
    }
    set_rlimits(process)?;
    enter_cwd(process.cwd())?;
    let env = environment(process);
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::Unsupported("exec: no command given".into()))?;
    let exe = lookup_path(arg0, &env)?;
    if process.no_new_privileges() == Some(true) {
        prctl::set_no_new_privs().map_err(Error::sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    attrs::apply(process, extras.personality, extras.memory_policy)?;
    if let Some(labels) = labels {
        labels.apply()?;
    }
    switch_user(process, needs_admin_for_seccomp(process, seccomp))?;
    sys::set_umask(process.user().umask().unwrap_or(0o022));
    // (Changing credentials may have cleared it already.)
    prctl::set_pdeathsig(None).map_err(Error::sys("prctl(PR_SET_PDEATHSIG)"))?;
    Err(exec(&exe, args, &env, preserve_fds, seccomp, chan))
}

/// Run `clone` (in `exec`, single-threaded) with our CPU affinity set to `initial`, so the
/// child has it from its first instruction, before it joins the container's cgroup (runc sets
/// it on the thread that forks, too); ours is restored after, in the parent only.
fn with_initial_affinity(
    process: &Process,
    clone: impl FnOnce() -> Result<Forked>,
) -> Result<Forked> {
    let initial = match process.exec_cpu_affinity().as_ref().map(attrs::affinity) {
        Some(Ok((Some(initial), _))) => initial,
        Some(Err(msg)) => return Err(Error::Unsupported(msg)),
        _ => return clone(),
    };
    let ours =
        sched::sched_getaffinity(0, attrs::MAX_ID).map_err(Error::sys("sched_getaffinity"))?;
    sched::sched_setaffinity(0, &initial).map_err(|errno| {
        Error::Unsupported(format!(
            "error setting initial CPU affinity: sched_setaffinity: {errno}"
        ))
    })?;
    let forked = clone();
    if !matches!(forked, Ok(Forked::Child { .. })) {
        // Failing leaves only `exec` itself, which just waits now, on `initial`.
        let _ = sched::sched_setaffinity(0, &ours);
    }
    forked
}

/// In the exec'd process right after it joined the container's cgroup: `final` if given;
/// with neither `initial` nor `final`, every CPU (the kernel keeps it within the cpuset), so
/// it does not inherit `exec`'s own pinning (runc's setFinalCPUAffinity/tryResetCPUAffinity).
fn set_final_affinity(process: &Process) -> Result<()> {
    let (initial, last) = match process.exec_cpu_affinity() {
        Some(a) => attrs::affinity(a).map_err(Error::Unsupported)?,
        None => (None, None),
    };
    match (initial, last) {
        (_, Some(last)) => sched::sched_setaffinity(0, &last).map_err(|errno| {
            Error::Unsupported(format!(
                "error setting final CPU affinity: sched_setaffinity: {errno}"
            ))
        }),
        // Best effort, as runc (which only warns).
        (None, None) => {
            let _ = sched::sched_setaffinity(0, &Mask::full(attrs::MAX_ID));
            Ok(())
        }
        (Some(_), None) => Ok(()),
    }
}
