//! `linux.seccomp`: compiling the OCI profile into BPF (in the parent, at `create`/`exec`,
//! so a bad profile fails before anything exists) and installing it in the container process
//! right before `execve`.
//!
//! # Compilation: stacked filters instead of libseccomp's single one
//!
//! seccompiler builds filters with one on-match and one on-mismatch action. A profile becomes:
//!
//! 1. an *architecture guard* (hand-written, [`arch`]): native calls pass, x32 and foreign ABIs
//!    get ENOSYS when listed, are killed otherwise;
//! 2. one filter per distinct non-allow action (`ERRNO(1)`, `ERRNO(38)`, `KILL_PROCESS`, `LOG`,
//!    …): matches the rules with that action → that action, else ALLOW;
//! 3. a *default* filter: matches every rule of the profile, whatever its action → ALLOW, else
//!    `defaultAction` (omitted when that is ALLOW).
//!
//! The kernel runs every filter and keeps the verdict of highest precedence (KILL_PROCESS >
//! KILL_THREAD > TRAP > ERRNO > TRACE > LOG > ALLOW); between equal actions with different data
//! the most recently installed filter wins. So for a call that matches rules with actions
//! {A…}, filter 3 says ALLOW and the result is the most restrictive A; a call no rule matches
//! gets `defaultAction` from filter 3 and ALLOW from the rest. That is libseccomp's result for
//! every profile in which a call's arguments select a single action — Docker's and Podman's
//! profiles included. Where libseccomp's semantics differ:
//!
//! - overlapping rules with different actions for the same call and arguments: libseccomp's
//!   outcome depends on its decision-tree order; ours is the most restrictive action, or for
//!   two ERRNO/TRACE values the one whose action appears first in the profile (installed last);
//! - runc patches its filter to answer ENOSYS for syscalls newer than any the profile names;
//!   we apply `defaultAction` to them, as libseccomp and crun do;
//! - i386/x32 calls are not matched against the rules (see [`arch`]).
//!
//! As in runc: `SCMP_ACT_KILL` is KILL_THREAD, ERRNO and TRACE default to EPERM, a rule with
//! the default action is dropped, unknown syscall names are skipped, and if one argument is
//! compared twice in a rule its conditions become separate (ORed) rules.
//!
//! # Notify (`SCMP_ACT_NOTIFY`)
//!
//! USER_NOTIF's precedence sits between ERRNO and TRACE, so its rules stack like the others.
//! A task may hold only one filter with a listener (SECCOMP_FILTER_FLAG_NEW_LISTENER, EBUSY
//! for a second), so every NOTIFY rule goes into one filter, installed with that flag; its
//! listener fd travels to the runtime, which sends it to the agent at `listenerPath` with the
//! runtime-spec's container process state ([`listener`]). As in runc, NOTIFY may not be the
//! default action nor apply to `write` (nor to `sendmsg`, which passes the fd to the runtime):
//! the process could never hand its listener over. See `process::setup::install_seccomp`.
//!
//! # Installation
//!
//! Each filter is one `seccomp(2)` call, so every filter installed before the last must let
//! that call through: [`compile`] moves the one filter that would block it to the end, and
//! refuses a profile where two would. See `process::setup::exec` for where and with which
//! privileges the filters go in.

mod arch;
mod bpf;
mod compile;
mod flags;
pub mod listener;
mod names;
mod profile;

use std::fmt;

pub use compile::compile;
pub use profile::{take_from_config, ArgRule, Profile, SyscallRule};

/// gpurun's default profile (`gpurun spec --seccomp-default`): Docker's/Podman's default
/// resolved for the default spec's capabilities on x86_64.
pub const DEFAULT_PROFILE: &str = include_str!("../../bundles/seccomp/default.json");

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp.{0}: unknown action {1:?}")]
    Action(String, String),
    #[error("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action")]
    NotifyDefault,
    #[error("linux.seccomp.{0}: SCMP_ACT_NOTIFY cannot be used for the {1} syscall")]
    NotifyCall(String, String),
    #[error("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")]
    NotifyWithoutListener,
    #[error("linux.seccomp.listenerMetadata: must not be set without linux.seccomp.listenerPath")]
    MetadataWithoutListener,
    #[error(
        "failed to connect with seccomp agent specified in the seccomp profile: connect {0}: {1}"
    )]
    Connect(String, String),
    #[error("cannot send seccomp fd to {0}: {1}")]
    Send(String, String),
    #[error(
        "linux.seccomp.{0}: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {1}"
    )]
    ErrnoWithoutErrnoAction(String, String),
    #[error("linux.seccomp.{0}: errno {1} is out of range (0..=4095)")]
    Errno(String, u32),
    #[error("linux.seccomp.{0}: unknown operator {1:?}")]
    Operator(String, String),
    #[error(
        "linux.seccomp.{0}: argument index {1} is out of range (a syscall has arguments 0..=5)"
    )]
    ArgIndex(String, u32),
    #[error("linux.seccomp.{0}: empty syscall name")]
    EmptyName(String),
    #[error("linux.seccomp.architectures: unknown architecture {0:?}")]
    Arch(String),
    #[error("linux.seccomp.flags: {0:?} is {1}")]
    Flag(String, &'static str),
    #[error("linux.seccomp: {0} is too large: {1}")]
    TooLarge(String, String),
    #[error("linux.seccomp: the profile denies seccomp(2) in more than one action, so its filters cannot all be installed")]
    BlocksInstall,
    #[error("linux.seccomp: not supported on this architecture yet (x86_64 only)")]
    UnsupportedArch,
    #[error("linux.seccomp: internal error: {0}")]
    Internal(String),
    #[error("seccomp(SECCOMP_SET_MODE_FILTER) for the {what} filter: {errno}")]
    Install {
        what: String,
        errno: nix::errno::Errno,
    },
}

/// A seccomp action with its data (errno or trace message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Trace(u32),
    Log,
    Notify,
}

impl Action {
    /// Whether a filter verdict lets the call run (ALLOW, or LOG which allows and logs).
    fn passes(ret: u32) -> bool {
        matches!(
            ret & libc::SECCOMP_RET_ACTION_FULL,
            libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG
        )
    }
}

impl From<Action> for seccompiler::SeccompAction {
    fn from(a: Action) -> Self {
        use seccompiler::SeccompAction as S;
        match a {
            // seccompiler has no USER_NOTIF: `compile::build` emits this stand-in and patches
            // its return instructions.
            Action::Notify => S::Trace(compile::NOTIFY_STANDIN),
            Action::Allow => S::Allow,
            Action::Errno(e) => S::Errno(e),
            Action::KillThread => S::KillThread,
            Action::KillProcess => S::KillProcess,
            Action::Trap => S::Trap,
            Action::Trace(d) => S::Trace(d),
            Action::Log => S::Log,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => write!(f, "SCMP_ACT_ALLOW"),
            Action::Errno(e) => write!(f, "SCMP_ACT_ERRNO({e})"),
            Action::KillThread => write!(f, "SCMP_ACT_KILL_THREAD"),
            Action::KillProcess => write!(f, "SCMP_ACT_KILL_PROCESS"),
            Action::Trap => write!(f, "SCMP_ACT_TRAP"),
            Action::Trace(d) => write!(f, "SCMP_ACT_TRACE({d})"),
            Action::Log => write!(f, "SCMP_ACT_LOG"),
            Action::Notify => write!(f, "SCMP_ACT_NOTIFY"),
        }
    }
}

/// One BPF program, named for error messages.
#[derive(Debug, Clone)]
pub struct Filter {
    pub what: String,
    insns: Vec<bpf::Insn>,
    /// The SCMP_ACT_NOTIFY filter: installed with a listener.
    notify: bool,
}

/// A compiled profile: filters in install order and the flags each is installed with.
#[derive(Debug, Clone)]
pub struct Program {
    filters: Vec<Filter>,
    flags: u32,
    /// For the notify filter: `flags` without TSYNC (the kernel refuses it with a listener;
    /// we are single-threaded anyway) and with WAIT_KILLABLE_RECV if the profile asks.
    listener_flags: u32,
}

impl Program {
    /// Whether the profile has SCMP_ACT_NOTIFY rules: [`Program::install`] then returns a
    /// listener for the agent.
    pub fn has_notify(&self) -> bool {
        self.filters.iter().any(|f| f.notify)
    }

    /// Install every filter into the calling process (needs no_new_privs or CAP_SYS_ADMIN).
    /// Returns the notify listener when the profile has NOTIFY rules.
    pub fn install(&self) -> Result<Option<std::os::fd::OwnedFd>, SeccompError> {
        // Converted up front: once the first filter is in, even malloc's brk/mmap may be denied.
        let progs: Vec<Vec<libc::sock_filter>> = self
            .filters
            .iter()
            .map(|f| {
                f.insns
                    .iter()
                    .map(|i| libc::sock_filter {
                        code: i.code,
                        jt: i.jt,
                        jf: i.jf,
                        k: i.k,
                    })
                    .collect()
            })
            .collect();
        let mut listener = None;
        for (f, prog) in self.filters.iter().zip(&progs) {
            let installed = match f.notify {
                true => crate::sys::seccomp_set_mode_filter_listener(self.listener_flags, prog)
                    .map(|fd| listener = Some(fd)),
                false => crate::sys::seccomp_set_mode_filter(self.flags, prog),
            };
            installed.map_err(|errno| SeccompError::Install {
                what: f.what.clone(),
                errno,
            })?;
        }
        Ok(listener)
    }

    /// What the installed program answers for `nr(args)` from the native ABI: every filter's
    /// verdict combined with the kernel's precedence and tie rule.
    pub fn verdict(&self, nr: i64, args: [u64; 6]) -> u32 {
        self.verdict_for(&bpf::Data::native(nr as i32, args))
    }

    fn verdict_for(&self, data: &bpf::Data) -> u32 {
        // As seccomp_run_filters(): newest first; a later filter replaces the verdict only
        // with a strictly more restrictive action.
        let mut ret = libc::SECCOMP_RET_ALLOW;
        for f in self.filters.iter().rev() {
            let cur = bpf::run(&f.insns, data);
            if ((cur & libc::SECCOMP_RET_ACTION_FULL) as i32)
                < ((ret & libc::SECCOMP_RET_ACTION_FULL) as i32)
            {
                ret = cur;
            }
        }
        ret
    }

    /// The filters' names in install order.
    pub fn filter_names(&self) -> Vec<&str> {
        self.filters.iter().map(|f| f.what.as_str()).collect()
    }

    /// BPF instructions over all filters.
    pub fn instructions(&self) -> usize {
        self.filters.iter().map(|f| f.insns.len()).sum()
    }
}

/// The `linux.seccomp` part of `features` (runc's format).
pub fn features() -> serde_json::Value {
    if arch::target().is_none() {
        return serde_json::json!({"enabled": false});
    }
    let flags: Vec<&str> = flags::KNOWN.iter().map(|(n, _)| *n).collect();
    let supported: Vec<&str> = flags::KNOWN
        .iter()
        .filter(|(_, b)| flags::supported(*b))
        .map(|(n, _)| *n)
        .collect();
    serde_json::json!({
        "enabled": true,
        "actions": [
            "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP"
        ],
        "operators": [
            "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
        ],
        "archs": arch::KNOWN,
        "knownFlags": flags,
        "supportedFlags": supported,
    })
}

#[cfg(test)]
mod tests;
