//! GPU sharing with limits through CUDA MPS. A container asks for a share of one GPU with
//! annotations ([`ANN_SHARE`], [`ANN_MEMORY`]); the GPU comes from `NVIDIA_VISIBLE_DEVICES`
//! (exactly one whole GPU) or a CDI `nvidia.com/gpu=<i>-share` device. Either way the spec
//! gets the same [`edits`]: `CUDA_MPS_PIPE_DIRECTORY=<mps-root>/<uuid>/pipe` (which is also
//! how [`plan`] learns which GPU is shared), that pipe dir and the daemon's `shm/` (as
//! `/dev/shm`: MPS clients and server meet in `cuda.shm.*` files there) bind-mounted.
//!
//! [`plan`] checks the request before anything exists; [`acquire`] records it in the
//! container's state dir (`mps.json`), then takes the lease and starts the GPU's control
//! daemon if needed ([`lease`]); [`release_dir`], called when a state dir is removed
//! (delete, a failed create), gives the leases back and stops the daemon with the last one.

pub mod lease;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::nvml::{Machine, Selected};
use super::{Config, GpuError};
use crate::cdi::spec::{ContainerEdits, Mount};

pub const PREFIX: &str = "gpurun.io/mps.";
/// Percent of the GPU's SMs (1..=100): `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`.
pub const ANN_SHARE: &str = "gpurun.io/mps.active-thread-percentage";
/// Device memory cap, bytes or with a K/M/G/T suffix: `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`.
pub const ANN_MEMORY: &str = "gpurun.io/mps.pinned-memory-limit";
const PIPE_ENV: &str = "CUDA_MPS_PIPE_DIRECTORY";
/// The container's record of its leases, in its state dir.
const RECORD: &str = "mps.json";

fn err(msg: String) -> GpuError {
    GpuError::Mps(msg)
}

/// What one container asks of one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub share: u32,
    /// Bytes; 0: no cap.
    pub memory: u64,
}

/// A container's share of one GPU, as recorded in its state dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub gpu: String,
    /// `<mps-root>/<uuid>`: pipe/, log/, shm/, leases/, daemon.json.
    pub dir: PathBuf,
    pub share: u32,
    pub memory: u64,
    /// The device's memory (0: not asked, no memory cap requested).
    pub memory_total: u64,
    /// The control binary that started the daemon, to stop it with.
    pub control: PathBuf,
    /// The lease's file under `dir/leases`, named at [`acquire`] and recorded, so that the
    /// release removes exactly it whatever path the state dir is reached by then.
    #[serde(default)]
    pub lease_file: Option<PathBuf>,
}

impl Lease {
    /// This lease's file for the container at `state_dir` (absolute).
    pub fn file(&self, state_dir: &Path) -> PathBuf {
        self.lease_file
            .clone()
            .unwrap_or_else(|| self.dir.join("leases").join(lease::file_name(state_dir)))
    }
}

/// The MPS annotations of `spec`; `None` when it has none.
pub fn request(spec: &Spec) -> Result<Option<Request>, GpuError> {
    let Some(ann) = spec.annotations() else {
        return Ok(None);
    };
    let mut keys: Vec<&String> = ann.keys().filter(|k| k.starts_with(PREFIX)).collect();
    if keys.is_empty() {
        return Ok(None);
    }
    keys.sort();
    if let Some(k) = keys
        .iter()
        .find(|k| ***k != ANN_SHARE && ***k != ANN_MEMORY)
    {
        return Err(err(format!(
            "annotation {k}: unknown (known: {ANN_SHARE}, {ANN_MEMORY})"
        )));
    }
    let share = ann.get(ANN_SHARE).ok_or_else(|| {
        err(format!(
            "annotation {ANN_SHARE} is required for MPS sharing"
        ))
    })?;
    Ok(Some(Request {
        share: parse_share(share)?,
        memory: ann
            .get(ANN_MEMORY)
            .map(|m| parse_memory(m))
            .transpose()?
            .unwrap_or(0),
    }))
}

pub fn parse_share(v: &str) -> Result<u32, GpuError> {
    match v.trim().parse::<u32>() {
        Ok(n @ 1..=100) => Ok(n),
        _ => Err(err(format!(
            "annotation {ANN_SHARE}: {v:?} is not a percentage from 1 to 100"
        ))),
    }
}

/// `8G`, `512M`, `1048576`: binary units (`Gi`/`GiB`/`GB` read alike); at least 1M, MPS's unit.
pub fn parse_memory(v: &str) -> Result<u64, GpuError> {
    let bad = || {
        err(format!("annotation {ANN_MEMORY}: {v:?} is not a size like 8G, 512M or a byte count of whole MiB, at least 1M"))
    };
    let t = v.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].to_ascii_uppercase();
    let shift = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" if unit.is_empty() => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    // MPS takes whole MiB: a limit is what it enforces, so it is not rounded.
    match n.checked_mul(1 << shift) {
        Some(b) if b >= 1 << 20 && b % (1 << 20) == 0 => Ok(b),
        _ => Err(bad()),
    }
}

/// The edits that give a container the MPS daemon of GPU `uuid` (also the CDI `-share`
/// devices' edits).
pub fn edits(cfg: &Config, uuid: &str) -> ContainerEdits {
    let dir = cfg.mps_root.join(uuid);
    let pipe = dir.join("pipe").display().to_string();
    let bind = |host: String, dest: &str| Mount {
        host_path: host,
        container_path: dest.into(),
        options: vec!["rbind".into(), "nosuid".into(), "nodev".into()],
        typ: None,
    };
    ContainerEdits {
        env: vec![format!("{PIPE_ENV}={pipe}")],
        mounts: vec![
            bind(pipe.clone(), &pipe),
            bind(dir.join("shm").display().to_string(), "/dev/shm"),
        ],
        ..Default::default()
    }
}

/// The `NVIDIA_VISIBLE_DEVICES` path: an MPS request shares the one whole GPU selected.
pub fn wire_selected(
    spec: &mut Spec,
    cfg: &Config,
    machine: &Machine,
    selected: &[Selected],
) -> Result<(), GpuError> {
    let gpu = match selected {
        [Selected { gpu, mig: None }] => &machine.gpus[*gpu],
        [_] => {
            return Err(err(format!(
                "{ANN_SHARE}: MPS sharing of a MIG device is not supported"
            )))
        }
        _ => {
            return Err(err(format!(
                "{ANN_SHARE}: MPS sharing needs exactly one GPU, NVIDIA_VISIBLE_DEVICES selects {}",
                selected.len()
            )))
        }
    };
    crate::cdi::apply::apply_edits(spec, &edits(cfg, &gpu.uuid))
}

/// Check the container's MPS request (a GPU wired by [`edits`] and the annotations) and add
/// the limits to its env; nothing is made. The leases to [`acquire`]; empty: no MPS.
pub fn plan(spec: &mut Spec) -> Result<Vec<Lease>, GpuError> {
    let req = request(spec)?;
    // Every create comes here: a container without MPS costs a scan of its env, no copy.
    let env_ref = spec.process().as_ref().and_then(|p| p.env().as_deref());
    let pipes: Vec<PathBuf> = env_ref
        .unwrap_or_default()
        .iter()
        .filter_map(|kv| kv.strip_prefix(PIPE_ENV)?.strip_prefix('='))
        .map(PathBuf::from)
        .collect();
    if req.is_none() && pipes.is_empty() {
        return Ok(Vec::new());
    }
    let mut env = super::process_env(spec);
    let cfg = Config::load()?;
    let mut gpus: Vec<String> = pipes
        .iter()
        .filter_map(|p| gpu_of(&cfg.mps_root, p))
        .collect();
    gpus.sort();
    gpus.dedup();
    if gpus.len() > 1 {
        // two `-share` CDI devices: a client talks to one MPS server
        return Err(err(format!(
            "{ANN_SHARE}: MPS sharing needs exactly one GPU, the container is given {}",
            gpus.join(", ")
        )));
    }
    let uuid = gpus.pop();
    let (req, uuid) = match (req, uuid) {
        // Someone else's MPS daemon: not ours to manage.
        (None, None) => return Ok(Vec::new()),
        (Some(r), Some(u)) => (r, u),
        (Some(_), None) => {
            return Err(err(format!(
                "annotation {ANN_SHARE}: no GPU to share: set NVIDIA_VISIBLE_DEVICES to one GPU, or ask for a CDI device nvidia.com/gpu=<index>-share"
            )))
        }
        (None, Some(u)) => {
            return Err(err(format!(
                "GPU {u} is shared through MPS: annotation {ANN_SHARE} is required"
            )))
        }
    };
    // The pipe dir names the GPU: it must be one of this machine's (the driver's procfs
    // answers cheaply; NVML when it cannot, or for the device's memory size).
    let machine = match (req.memory, super::procfs::discover(&cfg.procfs)) {
        (0, Some(m)) => m,
        _ => Machine::discover(&cfg.nvml_library)?,
    };
    let Some(gpu) = machine.gpus.iter().find(|g| g.uuid == uuid) else {
        return Err(err(format!(
            "{PIPE_ENV} names GPU {uuid:?}, which this machine does not have"
        )));
    };
    let memory_total = match req.memory {
        0 => 0,
        _ if gpu.memory_total == 0 => {
            return Err(err(format!("{uuid}: NVML reports no device memory size")))
        }
        _ => gpu.memory_total,
    };
    let lease = Lease {
        dir: cfg.mps_root.join(&uuid),
        gpu: uuid,
        share: req.share,
        memory: req.memory,
        memory_total,
        control: cfg.mps_control.clone(),
        lease_file: None,
    };
    lease::check(&lease)?;
    env.retain(|kv| {
        !kv.starts_with("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=")
            && !kv.starts_with("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=")
    });
    env.push(format!("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE={}", req.share));
    if req.memory > 0 {
        // Device ordinal 0: the container sees exactly this GPU.
        env.push(format!(
            "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0={}M",
            req.memory >> 20
        ));
    }
    let process = spec.process_mut().get_or_insert_with(Default::default);
    process.set_env(Some(env));
    Ok(vec![lease])
}

/// `<root>/<uuid>/pipe` → the UUID.
fn gpu_of(root: &Path, pipe: &Path) -> Option<String> {
    let rest = pipe.strip_prefix(root).ok()?;
    let mut parts = rest.iter();
    let uuid = parts.next()?.to_str()?.to_string();
    let ok = parts.next()? == "pipe" && parts.next().is_none() && !uuid.starts_with('.');
    ok.then_some(uuid)
}

/// Record `leases` in the container's state dir, then take them (each may start its GPU's
/// daemon). On failure the caller removes the state dir, which releases what was taken.
pub fn acquire(leases: &[Lease], state_dir: &Path) -> crate::error::Result<()> {
    if leases.is_empty() {
        return Ok(());
    }
    let state_dir = &std::path::absolute(state_dir)
        .map_err(|e| crate::error::Error::io("resolve", state_dir, e))?;
    let leases: Vec<Lease> = leases
        .iter()
        .map(|l| Lease {
            lease_file: Some(l.file(state_dir)),
            ..l.clone()
        })
        .collect();
    let record = state_dir.join(RECORD);
    let json = serde_json::to_vec(&leases).expect("leases serialise");
    std::fs::write(&record, json).map_err(|e| crate::error::Error::io("write", &record, e))?;
    for l in &leases {
        lease::take(l, state_dir)?;
    }
    Ok(())
}

/// Give back the leases recorded in `state_dir` (none recorded: nothing to do). Failures
/// are warnings: the container goes either way, and a later lease prunes what is stale.
pub fn release_dir(state_dir: &Path) {
    let Ok(bytes) = std::fs::read(state_dir.join(RECORD)) else {
        return;
    };
    let Ok(state_dir) = &std::path::absolute(state_dir) else {
        return;
    };
    let leases: Vec<Lease> = serde_json::from_slice(&bytes).unwrap_or_default();
    for l in &leases {
        if let Err(e) = lease::give_back(l, state_dir) {
            crate::logging::warn(&e.to_string());
        }
    }
}

#[cfg(test)]
mod tests;
