//! Network state: named network namespaces, nsfs mounts, bridges, iptables rules.

use super::mentions;
use std::collections::BTreeSet;
use std::process::Command;

const NETNS_DIRS: [&str; 2] = ["/run/netns", "/var/run/netns"];

/// Named network namespaces (`ip netns add`, CNI): `/run/netns/<name>`.
pub fn netns_files() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut seen = Vec::new();
    for d in NETNS_DIRS {
        // /var/run is usually a link to /run: same dir, same names.
        let Ok(real) = std::fs::canonicalize(d) else {
            continue;
        };
        if seen.contains(&real) {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&real) else {
            continue;
        };
        for e in rd.flatten() {
            found.insert(format!(
                "{}/{}",
                real.display(),
                e.file_name().to_string_lossy()
            ));
        }
        seen.push(real);
    }
    found
}

/// Named network namespaces whose name mentions `marker` (the test's tag; ids start with it).
pub fn netns_named(marker: &str) -> Vec<String> {
    netns_files()
        .into_iter()
        .filter(|n| mentions(n.rsplit('/').next().unwrap_or(n), marker))
        .collect()
}

/// Mount points of namespace files (nsfs) bind-mounted in this mount namespace: a kept
/// network namespace of a container or engine.
pub fn nsfs_mounts() -> BTreeSet<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    crate::util::parse_mountinfo(&info)
        .into_iter()
        .filter(|m| m.fstype == "nsfs")
        .map(|m| format!("{} ({})", m.point, m.root))
        .collect()
}

/// Names of the bridges (`ip -o link show type bridge`); None without `ip`.
pub fn bridges() -> Option<BTreeSet<String>> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let name = l.split(": ").nth(1)?;
                Some(name.split('@').next()?.to_string())
            })
            .collect(),
    )
}

/// iptables rules and chains (`iptables-save`, IPv4 and IPv6) as `table: line`, without
/// counters and comments; None where neither tool runs.
pub fn iptables() -> Option<BTreeSet<String>> {
    let mut rules = BTreeSet::new();
    let mut any = false;
    for tool in ["iptables-save", "ip6tables-save"] {
        let Some(out) = Command::new(tool)
            .output()
            .ok()
            .filter(|o| o.status.success())
        else {
            continue;
        };
        any = true;
        let mut table = String::new();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(t) = l.strip_prefix('*') {
                table = format!("{tool} {t}");
            } else if l.starts_with(':') {
                // ":CHAIN POLICY [packets:bytes]". A table appears with its built-in chains
                // (upper case, policy ACCEPT) the first time anything uses it: not a leak.
                let chain = l.rsplit_once(" [").map_or(l, |(c, _)| c);
                let builtin_default = chain.ends_with(" ACCEPT")
                    && chain[1..]
                        .split(' ')
                        .next()
                        .is_some_and(|c| c.chars().all(|ch| ch.is_ascii_uppercase()));
                if !builtin_default {
                    rules.insert(format!("{table}: {chain}"));
                }
            } else if l.starts_with('-') {
                rules.insert(format!("{table}: {l}"));
            }
        }
    }
    any.then_some(rules)
}
