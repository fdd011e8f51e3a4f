//! CUDA processes and checkpoints: `cuda-checkpoint` moves a process's device state to host
//! memory (lock, checkpoint) before CRIU dumps it, and back (restore, unlock) after.
//!
//! A container uses a GPU when it asked for one the way gpurun's GPU support reads requests
//! (`NVIDIA_VISIBLE_DEVICES` or a legacy `CUDA_VERSION` in its process env, an `nvidia.com/`
//! CDI annotation) or when one of its processes holds a `/dev/nvidia*` node open (devices an
//! engine injected itself). Which processes are CUDA processes is `cuda-checkpoint
//! --get-state`'s answer: it fails for the others.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::gpu::select;
use crate::state::State;

/// What the installed `cuda-checkpoint` offers; its help lists what the driver supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `--action lock|checkpoint|restore|unlock` (r570+).
    pub action: bool,
    pub get_state: bool,
    /// `--toggle` (r550+): running <-> checkpointed in one step.
    pub toggle: bool,
}

impl Features {
    pub fn parse(help: &str) -> Features {
        Features {
            action: help.contains("--action"),
            get_state: help.contains("--get-state"),
            toggle: help.contains("--toggle"),
        }
    }
}

/// A process's CUDA state, as `--get-state` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudaState {
    Running,
    Locked,
    Checkpointed,
    Failed,
}

impl CudaState {
    /// None: not a CUDA process (cuda-checkpoint printed something else, or nothing).
    pub fn parse(out: &str) -> Option<CudaState> {
        match out.trim() {
            "running" => Some(CudaState::Running),
            "locked" => Some(CudaState::Locked),
            "checkpointed" => Some(CudaState::Checkpointed),
            "failed" => Some(CudaState::Failed),
            _ => None,
        }
    }
}

fn failed(msg: String) -> Error {
    Error::Unsupported(msg)
}

/// The `cuda-checkpoint` binary and what it supports.
#[derive(Debug, Clone)]
struct Tool {
    path: PathBuf,
    features: Features,
}

impl Tool {
    /// The configured binary, checked before anything is stopped.
    fn find(id: &str) -> Result<Tool> {
        let cfg = crate::gpu::Config::load()?;
        let name = &cfg.cuda_checkpoint;
        let path = resolve(name).ok_or_else(|| {
            failed(format!(
                "container {id} uses a GPU and cuda-checkpoint ({}) was not found: install \
                 NVIDIA's cuda-checkpoint (driver 550 or later) or set cuda-checkpoint in the \
                 [nvidia] section of the gpurun config",
                name.display()
            ))
        })?;
        let out = Command::new(&path)
            .arg("--help")
            .output()
            .map_err(|e| Error::io("exec", &path, e))?;
        let help = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let features = Features::parse(&help);
        if !features.get_state || !(features.action || features.toggle) {
            let said = help.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(failed(format!(
                "{} supports no --get-state with --action or --toggle: the NVIDIA driver is \
                 too old for checkpointing CUDA processes (550 or later needed; it says: {})",
                path.display(),
                said.trim()
            )));
        }
        Ok(Tool { path, features })
    }

    /// Run `cuda-checkpoint args... --pid PID`: its stdout, or its message on failure.
    fn run(&self, args: &[&str], pid: i32) -> std::result::Result<String, String> {
        let out = Command::new(&self.path)
            .args(args)
            .args(["--pid", &pid.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        match out.status.success() {
            true => Ok(stdout),
            false => {
                let err = String::from_utf8_lossy(&out.stderr);
                let msg = format!("{} {}", stdout.trim(), err.trim());
                Err(format!("{} ({})", msg.trim(), out.status))
            }
        }
    }

    fn state(&self, pid: i32) -> Option<CudaState> {
        self.run(&["--get-state"], pid)
            .ok()
            .and_then(|s| CudaState::parse(&s))
    }

    fn step(&self, pid: i32, step: Step) -> Result<()> {
        let args: &[&str] = match (self.features.action, step) {
            (true, s) => &["--action", s.action()],
            (false, _) => &["--toggle"],
        };
        self.run(args, pid).map(drop).map_err(|msg| {
            failed(format!(
                "{} {} --pid {pid}: {msg}",
                self.path.display(),
                args.join(" ")
            ))
        })
    }

    /// A process from `checkpointed` back to `running`.
    fn bring_back(&self, pid: i32) -> Result<()> {
        match self.features.action {
            true => self
                .step(pid, Step::Restore)
                .and_then(|()| self.step(pid, Step::Unlock)),
            false => self.step(pid, Step::Toggle),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Lock,
    Checkpoint,
    Restore,
    Unlock,
    /// Without --action: running <-> checkpointed.
    Toggle,
}

impl Step {
    fn action(self) -> &'static str {
        match self {
            Step::Lock => "lock",
            Step::Checkpoint => "checkpoint",
            Step::Restore => "restore",
            Step::Unlock => "unlock",
            Step::Toggle => "toggle",
        }
    }
}

/// `name` as a path, or looked up on PATH.
fn resolve(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exe = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.components().count() > 1 || name.is_absolute() {
        return exe(name).then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| exe(p))
}

/// The container asked for a GPU, or one of its processes has an NVIDIA node open.
pub fn uses_gpu(state: &State, pids: &[i32]) -> bool {
    requested_gpu(state) || pids.iter().any(|&p| holds_nvidia_node(p))
}

fn requested_gpu(state: &State) -> bool {
    let env: Vec<String> = state
        .process
        .as_ref()
        .and_then(|p| p.get("env"))
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let visible = select::visible(&env);
    let by_env = !matches!(visible, select::Visible::NotGpu | select::Visible::NoGpu);
    let by_cdi = state.annotations.iter().any(|(k, v)| {
        k.starts_with(crate::cdi::ANNOTATION_PREFIX)
            && v.split(',').any(|n| n.trim().starts_with("nvidia.com/"))
    });
    by_env || by_cdi
}

/// Whether `link` (an fd's target) is a GPU node: `/dev/nvidia<N>`, `nvidiactl`, `nvidia-uvm`.
pub fn is_nvidia_node(link: &Path) -> bool {
    link.to_str()
        .and_then(|s| s.strip_prefix("/dev/nvidia"))
        .is_some_and(|rest| !rest.contains('/'))
}

fn holds_nvidia_node(pid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|l| is_nvidia_node(&l))
}

/// The CUDA processes of a container and the `cuda-checkpoint` that handles them.
#[derive(Debug)]
pub struct Cuda {
    tool: Tool,
    /// Each CUDA process and the state it was found in.
    procs: Vec<(i32, CudaState)>,
    /// What `suspend` did, in order, for `resume` to undo.
    done: Vec<(i32, Step)>,
}

/// Before anything is stopped: None for a container without a GPU; an error when it has one
/// and no usable `cuda-checkpoint` (or the driver is too old), or a process whose CUDA state
/// is `failed`.
pub fn plan(state: &State) -> Result<Option<Cuda>> {
    let pids = state.cgroup.pids();
    if !uses_gpu(state, &pids) {
        return Ok(None);
    }
    let tool = Tool::find(&state.id)?;
    let mut procs = Vec::new();
    for pid in pids {
        match tool.state(pid) {
            Some(CudaState::Failed) => {
                return Err(failed(format!(
                    "cuda-checkpoint reports the CUDA state of pid {pid} as failed: it cannot \
                     be checkpointed"
                )))
            }
            Some(s) => procs.push((pid, s)),
            None => {}
        }
    }
    Ok(Some(Cuda {
        tool,
        procs,
        done: Vec::new(),
    }))
}

impl Cuda {
    /// Lock and checkpoint every CUDA process of the container. On failure what was done is
    /// undone, and the error returned.
    pub fn suspend(&mut self) -> Result<()> {
        let steps: &[Step] = match self.tool.features.action {
            true => &[Step::Lock, Step::Checkpoint],
            false => &[Step::Toggle],
        };
        for &(pid, initial) in &self.procs.clone() {
            // A process someone else locked is only checkpointed (and left locked by resume).
            let todo = match initial {
                CudaState::Running => steps,
                CudaState::Locked if self.tool.features.action => &steps[1..],
                _ => &[],
            };
            for &step in todo {
                if let Err(e) = self.tool.step(pid, step) {
                    let _ = self.resume();
                    self.done.clear();
                    return Err(e);
                }
                self.done.push((pid, step));
            }
        }
        Ok(())
    }

    /// Undo `suspend` (a failed dump, or --leave-running): restore and unlock, in reverse
    /// order; every process is tried, the first error returned.
    pub fn resume(&self) -> Result<()> {
        let mut first = None;
        for &(pid, step) in self.done.iter().rev() {
            let undo = match step {
                Step::Lock => Step::Unlock,
                Step::Checkpoint => Step::Restore,
                Step::Toggle => Step::Toggle,
                Step::Restore | Step::Unlock => continue,
            };
            if let Err(e) = self.tool.step(pid, undo) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// After a restore: restore and unlock the restored container's checkpointed CUDA processes.
pub fn resume_restored(state: &State) -> Result<()> {
    let pids = state.cgroup.pids();
    if !uses_gpu(state, &pids) {
        return Ok(());
    }
    let tool = Tool::find(&state.id)?;
    let mut first = None;
    for pid in pids {
        if tool.state(pid) == Some(CudaState::Checkpointed) {
            if let Err(e) = tool.bring_back(pid) {
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
#[path = "cuda_tests.rs"]
mod tests;
