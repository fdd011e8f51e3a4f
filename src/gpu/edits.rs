//! The GPU request as spec edits, made before the cgroup exists: device nodes (stat'ed under the
//! dev root each time: only 195 is a fixed major) in `linux.devices` and as allow rules in
//! `linux.resources.devices`, read-only bind mounts of the driver files, and a tmpfs over
//! `/proc/driver/nvidia` (whose `params` the built-in hook rewrites with `ModifyDeviceFiles: 0`,
//! so the driver inside never tries to create device nodes).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, Mount, Spec};
use serde_json::json;

use super::config::Config;
use super::driver::DriverFiles;
use super::migcaps;
use super::nvml::{Machine, Selected};
use super::select::Caps;
use super::GpuError;

/// A device node found under the dev root: container path, type, major, minor, mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Access granted by the device rule (`rwm` unless a CDI spec says otherwise).
    pub access: String,
}

/// Stat `/dev/...` under the dev root. `Ok(None)`: it does not exist.
pub fn stat_node(cfg: &Config, path: &str) -> Result<Option<Node>, GpuError> {
    let host = cfg.dev_path(path);
    let md = match std::fs::metadata(&host) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(GpuError::Device(format!("stat {}: {e}", host.display()))),
    };
    let kind = match md.file_type() {
        t if t.is_char_device() => 'c',
        t if t.is_block_device() => 'b',
        _ => {
            return Err(GpuError::Device(format!(
                "{} is not a device node",
                host.display()
            )))
        }
    };
    let rdev = md.rdev();
    Ok(Some(Node {
        path: path.into(),
        kind,
        major: nix::sys::stat::major(rdev) as i64,
        minor: nix::sys::stat::minor(rdev) as i64,
        mode: md.mode() & 0o7777,
        uid: 0,
        gid: 0,
        access: "rwm".into(),
    }))
}

/// The nodes for `selected` with `caps`: the control node, uvm for compute, modeset for display,
/// and each selected GPU's node by its minor number (a MIG device needs its parent's and its two
/// `/dev/nvidia-caps` access nodes).
pub fn nodes(
    cfg: &Config,
    machine: &Machine,
    selected: &[Selected],
    caps: Caps,
) -> Result<Vec<Node>, GpuError> {
    let mut wanted: Vec<(String, bool)> = vec![("/dev/nvidiactl".into(), true)];
    if caps.has("compute") || caps.has("utility") {
        wanted.push(("/dev/nvidia-uvm".into(), false));
        wanted.push(("/dev/nvidia-uvm-tools".into(), false));
    }
    if caps.has("display") {
        wanted.push(("/dev/nvidia-modeset".into(), false));
    }
    let mut mig_minors = None;
    for s in selected {
        let gpu = &machine.gpus[s.gpu];
        let mut paths = vec![format!("/dev/nvidia{}", gpu.minor)];
        if let Some(j) = s.mig {
            let m = &gpu.mig[j];
            let (gi, ci) = m.instance.ok_or_else(|| {
                GpuError::Nvml(format!("NVML gave no GPU/compute instance of {}", m.uuid))
            })?;
            if mig_minors.is_none() {
                mig_minors = Some(migcaps::read_minors(&cfg.mig_minors_path())?);
            }
            let minors = mig_minors.as_ref().expect("read above");
            paths.extend(migcaps::nodes(minors, gpu.minor, gi, ci)?);
        }
        for p in paths {
            if !wanted.iter().any(|(w, _)| *w == p) {
                wanted.push((p, true));
            }
        }
    }
    let mut out = Vec::new();
    for (path, required) in wanted {
        match stat_node(cfg, &path)? {
            Some(n) => out.push(n),
            None if required => {
                return Err(GpuError::Device(format!(
                    "{} does not exist (dev-root {}): is the NVIDIA driver loaded?",
                    cfg.dev_path(&path).display(),
                    cfg.dev_root.display()
                )))
            }
            None => {}
        }
    }
    Ok(out)
}

/// Add the nodes, their device rules and the driver mounts to `spec`.
pub fn apply(
    spec: &mut Spec,
    cfg: &Config,
    nodes: &[Node],
    files: &DriverFiles,
    proc_driver: bool,
) -> Result<(), GpuError> {
    add_devices(spec, nodes)?;
    let mut mounts: Vec<Mount> = Vec::new();
    for (dest, p) in files.binds() {
        mounts.push(mount(json!({
            "destination": dest,
            "type": "bind",
            "source": cfg.driver_path(p),
            "options": ["ro", "nosuid", "nodev", "bind"],
        }))?);
    }
    if proc_driver {
        mounts.push(mount(json!({
            "destination": "/proc/driver/nvidia",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "mode=0555"],
        }))?);
    }
    let existing = spec.mounts().clone().unwrap_or_default();
    let mut all: Vec<Mount> = existing
        .into_iter()
        .filter(|m| !mounts.iter().any(|n| n.destination() == m.destination()))
        .collect();
    all.extend(mounts);
    spec.set_mounts(Some(all));
    Ok(())
}

fn mount(v: serde_json::Value) -> Result<Mount, GpuError> {
    serde_json::from_value(v).map_err(|e| GpuError::Device(format!("mount entry: {e}")))
}

/// `linux.devices` entries (skipping paths already there) and matching allow rules.
pub fn add_devices(spec: &mut Spec, nodes: &[Node]) -> Result<(), GpuError> {
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let mut devices = linux.devices().clone().unwrap_or_default();
    let mut rules: Vec<LinuxDeviceCgroup> = Vec::new();
    for n in nodes {
        let bad = |e: serde_json::Error| GpuError::Device(format!("{}: {e}", n.path));
        if !devices.iter().any(|d| d.path() == Path::new(&n.path)) {
            let d: LinuxDevice = serde_json::from_value(json!({
                "path": n.path, "type": n.kind.to_string(), "major": n.major, "minor": n.minor,
                "fileMode": n.mode, "uid": n.uid, "gid": n.gid,
            }))
            .map_err(bad)?;
            devices.push(d);
        }
        if n.kind == 'p' {
            continue; // a fifo needs no device rule
        }
        rules.push(
            serde_json::from_value(json!({
                "allow": true, "type": n.kind.to_string(), "major": n.major, "minor": n.minor, "access": n.access,
            }))
            .map_err(bad)?,
        );
    }
    linux.set_devices(Some(devices));
    let resources = linux.resources_mut().get_or_insert_with(Default::default);
    let mut all = resources.devices().clone().unwrap_or_default();
    all.extend(rules);
    resources.set_devices(Some(all));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_rules_are_added_once() {
        let mut spec: Spec = serde_json::from_value(json!({"ociVersion": "1.0.2", "linux": {
            "devices": [{"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255}]
        }}))
        .unwrap();
        let node = |path: &str, major, minor| Node {
            path: path.into(),
            kind: 'c',
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
            access: "rwm".into(),
        };
        add_devices(
            &mut spec,
            &[
                node("/dev/nvidiactl", 195, 255),
                node("/dev/nvidia-uvm", 509, 0),
            ],
        )
        .unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let paths: Vec<_> = linux
            .devices()
            .as_ref()
            .unwrap()
            .iter()
            .map(|d| d.path().display().to_string())
            .collect();
        assert_eq!(paths, ["/dev/nvidiactl", "/dev/nvidia-uvm"]);
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            (rules[1].major(), rules[1].minor(), rules[1].allow()),
            (Some(509), Some(0), true)
        );
    }
}
