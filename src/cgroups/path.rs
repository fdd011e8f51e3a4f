//! Where a container's cgroup goes in one hierarchy, as runc's cgroupfs driver decides:
//! an absolute `cgroupsPath` is taken from the hierarchy's root, a relative one (and the
//! default, the container id) from the runtime's own cgroup in that hierarchy — on a pure
//! cgroup v2 host from its parent.

use std::path::{Component, Path, PathBuf};

use super::{CgroupError, Hierarchy};

pub fn container_dir(
    h: &Hierarchy,
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<PathBuf, CgroupError> {
    let inner = cgroups_path
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new(id));
    if inner.to_string_lossy().contains(':') {
        return Err(CgroupError::Unsupported(format!(
            "cgroupsPath {} looks like a systemd slice:prefix:name; the cgroupfs driver takes paths (pass --systemd-cgroup for the systemd driver)",
            inner.display()
        )));
    }
    if inner
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(CgroupError::Invalid(format!(
            "cgroupsPath {} must not contain ..",
            inner.display()
        )));
    }
    let relative: PathBuf = inner
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let base = match (inner.is_absolute(), h.v2 && h.name.is_empty()) {
        (true, _) => PathBuf::new(),
        // Pure cgroup v2, as runc: our own cgroup most likely holds processes (a service, a
        // user scope), so no controller can be enabled below it; its parent is the base.
        (false, true) => own_cgroup(h)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        (false, false) => own_cgroup(h),
    };
    Ok(h.mountpoint().join(base).join(relative))
}

/// Our own cgroup in hierarchy `h`, relative to its root (from /proc/self/cgroup).
fn own_cgroup(h: &Hierarchy) -> PathBuf {
    static OWN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = OWN.get_or_init(|| super::read_proc("/proc/self/cgroup"));
    own_cgroup_in(text, h).unwrap_or_default()
}

fn own_cgroup_in(proc_self_cgroup: &str, h: &Hierarchy) -> Option<PathBuf> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.v2 {
            controllers.is_empty()
        } else {
            let mut listed: Vec<&str> = controllers.split(',').collect();
            let mut wanted: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            listed.sort_unstable();
            wanted.sort_unstable();
            listed == wanted
        };
        matches.then(|| PathBuf::from(path.trim_start_matches('/')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, v2: bool, controllers: &[&str]) -> Hierarchy {
        Hierarchy {
            name: name.into(),
            v2,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            mount_data: String::new(),
        }
    }

    #[test]
    fn own_cgroup_lookup() {
        let text = "9:name=systemd:/\n4:memory:/process_api/x\n1:cpu,cpuacct:/a\n0::/init.scope\n";
        assert_eq!(
            own_cgroup_in(text, &h("memory", false, &["memory"])),
            Some("process_api/x".into())
        );
        assert_eq!(
            own_cgroup_in(text, &h("cpu,cpuacct", false, &["cpuacct", "cpu"])),
            Some("a".into())
        );
        assert_eq!(
            own_cgroup_in(text, &h("systemd", false, &["name=systemd"])),
            Some("".into())
        );
        assert_eq!(
            own_cgroup_in(text, &h("unified", true, &[])),
            Some("init.scope".into())
        );
    }

    #[test]
    fn forms() {
        let pids = h("pids", false, &["pids"]);
        let abs = container_dir(&pids, Some(Path::new("/a/b")), "id").unwrap();
        assert_eq!(abs, PathBuf::from("/sys/fs/cgroup/pids/a/b"));
        assert!(container_dir(&pids, Some(Path::new("system.slice:gpurun:x")), "id").is_err());
        assert!(container_dir(&pids, Some(Path::new("/a/../../etc")), "id").is_err());
        let rel = container_dir(&pids, None, "id").unwrap();
        assert!(rel.starts_with("/sys/fs/cgroup/pids") && rel.ends_with("id"));
    }
}
