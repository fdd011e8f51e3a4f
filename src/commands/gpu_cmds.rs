//! `gpurun hook …` and `gpurun cdi …`: the GPU support outside of create (gpurun-only verbs,
//! runc's surface is unchanged).

use std::io::Write;

use crate::cli::{CdiCommand, CdiFormat, HookCommand};
use crate::error::{Error, Result};
use crate::gpu::{self, GpuError};

pub fn cdi(cmd: &CdiCommand) -> Result<i32> {
    let cfg = gpu::Config::load()?;
    let hook_bin = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/usr/local/bin/gpurun".into());
    let spec = crate::cdi::generate::generate(&cfg, &hook_bin)?;
    match cmd {
        CdiCommand::List => {
            for name in crate::cdi::generate::names(&spec) {
                println!("{name}");
            }
        }
        CdiCommand::Generate { format, output } => {
            let text = match format {
                CdiFormat::Json => {
                    serde_json::to_string_pretty(&spec).map_err(|e| GpuError::Cdi(e.to_string()))?
                        + "\n"
                }
                CdiFormat::Yaml => {
                    serde_yaml_ng::to_string(&spec).map_err(|e| GpuError::Cdi(e.to_string()))?
                }
            };
            match output {
                Some(path) => {
                    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))?
                }
                None => std::io::stdout()
                    .write_all(text.as_bytes())
                    .map_err(|e| Error::io("write", "stdout", e))?,
            }
        }
    }
    Ok(0)
}

pub fn hook(cmd: &HookCommand) -> Result<i32> {
    match cmd {
        HookCommand::Nvidia => crate::gpu::hook::nvidia_hook().map(|()| 0),
        HookCommand::Ldcache {
            lib_dirs,
            symlinks,
            ldconfig,
        } => {
            let state = crate::gpu::hook::read_state()?;
            let bundle = crate::spec::Bundle::load(&state.bundle)?;
            let mut links = Vec::new();
            for s in symlinks {
                let (target, link) = s.split_once("::").ok_or_else(|| {
                    Error::Unsupported(format!("--symlink {s:?}: want TARGET::LINK"))
                })?;
                links.push((link.to_string(), target.to_string()));
            }
            let edits = gpu::RootEdits {
                symlinks: links,
                lib_dirs: lib_dirs.clone(),
                ldconfig: ldconfig.clone(),
                sonames: Vec::new(),
                proc_params: None,
            };
            gpu::ldcache::run(&bundle.rootfs, &edits)
                .map_err(|e| Error::Hook(format!("ldcache: {e}")))?;
            Ok(0)
        }
    }
}
