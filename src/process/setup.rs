//! The steps the container's init and an `exec`'d process share, in the order both take them:
//! rlimits, cwd, the PATH lookup, the user and capability switch, and the final execve (fds
//! closed, seccomp filter in). Runs in the child only.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::prctl;
use nix::unistd::{chdir, execve, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::Process;

use super::sync::{Channel, Msg};
use crate::error::{Error, Result};
use crate::{capabilities, sys};

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
/// run under it — and, with NOTIFY rules, the hand-over of the listener on `chan` (see
/// [`install_seccomp`]). Like runc, gpurun does not exempt execve: a profile that denies it
/// cannot start a container, and the error says so.
pub(super) fn exec(
    exe: &CString,
    args: &[String],
    env: &[String],
    preserve_fds: i32,
    seccomp: Option<&crate::seccomp::Program>,
    chan: &Channel,
) -> Error {
    let run = || -> Result<std::convert::Infallible> {
        // Everything that allocates happens before the filter is in.
        let argv: Vec<CString> = args.iter().map(|a| cstring(a)).collect::<Result<_>>()?;
        let envp: Vec<CString> = env.iter().map(|e| cstring(e)).collect::<Result<_>>()?;
        sys::cloexec_from(3 + preserve_fds).map_err(Error::sys("close_range"))?;
        if let Some(program) = seccomp {
            install_seccomp(program, chan)?;
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

/// Install the filters; with NOTIFY rules, send the listener to the parent (sync.rs 2b), close
/// our copy — a process must not hold its own listener, and a listener nobody holds any more
/// makes notified calls fail (ENOSYS) rather than hang — and wait until the agent has it.
/// Before the hand-over only `sendmsg` (and malloc) runs under the filters: `compile` refuses
/// NOTIFY for `sendmsg`.
pub(super) fn install_seccomp(program: &crate::seccomp::Program, chan: &Channel) -> Result<()> {
    if let Some(listener) = program.install()? {
        chan.send_fd(&Msg::SeccompListener, listener.as_fd())?;
        drop(listener);
        chan.expect(Msg::SeccompDone)?;
    }
    Ok(())
}

/// The capability sets exactly as `process` asks, without the CAP_SYS_ADMIN that
/// [`switch_user`] kept for the seccomp install (`keep_admin`).
pub(super) fn drop_kept_admin(process: &Process) -> Result<()> {
    let none = capabilities::none();
    capabilities::apply_sets(process.capabilities().as_ref().unwrap_or(&none), false)
}

/// Join (creating it if need be) the container's session keyring `_ses.ID`, as runc's init
/// and setns init do: nothing of the caller's session keyring reaches the container. Returns
/// its serial (`None` on kernels without keyrings).
pub(super) fn join_keyring(id: &str) -> Result<Option<i32>> {
    let name = CString::new(format!("_ses.{id}")).map_err(|_| Error::InvalidId(id.into()))?;
    match sys::join_session_keyring(&name) {
        Ok(serial) => Ok(Some(serial)),
        // Kernels without keyrings (or that filter keyctl) simply share nothing.
        Err(nix::errno::Errno::ENOSYS) => Ok(None),
        Err(errno) => Err(Error::Sys {
            syscall: "keyctl(KEYCTL_JOIN_SESSION_KEYRING)",
            errno,
        }),
    }
}

/// Let the keyring's owner (in a user namespace: anyone, as ids differ there) search it, so
/// that an `exec`'d process finds it by name and joins it instead of making another one
/// (runc's `ModKeyringPerm`).
pub(super) fn share_keyring(serial: i32, userns: bool) -> Result<()> {
    const KEY_USR_SEARCH: u32 = 0x0008_0000;
    const KEY_OTH_SEARCH: u32 = 0x0000_0008;
    let perm = sys::keyring_perm(serial).map_err(Error::sys("keyctl(KEYCTL_DESCRIBE)"))?;
    let search = if userns {
        KEY_OTH_SEARCH
    } else {
        KEY_USR_SEARCH
    };
    sys::set_keyring_perm(serial, perm | search).map_err(Error::sys("keyctl(KEYCTL_SETPERM)"))
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

/// `process.env`, with a default PATH when the spec has none (as runc does for the lookup).
pub(super) fn environment(process: &Process) -> Vec<String> {
    process.env().clone().unwrap_or_default()
}

/// Find args[0] in the container's PATH as Go's `exec.LookPath` does in runc's init, with its
/// error text: engines pick exit codes from it (Docker: "permission denied" → 126, "executable
/// file not found" / "no such file or directory" next to the command's name → 127).
pub(super) fn lookup_path(arg0: &str, env: &[String]) -> Result<CString> {
    let found = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::Unsupported(format!("exec: {arg0:?}: path contains NUL")))
    };
    if arg0.contains('/') {
        return match executable(Path::new(arg0)) {
            Ok(()) => found(Path::new(arg0)),
            Err(why) => Err(Error::Unsupported(format!("exec: {arg0:?}: {why}"))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(arg0);
        if executable(&candidate).is_ok() {
            return found(&candidate);
        }
    }
    Err(Error::Unsupported(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// A file with an execute bit for anyone (Go's `findExecutable`); the error in Go's words.
fn executable(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err("permission denied".into()),
        Err(e) => {
            let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
            Err(format!(
                "stat {}: {}",
                path.display(),
                errno.desc().to_lowercase()
            ))
        }
    }
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
        let err = |arg0: &str| lookup_path(arg0, &env).unwrap_err().to_string();
        assert_eq!(
            err("definitely-not-a-binary"),
            "exec: \"definitely-not-a-binary\": executable file not found in $PATH"
        );
        assert_eq!(
            err("/nonexistent/x"),
            "exec: \"/nonexistent/x\": stat /nonexistent/x: no such file or directory"
        );
        // A directory, or a file without an execute bit: Docker's 126.
        assert_eq!(err("/tmp"), "exec: \"/tmp\": permission denied");
        let t = tempfile::tempdir().unwrap();
        let plain = t.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        assert!(err(plain.to_str().unwrap()).ends_with(": permission denied"));
        // Not executable in a PATH dir: skipped, as Go's LookPath skips it.
        let env = vec![format!("PATH={}", t.path().display())];
        assert!(lookup_path("plain", &env).is_err());
    }
}
