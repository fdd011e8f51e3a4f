//! `/etc/gpurun/config.toml` (or the file `GPURUN_CONFIG` names), section `[nvidia]`.
//! A missing default file means the defaults, which fit a standard driver install; a file that
//! `GPURUN_CONFIG` names must exist.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::GpuError;

pub const DEFAULT_PATH: &str = "/etc/gpurun/config.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    nvidia: Config,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// Where driver libraries, binaries, firmware and `etc/ld.so.cache` are found.
    pub driver_root: PathBuf,
    /// Where `/dev/nvidia*` are found and stat'ed.
    pub dev_root: PathBuf,
    /// Path or soname of libnvidia-ml.
    pub nvml_library: String,
    /// `@/sbin/ldconfig`: the host's binary; without `@`: a path inside the container;
    /// `builtin`: gpurun writes the cache itself.
    pub ldconfig: String,
    /// CDI spec directories, later ones win.
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// The kernel driver's procfs, read at create instead of initialising NVML when the
    /// request needs no MIG device and no requirement check; empty: always NVML.
    pub procfs: PathBuf,
    /// NVIDIA's `cuda-checkpoint` for checkpointing GPU containers: a path, or a name looked
    /// up on PATH.
    pub cuda_checkpoint: PathBuf,
    /// MPS sharing: one directory per GPU (by UUID) with the daemon's `pipe/`, `log/`, `shm/`
    /// and the registry of leases.
    pub mps_root: PathBuf,
    /// NVIDIA's `nvidia-cuda-mps-control`: a path, or a name looked up on PATH.
    pub mps_control: PathBuf,
    /// `cdi generate` also emits `<index>-share` devices (MPS-shared GPUs).
    pub mps_cdi_devices: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            driver_root: "/".into(),
            dev_root: "/".into(),
            nvml_library: "libnvidia-ml.so.1".into(),
            ldconfig: "@/sbin/ldconfig".into(),
            cdi_spec_dirs: vec!["/etc/cdi".into(), "/var/run/cdi".into()],
            procfs: "/proc/driver/nvidia".into(),
            cuda_checkpoint: "cuda-checkpoint".into(),
            mps_root: "/run/gpurun/mps".into(),
            mps_control: "nvidia-cuda-mps-control".into(),
            mps_cdi_devices: false,
        }
    }
}

impl Config {
    /// The configuration in effect: `GPURUN_CONFIG`'s file, else the default path if present.
    pub fn load() -> Result<Config, GpuError> {
        match std::env::var_os("GPURUN_CONFIG") {
            Some(p) => Self::from_file(Path::new(&p)),
            None if Path::new(DEFAULT_PATH).exists() => Self::from_file(Path::new(DEFAULT_PATH)),
            None => Ok(Config::default()),
        }
    }

    pub fn from_file(path: &Path) -> Result<Config, GpuError> {
        let text = std::fs::read_to_string(path).map_err(|e| GpuError::Config {
            path: path.into(),
            msg: e.to_string(),
        })?;
        Self::parse(&text).map_err(|msg| GpuError::Config {
            path: path.into(),
            msg,
        })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        let c = file.nvidia;
        for (key, p) in [
            ("driver-root", &c.driver_root),
            ("dev-root", &c.dev_root),
            ("procfs", &c.procfs),
            ("mps-root", &c.mps_root),
        ] {
            let disabled = key == "procfs" && p.as_os_str().is_empty();
            if !(p.is_absolute() || disabled) {
                return Err(format!("{key} {} must be an absolute path", p.display()));
            }
        }
        Ok(c)
    }

    /// `path` (absolute, as seen on a standard install) under the driver root.
    pub fn driver_path(&self, path: &str) -> PathBuf {
        self.driver_root.join(path.trim_start_matches('/'))
    }

    /// `/proc/driver/nvidia-caps/mig-minors`, beside the configured procfs.
    pub fn mig_minors_path(&self) -> PathBuf {
        let procfs = match self.procfs.as_os_str().is_empty() {
            true => Path::new("/proc/driver/nvidia"),
            false => self.procfs.as_path(),
        };
        procfs.with_file_name("nvidia-caps").join("mig-minors")
    }

    pub fn dev_path(&self, path: &str) -> PathBuf {
        self.dev_root.join(path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse(
            "[nvidia]\ndriver-root = \"/run/nvidia/driver\"\nldconfig = \"/sbin/ldconfig.real\"\n",
        )
        .unwrap();
        assert_eq!(c.driver_root, Path::new("/run/nvidia/driver"));
        assert_eq!(c.dev_root, Path::new("/"));
        assert_eq!(c.ldconfig, "/sbin/ldconfig.real");
        assert_eq!(
            c.driver_path("/usr/lib/libcuda.so"),
            Path::new("/run/nvidia/driver/usr/lib/libcuda.so")
        );
    }

    #[test]
    fn rejects_unknown_keys_and_relative_roots() {
        let e = Config::parse("[nvidia]\ndriver_root = \"/x\"\n").unwrap_err();
        assert!(e.contains("driver_root"), "{e}");
        let e = Config::parse("[nvidia]\ndev-root = \"dev\"\n").unwrap_err();
        assert!(e.contains("dev-root dev must be an absolute path"), "{e}");
        let e = Config::parse("[amd]\n").unwrap_err();
        assert!(e.contains("amd"), "{e}");
    }
}
