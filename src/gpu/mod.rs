//! Built-in NVIDIA GPU support: what `docker run --gpus` gets from the NVIDIA container
//! toolkit, done inside gpurun.
//!
//! [`prepare`] runs at create, before the cgroup exists: it reads the request (process.env or
//! CDI annotations), discovers the GPUs (the driver's procfs when that suffices, else NVML:
//! [`procfs`]) and edits the spec (device nodes, device
//! rules, driver mounts), so the ordinary create path does the work. What can only be done in
//! the container's root once it is mounted — developer symlinks, the ld cache, the driver's
//! `params` file — is [`RootEdits`], run by the init before pivot_root ([`ldcache`]).
//! A container that asks for no GPU costs a scan of its env: no config, no NVML.

pub mod config;
pub mod driver;
pub mod edits;
pub mod hook;
pub mod ldcache;
pub mod ldsocache;
pub mod ldsocache_write;
pub mod migcaps;
pub mod mps;
pub mod nvml;
pub mod nvml_query;
pub mod procfs;
pub mod require;
pub mod select;
pub mod toolkit;
pub mod usage;
pub mod usage_query;

use std::path::PathBuf;

use oci_spec::runtime::Spec;

pub use config::Config;
pub use ldcache::RootEdits;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("gpu config {path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("gpu: {0}")]
    Select(String),
    #[error("gpu: requirement error: {0}")]
    Requirement(String),
    #[error("gpu: NVML: {0}")]
    Nvml(String),
    #[error("gpu: driver files: {0}")]
    Driver(String),
    #[error("gpu: device nodes: {0}")]
    Device(String),
    #[error("{0}")]
    Cdi(String),
    #[error("gpu: MPS: {0}")]
    Mps(String),
}

fn process_env(spec: &Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default()
}

/// Turn the container's GPU request into spec edits. `Ok(None)`: nothing to do in the rootfs.
pub fn prepare(spec: &mut Spec) -> Result<Option<RootEdits>, GpuError> {
    let env = process_env(spec);
    let cdi_names = crate::cdi::requested(spec);
    if cdi_names.is_empty() && !select::wants_gpu(&env) {
        return Ok(None);
    }
    // A container that asks for no GPU (`void`, empty, unset) never reads the GPU
    // configuration: a broken one must not fail it.
    let visible = select::visible(&env);
    if cdi_names.is_empty() && visible == select::Visible::NotGpu {
        return Ok(None);
    }
    let cfg = Config::load()?;
    if !cdi_names.is_empty() {
        // The engine asked for CDI devices: they are the whole request (the toolkit's CDI mode).
        crate::cdi::apply::apply_names(spec, &cfg.cdi_spec_dirs, &cdi_names)?;
        return Ok(None);
    }
    let caps = select::capabilities(&env)?;
    let mps = mps::request(spec)?.is_some();
    let machine = match procfs::needs_nvml(&visible, require::needed(&env)) {
        false => procfs::discover(&cfg.procfs),
        true => None,
    };
    let machine = match machine {
        Some(m) => m,
        None => nvml::Machine::discover(&cfg.nvml_library)?,
    };
    let selected = machine.select(&visible)?;
    let gpus: Vec<usize> = selected.iter().map(|s| s.gpu).collect();
    require::check(&env, &machine, &gpus)?;
    if mps {
        mps::wire_selected(spec, &cfg, &machine, &selected)?;
    }
    let files = driver::discover(&cfg, caps, &machine.driver_version)?;
    let nodes = edits::nodes(&cfg, &machine, &selected, caps)?;
    let proc_params = ldcache::proc_params();
    edits::apply(spec, &cfg, &nodes, &files, proc_params.is_some())?;
    Ok(Some(RootEdits {
        symlinks: driver::dev_symlinks(&files),
        lib_dirs: files.lib_dirs(),
        ldconfig: cfg.ldconfig.clone(),
        sonames: files.sonames.clone(),
        proc_params,
    }))
}
