//! GPU discovery from the kernel driver's procfs (`/proc/driver/nvidia`), used at create when
//! the request needs nothing that only NVML knows. `nvmlInit` costs ~22 ms on an H100 host
//! (it opens and queries every GPU); these reads cost microseconds.
//!
//! What this view has is what NVML reports for whole GPUs: UUID, bus id, device minor, model,
//! and the driver version. The index is NVML's: GPUs enumerated in PCI bus order, excluded
//! GPUs skipped. What it lacks — CUDA version, compute capability, brand (requirement checks)
//! and MIG devices — sends the caller to NVML ([`needs_nvml`]).

use std::path::Path;

use super::nvml::{Gpu, Machine};
use super::select::Visible;

/// Does this request need NVML's answers (MIG devices, requirement checks)?
pub fn needs_nvml(visible: &Visible, requirements: bool) -> bool {
    requirements
        || match visible {
            Visible::List(items) => items.iter().any(|i| is_mig_name(i)),
            _ => false,
        }
}

/// `MIG-<uuid>` or `<gpu>:<mig>` (bus ids have colons too, but not digits on both sides only).
fn is_mig_name(item: &str) -> bool {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    item.starts_with("MIG-")
        || item
            .split_once(':')
            .is_some_and(|(g, m)| all_digits(g) && all_digits(m))
}

/// The machine as the driver's procfs at `dir` shows it; `None` when it is absent or not in
/// the expected form (the caller then asks NVML).
pub fn discover(dir: &Path) -> Option<Machine> {
    if dir.as_os_str().is_empty() {
        return None;
    }
    let version = std::fs::read_to_string(dir.join("version")).ok()?;
    let driver_version = driver_version(&version)?;
    let mut buses: Vec<String> = std::fs::read_dir(dir.join("gpus"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    buses.sort_unstable_by_key(|b| b.to_ascii_lowercase());
    let mut gpus = Vec::new();
    for bus in buses {
        let info = std::fs::read_to_string(dir.join("gpus").join(&bus).join("information")).ok()?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == name))
                .map(|(_, v)| v.trim().to_string())
        };
        if field("GPU Excluded").is_some_and(|v| v.eq_ignore_ascii_case("yes")) {
            continue;
        }
        gpus.push(Gpu {
            index: gpus.len() as u32,
            uuid: field("GPU UUID")?,
            minor: field("Device Minor")?.parse().ok()?,
            pci_bus_id: field("Bus Location")?,
            name: field("Model")?,
            memory_total: 0,
            cc: (0, 0),
            brand: "unknown".into(),
            mig: Vec::new(),
        });
    }
    Some(Machine {
        driver_version,
        cuda_version: 0,
        gpus,
    })
}

/// `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build …`
fn driver_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() >= 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 41\nGPU UUID: \t GPU-ca38f8e9-038f-4018-5c4b-cb2694bf06ec\nVideo BIOS: \t 96.00.a5.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nBus Location: \t 0000:00:06.0\nDevice Minor: \t 3\nGPU Firmware: \t 580.159.04\nGPU Excluded:\t No\n";

    #[test]
    fn reads_the_driver_view() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("version"),
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \nGCC version:  gcc version 13.2.0\n",
        )
        .unwrap();
        // Listed out of bus order, one excluded: indices follow the bus order of the others.
        for (bus, minor, excluded) in [
            ("0000:41:00.0", 0, "No"),
            ("0000:00:06.0", 3, "No"),
            ("0000:20:00.0", 1, "Yes"),
        ] {
            let d = t.path().join("gpus").join(bus);
            std::fs::create_dir_all(&d).unwrap();
            let info = INFO
                .replace("0000:00:06.0", bus)
                .replace("Minor: \t 3", &format!("Minor: \t {minor}"))
                .replace("ec\n", &format!("e{minor}\n"))
                .replace("Excluded:\t No", &format!("Excluded:\t {excluded}"));
            std::fs::write(d.join("information"), info).unwrap();
        }
        let m = discover(t.path()).unwrap();
        assert_eq!(m.driver_version, "580.159.04");
        let got: Vec<(u32, &str, u32, &str)> = m
            .gpus
            .iter()
            .map(|g| (g.index, g.pci_bus_id.as_str(), g.minor, g.uuid.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    0,
                    "0000:00:06.0",
                    3,
                    "GPU-ca38f8e9-038f-4018-5c4b-cb2694bf06e3"
                ),
                (
                    1,
                    "0000:41:00.0",
                    0,
                    "GPU-ca38f8e9-038f-4018-5c4b-cb2694bf06e0"
                ),
            ]
        );
        assert_eq!(m.gpus[0].name, "NVIDIA H100 80GB HBM3");
        // Absent, disabled, or garbled: no answer, NVML decides.
        assert!(discover(Path::new("")).is_none());
        assert!(discover(&t.path().join("nope")).is_none());
        std::fs::write(t.path().join("gpus/0000:41:00.0/information"), "Model: x\n").unwrap();
        assert!(discover(t.path()).is_none());
    }

    #[test]
    fn what_needs_nvml() {
        let list = |s: &[&str]| Visible::List(s.iter().map(|x| x.to_string()).collect());
        assert!(!needs_nvml(&Visible::All, false));
        assert!(needs_nvml(&Visible::All, true));
        assert!(!needs_nvml(
            &list(&["0", "GPU-1234", "00000000:18:00.0", "0000:18:00.0"]),
            false
        ));
        assert!(needs_nvml(&list(&["0", "0:1"]), false));
        assert!(needs_nvml(&list(&["MIG-0000"]), false));
    }
}
