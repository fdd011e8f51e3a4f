//! OCI hooks: the six phases, run with the container's state on stdin.
//!
//! A hook is anything implementing [`Hook`]: an external executable from config.json
//! ([`CommandHook`]) or a function built into gpurun ([`BuiltinHook`], the seam the GPU support
//! plugs into). Both run through [`run_phase`], so they get the same state, the same ordering
//! and the same error text ("error running prestart hook #0: …", runc's wording).
//!
//! | phase            | where it runs                              | who runs it         | failure                 |
//! |------------------|--------------------------------------------|---------------------|-------------------------|
//! | prestart         | runtime namespace, after mounts, pre-pivot | parent (`create`)   | create fails, cleaned up |
//! | createRuntime    | runtime namespace, after mounts, pre-pivot | parent (`create`)   | create fails, cleaned up |
//! | createContainer  | container mount namespace, pre-pivot       | the init            | create fails, cleaned up |
//! | startContainer   | inside the container, right before exec    | the init            | the init exits 1        |
//! | poststart        | runtime namespace, after the user process's execve | `start`     | start fails, container killed |
//! | poststop         | runtime namespace, after the container is gone | `delete`        | logged, the rest still run, delete succeeds |
//!
//! The state on stdin says `created` for every hook before the user's program runs (prestart
//! to startContainer: the spec's lifecycle puts them after the create step), `running` for
//! poststart and `stopped` for poststop. Failures follow runtime-spec 1.3's lifecycle.
//!
//! A hook without `env` gets runc's environment: the runtime's own (what the engine gave
//! gpurun) for every phase but startContainer, which gets the container process's
//! environment (runc's de-facto rule, which hook writers rely on). With `env` given, exactly
//! that.

use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use oci_spec::runtime::Hook as SpecHook;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prestart => "prestart",
            Phase::CreateRuntime => "createRuntime",
            Phase::CreateContainer => "createContainer",
            Phase::StartContainer => "startContainer",
            Phase::Poststart => "poststart",
            Phase::Poststop => "poststop",
        }
    }

    /// The spec's hooks for this phase.
    pub fn of(self, hooks: Option<&oci_spec::runtime::Hooks>) -> &[SpecHook] {
        let Some(h) = hooks else { return &[] };
        #[allow(deprecated)] // prestart is deprecated in the spec but still used by engines
        let list = match self {
            Phase::Prestart => h.prestart(),
            Phase::CreateRuntime => h.create_runtime(),
            Phase::CreateContainer => h.create_container(),
            Phase::StartContainer => h.start_container(),
            Phase::Poststart => h.poststart(),
            Phase::Poststop => h.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }
}

/// Something run at a hook point with the container's state JSON.
pub trait Hook {
    fn run(&self, state_json: &[u8]) -> std::result::Result<(), String>;
}

/// An executable from config.json: `path`, `args` (args[0] is argv[0]), `env` (see the module
/// doc for a hook without one), and an optional `timeout` in seconds. Its output is captured
/// into the error.
pub struct CommandHook<'a> {
    pub hook: &'a SpecHook,
    /// The environment of a hook without `env`; `None`: the runtime's own.
    pub default_env: Option<&'a [String]>,
}

/// A hook implemented inside gpurun.
pub struct BuiltinHook {
    pub name: &'static str,
    pub func: fn(&[u8]) -> std::result::Result<(), String>,
}

impl Hook for BuiltinHook {
    fn run(&self, state_json: &[u8]) -> std::result::Result<(), String> {
        (self.func)(state_json).map_err(|e| format!("{}: {e}", self.name))
    }
}

impl Hook for CommandHook<'_> {
    fn run(&self, state_json: &[u8]) -> std::result::Result<(), String> {
        let h = self.hook;
        let mut cmd = Command::new(h.path());
        if let Some(args) = h.args().as_deref().filter(|a| !a.is_empty()) {
            std::os::unix::process::CommandExt::arg0(&mut cmd, &args[0]);
            cmd.args(&args[1..]);
        }
        let env = match (h.env().as_deref(), self.default_env) {
            (Some(env), _) => Some(env),
            (None, default) => default,
        };
        if let Some(env) = env {
            cmd.env_clear();
            for kv in env {
                if let Some((k, v)) = kv.split_once('=') {
                    cmd.env(k, v);
                }
            }
        }
        // Output goes to an anonymous memory file: a chatty hook can never block on a full
        // pipe, and it works where no filesystem is writable (startContainer, read-only root).
        let out = nix::sys::memfd::memfd_create(
            c"gpurun-hook-output",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map(std::fs::File::from)
        .map_err(|e| format!("memfd for hook output: {e}"))?;
        // The state goes in through a memfd too: a hook that never reads its stdin cannot
        // block us (a pipe would, past 64 KiB of annotations), so its timeout always holds.
        let mut input = nix::sys::memfd::memfd_create(
            c"gpurun-hook-state",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map(std::fs::File::from)
        .map_err(|e| format!("memfd for hook state: {e}"))?;
        input
            .write_all(state_json)
            .and_then(|_| input.rewind())
            .map_err(|e| format!("hook state: {e}"))?;
        let dup = |f: &std::fs::File| f.try_clone().map(Stdio::from).map_err(|e| e.to_string());
        cmd.stdin(Stdio::from(input))
            .stdout(dup(&out)?)
            .stderr(dup(&out)?);
        // Its own process group, so a timeout kills what it started too; and it dies with us.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        crate::sys::die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", h.path().display()))?;
        let pidfd = crate::sys::pidfd_open(nix::unistd::Pid::from_raw(child.id() as i32))
            .map_err(|e| e.to_string())?;
        let timeout_ms = h
            .timeout()
            .filter(|t| *t > 0)
            .map(|t| (t as u64).saturating_mul(1000));
        if !wait_with_timeout(pidfd.as_fd(), timeout_ms) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            return Err(format!(
                "timed out after {}s",
                h.timeout().unwrap_or_default()
            ));
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            return Ok(());
        }
        let mut output = String::new();
        let mut out = out;
        let _ = out.rewind().and_then(|_| out.read_to_string(&mut output));
        Err(format!("{status}, output: {:?}", output.trim()))
    }
}

pub(crate) fn wait_with_timeout(
    pidfd: std::os::fd::BorrowedFd<'_>,
    timeout_ms: Option<u64>,
) -> bool {
    let deadline =
        timeout_ms.map(|ms| std::time::Instant::now() + std::time::Duration::from_millis(ms));
    loop {
        let left = deadline.map(|d| {
            d.saturating_duration_since(std::time::Instant::now())
                .as_millis()
                .min(60_000) as u16
        });
        if left == Some(0) {
            return false;
        }
        let timeout = left.map_or(nix::poll::PollTimeout::NONE, nix::poll::PollTimeout::from);
        let mut fds = [nix::poll::PollFd::new(pidfd, nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(n) if n > 0 => return true,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Run hook number `i` of `phase`; a failure in runc's wording.
fn run_one(phase: Phase, i: usize, hook: &dyn Hook, state_json: &[u8]) -> Result<()> {
    hook.run(state_json)
        .map_err(|e| Error::Hook(format!("error running {} hook #{i}: {e}", phase.name())))
}

/// Run `hooks` in order; the first failure stops the phase.
pub fn run_phase(phase: Phase, hooks: &[&dyn Hook], state_json: &[u8]) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        run_one(phase, i, *hook, state_json)?;
    }
    Ok(())
}

/// Run every hook of a phase whose failures are warnings (poststop): a failing hook does not
/// keep the others from running. Returns the failures.
pub fn run_phase_all(phase: Phase, hooks: &[&dyn Hook], state_json: &[u8]) -> Vec<Error> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, hook)| run_one(phase, i, *hook, state_json).err())
        .collect()
}

/// The spec's hooks of `phase` as [`Hook`]s; `default_env` for those without `env`.
pub fn command_hooks<'a>(
    phase: Phase,
    hooks: Option<&'a oci_spec::runtime::Hooks>,
    default_env: Option<&'a [String]>,
) -> Vec<CommandHook<'a>> {
    phase
        .of(hooks)
        .iter()
        .map(|hook| CommandHook { hook, default_env })
        .collect()
}

/// `run` with the spec's hooks of `phase` as `&dyn Hook`s.
fn with_spec_hooks<R>(
    phase: Phase,
    hooks: Option<&oci_spec::runtime::Hooks>,
    default_env: Option<&[String]>,
    run: impl FnOnce(&[&dyn Hook]) -> R,
) -> R {
    let list = command_hooks(phase, hooks, default_env);
    let dyns: Vec<&dyn Hook> = list.iter().map(|h| h as &dyn Hook).collect();
    run(&dyns)
}

/// Run the spec's hooks of `phase` (a hook without `env` inherits the runtime's).
pub fn run_spec_hooks(
    phase: Phase,
    hooks: Option<&oci_spec::runtime::Hooks>,
    state_json: &[u8],
) -> Result<()> {
    with_spec_hooks(phase, hooks, None, |h| run_phase(phase, h, state_json))
}

/// startContainer: a hook without `env` gets the container process's `env` (runc's rule).
pub fn run_start_container_hooks(
    hooks: Option<&oci_spec::runtime::Hooks>,
    state_json: &[u8],
    container_env: &[String],
) -> Result<()> {
    let phase = Phase::StartContainer;
    with_spec_hooks(phase, hooks, Some(container_env), |h| {
        run_phase(phase, h, state_json)
    })
}

/// poststop: every hook runs; the failures come back as warnings to log.
pub fn run_poststop_hooks(
    hooks: Option<&oci_spec::runtime::Hooks>,
    state_json: &[u8],
) -> Vec<Error> {
    let phase = Phase::Poststop;
    with_spec_hooks(phase, hooks, None, |h| run_phase_all(phase, h, state_json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> SpecHook {
        serde_json::from_value(json).unwrap()
    }

    fn cmd(hook: &SpecHook) -> CommandHook<'_> {
        CommandHook {
            hook,
            default_env: None,
        }
    }

    #[test]
    fn command_hook_gets_state_env_and_args() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo \" $FOO $0 $1\" >> {}", out.display(), out.display()), "zero", "arg1"],
            "env": ["FOO=bar"]
        }));
        run_spec_hooks(Phase::Prestart, None, b"{}").unwrap();
        run_phase(Phase::Prestart, &[&cmd(&h)], b"{\"id\":\"x\"}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"x\"} bar zero arg1\n"
        );
    }

    #[test]
    fn failure_and_timeout_are_reported() {
        let fail =
            hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo oops; exit 3"]}));
        let err = run_phase(Phase::CreateRuntime, &[&cmd(&fail)], b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("error running createRuntime hook #0:") && err.contains("oops"),
            "{err}"
        );
        let slow =
            hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}));
        let err = run_phase(Phase::Poststart, &[&cmd(&slow)], b"{}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out"), "{err}");
        let builtin = BuiltinHook {
            name: "gpu",
            func: |_| Err("no driver".into()),
        };
        let err = run_phase(Phase::CreateRuntime, &[&builtin], b"{}")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "error running createRuntime hook #0: gpu: no driver");
    }

    #[test]
    fn environment_rules_and_poststop_goes_on() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let script = format!(
            "echo \"$1 ${{HOME-unset}} ${{APP-unset}}\" >> {}",
            out.display()
        );
        let bare =
            hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script, "x", "bare"]}));
        let mut given = bare.clone();
        given.set_args(Some(vec![
            "sh".into(),
            "-c".into(),
            script.clone(),
            "x".into(),
            "given".into(),
        ]));
        given.set_env(Some(vec!["APP=given".into()]));
        let app_env = ["APP=container".to_string()];
        let with_default = CommandHook {
            hook: &bare,
            default_env: Some(&app_env),
        };
        // No env: the runtime's (HOME is set in any test environment), or the default given.
        run_phase(
            Phase::Prestart,
            &[&cmd(&bare), &with_default, &cmd(&given)],
            b"{}",
        )
        .unwrap();
        let home = std::env::var("HOME").unwrap_or_else(|_| "unset".into());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("bare {home} unset\nbare unset container\ngiven unset given\n")
        );
        // poststop: every hook runs, each failure reported.
        let fail = hook(serde_json::json!({"path": "/bin/false"}));
        let errors = run_phase_all(
            Phase::Poststop,
            &[&cmd(&fail), &cmd(&bare), &cmd(&fail)],
            b"{}",
        );
        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[1].starts_with("error running poststop hook #2:"),
            "{errors:?}"
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);
    }
}
