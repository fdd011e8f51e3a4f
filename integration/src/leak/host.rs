//! The engine scripts' leak check: host-wide state compared before and after one script.
//! Sound only because the scripts run one at a time (engines.rs holds a lock around each, and
//! cargo runs test binaries one after another); what the script made is also found by name
//! (its base dir, its marker, its pid in cgroup names), which needs no such assumption.

use super::fds::{holders, Holder};
use super::{bpf, cgroups, mounts_mentioning, net, procs};
use crate::util::poll;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Engine daemons and shims, by `comm` (15 chars at most).
const ENGINE_COMMS: [&str; 8] = [
    "containerd",
    "dockerd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "conmon",
    "podman",
    "buildah",
    "docker-proxy",
];

/// What one script ran with and in: where [`HostSnapshot::leaks_after`] looks.
pub struct ScriptScope<'a> {
    /// The script's temp dir (`base /tmp/ctrd-eng.XXXX` in its output), when it said.
    pub base: Option<&'a Path>,
    /// Holds the script's stdout and stderr: whatever inherited them holds these files.
    pub out_dir: &'a Path,
    /// `GPURUN_IT=<marker>` was in the script's environment (so in the engines' and, unless an
    /// engine cleared it, in the runtime's).
    pub marker: &'a str,
    /// The script's pid (`$$`): the scripts name their namespaces and cgroups after it.
    pub script_pid: u32,
    /// The runtime binary (its processes must all be gone).
    pub runtime: &'a Path,
}

pub struct HostSnapshot {
    bridges: Option<BTreeSet<String>>,
    iptables: Option<BTreeSet<String>>,
    netns: BTreeSet<String>,
    nsfs: BTreeSet<String>,
    bpf: Option<BTreeSet<u32>>,
    cgroups: BTreeSet<PathBuf>,
    pids: BTreeSet<i32>,
}

#[derive(Debug, Default)]
pub struct ScriptLeaks {
    /// Entries of the script's base dir still there (its cleanup removes it).
    pub base_left: Vec<String>,
    pub marked: Vec<i32>,
    /// Processes using the base dir or holding the script's output.
    pub holders: Vec<Holder>,
    /// Engine daemons, shims, and runtime processes started during the script, still alive.
    pub new_procs: Vec<String>,
    pub mounts: Vec<String>,
    pub cgroups: Vec<PathBuf>,
    pub bridges: Vec<String>,
    pub iptables: Vec<String>,
    pub netns: Vec<String>,
    pub bpf_progs: Vec<u32>,
}

impl HostSnapshot {
    pub fn take() -> HostSnapshot {
        HostSnapshot {
            bridges: net::bridges(),
            iptables: net::iptables(),
            netns: net::netns_files(),
            nsfs: net::nsfs_mounts(),
            bpf: bpf::device_progs(),
            cgroups: cgroups::all_dirs(CGROUP_DEPTH),
            pids: procs::pids().into_iter().collect(),
        }
    }

    /// What the script left: processes, cgroups and programs get `grace` to vanish.
    pub fn leaks_after(&self, s: &ScriptScope, grace: Duration) -> ScriptLeaks {
        let mut l = ScriptLeaks::default();
        poll(grace, || {
            l.marked = procs::marked_pids(s.marker);
            l.holders = holders(s.out_dir);
            if let Some(base) = s.base {
                l.holders.extend(holders(base));
            }
            l.new_procs = self.new_procs(s.runtime, s.marker);
            (l.marked.is_empty() && l.holders.is_empty() && l.new_procs.is_empty()).then_some(())
        });
        poll(grace, || {
            l.cgroups = self.new_cgroups(s.script_pid);
            l.cgroups.is_empty().then_some(())
        });
        poll(grace, || {
            l.bpf_progs = match (&self.bpf, bpf::device_progs()) {
                (Some(before), Some(now)) => now.difference(before).copied().collect(),
                _ => Vec::new(),
            };
            l.bpf_progs.is_empty().then_some(())
        });
        if let Some(base) = s.base {
            l.mounts = mounts_mentioning(base);
            if std::env::var_os("KEEP").is_none() {
                l.base_left = std::fs::read_dir(base)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        l.bridges = added(&self.bridges, net::bridges());
        l.iptables = added(&self.iptables, net::iptables());
        l.netns = added(&Some(self.netns.clone()), Some(net::netns_files()));
        l.netns
            .extend(added(&Some(self.nsfs.clone()), Some(net::nsfs_mounts())));
        l
    }

    /// Engine processes and runtime processes that were not there before (not counting a
    /// runtime process of a test's Env, marked with its own marker).
    fn new_procs(&self, runtime: &Path, marker: &str) -> Vec<String> {
        let runtime = std::fs::canonicalize(runtime).unwrap_or_else(|_| runtime.to_path_buf());
        procs::pids()
            .into_iter()
            .filter(|p| !self.pids.contains(p))
            .filter(|p| {
                let exe = procs::exe(*p).map(|e| {
                    let s = e.to_string_lossy().into_owned();
                    PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s))
                });
                ENGINE_COMMS.contains(&procs::comm(*p).as_str())
                    || (exe.as_ref() == Some(&runtime) && !procs::marked_other(*p, marker))
            })
            .map(|p| format!("{p} ({}: {})", procs::comm(p), procs::cmdline(p)))
            .collect()
    }

    /// Cgroup dirs made during the script that look like an engine's or name the script's pid
    /// (`eng$$`, `c$$`, `gpurun-docker-$$`, `libpod_parent/libpod-<id>`, `docker/<id>`, …).
    fn new_cgroups(&self, script_pid: u32) -> Vec<PathBuf> {
        let pid = script_pid.to_string();
        cgroups::all_dirs(CGROUP_DEPTH)
            .into_iter()
            .filter(|d| !self.cgroups.contains(d))
            .filter(|d| {
                d.components().any(|c| {
                    let c = c.as_os_str().to_string_lossy();
                    names_pid(&c, &pid)
                        || ["libpod", "docker", "moby", "buildah", "containerd", "cri-"]
                            .iter()
                            .any(|p| c.starts_with(p))
                        || (c.len() >= 64 && c.chars().all(|ch| ch.is_ascii_hexdigit()))
                })
            })
            .collect()
    }
}

/// Cgroups are looked for this deep (`<hierarchy>/<own cgroup…>/<parent>/<id>`).
const CGROUP_DEPTH: usize = 6;

/// `pid` in `name` as a whole number (`eng123`, `c123`, `gpurun-docker-123`, not `1234`).
fn names_pid(name: &str, pid: &str) -> bool {
    name.match_indices(pid).any(|(i, _)| {
        !name[..i].ends_with(|c: char| c.is_ascii_digit())
            && !name[i + pid.len()..].starts_with(|c: char| c.is_ascii_digit())
    })
}

fn added<T: Ord + Clone + fmt::Display>(
    before: &Option<BTreeSet<T>>,
    now: Option<BTreeSet<T>>,
) -> Vec<String> {
    match (before, now) {
        (Some(b), Some(n)) => n.difference(b).map(|x| x.to_string()).collect(),
        _ => Vec::new(),
    }
}

impl ScriptLeaks {
    pub fn is_empty(&self) -> bool {
        self.base_left.is_empty()
            && self.marked.is_empty()
            && self.holders.is_empty()
            && self.new_procs.is_empty()
            && self.mounts.is_empty()
            && self.cgroups.is_empty()
            && self.bridges.is_empty()
            && self.iptables.is_empty()
            && self.netns.is_empty()
            && self.bpf_progs.is_empty()
    }
}

impl fmt::Display for ScriptLeaks {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "  base dir entries left: {:?}", self.base_left)?;
        writeln!(f, "  marked processes: {}", procs::describe(&self.marked))?;
        writeln!(
            f,
            "  processes using the base dir or the script's output: {:#?}",
            self.holders
        )?;
        writeln!(
            f,
            "  engine/runtime processes started and still alive: {:#?}",
            self.new_procs
        )?;
        writeln!(f, "  mounts: {:#?}", self.mounts)?;
        writeln!(f, "  cgroup dirs: {:?}", self.cgroups)?;
        writeln!(f, "  new bridges: {:?}", self.bridges)?;
        writeln!(f, "  new iptables rules/chains: {:#?}", self.iptables)?;
        writeln!(
            f,
            "  new network namespaces / nsfs mounts: {:?}",
            self.netns
        )?;
        writeln!(
            f,
            "  new BPF device programs still loaded: {:?}",
            self.bpf_progs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::names_pid;

    #[test]
    fn pid_is_a_whole_number_in_a_name() {
        assert!(names_pid("eng123", "123"));
        assert!(names_pid("gpurun-docker-123", "123"));
        assert!(!names_pid("eng1234", "123"));
        assert!(!names_pid("eng0123", "123"));
        assert!(names_pid("x1234-123", "123"));
    }
}
