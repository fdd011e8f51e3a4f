//! `gpurun cdi generate` / `gpurun cdi list`: a CDI spec for this machine's NVIDIA GPUs, like
//! `nvidia-ctk cdi generate`: a device per index and per UUID, per MIG device (`g:m` and its
//! UUID), `all`, with `mps-cdi-devices` `<index>-share` (the GPU through its MPS daemon:
//! [`crate::gpu::mps`]); the control nodes, driver files and the ld-cache hook as spec-wide edits.
//! Device nodes carry only their paths: type and numbers are stat'ed when the spec is applied.

use std::collections::HashMap;

use super::spec::{ContainerEdits, Device, DeviceNode, Hook, Mount, Spec};
use crate::gpu::driver::{self, DriverFiles};
use crate::gpu::migcaps;
use crate::gpu::nvml::Machine;
use crate::gpu::select::Caps;
use crate::gpu::{Config, GpuError};

pub const KIND: &str = "nvidia.com/gpu";

/// The capabilities a generated spec covers (everything but display and 32-bit libraries).
const CAPS: &str = "compute,utility,video,graphics,ngx";

pub fn generate(cfg: &Config, hook_bin: &str) -> Result<Spec, GpuError> {
    let machine = Machine::discover(&cfg.nvml_library)?;
    let files = driver::discover(cfg, Caps::parse(CAPS)?, &machine.driver_version)?;
    let mut mig_caps = HashMap::new();
    if machine.gpus.iter().any(|g| !g.mig.is_empty()) {
        let minors = migcaps::read_minors(&cfg.mig_minors_path())?;
        for g in &machine.gpus {
            for m in &g.mig {
                let (gi, ci) = m.instance.ok_or_else(|| {
                    GpuError::Nvml(format!("NVML gave no GPU/compute instance of {}", m.uuid))
                })?;
                mig_caps.insert(m.uuid.clone(), migcaps::nodes(&minors, g.minor, gi, ci)?);
            }
        }
    }
    Ok(build(cfg, &machine, &files, hook_bin, &mig_caps))
}

fn node(cfg: &Config, path: &str) -> DeviceNode {
    let host = cfg.dev_path(path).display().to_string();
    DeviceNode {
        path: path.into(),
        host_path: (host != path).then_some(host),
        ..Default::default()
    }
}

/// `mig_caps`: each MIG device's `/dev/nvidia-caps` nodes, by its UUID.
pub fn build(
    cfg: &Config,
    machine: &Machine,
    files: &DriverFiles,
    hook_bin: &str,
    mig_caps: &HashMap<String, [String; 2]>,
) -> Spec {
    let gpu_edits = |minor: u32| ContainerEdits {
        device_nodes: vec![node(cfg, &format!("/dev/nvidia{minor}"))],
        ..Default::default()
    };
    let mut devices = Vec::new();
    for g in &machine.gpus {
        for name in [g.index.to_string(), g.uuid.clone()] {
            devices.push(Device {
                name,
                annotations: None,
                container_edits: gpu_edits(g.minor),
            });
        }
        if cfg.mps_cdi_devices {
            // The GPU through its MPS daemon; the annotations give the limits at create.
            let mps = crate::gpu::mps::edits(cfg, &g.uuid);
            devices.push(Device {
                name: format!("{}-share", g.index),
                annotations: None,
                container_edits: ContainerEdits {
                    env: mps.env,
                    mounts: mps.mounts,
                    ..gpu_edits(g.minor)
                },
            });
        }
        for m in &g.mig {
            let mut edits = gpu_edits(g.minor);
            for p in mig_caps.get(&m.uuid).into_iter().flatten() {
                edits.device_nodes.push(node(cfg, p));
            }
            for name in [format!("{}:{}", g.index, m.index), m.uuid.clone()] {
                devices.push(Device {
                    name,
                    annotations: None,
                    container_edits: edits.clone(),
                });
            }
        }
    }
    let mut all = ContainerEdits::default();
    for g in &machine.gpus {
        all.device_nodes
            .push(node(cfg, &format!("/dev/nvidia{}", g.minor)));
    }
    devices.push(Device {
        name: "all".into(),
        annotations: None,
        container_edits: all,
    });

    let mut common = ContainerEdits {
        env: vec!["NVIDIA_VISIBLE_DEVICES=void".into()],
        ..Default::default()
    };
    for p in [
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidia-modeset",
    ] {
        if cfg.dev_path(p).exists() {
            common.device_nodes.push(node(cfg, p));
        }
    }
    for (dest, p) in files.binds() {
        common.mounts.push(Mount {
            host_path: cfg.driver_path(p).display().to_string(),
            container_path: dest,
            options: vec!["ro".into(), "nosuid".into(), "nodev".into(), "bind".into()],
            typ: None,
        });
    }
    let mut args = vec![
        "gpurun".to_string(),
        "hook".into(),
        "ldcache".into(),
        format!("--ldconfig={}", cfg.ldconfig),
    ];
    for d in files.lib_dirs() {
        args.push(format!("--lib-dir={d}"));
    }
    for (link, target) in driver::dev_symlinks(files) {
        args.push(format!("--symlink={target}::{link}"));
    }
    if !files.libs.is_empty() {
        common.hooks.push(Hook {
            hook_name: "createContainer".into(),
            path: hook_bin.into(),
            args,
            env: Vec::new(),
            timeout: None,
        });
    }
    Spec {
        cdi_version: "0.6.0".into(),
        kind: KIND.into(),
        annotations: None,
        devices,
        container_edits: common,
    }
}

/// The qualified names `gpurun cdi list` prints.
pub fn names(spec: &Spec) -> Vec<String> {
    spec.devices
        .iter()
        .map(|d| format!("{}={}", spec.kind, d.name))
        .collect()
}
