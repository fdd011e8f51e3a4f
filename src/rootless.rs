//! Rootless: gpurun run by a non-root user, as runc does it — a user namespace mapping the
//! caller to root (`spec --rootless`), state under `$XDG_RUNTIME_DIR/gpurun`, and no cgroup
//! unless the caller may write one (an error only when the spec asks for limits).

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::cgroups::{Cgroup, CgroupError};
use crate::error::{Error, Result};

/// The caller is not root: gpurun works rootless. Decided once, from the ids gpurun started
/// with (after a rootless `exec` enters the container's user namespace it reads as root).
pub fn is_rootless() -> bool {
    static ROOTLESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTLESS.get_or_init(|| !nix::unistd::geteuid().is_root())
}

/// The default `--root`: `/run/gpurun` for root, `$XDG_RUNTIME_DIR/gpurun` for anyone else
/// (runc's rule; a non-root user cannot write /run).
pub fn default_state_root() -> Result<PathBuf> {
    if !is_rootless() {
        return Ok(PathBuf::from("/run/gpurun"));
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir).join("gpurun")),
        None => Err(Error::Unsupported(
            "rootless: XDG_RUNTIME_DIR is not set; set it or pass --root DIR (a directory you own)"
                .into(),
        )),
    }
}

/// runc's `specconv.ToRootless`: a user namespace mapping `uid`/`gid` to root, no network
/// namespace (a rootless user cannot set one up), the host's /sys bound instead of a sysfs
/// mount, no `uid=`/`gid=` mount options (those ids are not mapped), no cgroup mount and no
/// `linux.resources`.
pub fn to_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network" && n["type"] != "user");
        ns.push(json!({"type": "user"}));
    }
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    let Some(mounts) = spec["mounts"].as_array_mut() else {
        return;
    };
    mounts.retain(|m| m["type"] != "cgroup" && m["type"] != "cgroup2");
    for m in mounts.iter_mut() {
        if m["destination"] == "/sys" {
            *m = json!({
                "destination": "/sys", "type": "none", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]
            });
        } else if let Some(opts) = m["options"].as_array_mut() {
            opts.retain(|o| {
                let o = o.as_str().unwrap_or_default();
                !o.starts_with("uid=") && !o.starts_with("gid=")
            });
        }
    }
}

/// Does `resources` ask for anything but device rules? (Device rules cannot be enforced
/// rootless and are skipped, as runc skips them; limits must not be silently dropped.)
pub fn asks_limits(resources: Option<&LinuxResources>) -> bool {
    let Some(r) = resources else { return false };
    let mut value =
        serde_json::to_value(crate::cgroups::resources::effective(r)).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("devices");
        obj.retain(|_, v| !v.is_null() && v != &json!({}) && v != &json!([]));
        return !obj.is_empty();
    }
    false
}

/// A rootless container whose cgroup cannot be made (`e`; one is made where the caller may,
/// in a delegated tree) runs without one when the spec asks no limits (runc's rootless cgroup
/// manager ignores the permission errors then); asking for limits is an error then.
pub fn without_cgroup(e: CgroupError, resources: Option<&LinuxResources>) -> Result<Cgroup> {
    if !asks_limits(resources) {
        crate::logging::warn(&format!("rootless: running without a cgroup ({e})"));
        return Ok(Cgroup::default());
    }
    Err(Error::Unsupported(format!(
        "rootless container asks for linux.resources limits, but its cgroup cannot be set up ({e}): \
         delegate a writable cgroup to this user or remove the limits"
    )))
}

/// The init and every process below it, for a container that has no cgroup to list them.
pub fn process_tree(init: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The ppid is the 2nd field after the parenthesised command name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![init];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_spec_matches_runc() {
        let mut spec: Value = serde_json::from_str(crate::spec::DEFAULT_SPEC).unwrap();
        to_rootless(&mut spec, 1000, 1001);
        let ns: Vec<&str> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(!ns.contains(&"network") && ns.last() == Some(&"user"));
        assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(spec["linux"]["gidMappings"][0]["hostID"], 1001);
        assert!(spec["linux"].get("resources").is_none());
        let mounts = spec["mounts"].as_array().unwrap();
        assert!(mounts.iter().all(|m| m["type"] != "cgroup"));
        let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(sys["options"][0], "rbind");
        let pts = mounts
            .iter()
            .find(|m| m["destination"] == "/dev/pts")
            .unwrap();
        assert!(!pts["options"].to_string().contains("gid="));
        // The result is a spec gpurun accepts.
        let parsed: oci_spec::runtime::Spec = serde_json::from_value(spec).unwrap();
        crate::spec::validate(&parsed).unwrap();
    }

    #[test]
    fn limits_are_told_from_device_rules() {
        let r = |v: Value| serde_json::from_value::<LinuxResources>(v).unwrap();
        assert!(!asks_limits(None));
        assert!(!asks_limits(Some(&r(
            json!({"devices": [{"allow": false, "access": "rwm"}]})
        ))));
        assert!(asks_limits(Some(&r(json!({"memory": {"limit": 1048576}})))));
        assert!(asks_limits(Some(&r(json!({"pids": {"limit": 10}})))));
    }

    #[test]
    fn tree_of_self_starts_with_self() {
        let me = std::process::id() as i32;
        assert_eq!(process_tree(me).first(), Some(&me));
    }
}
