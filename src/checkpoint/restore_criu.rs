//! The CRIU side of `restore`: the request (CRIU's root, external mounts, inherited stdio and
//! namespaces, cgroup roots) and the notifications that run hooks and record the restored init.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::super::args::RestoreArgs;
use crate::cgroups::Cgroup;
use crate::criu::{self, CgMode, CriuError, Handler, Notification, Opts};
use crate::error::{Error, Result};
use crate::hooks::{self, Phase};
use crate::namespaces::Namespaces;
use crate::process::pidinfo;
use crate::spec::Bundle;
use crate::state::{self, ContainerDir, State, Status};

/// What `restore` checked and opened before anything was made.
pub struct Plan {
    pub images: OwnedFd,
    pub work: Option<OwnedFd>,
    /// CRIU's log file, for errors.
    pub log: PathBuf,
    /// `descriptors.json`: what fds 0-2 of the init were.
    pub inherited: Vec<String>,
    pub namespaces: Namespaces,
    pub empty_ns: u32,
    /// The connected --console-socket, for a terminal.
    pub console: Option<OwnedFd>,
    pub cg_mode: CgMode,
}

/// Bind the rootfs at `<state dir>/criu-root` (CRIU's root must be a mount point whose parent
/// is not overmounted), run the restore, unbind. `state` gets the restored init.
pub fn run(
    dir: &ContainerDir,
    bundle: &Bundle,
    args: &RestoreArgs,
    plan: Plan,
    criu_bin: &Path,
    state: &mut State,
) -> Result<()> {
    super::mountpoints::prepare(&bundle.spec, &bundle.rootfs)?;
    let criu_root = dir.path.join("criu-root");
    std::fs::create_dir(&criu_root).map_err(|e| Error::io("mkdir", &criu_root, e))?;
    mount(
        Some(&bundle.rootfs),
        &criu_root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(Error::sys_path("mount", &criu_root))?;
    // Private, so the bind and CRIU's mounts below it never propagate back to the host.
    let restored = mount(
        None::<&str>,
        &criu_root,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(Error::sys_path("mount", &criu_root))
    .and_then(|()| call(dir, bundle, args, plan, criu_bin, &criu_root, state));
    let _ = umount2(&criu_root, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&criu_root);
    restored
}

fn call(
    dir: &ContainerDir,
    bundle: &Bundle,
    args: &RestoreArgs,
    plan: Plan,
    criu_bin: &Path,
    criu_root: &Path,
    state: &mut State,
) -> Result<()> {
    let mut inherit_fds = stdio_keys(&plan.inherited);
    // Joined namespaces (a netns of the engine's) were external at the dump: hand them back.
    let mut ns_fds = Vec::new();
    // (a pid namespace joined by path is kept apart from the others: see namespaces.rs)
    let mut join_ns = Vec::new();
    for join in plan.namespaces.join.iter().chain(&plan.namespaces.pid) {
        let key = match join.flag {
            CloneFlags::CLONE_NEWNET => "extRootNetNS",
            CloneFlags::CLONE_NEWPID => "extRootPidNS",
            // a pod's ipc/uts namespaces: CRIU enters them instead of restoring private ones
            CloneFlags::CLONE_NEWIPC => {
                join_ns.push(("ipc".to_string(), join.path.clone()));
                continue;
            }
            CloneFlags::CLONE_NEWUTS => {
                join_ns.push(("uts".to_string(), join.path.clone()));
                continue;
            }
            _ => continue,
        };
        if plan.empty_ns & join.flag.bits() as u32 != 0 {
            continue;
        }
        let fd = open(
            &join.path,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(Error::sys_path("open", &join.path))?;
        inherit_fds.push((key.to_string(), fd.as_raw_fd()));
        ns_fds.push(fd);
    }
    let ext_mounts = super::super::mounts::external(&bundle.spec)
        .iter()
        .map(|m| m.restore_pair())
        .collect();
    let opts = Opts {
        images_dir: Some(plan.images),
        work_dir: plan.work,
        log_file: super::LOG_FILE.into(),
        root: Some(criu_root.to_path_buf()),
        tcp_established: args.criu.tcp_established,
        ext_unix_sk: args.criu.ext_unix_sk,
        shell_job: args.criu.shell_job,
        file_locks: args.criu.file_locks,
        auto_dedup: args.criu.auto_dedup,
        manage_cgroups: true,
        cg_mode: plan.cg_mode,
        cg_roots: cg_roots(&state.cgroup),
        ext_mounts,
        inherit_fds,
        join_ns,
        empty_ns: plan.empty_ns,
        notify_scripts: true,
        orphan_pts_master: plan.console.is_some(),
        rst_sibling: true,
        lsm_profile: args.lsm_profile.clone(),
        lsm_mount_context: args.lsm_mount_context.clone(),
        ..Opts::default()
    };
    let userns = plan.namespaces.new.contains(CloneFlags::CLONE_NEWUSER)
        || plan
            .namespaces
            .join
            .iter()
            .any(|j| j.flag == CloneFlags::CLONE_NEWUSER);
    let mut handler = Restorer {
        dir,
        state,
        devices: super::devices::Plan::new(&bundle.spec, userns),
        pid_file: args.pid_file.as_deref(),
        console: plan.console,
        failed: None,
    };
    let outcome = criu::call(criu_bin, criu::Kind::Restore, opts, &mut handler);
    drop(ns_fds);
    let failed = handler.failed.take();
    let outcome = match (outcome, failed) {
        // Our own error (a hook, the state) says more than CRIU's "aborted".
        (Err(_), Some(ours)) => {
            return Err(Error::Unsupported(format!(
                "restore: {ours} (criu log file: {})",
                plan.log.display()
            )))
        }
        (Err(e), None) => return Err(with_log(e, &plan.log).into()),
        (Ok(_), Some(ours)) => return Err(ours),
        (Ok(outcome), None) => outcome,
    };
    if handler.state.pid == 0 {
        // No post-restore notification came: the reply's pid is the init.
        let pid = outcome
            .restored_pid
            .ok_or_else(|| Error::Init("criu restore: no restored pid in the reply".into()))?;
        handler.record(pid)?;
    }
    Ok(())
}

/// CRIU's error, with its log file named whatever went wrong.
fn with_log(e: CriuError, log: &Path) -> CriuError {
    match e {
        CriuError::Rpc(msg) => CriuError::Failed {
            op: "restore",
            msg,
            log: log.to_path_buf(),
        },
        e => e,
    }
}

/// fds 0-2 that were pipes at the dump: CRIU puts ours in their place, so the caller's stdio
/// becomes the restored init's (runc's rule). Files are CRIU's to reopen: one inside the
/// container is restored as it was, and one outside it could not have been dumped.
fn stdio_keys(recorded: &[String]) -> Vec<(String, i32)> {
    recorded
        .iter()
        .take(3)
        .enumerate()
        .filter(|(_, s)| s.starts_with("pipe:"))
        .map(|(i, s)| (s.clone(), i as i32))
        .collect()
}

/// Where CRIU puts the restored tasks: our cgroup, relative to each hierarchy's root ("" for
/// cgroup2, whose controllers are all in one tree).
fn cg_roots(cg: &Cgroup) -> Vec<(String, String)> {
    let relative = |dir: &Path, name: &str| {
        let mount = Path::new(crate::cgroups::ROOT).join(name);
        dir.strip_prefix(&mount)
            .ok()
            .map(|p| format!("/{}", p.display()))
    };
    let mut roots: Vec<(String, String)> = cg
        .v1
        .iter()
        .filter_map(|(name, dir)| Some((name.clone(), relative(dir, name)?)))
        .collect();
    let v2_name = match cg.unified_host {
        true => "",
        false => "unified",
    };
    if let Some(path) = cg.v2.as_deref().and_then(|d| relative(d, v2_name)) {
        roots.push((String::new(), path));
    }
    roots
}

/// Answers CRIU's notifications for one restore.
struct Restorer<'a> {
    dir: &'a ContainerDir,
    state: &'a mut State,
    pid_file: Option<&'a Path>,
    /// This node's device nodes, made while the restored tasks are stopped.
    devices: Option<super::devices::Plan>,
    console: Option<OwnedFd>,
    /// Our error in a notification: reported instead of CRIU's.
    failed: Option<Error>,
}

impl Restorer<'_> {
    /// The restored init: pid and start time in state.json (atomic), then the pid file.
    fn record(&mut self, pid: i32) -> Result<()> {
        let start = pidinfo::start_time(pid)
            .ok_or_else(|| Error::Init(format!("restored init {pid} exited unexpectedly")))?;
        self.state.pid = pid;
        self.state.pid_start_time = start;
        self.dir.save(self.state)?;
        if let Some(path) = self.pid_file {
            state::write_pid_file(path, pid)?;
        }
        Ok(())
    }

    fn answer(&mut self, n: Notification) -> Result<()> {
        match n.script.as_str() {
            // The tasks' namespaces exist: the hooks `create` runs at this point.
            "setup-namespaces" => {
                let mut oci = self.state.clone();
                oci.pid = n.pid;
                let json = oci.oci_json(Status::Creating);
                for phase in [Phase::Prestart, Phase::CreateRuntime] {
                    hooks::run_spec_hooks(phase, self.state.hooks.as_ref(), &json)?;
                }
                Ok(())
            }
            // The tasks are restored and still stopped.
            "post-restore" => {
                self.record(n.pid)?;
                match &self.devices {
                    Some(devices) => devices.apply(n.pid),
                    None => Ok(()),
                }
            }
            "orphan-pts-master" => {
                let (Some(socket), Some(master)) = (&self.console, n.fd) else {
                    return Err(Error::Init(
                        "orphan-pts-master without a console socket".into(),
                    ));
                };
                crate::console::send_master(socket, &master)
            }
            _ => Ok(()),
        }
    }
}

impl Handler for Restorer<'_> {
    /// CRIU joins the container's cgroup, so the tasks it restores are born there.
    fn started(&mut self, pid: i32) -> std::result::Result<(), CriuError> {
        self.state
            .cgroup
            .add(pid)
            .map_err(|e| CriuError::Rpc(format!("move criu into the container's cgroup: {e}")))
    }

    fn notify(&mut self, n: Notification) -> std::result::Result<(), CriuError> {
        let script = n.script.clone();
        self.answer(n).map_err(|e| {
            let msg = format!("{script}: {e}");
            self.failed = Some(e);
            CriuError::Rpc(msg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_pipes_are_inherited() {
        let rec = ["/dev/null", "pipe:[12]", "/dev/pts/0"].map(String::from);
        assert_eq!(stdio_keys(&rec), vec![("pipe:[12]".to_string(), 1)]);
    }

    #[test]
    fn cgroup_roots_are_relative() {
        let cg = Cgroup {
            v2: Some(PathBuf::from("/sys/fs/cgroup/a/b")),
            unified_host: true,
            ..Cgroup::default()
        };
        assert_eq!(cg_roots(&cg), vec![(String::new(), "/a/b".to_string())]);
    }
}
