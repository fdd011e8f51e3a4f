//! Leak detection: what a runtime must not leave behind after delete or a failed create.

use crate::util::poll;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Leaks {
    pub state_entries: Vec<String>,
    pub mounts: Vec<String>,
    pub pids: Vec<i32>,
    pub cgroups: Vec<PathBuf>,
}

impl Leaks {
    /// Processes and cgroups get up to `grace` to vanish (killed processes exit asynchronously).
    pub fn find(state: &Path, dir: &Path, marker: &str, ids: &[String], grace: Duration) -> Leaks {
        let mut pids = Vec::new();
        poll(grace, || {
            pids = marked_pids(marker);
            pids.is_empty().then_some(())
        });
        let mut cgroups = Vec::new();
        poll(grace, || {
            cgroups = cgroup_dirs(ids);
            cgroups.is_empty().then_some(())
        });
        Leaks {
            state_entries: state_entries(state),
            mounts: mounts_under(dir),
            pids,
            cgroups,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.state_entries.is_empty()
            && self.mounts.is_empty()
            && self.pids.is_empty()
            && self.cgroups.is_empty()
    }
}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "  state root entries: {:?}", self.state_entries)?;
        writeln!(f, "  mounts: {:#?}", self.mounts)?;
        writeln!(f, "  marked processes: {:?}", self.pids)?;
        writeln!(f, "  cgroup dirs: {:?}", self.cgroups)
    }
}

fn state_entries(state: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(state) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|l| l.contains(needle.as_ref()))
        .map(String::from)
        .collect()
}

/// Pids whose environment holds `GPURUN_IT=<marker>` exactly.
pub fn marked_pids(marker: &str) -> Vec<i32> {
    let needle = format!("GPURUN_IT={marker}");
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Parent dirs named `gpurun-it...` in cgroupsPath values of tests are searched too.
pub const CGROUP_PREFIX: &str = "gpurun-it";

/// Cgroup dirs named after one of `ids`, at each hierarchy's root or under
/// this process's own cgroup in it (the places runc and gpurun create them),
/// directly or one level down in a dir named `gpurun-it*`.
pub fn cgroup_dirs(ids: &[String]) -> Vec<PathBuf> {
    let own: Vec<String> = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(|p| p.trim_start_matches('/').to_string())
        .collect();
    let mut found = Vec::new();
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir()),
        );
    }
    for root in &roots {
        for base in std::iter::once("").chain(own.iter().map(String::as_str)) {
            // Tests' cgroupsPath values: `<id>`, `gpurun-it*/<id>` (relative
            // to the own cgroup, or absolute: under the root).
            let mut parents = vec![root.join(base)];
            if let Ok(rd) = std::fs::read_dir(root.join(base)) {
                parents.extend(
                    rd.filter_map(|e| e.ok())
                        .filter(|e| e.file_name().to_string_lossy().starts_with(CGROUP_PREFIX))
                        .map(|e| e.path()),
                );
            }
            for parent in &parents {
                for id in ids {
                    let p = parent.join(id);
                    if p.is_dir() && !found.contains(&p) {
                        found.push(p);
                    }
                }
            }
        }
    }
    found
}
