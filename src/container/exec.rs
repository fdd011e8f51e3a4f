//! `exec`: run another process in a running container (see [`crate::process::tenant`]).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;
use serde_json::{json, Value};

use super::load;
use crate::error::{Error, Result};
use crate::process::{parent::Init, tenant};
use crate::state::{self, State, Status};

/// What to run: a process.json (as containerd writes it) or the container's own process with
/// runc's overrides.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub tty: bool,
    pub console: Option<crate::console::ConsoleSocket>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    /// `--apparmor` and `--process-label` (runc's; ignored with a process file, as in runc).
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

/// Start the process; the caller waits for it (or not, with --detach).
pub fn exec(root: &Path, id: &str, opts: &ExecOptions) -> Result<Init> {
    let (dir, state, status) = load(root, id)?;
    match status {
        Status::Stopped => {
            return Err(Error::Unsupported(
                "cannot exec in a stopped container".into(),
            ))
        }
        Status::Paused => {
            return Err(Error::Unsupported(
                "cannot exec in a paused container".into(),
            ))
        }
        _ => {}
    }
    let process = build_process(&state, opts)?;
    crate::process::attrs::validate_process(&process)
        .map_err(|msg| Error::Unsupported(format!("exec: {msg}")))?;
    crate::lsm::check(Some(&process), None)?;
    // The container's filter, compiled before anything is started.
    let seccomp = state
        .seccomp
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()?;
    // NOTIFY rules: the agent is connected before anything starts; it gets the container's
    // state as `running` (runc's), with the pid of its init.
    let agent = match (&state.seccomp, &seccomp) {
        (Some(profile), Some(program)) => crate::seccomp::listener::connect(profile, program)?,
        _ => None,
    };
    let oci_state = state.oci_json(Status::Running);
    let console = match (process.terminal() == Some(true), &opts.console) {
        (true, Some(socket)) => Some(socket.connect()?),
        (true, None) => {
            return Err(Error::Unsupported(
                "exec: a terminal needs --console-socket to receive the pty".into(),
            ))
        }
        (false, _) => None,
    };
    // Let other commands (state, kill) in while this one runs.
    drop(dir);
    let extras = tenant::Extras {
        console: console.as_ref(),
        preserve_fds: opts.preserve_fds,
        seccomp: seccomp.as_ref(),
        seccomp_agent: agent.as_ref().map(|a| (a, oci_state.as_slice())),
        personality: state.personality.as_ref(),
        memory_policy: state.memory_policy.as_ref(),
        resctrl: state.resctrl.as_ref(),
        keyring: (!state.no_new_keyring).then_some(id),
    };
    let proc = tenant::spawn(
        state.pid,
        state.pid_start_time,
        &state.cgroup,
        &process,
        &extras,
    )?;
    if let Some(pid_file) = &opts.pid_file {
        state::write_pid_file(pid_file, proc.pid.as_raw())?;
    }
    Ok(proc)
}

/// The container's `process` as at create; for a container made by a gpurun that did not
/// record it, the bundle's config.json as it is now.
fn container_process(state: &State) -> Option<Value> {
    if let Some(p) = &state.process {
        return Some(p.clone());
    }
    let config = state.bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(config).ok()?).ok()?;
    Some(spec.get_mut("process")?.take())
}

fn build_process(state: &State, opts: &ExecOptions) -> Result<Process> {
    if let Some(file) = &opts.process_file {
        let text = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
        let invalid = |e: String| {
            Error::Unsupported(format!("exec: invalid process {}: {e}", file.display()))
        };
        let mut p: Value = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
        // What process.json leaves out of these, the container's process gives (runc's
        // newInitConfig takes them from the container's config).
        if let (Some(own), Some(obj)) = (container_process(state), p.as_object_mut()) {
            for key in ["ioPriority", "scheduler", "execCPUAffinity"] {
                if let (false, Some(v)) = (obj.contains_key(key), own.get(key)) {
                    obj.insert(key.into(), v.clone());
                }
            }
            // An empty or missing label is the container's (runc's newSetnsProcess): an exec
            // never runs less confined than the init.
            for key in ["apparmorProfile", "selinuxLabel"] {
                let unset = obj
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .is_empty();
                if let (true, Some(v)) = (unset, own.get(key)) {
                    obj.insert(key.into(), v.clone());
                }
            }
        }
        crate::process::attrs::fix_scheduler_flags(&mut p);
        return serde_path_to_error::deserialize(p).map_err(|e| invalid(e.to_string()));
    }
    if opts.args.is_empty() {
        return Err(Error::Unsupported(
            "exec: no command given (use ID COMMAND… or --process FILE)".into(),
        ));
    }
    // The container's own process is the base, as runc does it.
    let mut p = container_process(state)
        .filter(|p| !p.is_null())
        .unwrap_or_else(|| json!({"cwd": "/", "user": {"uid": 0, "gid": 0}}));
    crate::process::attrs::fix_scheduler_flags(&mut p);
    p["args"] = json!(opts.args);
    p["terminal"] = json!(opts.tty);
    if let Some(cwd) = &opts.cwd {
        p["cwd"] = json!(cwd);
    }
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for kv in &opts.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p["env"] = json!(env);
    if let Some(user) = &opts.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let parse = |s: &str| {
            s.parse::<u32>().map_err(|_| {
                Error::Unsupported(format!("exec: --user {user:?}: expected UID[:GID]"))
            })
        };
        p["user"] = json!({"uid": parse(uid)?, "gid": parse(gid)?});
    }
    if !opts.additional_gids.is_empty() {
        p["user"]["additionalGids"] = json!(opts.additional_gids);
    }
    for cap in &opts.caps {
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            if !p["capabilities"][set].is_array() {
                p["capabilities"][set] = json!([]);
            }
            p["capabilities"][set]
                .as_array_mut()
                .expect("just made an array")
                .push(json!(cap));
        }
    }
    if opts.no_new_privs {
        p["noNewPrivileges"] = json!(true);
    }
    if let Some(profile) = opts.apparmor.as_deref().filter(|p| !p.is_empty()) {
        p["apparmorProfile"] = json!(profile);
    }
    if let Some(label) = opts.process_label.as_deref().filter(|l| !l.is_empty()) {
        p["selinuxLabel"] = json!(label);
    }
    serde_json::from_value(p).map_err(|e| Error::Unsupported(format!("exec: {e}")))
}
