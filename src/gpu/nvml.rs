//! GPU discovery through NVML (`nvml-wrapper`, the library loaded at run time from the
//! configured path), and resolving a selection against what was found.

use nvml_wrapper::Nvml;
use serde::Serialize;

use super::select::Visible;
use super::GpuError;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub driver_version: String,
    /// CUDA driver API version as NVML reports it (12040 = 12.4).
    pub cuda_version: i32,
    pub gpus: Vec<Gpu>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gpu {
    pub index: u32,
    pub uuid: String,
    /// The N of /dev/nvidiaN — not necessarily the index.
    pub minor: u32,
    pub pci_bus_id: String,
    pub name: String,
    pub memory_total: u64,
    pub cc: (i32, i32),
    pub brand: String,
    pub mig: Vec<MigDevice>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigDevice {
    pub index: u32,
    pub uuid: String,
    pub memory_total: u64,
    /// GPU instance and compute instance ids (for its `/dev/nvidia-caps` nodes).
    pub instance: Option<(u32, u32)>,
}

/// A selected device: a whole GPU, or MIG device `mig` of GPU `gpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub gpu: usize,
    pub mig: Option<usize>,
}

impl Machine {
    pub fn cuda_version_string(&self) -> String {
        format!(
            "{}.{}",
            self.cuda_version / 1000,
            (self.cuda_version % 1000) / 10
        )
    }

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

    /// The devices `visible` names, in the order given, without duplicates.
    pub fn select(&self, visible: &Visible) -> Result<Vec<Selected>, GpuError> {
        let mut out: Vec<Selected> = Vec::new();
        match visible {
            Visible::NotGpu | Visible::NoGpu => {}
            Visible::All => out.extend((0..self.gpus.len()).map(|gpu| Selected { gpu, mig: None })),
            Visible::List(items) => {
                for item in items {
                    let s = self.find(item)?;
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
        Ok(out)
    }

    fn find(&self, item: &str) -> Result<Selected, GpuError> {
        let unknown = |why: String| GpuError::Select(format!("NVIDIA_VISIBLE_DEVICES: {why}"));
        let n = self.gpus.len();
        if let Ok(i) = item.parse::<usize>() {
            return if i < n {
                Ok(Selected { gpu: i, mig: None })
            } else {
                Err(unknown(format!(
                    "no GPU with index {i}: this machine has {n} GPU(s) (0..{})",
                    n.saturating_sub(1)
                )))
            };
        }
        if let Some((g, m)) = item.split_once(':').filter(|(g, m)| {
            !g.is_empty() && !m.is_empty() && g.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
        }) {
            let (g, m): (usize, usize) = (
                g.parse().unwrap_or(usize::MAX),
                m.parse().unwrap_or(usize::MAX),
            );
            return match self.gpus.get(g) {
                Some(gpu) if m < gpu.mig.len() => Ok(Selected {
                    gpu: g,
                    mig: Some(m),
                }),
                Some(gpu) if gpu.mig.is_empty() => Err(unknown(format!(
                    "GPU {g} is not in MIG mode, so {item} names nothing"
                ))),
                Some(gpu) => Err(unknown(format!(
                    "GPU {g} has {} MIG device(s), no {item}",
                    gpu.mig.len()
                ))),
                None => Err(unknown(format!(
                    "no GPU with index {g} for MIG device {item}"
                ))),
            };
        }
        for (i, gpu) in self.gpus.iter().enumerate() {
            if gpu.uuid.eq_ignore_ascii_case(item) || same_bus_id(&gpu.pci_bus_id, item) {
                return Ok(Selected { gpu: i, mig: None });
            }
            if let Some(j) = gpu
                .mig
                .iter()
                .position(|m| m.uuid.eq_ignore_ascii_case(item))
            {
                return Ok(Selected {
                    gpu: i,
                    mig: Some(j),
                });
            }
        }
        Err(unknown(format!("no GPU or MIG device matches {item:?} (use an index, a GPU-/MIG- UUID, a PCI bus id or g:m)")))
    }
}

/// PCI bus ids compare without case and with the domain's width normalised
/// (`0000:07:00.0` == `00000000:07:00.0`).
fn same_bus_id(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> Option<String> {
        let (dom, rest) = s.split_once(':')?;
        let dom = u32::from_str_radix(dom, 16).ok()?;
        Some(format!("{dom:08x}:{}", rest.to_ascii_lowercase()))
    };
    b.contains(':') && b.contains('.') && norm(a).is_some() && norm(a) == norm(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two GPUs, the second in MIG mode with two MIG devices; minors deliberately not the indices.
    pub fn machine() -> Machine {
        let gpu = |index: u32, minor: u32, mig: Vec<MigDevice>| Gpu {
            index,
            uuid: format!("GPU-0000000{index}-aaaa-bbbb-cccc-dddddddddddd"),
            minor,
            pci_bus_id: format!("00000000:0{}:00.0", index + 7),
            name: "NVIDIA A100-SXM4-80GB".into(),
            memory_total: 80 << 30,
            cc: (8, 0),
            brand: "tesla".into(),
            mig,
        };
        let mig = |j: u32| MigDevice {
            index: j,
            uuid: format!("MIG-1{j}000000-aaaa-bbbb-cccc-dddddddddddd"),
            memory_total: 10 << 30,
            instance: Some((j + 1, 0)),
        };
        Machine {
            driver_version: "550.54.15".into(),
            cuda_version: 12040,
            gpus: vec![gpu(0, 3, vec![]), gpu(1, 0, vec![mig(0), mig(1)])],
        }
    }

    fn list(items: &[&str]) -> Visible {
        Visible::List(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn every_selection_form() {
        let m = machine();
        let whole = |gpu| Selected { gpu, mig: None };
        assert_eq!(m.select(&Visible::All).unwrap(), [whole(0), whole(1)]);
        assert_eq!(m.select(&Visible::NoGpu).unwrap(), []);
        assert_eq!(
            m.select(&list(&[
                "1",
                "GPU-00000000-AAAA-bbbb-cccc-dddddddddddd",
                "1"
            ]))
            .unwrap(),
            [whole(1), whole(0)]
        );
        assert_eq!(m.select(&list(&["0000:08:00.0"])).unwrap(), [whole(1)]);
        let mig1 = Selected {
            gpu: 1,
            mig: Some(1),
        };
        assert_eq!(m.select(&list(&["1:1"])).unwrap(), [mig1]);
        assert_eq!(
            m.select(&list(&["MIG-11000000-aaaa-bbbb-cccc-dddddddddddd"]))
                .unwrap(),
            [mig1]
        );
        assert_eq!(m.cuda_version_string(), "12.4");
    }

    #[test]
    fn bad_selections_say_why() {
        let m = machine();
        for (item, says) in [
            ("7", "no GPU with index 7: this machine has 2 GPU(s)"),
            (
                "GPU-ffffffff",
                "no GPU or MIG device matches \"GPU-ffffffff\"",
            ),
            ("0:0", "GPU 0 is not in MIG mode"),
            ("1:5", "GPU 1 has 2 MIG device(s), no 1:5"),
            ("9:0", "no GPU with index 9"),
            ("0000:99:00.0", "no GPU or MIG device matches"),
        ] {
            let e = m.select(&list(&[item])).unwrap_err().to_string();
            assert!(e.contains(says), "{item}: {e}");
        }
    }
}
