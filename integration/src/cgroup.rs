//! Cgroup helpers for tests: v1 or v2, where a process's cgroups are on the host.

use crate::util::parse_mountinfo;
use std::path::{Path, PathBuf};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// True when `/sys/fs/cgroup` itself is a cgroup2 mount (a pure v2 host);
/// false on v1 and hybrid hosts.
pub fn cgroup2_host() -> bool {
    crate::sys::fs_type(c"/sys/fs/cgroup").is_ok_and(|t| t == CGROUP2_SUPER_MAGIC)
}

/// The host dirs of `pid`'s cgroups, one per hierarchy mounted here, as
/// (controllers of the hierarchy — `""` for cgroup2, e.g. `"cpu,cpuacct"` or
/// `"name=systemd"` on v1 — dir). Empty when the pid is gone.
pub fn proc_cgroup_dirs(pid: i32) -> Vec<(String, PathBuf)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = parse_mountinfo(&info);
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let mount = mounts.iter().rev().find(|m| {
            if ctrls.is_empty() {
                m.fstype == "cgroup2"
            } else {
                m.fstype == "cgroup"
                    && ctrls
                        .split(',')
                        .all(|c| m.super_opts.iter().any(|o| o == c))
            }
        });
        let Some(m) = mount else { continue };
        let rel = Path::new(path)
            .strip_prefix(&m.root)
            .unwrap_or(Path::new(path));
        dirs.push((ctrls.to_string(), Path::new(&m.point).join(rel)));
    }
    dirs
}

/// Host dir of `pid`'s cgroup for `controller` ("memory", "freezer", ...):
/// the unified dir on a v2 host, the v1 hierarchy holding it otherwise.
pub fn proc_cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let v2 = cgroup2_host();
    proc_cgroup_dirs(pid)
        .into_iter()
        .find(|(c, _)| {
            if v2 {
                c.is_empty()
            } else {
                c.split(',').any(|x| x == controller)
            }
        })
        .map(|(_, d)| d)
}

/// Is `controller` available to containers (a v1 hierarchy for it, or listed
/// in the v2 root's cgroup.controllers)? A counted skip ([`crate::skip`]) when not.
pub fn has_controller(controller: &str) -> bool {
    let ok = if cgroup2_host() {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
    } else {
        proc_cgroup_dir(std::process::id() as i32, controller).is_some()
    };
    if !ok {
        crate::skip::skip(&format!("no {controller} controller"));
    }
    ok
}
