//! `exec`: run another process in a running container (see [`crate::process::tenant`]).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;
use serde_json::{json, Value};

use super::load;
use crate::error::{Error, Result};
use crate::process::{parent::Init, tenant};
use crate::state::{self, Status};

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
    let process = build_process(&state.bundle, opts)?;
    // The container's filter, compiled before anything is started.
    let seccomp = state
        .seccomp
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()?;
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
    let proc = tenant::spawn(
        state.pid,
        state.pid_start_time,
        &state.cgroup,
        &process,
        console.as_ref(),
        opts.preserve_fds,
        seccomp.as_ref(),
    )?;
    if let Some(pid_file) = &opts.pid_file {
        state::write_pid_file(pid_file, proc.pid.as_raw())?;
    }
    Ok(proc)
}

fn build_process(bundle: &Path, opts: &ExecOptions) -> Result<Process> {
    if let Some(file) = &opts.process_file {
        let text = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
        let de = &mut serde_json::Deserializer::from_slice(&text);
        return serde_path_to_error::deserialize(de).map_err(|e| {
            Error::Unsupported(format!("exec: invalid process {}: {e}", file.display()))
        });
    }
    if opts.args.is_empty() {
        return Err(Error::Unsupported(
            "exec: no command given (use ID COMMAND… or --process FILE)".into(),
        ));
    }
    // The container's own process is the base, as runc does it.
    let config = bundle.join("config.json");
    let spec: Value = std::fs::read(&config)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}));
    let mut p = spec
        .get("process")
        .cloned()
        .unwrap_or_else(|| json!({"cwd": "/", "user": {"uid": 0, "gid": 0}}));
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
    serde_json::from_value(p).map_err(|e| Error::Unsupported(format!("exec: {e}")))
}
