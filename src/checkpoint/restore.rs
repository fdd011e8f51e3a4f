//! `gpurun restore`: a container from CRIU images, runc's way. The bundle is loaded and checked
//! as `create` does (GPU requests become this node's devices and driver mounts), the state dir
//! and cgroup are recorded before they are made, and CRIU restores the tasks into that cgroup
//! with the rootfs bound at a private dir as its root. A failed restore leaves nothing.

#[path = "restore_criu.rs"]
mod criu_side;
#[path = "restore_devices.rs"]
mod devices;
#[path = "restore_mountpoints.rs"]
mod mountpoints;
#[path = "restore_wait.rs"]
mod wait;

use std::path::{Path, PathBuf};

use super::args::RestoreArgs;
use super::options::{make_dir, open_dir};
use crate::cgroups::{Cgroup, Manager};
use crate::container;
use crate::criu::{self, CriuError};
use crate::error::{Error, Result};
use crate::hooks::{self, Phase};
use crate::namespaces::Namespaces;
use crate::spec::Bundle;
use crate::state::{self, ContainerDir, State, Status};

/// CRIU writes its restore log here, in the work dir (runc's name).
const LOG_FILE: &str = "restore.log";

pub fn restore(root: &Path, args: &RestoreArgs, systemd_cgroup: bool) -> Result<i32> {
    // Everything that can be checked without side effects comes first.
    state::validate_id(&args.id)?;
    if args.criu.lazy_pages {
        return Err(Error::Unsupported(
            "restore: --lazy-pages is not supported".into(),
        ));
    }
    if systemd_cgroup {
        return Err(Error::Unsupported(
            "restore: --systemd-cgroup is not supported (use the cgroupfs driver)".into(),
        ));
    }
    let images = args.criu.images()?;
    let inventory = images.join("inventory.img");
    if !inventory.is_file() {
        return Err(Error::Unsupported(format!(
            "invalid directory to restore checkpoint: {} has no inventory.img",
            images.display()
        )));
    }
    let work_path = args.criu.work()?;
    let work = work_path.as_deref().unwrap_or(&images).to_path_buf();
    let bundle_dir = args.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    let mut bundle = Bundle::load(&bundle_dir)?;
    crate::gpu::toolkit::take_hook(&mut bundle.spec);
    if crate::gpu::prepare(&mut bundle.spec)?.is_some() {
        crate::spec::check_shared_mounts(&bundle.spec)?;
    }
    // A GPU shared through MPS is leased again (its daemon started if none runs), as at create.
    let mps = crate::gpu::mps::plan(&mut bundle.spec)?;
    let namespaces = Namespaces::from_spec(&bundle.spec)?;
    crate::lsm::check_spec(&bundle.spec)?;
    if bundle.intel_rdt.is_some() {
        return Err(Error::Unsupported(
            "restore: linux.intelRdt is not supported".into(),
        ));
    }
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console = match (terminal, &args.console_socket) {
        (true, None) => {
            return Err(Error::Unsupported(
                "process.terminal is true: a --console-socket is needed to receive the pty (or set \"terminal\": false)".into(),
            ))
        }
        (true, Some(path)) => Some(crate::console::ConsoleSocket::Path(path.clone()).connect()?),
        (false, _) => None,
    };
    let empty_ns = args.criu.empty_ns()?;
    let criu_bin = criu::binary();
    let version = criu::check_version(&criu_bin)?;
    if (args.lsm_profile.is_some() || args.lsm_mount_context.is_some())
        && version
            < (criu::Version {
                major: 3,
                minor: 16,
                sublevel: 0,
            })
    {
        return Err(CriuError::TooOld {
            found: version.to_string(),
            need: "3.16 (for --lsm-profile/--lsm-mount-context)".into(),
        }
        .into());
    }
    let images_fd = open_dir(&images)?;
    let work_fd = work_path.as_deref().map(make_dir).transpose()?;
    let inherited = super::descriptors::load(&images)?;
    let plan = criu_side::Plan {
        images: images_fd,
        work: work_fd,
        log: work.join(LOG_FILE),
        inherited,
        namespaces,
        empty_ns,
        console,
        cg_mode: args.criu.cg_mode(),
    };

    if !args.no_subreaper {
        wait::become_subreaper()?;
    }
    // From here on everything made is recorded first and undone on failure.
    let dir = ContainerDir::create(root, &args.id)?;
    let made = restore_in(&dir, &bundle, args, plan, &criu_bin, &mps);
    let state = match made {
        Ok(state) => state,
        Err(e) => {
            let _ = dir.remove();
            return Err(e);
        }
    };
    // `delete` and the others take the lock: give it back before anything that may fail.
    drop(dir);
    let id = &args.id;
    let started = super::cuda::resume_restored(&state).and_then(|()| {
        hooks::run_spec_hooks(
            Phase::Poststart,
            state.hooks.as_ref(),
            &state.oci_json(Status::Running),
        )
    });
    if let Err(e) = started {
        let _ = container::delete(root, id, true);
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    let status = wait::wait_forwarding(state.pid)?;
    container::delete(root, id, true)?;
    Ok(status)
}

/// The part of a restore that makes things: the cgroup (recorded, then made), the criu-root
/// bind, CRIU's restore. Undoes all of it but the state dir on failure.
fn restore_in(
    dir: &ContainerDir,
    bundle: &Bundle,
    args: &RestoreArgs,
    plan: criu_side::Plan,
    criu_bin: &Path,
    mps: &[crate::gpu::mps::Lease],
) -> Result<State> {
    let linux = bundle.spec.linux().as_ref();
    let resources = linux.and_then(|l| l.resources().as_ref());
    let devices = linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    let mut cgroup = Cgroup::plan(
        linux.and_then(|l| l.cgroups_path().as_deref()),
        &dir.id,
        resources,
        Manager::Cgroupfs,
    )?;
    let mut state = container::create::initial_state(bundle, &dir.id, &plan.namespaces, &cgroup);
    dir.save(&state)?;
    // Recorded in the state dir first: its removal (a failed restore, delete) releases it.
    crate::gpu::mps::acquire(mps, &dir.path)?;
    cgroup.make(resources, devices)?;
    if cgroup.created != state.cgroup.created || cgroup.v2 != state.cgroup.v2 {
        state.cgroup = cgroup.clone();
        if let Err(e) = dir.save(&state) {
            cgroup.remove();
            return Err(e);
        }
    }
    // Processes already in it belong to someone else (runc 1.2 refuses too): a failed
    // restore kills what is in its cgroup, which must then be only what CRIU restored.
    if !cgroup.pids().is_empty() {
        cgroup.remove();
        return Err(Error::Unsupported(format!(
            "container's cgroup is not empty: {} process(es) already in it",
            cgroup.pids().len()
        )));
    }
    let restored = criu_side::run(dir, bundle, args, plan, criu_bin, &mut state);
    if let Err(e) = restored {
        // CRIU kills what it restored when it fails; a failure of ours after its reply
        // (or a task it left) is killed here, before the cgroup can go.
        kill_all(&cgroup);
        cgroup.remove();
        return Err(e);
    }
    Ok(state)
}

/// SIGKILL whatever is left in the cgroup and wait (briefly) until it is empty.
fn kill_all(cgroup: &Cgroup) {
    for _ in 0..100 {
        let pids = cgroup.pids();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
