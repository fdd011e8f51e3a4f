//! User namespaces: the init is cloned into a new one, and the runtime (root in the parent
//! namespace) writes its uid/gid maps before the init does anything that needs an identity.
//! See step 0 of the protocol in `process/sync.rs`.

use nix::unistd::Pid;
use oci_spec::runtime::{Linux, LinuxIdMapping};

use crate::error::{Error, Result};

/// Write `linux.uidMappings` / `gidMappings` for `pid` (root writes them directly; the kernel
/// checks each range against our own namespace).
pub fn write_mappings(pid: Pid, linux: &Linux) -> Result<()> {
    write_map(pid, "uid_map", linux.uid_mappings().as_deref())?;
    write_map(pid, "gid_map", linux.gid_mappings().as_deref())
}

fn write_map(pid: Pid, file: &str, ranges: Option<&[LinuxIdMapping]>) -> Result<()> {
    let text = format_map(ranges.unwrap_or_default());
    let path = format!("/proc/{pid}/{file}");
    // One write: the kernel accepts a map only once and only whole.
    std::fs::write(&path, text).map_err(|e| Error::io("write", path, e))
}

/// The map file's format: `inside outside count` per line.
fn format_map(ranges: &[LinuxIdMapping]) -> String {
    ranges
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    #[test]
    fn map_lines() {
        let m = |c: u32, h: u32, s: u32| {
            LinuxIdMappingBuilder::default()
                .container_id(c)
                .host_id(h)
                .size(s)
                .build()
                .unwrap()
        };
        assert_eq!(
            format_map(&[m(0, 100000, 65536), m(65536, 5000, 1)]),
            "0 100000 65536\n65536 5000 1\n"
        );
    }
}
