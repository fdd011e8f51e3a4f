//! What a container asks for through its environment, with the NVIDIA toolkit's conventions:
//! `NVIDIA_VISIBLE_DEVICES`, `NVIDIA_DRIVER_CAPABILITIES`, and the legacy-image rules (an image
//! with `CUDA_VERSION` but no `NVIDIA_REQUIRE_CUDA` gets every GPU and every capability).

use super::GpuError;

/// The value of `key` in a `KEY=VALUE` list; the last definition wins, as in execve's env.
pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// Cheap test for "may this be a GPU container?", done for every container: a scan of the
/// env for the two variables that can make it one. Nothing is loaded unless it says yes.
pub fn wants_gpu(env: &[String]) -> bool {
    env.iter()
        .any(|kv| kv.starts_with("NVIDIA_VISIBLE_DEVICES=") || kv.starts_with("CUDA_VERSION="))
}

/// A legacy CUDA image: `CUDA_VERSION` set, `NVIDIA_REQUIRE_CUDA` not.
pub fn is_legacy(env: &[String]) -> bool {
    env_get(env, "CUDA_VERSION").is_some() && env_get(env, "NVIDIA_REQUIRE_CUDA").is_none()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// Not a GPU container (`void`, empty, unset).
    NotGpu,
    /// Driver files but no GPU (`none`).
    NoGpu,
    All,
    /// Indices, `g:m` MIG indices, `GPU-`/`MIG-` UUIDs or PCI bus ids, as given.
    List(Vec<String>),
}

pub fn visible(env: &[String]) -> Visible {
    let value = env_get(env, "NVIDIA_VISIBLE_DEVICES").map(str::trim);
    match value {
        None | Some("") if is_legacy(env) => Visible::All,
        None | Some("") | Some("void") => Visible::NotGpu,
        Some("none") => Visible::NoGpu,
        Some("all") => Visible::All,
        Some(list) => Visible::List(
            list.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ),
    }
}

/// Driver capabilities, a set of the names below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps(u8);

pub const CAP_NAMES: [&str; 7] = [
    "compute", "utility", "graphics", "video", "display", "compat32", "ngx",
];

impl Caps {
    pub const ALL: Caps = Caps((1 << CAP_NAMES.len()) - 1);

    pub fn has(self, name: &str) -> bool {
        CAP_NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    pub fn names(self) -> Vec<&'static str> {
        CAP_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    pub fn parse(list: &str) -> Result<Caps, GpuError> {
        let mut caps = Caps(0);
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                return Ok(Caps::ALL);
            }
            let i = CAP_NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| GpuError::Select(format!("unknown driver capability {name:?} in NVIDIA_DRIVER_CAPABILITIES (known: all, {})", CAP_NAMES.join(", "))))?;
            caps.0 |= 1 << i;
        }
        Ok(caps)
    }
}

/// `NVIDIA_DRIVER_CAPABILITIES`: `compute,utility` when unset or empty, everything for legacy images.
pub fn capabilities(env: &[String]) -> Result<Caps, GpuError> {
    match env_get(env, "NVIDIA_DRIVER_CAPABILITIES").map(str::trim) {
        None if is_legacy(env) => Ok(Caps::ALL),
        None | Some("") => Caps::parse("compute,utility"),
        Some(list) => Caps::parse(list),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn visible_devices_forms() {
        assert_eq!(visible(&env(&["PATH=/bin"])), Visible::NotGpu);
        assert_eq!(visible(&env(&["NVIDIA_VISIBLE_DEVICES="])), Visible::NotGpu);
        assert_eq!(
            visible(&env(&["NVIDIA_VISIBLE_DEVICES=void"])),
            Visible::NotGpu
        );
        assert_eq!(
            visible(&env(&["NVIDIA_VISIBLE_DEVICES=none"])),
            Visible::NoGpu
        );
        assert_eq!(visible(&env(&["NVIDIA_VISIBLE_DEVICES=all"])), Visible::All);
        assert_eq!(
            visible(&env(&[
                "NVIDIA_VISIBLE_DEVICES=0, GPU-abc,1:0,,00000000:07:00.0"
            ])),
            Visible::List(env(&["0", "GPU-abc", "1:0", "00000000:07:00.0"]))
        );
        // The last definition wins.
        assert_eq!(
            visible(&env(&[
                "NVIDIA_VISIBLE_DEVICES=all",
                "NVIDIA_VISIBLE_DEVICES=void"
            ])),
            Visible::NotGpu
        );
        assert!(!wants_gpu(&env(&["NVIDIA_DRIVER_CAPABILITIES=all"])));
        assert!(wants_gpu(&env(&["NVIDIA_VISIBLE_DEVICES=0"])));
    }

    #[test]
    fn legacy_images() {
        assert_eq!(visible(&env(&["CUDA_VERSION=11.0.3"])), Visible::All);
        assert_eq!(
            capabilities(&env(&["CUDA_VERSION=11.0.3"])).unwrap(),
            Caps::ALL
        );
        let modern = env(&["CUDA_VERSION=12.2.0", "NVIDIA_REQUIRE_CUDA=cuda>=12.2"]);
        assert_eq!(visible(&modern), Visible::NotGpu);
        assert_eq!(
            capabilities(&modern).unwrap().names(),
            ["compute", "utility"]
        );
    }

    #[test]
    fn capability_sets() {
        assert_eq!(
            capabilities(&env(&[])).unwrap().names(),
            ["compute", "utility"]
        );
        let c = capabilities(&env(&["NVIDIA_DRIVER_CAPABILITIES=video, graphics"])).unwrap();
        assert_eq!(c.names(), ["graphics", "video"]);
        assert!(c.has("video") && !c.has("compute"));
        assert_eq!(Caps::parse("utility,all").unwrap(), Caps::ALL);
        let e = Caps::parse("compute,quantum").unwrap_err().to_string();
        assert!(e.contains("\"quantum\""), "{e}");
    }
}
