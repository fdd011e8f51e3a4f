//! The container's mounts CRIU must treat as external: bind mounts (and masked files, binds
//! of /dev/null) are not CRIU's to dump; at restore they are bound again from their sources.

use std::path::PathBuf;

/// One external mount: its path in the container (CRIU's key) and its host source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub dest: String,
    pub source: PathBuf,
}

/// The spec's bind mounts and masked files, as CRIU's external mounts.
pub fn external(_spec: &oci_spec::runtime::Spec) -> Vec<External> {
    Vec::new()
}
