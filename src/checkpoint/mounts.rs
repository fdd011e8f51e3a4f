//! The container's mounts CRIU must treat as external: bind mounts (and masked files, binds
//! of /dev/null) are not CRIU's to dump; at restore they are bound again from their sources.
//!
//! CRIU keys an external mount by an id: at dump `(mountpoint, id)`, at restore `(id, source)`.
//! gpurun's id is the destination (runc's too, except that runc ids masked files "/dev/null"
//! because its restore cannot tell masked files from dirs; ours can, see `external`).

use oci_spec::runtime::Spec;
use std::path::PathBuf;

const DEV_NULL: &str = "/dev/null";

/// Device nodes gpurun makes in every container (runtime-spec's default devices). They are
/// mknod'ed, not mounted, except in a user namespace, where they are binds: listing them is
/// harmless when they are not mounts.
const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// One external mount: its path in the container (CRIU's key) and its host source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub dest: String,
    pub source: PathBuf,
}

impl External {
    /// The dump's `ext_mnt` entry: (mountpoint, id).
    pub fn dump_pair(&self) -> (String, String) {
        (self.dest.clone(), self.dest.clone())
    }

    /// The restore's `ext_mnt` entry: (id, host source).
    pub fn restore_pair(&self) -> (String, String) {
        (
            self.dest.clone(),
            self.source.to_string_lossy().into_owned(),
        )
    }
}

/// The spec's bind mounts, device nodes and masked files, as CRIU's external mounts.
pub fn external(spec: &Spec) -> Vec<External> {
    let mut out = Vec::new();
    let mut add = |dest: String, source: PathBuf| {
        let dest = clean(&dest);
        if !out.iter().any(|e: &External| e.dest == dest) {
            out.push(External { dest, source });
        }
    };
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if is_bind(m) {
            let source = m.source().clone().unwrap_or_default();
            add(m.destination().to_string_lossy().into_owned(), source);
        }
    }
    let linux = spec.linux().as_ref();
    let devices = linux.and_then(|l| l.devices().as_ref());
    for d in devices.into_iter().flatten() {
        let p = d.path().to_string_lossy().into_owned();
        add(p.clone(), PathBuf::from(p));
    }
    for d in DEFAULT_DEVICES {
        add(d.into(), PathBuf::from(d));
    }
    // Masked files are /dev/null bound over them; masked dirs are tmpfs mounts CRIU dumps.
    // They are kernel files (/proc, /sys): the host's view of their type is the container's.
    let masked = linux.and_then(|l| l.masked_paths().as_ref());
    for p in masked.into_iter().flatten() {
        if std::fs::metadata(p).is_ok_and(|m| !m.is_dir()) {
            add(p.clone(), PathBuf::from(DEV_NULL));
        }
    }
    out
}

/// A bind mount: type `bind`, or a `bind`/`rbind` option.
pub(super) fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// "/a//b/" → "/a/b": CRIU matches mountpoints literally (and restore compares them by prefix
/// and with directory listings).
pub(super) fn clean(dest: &str) -> String {
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn binds_devices_and_masked_files() {
        let s = spec(
            r#"{"ociVersion":"1.0.0","root":{"path":"rootfs"},
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/data/","type":"bind","source":"/srv/data"},
                {"destination":"/etc/hosts","source":"/tmp/hosts","options":["rbind","ro"]},
                {"destination":"/tmp","type":"tmpfs","source":"tmpfs"}],
            "linux":{"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}],
                "maskedPaths":["/proc/kcore","/proc/acpi","/nonexistent"]}}"#,
        );
        let ext = external(&s);
        let dests: Vec<&str> = ext.iter().map(|e| e.dest.as_str()).collect();
        assert!(dests.contains(&"/data") && dests.contains(&"/etc/hosts"));
        assert!(!dests.contains(&"/proc") && !dests.contains(&"/tmp"));
        assert!(dests.contains(&"/dev/fuse") && dests.contains(&"/dev/null"));
        assert!(!dests.contains(&"/proc/acpi") && !dests.contains(&"/nonexistent"));
        let data = ext.iter().find(|e| e.dest == "/data").unwrap();
        assert_eq!(data.dump_pair(), ("/data".into(), "/data".into()));
        assert_eq!(data.restore_pair(), ("/data".into(), "/srv/data".into()));
        if std::path::Path::new("/proc/kcore").exists() {
            let kcore = ext.iter().find(|e| e.dest == "/proc/kcore").unwrap();
            assert_eq!(
                kcore.dump_pair(),
                ("/proc/kcore".into(), "/proc/kcore".into())
            );
            assert_eq!(
                kcore.restore_pair(),
                ("/proc/kcore".into(), "/dev/null".into())
            );
        }
    }
}
