//! The container's init, from clone to execve. Runs in the child only.
//!
//! The sequence is one list of named steps (modelled on runc's `standard_init_linux.go`), each
//! ordering decision explained where it is made. Any error is sent to the parent over the sync
//! channel and the init exits; nothing here may return into the parent's code paths.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{chdir, execve, sethostname, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::Process;

use super::sync::{Channel, Msg};
use super::CreatePlan;
use crate::error::{Error, Result};
use crate::hooks::{run_spec_hooks, Phase};
use crate::{capabilities, rootfs, sys};

/// Entry point in the child. Never returns.
pub fn run(plan: &CreatePlan, chan: Channel, in_cgroup: bool) -> ! {
    let err = match setup(plan, &chan, in_cgroup) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // After `Detached` nobody listens on the channel any more (a startContainer hook or the
    // exec itself failed): the container's stderr is the only place left to say why.
    if chan.send(&Msg::Error(err.to_string())).is_err() {
        eprintln!("gpurun: {err}");
    }
    sys::exit_now(1)
}

fn setup(plan: &CreatePlan, chan: &Channel, in_cgroup: bool) -> Result<std::convert::Infallible> {
    let spec = &plan.bundle.spec;
    let process = spec.process().as_ref().expect("validated: process present");

    // Die with the runtime while we are still being set up: a half-made container must not
    // outlive a create that was killed.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(Error::sys("prctl(PR_SET_PDEATHSIG)"))?;
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
    }
    // Into the cgroup before anything else runs (the parent did it for a user namespace), then
    // (if asked) a cgroup namespace rooted there.
    if !userns {
        plan.cgroup.join_self(in_cgroup)?;
    }
    if plan.namespaces.new.contains(CloneFlags::CLONE_NEWCGROUP) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(Error::sys("unshare(CLONE_NEWCGROUP)"))?;
    }
    plan.namespaces.join_all()?;
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

/// Without no_new_privs, installing a seccomp filter needs CAP_SYS_ADMIN. runc installs it
/// before dropping capabilities, which puts its own later syscalls (capset, setuid, the exec
/// fifo, startContainer hooks…) under the user's profile. We instead keep CAP_SYS_ADMIN in
/// the permitted and effective sets until the filter is in, right before execve — and need
/// not drop it afterwards: execve computes the new program's sets from the inheritable,
/// ambient and bounding sets and the uid only, never from the old permitted/effective ones,
/// so the extra capability cannot reach the container (CAP_SYS_ADMIN stays out of the
/// bounding set unless the spec grants it).
pub(super) fn needs_admin_for_seccomp(
    process: &Process,
    seccomp: Option<&crate::seccomp::Program>,
) -> bool {
    seccomp.is_some() && process.no_new_privileges() != Some(true)
}

/// The last step of the init and of an exec'd process: close everything but stdio and the
/// preserved fds on exec — nothing of the runtime may leak into the container
/// (CVE-2024-21626) —, install the seccomp filter, and execve. Returns only on failure.
///
/// The filter goes in as late as possible, after everything gpurun does itself; afterwards
/// only `seccomp(2)` (for the next filter of the stack, see `seccomp::compile`) and `execve`
/// run under it. Like runc, gpurun does not exempt execve: a profile that denies it cannot
/// start a container, and the error says so.
pub(super) fn exec(
    exe: &CString,
    args: &[String],
    env: &[String],
    preserve_fds: i32,
    seccomp: Option<&crate::seccomp::Program>,
) -> Error {
    let run = || -> Result<std::convert::Infallible> {
        // Everything that allocates happens before the filter is in.
        let argv: Vec<CString> = args.iter().map(|a| cstring(a)).collect::<Result<_>>()?;
        let envp: Vec<CString> = env.iter().map(|e| cstring(e)).collect::<Result<_>>()?;
        sys::cloexec_from(3 + preserve_fds).map_err(Error::sys("close_range"))?;
        if let Some(program) = seccomp {
            program.install()?;
        }
        let errno = execve(exe, &argv, &envp).unwrap_err();
        Err(Error::SysPath {
            syscall: "exec",
            path: PathBuf::from(exe.to_string_lossy().into_owned()),
            errno,
        })
    };
    match run() {
        Ok(never) => match never {},
        Err(e) => e,
    }
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

pub(super) fn set_rlimits(process: &Process) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        let resource = rlimit_number(&r.typ().to_string())
            .ok_or_else(|| Error::Unsupported(format!("unknown rlimit {}", r.typ())))?;
        sys::set_rlimit(resource, r.soft(), r.hard()).map_err(|errno| Error::SysPath {
            syscall: "setrlimit",
            path: PathBuf::from(r.typ().to_string()),
            errno,
        })?;
    }
    Ok(())
}

fn rlimit_number(name: &str) -> Option<u32> {
    const NAMES: [&str; 16] = [
        "RLIMIT_CPU",
        "RLIMIT_FSIZE",
        "RLIMIT_DATA",
        "RLIMIT_STACK",
        "RLIMIT_CORE",
        "RLIMIT_RSS",
        "RLIMIT_NPROC",
        "RLIMIT_NOFILE",
        "RLIMIT_MEMLOCK",
        "RLIMIT_AS",
        "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
    ];
    let name = if name.starts_with("RLIMIT_") {
        name.to_string()
    } else {
        format!("RLIMIT_{}", name.to_uppercase())
    };
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

fn set_oom_score_adj(process: &Process) -> Result<()> {
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::io("write", "/proc/self/oom_score_adj", e))?;
    }
    Ok(())
}

/// `process.env`, with a default PATH when the spec has none (as runc does for the lookup).
pub(super) fn environment(process: &Process) -> Vec<String> {
    process.env().clone().unwrap_or_default()
}

/// Find args[0] the way execvp would, using the container's PATH, after pivot_root.
pub(super) fn lookup_path(arg0: &str, env: &[String]) -> Result<CString> {
    let not_found = || {
        Error::Unsupported(format!(
            "exec: {arg0:?}: executable file not found in $PATH"
        ))
    };
    let candidates: Vec<PathBuf> = if arg0.contains('/') {
        vec![PathBuf::from(arg0)]
    } else {
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(arg0))
            .collect()
    };
    for c in &candidates {
        if nix::unistd::access(c, nix::unistd::AccessFlags::X_OK).is_ok() && c.is_file() {
            return CString::new(c.as_os_str().as_bytes()).map_err(|_| not_found());
        }
    }
    if arg0.contains('/') {
        return Err(Error::Unsupported(format!(
            "exec: {arg0:?}: stat {arg0}: no such file or directory"
        )));
    }
    Err(not_found())
}

/// setgroups → setresgid → setresuid, keeping permitted capabilities across the uid change,
/// then the capability sets. The bounding set is dropped first, while CAP_SETPCAP is held.
/// `keep_admin`: see [`needs_admin_for_seccomp`].
pub(super) fn switch_user(process: &Process, keep_admin: bool) -> Result<()> {
    let user = process.user();
    // No `capabilities` means none at all (runc), not oci-spec's Default (which has three).
    let none = capabilities::none();
    let caps = process.capabilities().as_ref().unwrap_or(&none);
    capabilities::drop_bounding(caps)?;
    prctl::set_keepcaps(true).map_err(Error::sys("prctl(PR_SET_KEEPCAPS)"))?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // A rootless user namespace denies setgroups; with no groups asked there is nothing to do.
    if !groups.is_empty() || crate::userns::setgroups_allowed() {
        nix::unistd::setgroups(&groups).map_err(Error::sys(
            "setgroups (denied in a rootless user namespace: drop additionalGids)",
        ))?;
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).map_err(Error::sys("setresgid"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).map_err(Error::sys("setresuid"))?;
    prctl::set_keepcaps(false).map_err(Error::sys("prctl(PR_SET_KEEPCAPS)"))?;
    capabilities::apply_sets(caps, keep_admin)
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

/// chdir into `process.cwd` and make sure we really are inside the container's root: a cwd
/// reached through a leaked host fd (`/proc/self/fd/N`) shows as "(unreachable)".
pub(super) fn enter_cwd(cwd: &Path) -> Result<()> {
    chdir(cwd).map_err(Error::sys_path("chdir", cwd))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::Unsupported(format!(
            "process.cwd {} is outside the container",
            cwd.display()
        ))),
    }
}

/// The state JSON the parent sent, with `status` updated.
fn with_status(state: &str, status: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
    v["status"] = status.into();
    serde_json::to_vec(&v).unwrap_or_default()
}

pub(super) fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        Error::Unsupported(format!("argument or environment entry contains NUL: {s:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names() {
        assert_eq!(rlimit_number("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_number("RLIMIT_RTTIME"), Some(libc::RLIMIT_RTTIME));
        assert_eq!(rlimit_number("RLIMIT_BOGUS"), None);
    }

    #[test]
    fn path_lookup() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(lookup_path("sh", &env)
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("/sh"));
        assert!(lookup_path("definitely-not-a-binary", &env).is_err());
        assert!(lookup_path("/nonexistent/x", &env).is_err());
    }
}
