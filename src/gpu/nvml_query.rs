//! The NVML side of GPU discovery, run only by the `gpurun-nvml` helper (see
//! [`super::nvml`] for why NVML stays out of gpurun's own process).

use nvml_wrapper::Nvml;

use super::nvml::{Gpu, Machine, MigDevice};
use super::GpuError;

/// Every GPU through NVML at `library` (a path or a soname).
pub fn discover(library: &str) -> Result<Machine, GpuError> {
    let nv = |what: &'static str| {
        move |e: nvml_wrapper::error::NvmlError| GpuError::Nvml(format!("{what}: {e}"))
    };
    let nvml = Nvml::builder()
        .lib_path(std::ffi::OsStr::new(library))
        .init()
        .map_err(|e| {
            GpuError::Nvml(format!(
                "cannot load NVML from {library} (is the NVIDIA driver installed? nvml-library in the gpurun config names the library): {e}"
            ))
        })?;
    let mut gpus = Vec::new();
    for index in 0..nvml.device_count().map_err(nv("device count"))? {
        let d = nvml.device_by_index(index).map_err(nv("device handle"))?;
        let cc = d
            .cuda_compute_capability()
            .map_err(nv("compute capability"))?;
        let mig_on = d.mig_mode().map(|m| m.current == 1).unwrap_or(false);
        let mut mig = Vec::new();
        if mig_on {
            for j in 0..d.mig_device_count().map_err(nv("MIG device count"))? {
                let Ok(m) = d.mig_device_by_index(j) else {
                    continue;
                };
                mig.push(MigDevice {
                    index: j,
                    uuid: m.uuid().map_err(nv("MIG UUID"))?,
                    memory_total: m.memory_info().map(|i| i.total).unwrap_or(0),
                    instance: crate::sys::nvml_mig_instance_ids(nvml.lib(), &m),
                });
            }
        }
        gpus.push(Gpu {
            index,
            uuid: d.uuid().map_err(nv("UUID"))?,
            minor: d.minor_number().map_err(nv("minor number"))?,
            pci_bus_id: d.pci_info().map_err(nv("PCI info"))?.bus_id,
            name: d.name().map_err(nv("name"))?,
            memory_total: d.memory_info().map(|i| i.total).unwrap_or(0),
            cc: (cc.major, cc.minor),
            brand: d
                .brand()
                .map(|b| format!("{b:?}").to_ascii_lowercase())
                .unwrap_or_else(|_| "unknown".into()),
            mig,
        });
    }
    Ok(Machine {
        driver_version: nvml.sys_driver_version().map_err(nv("driver version"))?,
        cuda_version: nvml.sys_cuda_driver_version().map_err(nv("CUDA version"))?,
        gpus,
    })
}
