//! `gpurun hook nvidia`: the GPU support as an OCI prestart/createRuntime hook, for runc/crun.
//! It runs after the container's cgroup and mount namespace exist and before pivot_root, so it
//! does itself what the built-in path leaves to the create code: it computes the same spec
//! edits, then writes the device rules into the container's cgroup (v1 `devices.allow`; on
//! cgroup v2 the device filter is the runtime's own eBPF program, so the rules must come from
//! the spec — use CDI or gpurun itself there), enters the container's mount namespace and
//! makes the device nodes and bind mounts in its root, then runs the ld-cache step.

use std::io::Read;
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The fields of the OCI state a hook needs.
#[derive(Debug, Deserialize)]
pub struct HookState {
    pub pid: i32,
    pub bundle: PathBuf,
}

pub fn read_state() -> Result<HookState> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", "stdin", e))?;
    serde_json::from_slice(&buf).map_err(|e| Error::Hook(format!("container state on stdin: {e}")))
}

pub fn nvidia_hook() -> Result<()> {
    let state = read_state()?;
    let bundle = crate::spec::Bundle::load(&state.bundle)?;
    let before = bundle.spec.clone();
    let mut after = bundle.spec.clone();
    let Some(edits) = super::prepare(&mut after)? else {
        return Ok(());
    };
    let old_devices = before
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let devices: Vec<_> = after
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|d| !old_devices.contains(d))
        .collect();
    let old_mounts = before.mounts().clone().unwrap_or_default();
    let mounts: Vec<Mount> = after
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !old_mounts.contains(m))
        .collect();
    allow_devices_v1(state.pid, &devices)?;
    enter_mount_ns(state.pid)?;
    let rootfs = bundle.rootfs.as_path();
    let rootfd = open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::sys_path("open", rootfs))?;
    use std::os::fd::AsFd;
    for d in &devices {
        crate::rootfs::devices::create_node(
            rootfs,
            rootfd.as_fd(),
            &crate::rootfs::devices::spec_node(d),
        )?;
    }
    for m in &mounts {
        crate::rootfs::mounts::mount_entry(rootfs, &rootfd, &bundle.dir, m, None, None, None)?;
    }
    super::ldcache::run(rootfs, &edits).map_err(Error::Hook)
}

/// Append allow rules to the container's v1 devices cgroup (found through /proc/PID/cgroup).
fn allow_devices_v1(pid: i32, devices: &[oci_spec::runtime::LinuxDevice]) -> Result<()> {
    let path = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    let Some(rel) = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, p) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls
            .split(',')
            .any(|c| c == "devices")
            .then(|| p.to_string())
    }) else {
        // cgroup v2: no devices.allow to write; the spec's rules are all there is.
        return Ok(());
    };
    let allow = PathBuf::from("/sys/fs/cgroup/devices")
        .join(rel.trim_start_matches('/'))
        .join("devices.allow");
    for d in devices {
        let kind = if d.typ() == oci_spec::runtime::LinuxDeviceType::B {
            'b'
        } else {
            'c'
        };
        let line = format!("{kind} {}:{} rwm", d.major(), d.minor());
        std::fs::write(&allow, &line).map_err(|e| Error::io("write", &allow, e))?;
    }
    Ok(())
}

fn enter_mount_ns(pid: i32) -> Result<()> {
    let path = format!("/proc/{pid}/ns/mnt");
    let f = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    setns(f, CloneFlags::CLONE_NEWNS).map_err(Error::sys_path("setns", path))
}
