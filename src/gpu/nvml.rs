//! The machine's GPUs as NVML reports them, and resolving a selection against them.
//!
//! NVML itself (a vendor library that may start threads) is never loaded into gpurun: the
//! `gpurun-nvml` helper beside the binary loads it ([`super::nvml_query`]) and prints the
//! [`Machine`] as JSON. That keeps gpurun free of threads before it clones the init, lets
//! gpurun be linked statically (a static binary cannot dlopen the driver's library safely),
//! and costs one exec only when NVML is needed at all (MIG devices, requirement checks,
//! `cdi generate`): whole GPUs come from the driver's procfs ([`super::procfs`]).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::select::Visible;
use super::GpuError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub driver_version: String,
    /// CUDA driver API version as NVML reports it (12040 = 12.4).
    pub cuda_version: i32,
    pub gpus: Vec<Gpu>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
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

    /// Every GPU through NVML at `library` (a path or a soname), asked of the
    /// `gpurun-nvml` helper: see [`query`].
    pub fn discover(library: &str) -> Result<Machine, GpuError> {
        query(library)
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

/// The helper's file name; it is looked up beside the running gpurun, then in PATH.
pub const HELPER: &str = "gpurun-nvml";

fn helper_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(HELPER)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(HELPER))
}

/// Run `gpurun-nvml LIBRARY` and read its answer: the machine as JSON on stdout, or the
/// reason NVML failed on stderr (exit status 1).
fn query(library: &str) -> Result<Machine, GpuError> {
    ask_helper(&[library])
}

/// Run the helper with `args` and parse its JSON answer; its stderr is the error when it
/// fails (`gpurun-nvml LIBRARY`, `gpurun-nvml --usage LIBRARY MINOR...`).
pub(crate) fn ask_helper<T: serde::de::DeserializeOwned>(args: &[&str]) -> Result<T, GpuError> {
    let helper = helper_path();
    let out = Command::new(&helper)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            GpuError::Nvml(format!(
                "cannot run the NVML helper {} ({e}): install {HELPER} beside gpurun",
                helper.display()
            ))
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.trim().trim_start_matches("gpu: NVML: ");
        return Err(GpuError::Nvml(match why.is_empty() {
            true => format!(
                "{} {} failed: {}",
                helper.display(),
                args.join(" "),
                out.status
            ),
            false => why.to_string(),
        }));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| GpuError::Nvml(format!("{}: unreadable answer: {e}", helper.display())))
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
