//! MIG access capabilities: a process may use MIG device `gpuN/giX/ciY` only if it can open the
//! `/dev/nvidia-caps/nvidia-cap<M>` nodes of its GPU instance and of its compute instance. The
//! driver lists the minors M in `/proc/driver/nvidia-caps/mig-minors`, lines such as
//! `gpu0/gi1/access 12` and `gpu0/gi1/ci0/access 13`, where `gpuN` is the GPU's device minor.

use std::collections::HashMap;
use std::path::Path;

use super::GpuError;

/// The file's `name minor` lines.
pub fn read_minors(path: &Path) -> Result<HashMap<String, u32>, GpuError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        GpuError::Device(format!(
            "{}: {e} (needed for MIG devices; is the nvidia-caps module loaded?)",
            path.display()
        ))
    })?;
    Ok(parse(&text))
}

fn parse(text: &str) -> HashMap<String, u32> {
    text.lines()
        .filter_map(|l| {
            let (name, minor) = l.trim().split_once(char::is_whitespace)?;
            Some((name.to_string(), minor.trim().parse().ok()?))
        })
        .collect()
}

/// The two cap nodes of MIG device (gpu minor, gpu instance, compute instance).
pub fn nodes(
    minors: &HashMap<String, u32>,
    gpu: u32,
    gi: u32,
    ci: u32,
) -> Result<[String; 2], GpuError> {
    let node = |key: String| {
        minors
            .get(&key)
            .map(|m| format!("/dev/nvidia-caps/nvidia-cap{m}"))
            .ok_or_else(|| GpuError::Device(format!("mig-minors has no {key}")))
    };
    Ok([
        node(format!("gpu{gpu}/gi{gi}/access"))?,
        node(format!("gpu{gpu}/gi{gi}/ci{ci}/access"))?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minors_to_nodes() {
        let m = parse("config 1\nmonitor 2\ngpu0/gi0/access 3\ngpu0/gi0/ci0/access 4\ngpu1/gi2/access 21\ngpu1/gi2/ci1/access 23\nbad line\n");
        assert_eq!(m["config"], 1);
        assert_eq!(
            nodes(&m, 1, 2, 1).unwrap(),
            [
                "/dev/nvidia-caps/nvidia-cap21",
                "/dev/nvidia-caps/nvidia-cap23"
            ]
        );
        let e = nodes(&m, 0, 1, 0).unwrap_err().to_string();
        assert!(e.contains("gpu0/gi1/access"), "{e}");
    }
}
