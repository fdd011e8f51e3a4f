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
use oci_spec::runtime::Process;

use super::parent::Init;
use super::setup::{
    enter_cwd, environment, exec, lookup_path, needs_admin_for_seccomp, set_rlimits, switch_user,
};
use super::sync::{self, Msg};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::namespaces::{clone_in_pid_ns, Join};
use crate::sys::{self, Forked};

/// The namespaces to enter, in the order runc's nsexec enters them (mount late: it changes
/// our root to the container's), and the user namespace last: until then we act with our
/// host privileges, which every other namespace of the container is subject to.
const NAMESPACES: [(&str, CloneFlags); 7] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("user", CloneFlags::CLONE_NEWUSER),
];

/// The init's namespaces that differ from ours, as fds (checked against pid reuse by the caller).
fn open_namespaces(init: i32) -> Result<Vec<Join>> {
    let mut joins = Vec::new();
    for (name, flag) in NAMESPACES {
        let path = PathBuf::from(format!("/proc/{init}/ns/{name}"));
        let fd = open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(Error::sys_path("open", &path))?;
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

/// Start `process` in the container whose init is `init_pid`; returns once it has exec'd.
pub fn spawn(
    init_pid: i32,
    init_start_time: u64,
    cgroup: &Cgroup,
    process: &Process,
    console: Option<&std::os::fd::OwnedFd>,
    preserve_fds: i32,
    seccomp: Option<&crate::seccomp::Program>,
) -> Result<Init> {
    let mut joins = open_namespaces(init_pid)?;
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
        sys::clone_fork(0, cgroup_dir.as_ref().map(|fd| fd.as_fd())).map_err(Error::sys("clone3"))
    })?;
    match forked {
        Forked::Child { in_cgroup } => {
            // No host directory fd may stay open in the container (CVE-2024-21626).
            drop(cgroup_dir);
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
                console,
                preserve_fds,
                seccomp,
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
            // EOF without an error: the exec went through.
            match proc.recv_error() {
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
    console: Option<&std::os::fd::OwnedFd>,
    preserve_fds: i32,
    seccomp: Option<&crate::seccomp::Program>,
) -> Result<std::convert::Infallible> {
    // First of all: nobody in the container may open our /proc/PID/exe — the host's gpurun
    // binary (CVE-2019-5736). A non-dumpable process' /proc entries are root-owned and closed
    // to ptrace-style access; execve of the user's binary resets it.
    prctl::set_dumpable(false).map_err(Error::sys("prctl(PR_SET_DUMPABLE)"))?;
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(Error::sys("sigprocmask"))?;
    cgroup.join_self(in_cgroup)?;
    for j in joins {
        setns(j.fd.as_fd(), j.flag).map_err(Error::sys_path("setns", &j.path))?;
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
    switch_user(process, needs_admin_for_seccomp(process, seccomp))?;
    sys::set_umask(process.user().umask().unwrap_or(0o022));
    // (Changing credentials may have cleared it already.)
    prctl::set_pdeathsig(None).map_err(Error::sys("prctl(PR_SET_PDEATHSIG)"))?;
    Err(exec(&exe, args, &env, preserve_fds, seccomp))
}
