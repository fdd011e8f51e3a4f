//! Cgroup directories named after a test's containers, and the host's cgroup tree for the
//! engine scripts' before/after comparison.

use std::collections::BTreeSet;
use std::path::PathBuf;

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

/// The hierarchies' mount points: `/sys/fs/cgroup` (pure v2) or its subdirectories.
fn hierarchies() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut roots: Vec<PathBuf> = crate::util::parse_mountinfo(&info)
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| PathBuf::from(m.point))
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// Every cgroup dir of every hierarchy, `depth` levels down at most.
pub fn all_dirs(depth: usize) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut todo: Vec<(PathBuf, usize)> = hierarchies().into_iter().map(|r| (r, 0)).collect();
    while let Some((d, n)) = todo.pop() {
        if n >= depth {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                found.insert(e.path());
                todo.push((e.path(), n + 1));
            }
        }
    }
    found
}
