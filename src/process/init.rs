//! The container's init, from clone to execve. Runs in the child only.
//!
//! The sequence is one list of named steps (modelled on runc's `standard_init_linux.go`), each
//! ordering decision explained where it is made. Any error is sent to the parent over the sync
//! channel and the init exits; nothing here may return into the parent's code paths.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use nix::sched::CloneFlags;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::sethostname;
use oci_spec::runtime::Process;

use super::setup::{
    enter_cwd, environment, exec, lookup_path, needs_admin_for_seccomp, set_rlimits, switch_user,
};
use super::sync::{Channel, Msg};
use super::CreatePlan;
use crate::error::{Error, Result};
use crate::hooks::{run_spec_hooks, Phase};
use crate::{rootfs, sys};

/// Entry point in the child. Never returns.
pub fn run(plan: &CreatePlan, chan: Channel, in_cgroup: bool) -> ! {
    let err = match setup(plan, &chan, in_cgroup) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // After `Detached` nobody listens on the channel any more (a startContainer hook or the
    // exec itself failed): the container's stderr is the only place left to say why.
    if chan.send(&Msg::Error(err.to_string())).is_err() {
        eprintln!("gpurun: error: {err}");
    }
    sys::exit_now(1)
}

fn setup(plan: &CreatePlan, chan: &Channel, in_cgroup: bool) -> Result<std::convert::Infallible> {
    let spec = &plan.bundle.spec;
    let process = spec.process().as_ref().expect("validated: process present");

    // Die with the runtime while we are still being set up: a half-made container must not
    // outlive a create that was killed.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(Error::sys("prctl(PR_SET_PDEATHSIG)"))?;
    if chan.peer_gone() {
        // The parent died between the clone and the line above: no signal will come.
        sys::exit_now(1);
    }
    // Until execve (which resets it), nothing in the container may open our /proc/PID/exe —
    // the host's gpurun binary (CVE-2019-5736) — e.g. a process exec'd in while we wait.
    // In a new user namespace only once mapped: a non-dumpable process' /proc files are
    // root's, and a rootless parent could not write our maps (nothing can join us before).
    // New, or joined by path before the clone: either way the parent puts us in our cgroup.
    let userns = plan.namespaces.has(CloneFlags::CLONE_NEWUSER);
    if !userns {
        prctl::set_dumpable(false).map_err(Error::sys("prctl(PR_SET_DUMPABLE)"))?;
    }
    // The container dir lock belongs to the parent; our inherited copy would keep it held.
    sys::close_inherited(plan.lock_fd);
    // Device nodes and directories get exactly the modes asked for.
    sys::set_umask(0);
    // `run` blocks the signals it forwards; the container must start with none blocked.
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(Error::sys("sigprocmask"))?;

    if userns {
        crate::userns::become_root(chan)?;
        prctl::set_dumpable(false).map_err(Error::sys("prctl(PR_SET_DUMPABLE)"))?;
    } else if plan.cgroup.placed_by_parent() {
        chan.expect(crate::process::sync::Msg::Mapped)?;
    }
    // Into the cgroup before anything else runs (the parent did it for a user namespace and
    // with systemd), then (if asked) a cgroup namespace rooted there.
    if !userns && !plan.cgroup.placed_by_parent() {
        plan.cgroup.join_self(in_cgroup)?;
    }
    if plan.namespaces.new.contains(CloneFlags::CLONE_NEWCGROUP) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(Error::sys("unshare(CLONE_NEWCGROUP)"))?;
    }
    plan.namespaces.join_all()?;
    if plan.namespaces.new.contains(CloneFlags::CLONE_NEWNET) {
        sys::loopback_up().map_err(Error::sys("bring up lo (SIOCSIFFLAGS)"))?;
    }
    if !plan.no_new_keyring {
        join_keyring(plan.id)?;
    }
    set_hostname(plan)?;
    // The container's own cgroup dirs are bound where a fresh cgroup mount would show the host
    // hierarchy (no cgroup namespace) or is not allowed (v1 in a user namespace).
    let bind_cgroups = !plan.namespaces.has(CloneFlags::CLONE_NEWCGROUP)
        || (userns && !rootfs::cgroupfs::is_unified_host());
    let cgroup = bind_cgroups.then_some(plan.cgroup);
    rootfs::prepare(plan.bundle, cgroup, userns, &plan.idmapped)?;
    if let Some(edits) = plan.gpu {
        // Built-in createContainer hook: the driver files are mounted, the root not yet pivoted.
        let hook = crate::gpu::ldcache::ContainerHook {
            rootfs: &plan.bundle.rootfs,
            edits,
        };
        crate::hooks::run_phase(Phase::CreateContainer, &[&hook], b"{}")?;
    }
    let hooks = plan.bundle.spec.hooks().as_ref();
    let state = if plan.pre_pivot_hooks {
        chan.send(&Msg::Hooks)?;
        let state = match chan.recv()? {
            Some(Msg::HooksDone(state)) => state,
            other => {
                return Err(Error::Init(format!(
                    "unexpected sync message {other:?}, wanted HooksDone"
                )))
            }
        };
        // In the container's mount namespace, before pivot_root (host paths still visible).
        run_spec_hooks(Phase::CreateContainer, hooks, state.as_bytes())?;
        state
    } else {
        String::new()
    };
    if plan.no_pivot {
        rootfs::pivot::move_root(&plan.bundle.rootfs)?;
    } else {
        rootfs::pivot::pivot(&plan.bundle.rootfs)?;
    }
    rootfs::finish(plan.bundle)?;
    // The pty comes from the container's own devpts, so only after the mounts (runc's order).
    match &plan.console {
        Some(socket) => crate::console::setup(socket, true)?,
        None => crate::console::reopen_dev_null()?,
    }

    set_rlimits(process)?;
    set_oom_score_adj(process)?;
    // cwd while still root, so a directory only root can enter still works (runc does the same).
    enter_cwd(process.cwd())?;
    let mut env = environment(process);
    env.extend_from_slice(plan.extra_env);
    // Resolve args[0] now, so a missing binary fails `create`, not the later `start`.
    let args = process.args().as_deref().unwrap_or_default();
    let exe = lookup_path(&args[0], &env)?;
    if process.no_new_privileges() == Some(true) {
        prctl::set_no_new_privs().map_err(Error::sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    switch_user(process, needs_admin_for_seccomp(process, plan.seccomp))?;
    // Changing credentials clears the death signal: re-arm it until `Persisted` (sync.rs 3).
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(Error::sys("prctl(PR_SET_PDEATHSIG)"))?;
    sys::set_umask(process.user().umask().unwrap_or(0o022));

    // Once the parent has recorded us, we must outlive it (`create` exits): see sync.rs 3–5.
    chan.send(&Msg::Ready)?;
    chan.expect(Msg::Persisted)?;
    prctl::set_pdeathsig(None).map_err(Error::sys("prctl(PR_SET_PDEATHSIG)"))?;
    chan.send(&Msg::Detached)?;
    wait_for_start(&plan.exec_fifo)?;
    if !Phase::StartContainer.of(hooks).is_empty() {
        run_spec_hooks(
            Phase::StartContainer,
            hooks,
            &with_status(&state, "running"),
        )?;
    }

    Err(exec(&exe, args, &env, plan.preserve_fds, plan.seccomp))
}

fn join_keyring(id: &str) -> Result<()> {
    let name = CString::new(format!("_ses.{id}")).map_err(|_| Error::InvalidId(id.into()))?;
    match sys::join_session_keyring(&name) {
        // Kernels without keyrings (or that filter keyctl) simply share nothing.
        Ok(()) | Err(nix::errno::Errno::ENOSYS) => Ok(()),
        Err(errno) => Err(Error::Sys {
            syscall: "keyctl(KEYCTL_JOIN_SESSION_KEYRING)",
            errno,
        }),
    }
}

fn set_hostname(plan: &CreatePlan) -> Result<()> {
    let spec = &plan.bundle.spec;
    if !plan.namespaces.has(CloneFlags::CLONE_NEWUTS) {
        return Ok(());
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sethostname(h).map_err(Error::sys("sethostname"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::set_domainname(d).map_err(Error::sys("setdomainname"))?;
    }
    Ok(())
}

fn set_oom_score_adj(process: &Process) -> Result<()> {
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::io("write", "/proc/self/oom_score_adj", e))?;
    }
    Ok(())
}

/// Block until `start` writes a byte into the exec fifo (see [`crate::container::start`]).
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fifo, &mut byte) {
            Ok(1) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return Err(Error::Init("exec fifo closed before start".into())),
            Err(e) => return Err(Error::sys("read exec fifo")(e)),
        }
    }
}

/// The state JSON the parent sent, with `status` updated.
fn with_status(state: &str, status: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
    v["status"] = status.into();
    serde_json::to_vec(&v).unwrap_or_default()
}
