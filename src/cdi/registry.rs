//! The CDI spec directories (`/etc/cdi`, `/var/run/cdi` by default): every `.json`, `.yaml` and
//! `.yml` file, directories in order and files by name, a later definition of the same
//! qualified device name winning (the CDI rule: later directories have higher priority).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::spec::{Device, Spec};

pub struct Registry {
    pub specs: Vec<(PathBuf, Spec)>,
    /// `vendor/class=name` → (index into `specs`, index into its devices).
    pub devices: BTreeMap<String, (usize, usize)>,
}

impl Registry {
    /// Load every spec; a file that does not parse is an error naming it.
    pub fn load(dirs: &[PathBuf]) -> Result<Registry, String> {
        let mut reg = Registry {
            specs: Vec::new(),
            devices: BTreeMap::new(),
        };
        for dir in dirs {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("CDI spec dir {}: {e}", dir.display())),
            };
            files.retain(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|e| e == "json" || e == "yaml" || e == "yml")
            });
            files.sort();
            for path in files {
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("CDI spec {}: {e}", path.display()))?;
                let spec = Spec::parse(&path, &bytes)
                    .map_err(|e| format!("CDI spec {}: {e}", path.display()))?;
                let si = reg.specs.len();
                for (di, d) in spec.devices.iter().enumerate() {
                    reg.devices
                        .insert(format!("{}={}", spec.kind, d.name), (si, di));
                }
                reg.specs.push((path, spec));
            }
        }
        Ok(reg)
    }

    /// The spec and device a qualified name (`nvidia.com/gpu=0`) refers to.
    pub fn get(&self, name: &str) -> Option<(&Path, &Spec, &Device)> {
        let &(si, di) = self.devices.get(name)?;
        let (path, spec) = &self.specs[si];
        Some((path, spec, &spec.devices[di]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_dir_wins_and_bad_files_are_named() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("etc"), t.path().join("run"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let spec = |env: &str| {
            format!("{{\"cdiVersion\":\"0.6.0\",\"kind\":\"v.com/c\",\"devices\":[{{\"name\":\"x\",\"containerEdits\":{{\"env\":[\"{env}\"]}}}}]}}")
        };
        std::fs::write(a.join("v.json"), spec("FROM=etc")).unwrap();
        std::fs::write(b.join("v.yaml"), spec("FROM=run")).unwrap();
        std::fs::write(b.join("README.txt"), "ignored").unwrap();
        let reg = Registry::load(&[a.clone(), b.clone(), t.path().join("missing")]).unwrap();
        let (path, _, dev) = reg.get("v.com/c=x").unwrap();
        assert_eq!(dev.container_edits.env, ["FROM=run"]);
        assert_eq!(path, b.join("v.yaml"));
        assert!(reg.get("v.com/c=y").is_none());
        std::fs::write(a.join("bad.json"), "{\"cdiVersion\":\"0.6.0\"}").unwrap();
        let e = Registry::load(std::slice::from_ref(&a)).err().unwrap();
        assert!(e.contains("bad.json"), "{e}");
    }
}
