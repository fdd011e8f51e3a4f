//! The NVML side of per-container GPU usage, run only by the `gpurun-nvml --usage` helper
//! (see [`super::nvml`] for why NVML stays out of gpurun's own process).

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::Nvml;

use super::usage::{GpuReading, ProcKind, ProcReading, Sample};
use super::GpuError;

/// The readings of the GPUs whose /dev/nvidiaN minor is in `minors`, through NVML at `library`.
pub fn query(library: &str, minors: &[u32]) -> Result<Vec<GpuReading>, GpuError> {
    let nv = |what: &'static str| move |e: NvmlError| GpuError::Nvml(format!("{what}: {e}"));
    let nvml = Nvml::builder()
        .lib_path(std::ffi::OsStr::new(library))
        .init()
        .map_err(|e| GpuError::Nvml(format!("cannot load NVML from {library}: {e}")))?;
    let mut out = Vec::new();
    for index in 0..nvml.device_count().map_err(nv("device count"))? {
        let d = nvml.device_by_index(index).map_err(nv("device handle"))?;
        let minor = d.minor_number().map_err(nv("minor number"))?;
        if !minors.contains(&minor) {
            continue;
        }
        // Readings a GPU may not support (power on some boards, utilisation under MIG) or
        // not have yet (no process sample) are left out, never fatal.
        let util = d.utilization_rates().ok();
        let memory = d.memory_info().ok();
        let mut processes = Vec::new();
        for (kind, list) in [
            (ProcKind::Compute, d.running_compute_processes()),
            (ProcKind::Graphics, d.running_graphics_processes()),
        ] {
            processes.extend(optional(list)?.into_iter().map(|p| proc_reading(p, kind)));
        }
        let samples = optional(d.process_utilization_stats(None))?
            .into_iter()
            .map(|s| Sample {
                pid: s.pid,
                sm: s.sm_util,
                mem: s.mem_util,
                timestamp: s.timestamp,
            })
            .collect();
        out.push(GpuReading {
            index,
            minor,
            uuid: d.uuid().map_err(nv("UUID"))?,
            name: d.name().map_err(nv("name"))?,
            temperature: d.temperature(TemperatureSensor::Gpu).ok(),
            power_draw: d.power_usage().ok(),
            memory_total: memory.as_ref().map_or(0, |m| m.total),
            memory_used: memory.as_ref().map_or(0, |m| m.used),
            util_gpu: util.as_ref().map(|u| u.gpu),
            util_memory: util.as_ref().map(|u| u.memory),
            processes,
            samples,
        });
    }
    Ok(out)
}

/// Lists NVML cannot give for this GPU (not supported, no sample yet) are empty.
fn optional<T>(r: Result<Vec<T>, NvmlError>) -> Result<Vec<T>, GpuError> {
    match r {
        Ok(v) => Ok(v),
        Err(NvmlError::NotFound | NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
            Ok(Vec::new())
        }
        Err(e) => Err(GpuError::Nvml(format!("process list: {e}"))),
    }
}

fn proc_reading(p: ProcessInfo, kind: ProcKind) -> ProcReading {
    ProcReading {
        pid: p.pid,
        used_memory: match p.used_gpu_memory {
            UsedGpuMemory::Used(n) => n,
            UsedGpuMemory::Unavailable => 0,
        },
        kind,
    }
}
