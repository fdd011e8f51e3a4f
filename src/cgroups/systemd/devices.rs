//! Device rules as systemd's `DevicePolicy` + `DeviceAllow`.
//!
//! systemd rebuilds its device program from `DeviceAllow` at every `daemon-reload`, and keeps
//! only the entries it can resolve: a node path it can stat, or `char-NAME`/`block-NAME` from
//! /proc/devices. runc 1.1 names every node `/dev/char/MAJ:MIN`, a udev link the NVIDIA driver
//! never makes, so after a reload systemd's program denies the GPUs ("GPUs disappear from
//! containers"). Here every allowed node gets a path that resolves: the `/dev/char` link where
//! there is one, else the host node itself (the spec's path, else found in /dev).
//! Our own eBPF program ([`super::super::ebpf`]) stays attached beside systemd's and still
//! enforces the exact rules (deny rules included): a device must pass both.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::super::devices::Rule;
use super::bus::{Property, Value};

/// `DevicePolicy` and `DeviceAllow` for the final rule list ([`super::super::devices::rules`]).
pub fn properties(rules: &[Rule], devices: &[LinuxDevice]) -> Vec<Property> {
    let mut allowed: Vec<&Rule> = Vec::new();
    let mut default_allow = false;
    for rule in rules {
        let all = rule.kind == 'a' && rule.major.is_none() && rule.minor.is_none();
        if all && rule.access.len() == 3 {
            // A rule for every device with every access resets the list.
            default_allow = rule.allow;
            allowed.clear();
        } else if rule.allow {
            allowed.push(rule);
        } else {
            allowed.retain(|a| {
                !(a.kind == rule.kind && a.major == rule.major && a.minor == rule.minor)
            });
        }
    }
    if default_allow {
        // Deny rules after an allow-all cannot be said to systemd; our program enforces them.
        return vec![
            ("DevicePolicy".into(), Value::Str("auto".into())),
            ("DeviceAllow".into(), Value::Devices(Vec::new())),
        ];
    }
    let mut finder = NodeFinder::new(devices);
    let mut list: Vec<(String, String)> = Vec::new();
    for rule in allowed {
        let kinds: &[char] = match rule.kind {
            'a' => &['c', 'b'],
            k => std::slice::from_ref(match k {
                'b' => &'b',
                _ => &'c',
            }),
        };
        for &kind in kinds {
            if let Some(entry) = entry(kind, rule.major, rule.minor, &mut finder) {
                let item = (entry, rule.access.clone());
                if !list.contains(&item) {
                    list.push(item);
                }
            }
        }
    }
    vec![
        ("DevicePolicy".into(), Value::Str("strict".into())),
        ("DeviceAllow".into(), Value::Devices(list)),
    ]
}

fn class(kind: char) -> &'static str {
    if kind == 'b' {
        "block"
    } else {
        "char"
    }
}

fn entry(kind: char, major: Option<i64>, minor: Option<i64>, f: &mut NodeFinder) -> Option<String> {
    match (major, minor) {
        (None, _) => Some(format!("{}-*", class(kind))),
        (Some(major), None) => match driver_name(kind, major) {
            Some(name) => Some(format!("{}-{name}", class(kind))),
            None => {
                crate::logging::warn(&format!(
                    "systemd: no driver for {} major {major} in /proc/devices; its rule is left to gpurun's device filter",
                    class(kind)
                ));
                None
            }
        },
        (Some(major), Some(minor)) => {
            let found = f.find(kind, major as u64, minor as u64);
            if found.is_none() {
                crate::logging::warn(&format!(
                    "systemd: no node for {} {major}:{minor} on the host; its rule is left to gpurun's device filter",
                    class(kind)
                ));
            }
            found.map(|p| p.to_string_lossy().into_owned())
        }
    }
}

/// The /proc/devices name of `major` (what systemd's `char-NAME` looks up).
fn driver_name(kind: char, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let section = if kind == 'b' {
        "Block devices:"
    } else {
        "Character devices:"
    };
    text.split("\n\n")
        .find(|s| s.trim_start().starts_with(section))?
        .lines()
        .skip(1)
        .find_map(|l| {
            let (num, name) = l.trim().split_once(' ')?;
            (num.parse::<i64>().ok()? == major).then(|| name.trim().to_string())
        })
}

/// Finds a path under /dev that systemd can stat to the wanted device number.
struct NodeFinder<'a> {
    devices: &'a [LinuxDevice],
    /// /dev scanned once, on the first node found neither way.
    scan: Option<Vec<(char, u64, PathBuf)>>,
}

impl<'a> NodeFinder<'a> {
    fn new(devices: &'a [LinuxDevice]) -> Self {
        NodeFinder {
            devices,
            scan: None,
        }
    }

    fn find(&mut self, kind: char, major: u64, minor: u64) -> Option<PathBuf> {
        let link = PathBuf::from(format!("/dev/{}/{major}:{minor}", class(kind)));
        if is_node(&link, kind, major, minor) {
            return Some(link);
        }
        let from_spec = self.devices.iter().find(|d| {
            let k = if d.typ() == LinuxDeviceType::B {
                'b'
            } else {
                'c'
            };
            k == kind && d.major() as u64 == major && d.minor() as u64 == minor
        });
        if let Some(d) = from_spec {
            if d.path().starts_with("/dev/") && is_node(d.path(), kind, major, minor) {
                return Some(d.path().clone());
            }
        }
        let scan = self.scan.get_or_insert_with(scan_dev);
        scan.iter()
            .find(|(k, rdev, _)| *k == kind && *rdev == nix::sys::stat::makedev(major, minor))
            .map(|(_, _, p)| p.clone())
    }
}

fn node_of(meta: &std::fs::Metadata) -> Option<(char, u64)> {
    use std::os::unix::fs::MetadataExt;
    let t = meta.file_type();
    let kind = if t.is_char_device() {
        'c'
    } else if t.is_block_device() {
        'b'
    } else {
        return None;
    };
    Some((kind, meta.rdev()))
}

fn is_node(path: &Path, kind: char, major: u64, minor: u64) -> bool {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| node_of(&m))
        .is_some_and(|(k, rdev)| k == kind && rdev == nix::sys::stat::makedev(major, minor))
}

/// Device nodes in /dev and one level below, sorted by path.
fn scan_dev() -> Vec<(char, u64, PathBuf)> {
    let mut out = Vec::new();
    let mut dirs = vec![(PathBuf::from("/dev"), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let path = e.path();
            if meta.is_dir()
                && depth == 0
                && !matches!(
                    e.file_name().to_str(),
                    Some("pts" | "shm" | "mqueue" | "hugepages")
                )
            {
                dirs.push((path, 1));
            } else if let Some((kind, rdev)) = node_of(&meta) {
                out.push((kind, rdev, path));
            }
        }
    }
    out.sort_by(|a, b| a.2.cmp(&b.2));
    out
}

#[cfg(test)]
mod tests {
    use super::super::super::devices::rules;
    use super::*;

    fn allow_list(p: &[Property]) -> (String, Vec<(String, String)>) {
        let policy = match &p[0].1 {
            Value::Str(s) => s.clone(),
            _ => panic!(),
        };
        let list = match &p[1].1 {
            Value::Devices(d) => d.clone(),
            _ => panic!(),
        };
        (policy, list)
    }

    #[test]
    fn default_container() {
        let spec: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_value(serde_json::json!([{"allow": false, "access": "rwm"}])).unwrap();
        let (policy, list) = allow_list(&properties(&rules(&spec, &[]), &[]));
        assert_eq!(policy, "strict");
        assert!(list.contains(&("char-*".into(), "m".into())));
        assert!(list.contains(&("block-*".into(), "m".into())));
        // /dev/null resolves on any host: its /dev/char link or the node itself.
        assert!(list
            .iter()
            .any(|(p, a)| (p == "/dev/char/1:3" || p == "/dev/null") && a == "rwm"));
    }

    #[test]
    fn privileged_is_auto() {
        let spec: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_value(serde_json::json!([{"allow": true, "access": "rwm"}])).unwrap();
        let (policy, list) = allow_list(&properties(&rules(&spec, &[]), &[]));
        assert_eq!((policy.as_str(), list.len()), ("auto", 0));
    }
}
