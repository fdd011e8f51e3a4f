//! The container's init, from clone to execve. Runs in the child only.
//!
//! The sequence is one list of named steps (modelled on runc's `standard_init_linux.go`), each
//! ordering decision explained where it is made. Any error is sent to the parent over the sync
//! channel and the init exits; nothing here may return into the parent's code paths.

use std::os::fd::OwnedFd;

use nix::sched::CloneFlags;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::sethostname;
use oci_spec::runtime::Process;

use super::setup::{
    enter_cwd, environment, exec, join_keyring, lookup_path, needs_admin_for_seccomp, set_rlimits,
    share_keyring, switch_user,
};
use super::sync::{Channel, Msg};
use super::CreatePlan;
use crate::error::{Error, Result};
use crate::hooks::{run_spec_hooks, Phase};
use crate::lsm::ExecLabels;
use crate::{rootfs, sys};

/// Entry point in the child. Never returns.
pub fn run(plan: &CreatePlan, chan: Channel, in_cgroup: bool) -> ! {
    let err = match setup(plan, &chan, in_cgroup) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // After `start` woke us (a startContainer hook or the execve failed), `start` waits for
    // our copy of the exec fifo to close and reads the error from it
    // (container::init_failure); earlier, the byte is harmless: create fails and removes all.
    let _ = nix::unistd::write(&plan.exec_fifo, format!("E{err}").as_bytes());
    // After `Detached` nobody may listen on the channel any more: then the container's stderr
    // says why as well.
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
    if let Some(fd) = plan.agent_fd {
        sys::close_inherited(fd);
    }
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
    // Not gpurun's own CPU pinning (`taskset gpurun run …`): every CPU the cpuset allows, as
    // runc resets it; best effort.
    let _ = sys::sched::sched_setaffinity(0, &sys::sched::Mask::full(super::attrs::MAX_ID));
    if plan.namespaces.new.contains(CloneFlags::CLONE_NEWCGROUP) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(Error::sys("unshare(CLONE_NEWCGROUP)"))?;
    }
    // While /proc is still the runtime's (lsm::procattr says why).
    let labels = ExecLabels::prepare(process)?;
    plan.namespaces.join_all()?;
    if plan.namespaces.new_time {
        crate::namespaces::enter_new_time_ns(&crate::namespaces::time_offsets(spec))?;
    }
    if plan.namespaces.new.contains(CloneFlags::CLONE_NEWNET) {
        sys::loopback_up().map_err(Error::sys("bring up lo (SIOCSIFFLAGS)"))?;
    }
    if !plan.no_new_keyring {
        let joined = ExecLabels::with_key_label(labels.as_ref(), || join_keyring(plan.id))?;
        if let Some(serial) = joined {
            share_keyring(serial, userns)?;
        }
    }
    set_hostname(plan)?;
    // Through the runtime's /proc: a container without a mount namespace has none after its
    // chroot.
    set_oom_score_adj(process)?;
    // The container's own cgroup dirs are bound where a fresh cgroup mount would show the host
    // hierarchy (no cgroup namespace) or is not allowed (v1 in a user namespace).
    let bind_cgroups = !plan.namespaces.has(CloneFlags::CLONE_NEWCGROUP)
        || (userns && !rootfs::cgroupfs::is_unified_host());
    let cgroup = bind_cgroups.then_some(plan.cgroup);
    // Without a mount namespace of its own the container shares the runtime's: nothing is
    // mounted (spec::check_shared_mounts), the root switch is a chroot.
    let own_mounts = plan.namespaces.has(CloneFlags::CLONE_NEWNS);
    if own_mounts {
        rootfs::prepare(plan.bundle, cgroup, userns, &plan.idmapped)?;
    }
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
    if !own_mounts {
        rootfs::enter_shared(plan.bundle)?;
    } else {
        if plan.no_pivot {
            rootfs::pivot::move_root(&plan.bundle.rootfs)?;
        } else {
            rootfs::pivot::pivot(&plan.bundle.rootfs)?;
        }
        rootfs::finish(plan.bundle)?;
    }
    // The pty comes from the container's own devpts, so only after the mounts (runc's order).
    match &plan.console {
        Some(socket) => crate::console::setup(socket, true)?,
        None => {
            // A session of its own, as runc's init (nsexec) has: a checkpoint then finds no
            // session leader outside the container (CRIU refuses one), and no terminal signal
            // reaches the container by its process group (`run` forwards them instead).
            nix::unistd::setsid().map_err(Error::sys("setsid"))?;
            crate::console::reopen_dev_null()?
        }
    }

    set_rlimits(process)?;
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
    let linux = spec.linux().as_ref();
    super::attrs::apply(
        process,
        linux.and_then(|l| l.personality().as_ref()),
        linux.and_then(|l| l.memory_policy().as_ref()),
    )?;
    if let Some(labels) = labels {
        labels.apply()?;
    }
    switch_user(process, needs_admin_for_seccomp(process, plan.seccomp))?;
    // Changing credentials clears the death signal: re-arm it until `Persisted` (sync.rs 3).
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(Error::sys("prctl(PR_SET_PDEATHSIG)"))?;
    sys::set_umask(process.user().umask().unwrap_or(0o022));
    // With NOTIFY rules the listener must reach the parent while the channel is still open
    // (it closes at `Detached`): the filters go in now, not right before execve, and put the
    // rest of our own work under the profile. runc installs them before its fifo wait too.
    let late_seccomp = match plan.seccomp {
        Some(program) if program.has_notify() => {
            super::setup::install_seccomp(program, chan)?;
            // The CAP_SYS_ADMIN kept for the install must not last through the wait for
            // `start` and the hooks: the sets become exactly the spec's now.
            if needs_admin_for_seccomp(process, plan.seccomp) {
                super::setup::drop_kept_admin(process)?;
            }
            None
        }
        other => other,
    };

    // Once the parent has recorded us, we must outlive it (`create` exits): see sync.rs 3–5.
    chan.send(&Msg::Ready)?;
    chan.expect(Msg::Persisted)?;
    prctl::set_pdeathsig(None).map_err(Error::sys("prctl(PR_SET_PDEATHSIG)"))?;
    chan.send(&Msg::Detached)?;
    wait_for_start(&plan.exec_fifo)?;
    // The state still says `created`: the user's program has not run yet (runc says so too).
    if !Phase::StartContainer.of(hooks).is_empty() {
        crate::hooks::run_start_container_hooks(hooks, state.as_bytes(), &env)?;
    }

    Err(exec(
        &exe,
        args,
        &env,
        plan.preserve_fds,
        late_seccomp,
        chan,
    ))
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
