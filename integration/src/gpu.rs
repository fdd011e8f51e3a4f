//! A fake NVIDIA host for GPU tests without a GPU: the mock NVML (`integration/mock-nvml`,
//! built as `target/release/libmock_nvml.so`) with a JSON machine description, a driver root
//! with real tiny shared objects named like the driver's (built by `cc`, so ldconfig accepts
//! them) and its own `etc/ld.so.cache` (made by the host's `ldconfig -r`), an `nvidia-smi`
//! stand-in, firmware and a persistenced socket, and a dev root with `mknod`-made nodes.
//! [`FakeGpuHost::apply`] points an [`Env`]'s runtime calls at it (`GPURUN_CONFIG`,
//! `MOCK_NVML_CONFIG`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::env::Env;

pub const DRIVER_VERSION: &str = "550.54.15";
/// The uvm major: any dynamic major (only 195 is fixed), deliberately not 195.
pub const UVM_MAJOR: u32 = 509;
/// nvidia-caps (MIG access nodes): another dynamic major.
pub const CAPS_MAJOR: u32 = 241;
const LIB_DIR: &str = "usr/lib/x86_64-linux-gnu";

pub struct FakeGpuHost {
    pub dir: PathBuf,
    pub driver_root: PathBuf,
    pub dev_root: PathBuf,
    pub config: PathBuf,
    pub machine: PathBuf,
    pub cdi_dirs: [PathBuf; 2],
    pub desc: Value,
}

fn sh(script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The mock library, built with the workspace.
pub fn mock_nvml() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/release/libmock_nvml.so"
    ));
    assert!(
        p.is_file(),
        "{} missing: cargo build --release -p mock-nvml",
        p.display()
    );
    p
}

/// 2×H100 whose minors are swapped against their indices (GPU 0 is /dev/nvidia1).
pub fn h100x2() -> Value {
    let gpu = |i: u32, minor: u32| {
        json!({
            "name": "NVIDIA H100 80GB HBM3", "uuid": format!("GPU-{i}{i}{i}{i}{i}{i}{i}{i}-1111-2222-3333-444444444444"),
            "minor": minor, "pci_bus_id": format!("00000000:{:02X}:00.0", 0x18 + i), "memory_total": 85520809984u64,
            "compute_capability": [9, 0], "brand": 14,
        })
    };
    json!({"driver_version": DRIVER_VERSION, "cuda_version": 12040, "devices": [gpu(0, 1), gpu(1, 0)]})
}

/// 8×A100, GPU 0 in MIG mode with two MIG devices.
pub fn a100x8_mig() -> Value {
    let devices: Vec<Value> = (0..8u32)
        .map(|i| {
            let mut g = json!({
                "name": "NVIDIA A100-SXM4-80GB", "uuid": format!("GPU-a100000{i}-1111-2222-3333-444444444444"),
                "minor": i, "pci_bus_id": format!("00000000:{:02X}:00.0", 0x07 + i), "memory_total": 85899345920u64,
                "compute_capability": [8, 0], "brand": 2,
            });
            if i == 0 {
                g["mig"] = json!([
                    {"uuid": "MIG-00000000-aaaa-bbbb-cccc-000000000000", "memory_total": 10737418240u64, "gi": 1, "ci": 0},
                    {"uuid": "MIG-00000001-aaaa-bbbb-cccc-000000000001", "memory_total": 10737418240u64, "gi": 2, "ci": 0},
                ]);
            }
            g
        })
        .collect();
    json!({"driver_version": DRIVER_VERSION, "cuda_version": 12040, "devices": devices})
}

impl FakeGpuHost {
    /// Build the host under `env.dir/gpuhost` for the machine `desc`.
    pub fn new(env: &Env, desc: Value) -> FakeGpuHost {
        let dir = env.dir.join("gpuhost");
        let driver_root = dir.join("driver");
        let dev_root = dir.join("devroot");
        let lib = driver_root.join(LIB_DIR);
        for d in [
            &lib,
            &driver_root.join("usr/bin"),
            &driver_root.join("etc"),
            &dev_root.join("dev"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        // Real shared objects with the driver's sonames; one stale library of an older driver.
        let v = DRIVER_VERSION;
        let libs = [
            (format!("libcuda.so.{v}"), "libcuda.so.1"),
            (format!("libnvidia-ml.so.{v}"), "libnvidia-ml.so.1"),
            (
                format!("libnvidia-ptxjitcompiler.so.{v}"),
                "libnvidia-ptxjitcompiler.so.1",
            ),
            (format!("libnvidia-encode.so.{v}"), "libnvidia-encode.so.1"),
            (
                format!("libnvidia-glcore.so.{v}"),
                "libnvidia-glcore.so.550.54.15",
            ),
            (
                "libnvidia-cfg.so.470.82.01".to_string(),
                "libnvidia-cfg.so.1",
            ),
        ];
        std::fs::write(dir.join("empty.c"), "int nvidia_stand_in;\n").unwrap();
        for (file, soname) in &libs {
            sh(&format!(
                "cc -shared -fPIC -nostdlib -Wl,-soname,{soname} -o {}/{file} {}/empty.c",
                lib.display(),
                dir.display()
            ));
        }
        std::fs::write(driver_root.join("etc/ld.so.conf"), format!("/{LIB_DIR}\n")).unwrap();
        sh(&format!("ldconfig -r {}", driver_root.display()));
        // nvidia-smi stand-in: lists the GPU nodes the container sees, like `nvidia-smi -L`.
        let smi = driver_root.join("usr/bin/nvidia-smi");
        std::fs::write(
            &smi,
            "#!/bin/sh\nfor d in /dev/nvidia[0-9]*; do [ -c \"$d\" ] && echo \"GPU ${d#/dev/nvidia}: stand-in ($d)\"; done; exit 0\n",
        )
        .unwrap();
        sh(&format!("chmod 755 {}", smi.display()));
        let fw = driver_root.join(format!("lib/firmware/nvidia/{v}"));
        std::fs::create_dir_all(&fw).unwrap();
        std::fs::write(fw.join("gsp_ga10x.bin"), "firmware").unwrap();
        std::fs::create_dir_all(driver_root.join("run/nvidia-persistenced")).unwrap();
        std::fs::write(driver_root.join("run/nvidia-persistenced/socket"), "").unwrap();

        let dev = dev_root.join("dev");
        let mut nodes = vec![
            ("nvidiactl".to_string(), 195, 255),
            ("nvidia-modeset".to_string(), 195, 254),
            ("nvidia-uvm".to_string(), UVM_MAJOR, 0),
            ("nvidia-uvm-tools".to_string(), UVM_MAJOR, 1),
        ];
        for g in desc["devices"].as_array().unwrap() {
            let m = g["minor"].as_u64().unwrap() as u32;
            nodes.push((format!("nvidia{m}"), 195, m));
        }
        // MIG access capabilities: mig-minors beside the (otherwise empty) fake procfs, and the
        // /dev/nvidia-caps nodes it names.
        let caps_dir = dir.join("proc-driver/nvidia-caps");
        std::fs::create_dir_all(&caps_dir).unwrap();
        std::fs::create_dir_all(dir.join("proc-driver/nvidia")).unwrap();
        std::fs::create_dir_all(dev.join("nvidia-caps")).unwrap();
        let mut minors = String::from("config 1\nmonitor 2\n");
        let mut next = 3;
        for g in desc["devices"].as_array().unwrap() {
            for m in g["mig"].as_array().into_iter().flatten() {
                let (gpu, gi, ci) = (&g["minor"], &m["gi"], &m["ci"]);
                for key in [
                    format!("gpu{gpu}/gi{gi}/access"),
                    format!("gpu{gpu}/gi{gi}/ci{ci}/access"),
                ] {
                    minors.push_str(&format!("{key} {next}\n"));
                    nodes.push((format!("nvidia-caps/nvidia-cap{next}"), CAPS_MAJOR, next));
                    next += 1;
                }
            }
        }
        std::fs::write(caps_dir.join("mig-minors"), minors).unwrap();
        for (name, major, minor) in nodes {
            sh(&format!(
                "mknod -m 666 {}/{name} c {major} {minor}",
                dev.display()
            ));
        }

        let machine = dir.join("machine.json");
        std::fs::write(&machine, serde_json::to_string_pretty(&desc).unwrap()).unwrap();
        let cdi_dirs = [dir.join("etc-cdi"), dir.join("run-cdi")];
        for d in &cdi_dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let config = dir.join("config.toml");
        let host = FakeGpuHost {
            dir,
            driver_root,
            dev_root,
            config,
            machine,
            cdi_dirs,
            desc,
        };
        host.write_config(&mock_nvml().display().to_string());
        host
    }

    /// (Re)write config.toml with `nvml` as the library.
    pub fn write_config(&self, nvml: &str) {
        self.write_config_with(nvml, "");
    }

    /// Like [`FakeGpuHost::write_config`], with `extra` lines in `[nvidia]`.
    pub fn write_config_with(&self, nvml: &str, extra: &str) {
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        // The fake procfs has only MIG's nvidia-caps until `write_procfs`: NVML (the mock)
        // answers, and a real GPU host's /proc/driver/nvidia never leaks into the fake machine.
        let procfs = format!("procfs = {}\n", q(&self.dir.join("proc-driver/nvidia")));
        std::fs::write(
            &self.config,
            format!(
                "[nvidia]\ndriver-root = {}\ndev-root = {}\nnvml-library = {:?}\ncdi-spec-dirs = [{}, {}]\n{procfs}{extra}",
                q(&self.driver_root),
                q(&self.dev_root),
                nvml,
                q(&self.cdi_dirs[0]),
                q(&self.cdi_dirs[1]),
            ),
        )
        .unwrap();
    }

    /// The kernel driver's view of this machine, as `/proc/driver/nvidia` shows it: `version` and
    /// `gpus/<bus id>/information` (4-digit PCI domain, as the driver writes it), in the procfs
    /// the config names.
    pub fn write_procfs(&self) -> PathBuf {
        let dir = self.dir.join("proc-driver/nvidia");
        std::fs::create_dir_all(dir.join("gpus")).unwrap();
        std::fs::write(
            dir.join("version"),
            format!("NVRM version: NVIDIA UNIX x86_64 Kernel Module  {DRIVER_VERSION}  Release Build  (dvs-builder@U16-I3-B03-4-3)\nGCC version:  gcc version 12.2.0\n"),
        )
        .unwrap();
        for g in self.desc["devices"].as_array().unwrap() {
            let bus = g["pci_bus_id"].as_str().unwrap();
            let bus = bus[4..].to_lowercase();
            let d = dir.join("gpus").join(&bus);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("information"),
                format!(
                    "Model: \t\t {}\nIRQ:   \t\t 41\nGPU UUID: \t {}\nVideo BIOS: \t 96.00.a5.00.01\nBus Type: \t PCIe\nBus Location: \t {bus}\nDevice Minor: \t {}\nGPU Excluded:\t No\n",
                    g["name"].as_str().unwrap(),
                    g["uuid"].as_str().unwrap(),
                    g["minor"],
                ),
            )
            .unwrap();
        }
        dir
    }

    /// Make every runtime call of `env` use this host.
    pub fn apply(&self, env: &Env) {
        let mut e = env.extra_env.borrow_mut();
        e.push(("GPURUN_CONFIG".into(), self.config.display().to_string()));
        e.push((
            "MOCK_NVML_CONFIG".into(),
            self.machine.display().to_string(),
        ));
    }

    /// The UUID of GPU `i`.
    pub fn uuid(&self, i: usize) -> String {
        self.desc["devices"][i]["uuid"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn lib(&self, name: &str) -> String {
        format!("/{LIB_DIR}/{name}")
    }

    /// The processes the mock NVML reports on this host's GPUs (see integration/mock-nvml's
    /// process.rs for the entries): written whole (rename), read at every NVML call; the
    /// machine description names the file from the first call on.
    pub fn write_processes(&self, procs: &Value) {
        let file = self.dir.join("processes.json");
        let mut desc: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.machine).unwrap()).unwrap();
        if desc["processes_file"].as_str() != Some(&file.display().to_string()) {
            desc["processes_file"] = json!(file.display().to_string());
            std::fs::write(&self.machine, serde_json::to_string_pretty(&desc).unwrap()).unwrap();
        }
        let tmp = self.dir.join("processes.json.tmp");
        std::fs::write(&tmp, procs.to_string()).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    }
}

/// An [`Env`] with a fake GPU host for `desc` applied; `None` (after saying why) when the
/// test cannot run here.
pub fn gpu_env(name: &str, desc: Value) -> Option<(Env, FakeGpuHost)> {
    if !crate::require_root() || !crate::gpurun_only() {
        return None;
    }
    let env = Env::new(name);
    let host = FakeGpuHost::new(&env, desc);
    host.apply(&env);
    Some((env, host))
}

/// A spec edit appending `vars` to process.env.
pub fn with_env<'a>(vars: &'a [&'a str]) -> impl FnOnce(&mut Value) + 'a {
    move |s: &mut Value| {
        let e = s["process"]["env"].as_array_mut().unwrap();
        e.extend(vars.iter().map(|v| json!(v)));
    }
}
