//! `descriptors.json` in the images dir: what the init's fds 0-2 were (runc's file), so a
//! restore hands the caller's pipes to CRIU in their place.

use crate::error::{Error, Result};
use std::path::Path;

pub const FILE: &str = "descriptors.json";

/// Record the targets of `/proc/PID/fd/{0,1,2}` (e.g. "pipe:[1234]", "/dev/null"), as a JSON
/// array of three strings. A closed fd is recorded as "" (CRIU then has nothing to replace).
pub fn save(images_dir: &Path, pid: i32) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let path = images_dir.join(FILE);
    let json = serde_json::to_vec(&fds).expect("strings serialise");
    // 0600, as runc writes it: it names the container's files
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(json.as_ref()))
        .map_err(|e| Error::io("write", &path, e))
}

/// The recorded targets, fd 0 first.
pub fn load(images_dir: &Path) -> Result<Vec<String>> {
    let path = images_dir.join(FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::State { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_own_fds() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), std::process::id() as i32).unwrap();
        let fds = load(dir.path()).unwrap();
        assert_eq!(fds.len(), 3);
        let raw = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(raw.starts_with("[\"") && raw.ends_with("\"]"), "{raw}");
    }
}
