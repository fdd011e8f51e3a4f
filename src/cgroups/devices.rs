//! Device access rules: `linux.resources.devices`, then an allow rule for every
//! `linux.devices` node, then runc's always-allowed list — later rules win, as in runc.
//! v1 writes them to devices.allow/deny; v2 compiles them into an eBPF program ([`super::ebpf`]).

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::fs::write;
use super::{ebpf, Cgroup, Result};

/// One rule: `kind` is 'a' (all), 'c' or 'b'; `None` numbers are wildcards; access ⊆ "rwm".
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl Rule {
    /// `c 1:3 rwm` / `a *:* rwm`, the v1 devices.allow syntax.
    pub fn v1_line(&self) -> String {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// What every container may use whatever its spec says (runc's `AllowedDevices`): mknod of
/// anything, the default devices, the console, ptys and tun. (-1: any number.)
const ALWAYS_ALLOWED: [(char, i64, i64, &str); 12] = [
    ('c', -1, -1, "m"),
    ('b', -1, -1, "m"),
    ('c', 1, 3, "rwm"),
    ('c', 1, 8, "rwm"),
    ('c', 1, 7, "rwm"),
    ('c', 5, 0, "rwm"),
    ('c', 1, 5, "rwm"),
    ('c', 1, 9, "rwm"),
    ('c', 5, 1, "rwm"),
    ('c', 136, -1, "rwm"),
    ('c', 5, 2, "rwm"),
    ('c', 10, 200, "rwm"),
];

fn kind_char(t: Option<LinuxDeviceType>) -> char {
    match t {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        _ => 'a',
    }
}

/// The full, ordered rule list for a container.
pub fn rules(spec_rules: &[LinuxDeviceCgroup], devices: &[LinuxDevice]) -> Vec<Rule> {
    let mut out = from_spec(spec_rules);
    out.extend(
        devices
            .iter()
            .filter(|d| d.typ() != LinuxDeviceType::P)
            .map(|d| Rule {
                allow: true,
                kind: kind_char(Some(d.typ())),
                major: Some(d.major()),
                minor: Some(d.minor()),
                access: "rwm".into(),
            }),
    );
    out.extend(
        ALWAYS_ALLOWED
            .iter()
            .map(|&(kind, major, minor, access)| Rule {
                allow: true,
                kind,
                major: (major >= 0).then_some(major),
                minor: (minor >= 0).then_some(minor),
                access: access.to_string(),
            }),
    );
    out
}

/// `linux.resources.devices` as rules (defaults filled in: all numbers, "rwm").
pub fn from_spec(spec_rules: &[LinuxDeviceCgroup]) -> Vec<Rule> {
    spec_rules
        .iter()
        .map(|r| Rule {
            allow: r.allow(),
            kind: kind_char(r.typ()),
            major: r.major().filter(|m| *m >= 0),
            minor: r.minor().filter(|m| *m >= 0),
            access: r
                .access()
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "rwm".into()),
        })
        .collect()
}

/// Install the rules into the container's cgroup.
pub fn apply(cg: &Cgroup, spec_rules: &[LinuxDeviceCgroup], devices: &[LinuxDevice]) -> Result<()> {
    let rules = rules(spec_rules, devices);
    if cg.unified_host {
        let dir = cg.v2.as_deref().expect("pure v2 host has a v2 dir");
        return ebpf::attach_device_filter(dir, &rules);
    }
    let Some(dir) = cg.v1_dir("devices") else {
        return Ok(());
    };
    // A new v1 cgroup inherits its parent's (usually allow-all) list: start from deny-all.
    write(&dir.join("devices.deny"), "a *:* rwm")?;
    for rule in &rules {
        let file = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(&dir.join(file), &rule.v1_line())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_syntax() {
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}
        ]))
        .unwrap();
        let r = rules(&spec, &[]);
        assert_eq!(r[0].v1_line(), "a *:* rwm");
        assert!(!r[0].allow);
        assert_eq!(r[1].v1_line(), "c 10:229 rw");
        assert_eq!(r[2].v1_line(), "c *:* m");
        assert_eq!(r.last().unwrap().v1_line(), "c 10:200 rwm");
    }
}
