//! Leak detection: what a runtime must not leave behind after delete or a failed create.
//!
//! Two checks use it. [`Leaks`] is a test's own (`Env::assert_clean`): everything in it is
//! attributed to that test by name (its temp dir, its marker, its container ids, the BPF
//! programs seen on its containers' cgroups), so tests running in parallel in the same process
//! never see each other's resources. [`HostSnapshot`] is the engine scripts' check: host-wide
//! before/after comparisons (bridges, iptables rules, network namespaces, BPF device programs),
//! valid because the scripts run one at a time.

mod bpf;
mod cgroups;
mod fds;
mod host;
mod net;
mod procs;

pub use cgroups::{cgroup_dirs, CGROUP_PREFIX};
pub use fds::Holder;
pub use host::{HostSnapshot, ScriptLeaks, ScriptScope};
pub use procs::marked_pids;

use crate::util::poll;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one test owns, by name: where [`Leaks::find`] looks.
pub struct Scope<'a> {
    /// The runtime's `--root`.
    pub state: &'a Path,
    /// The test's private temp dir (holds the state root and the bundle).
    pub dir: &'a Path,
    pub bundle: &'a Path,
    /// `GPURUN_IT=<marker>` is in the environment of the runtime and of every container.
    pub marker: &'a str,
    pub ids: &'a [String],
    /// BPF device programs seen attached to the test's containers' cgroups.
    pub bpf_progs: &'a [u32],
}

#[derive(Debug, Default)]
pub struct Leaks {
    pub state_entries: Vec<String>,
    pub mounts: Vec<String>,
    /// Processes with `GPURUN_IT=<marker>` in their environment: containers, the runtime, its
    /// init before exec, helpers.
    pub pids: Vec<i32>,
    /// Other processes (not this test process) with an fd, cwd, root, exe or command line in
    /// the test's dir, or an fd on a unix socket bound there.
    pub holders: Vec<Holder>,
    /// Sockets and fifos left in the state root or the bundle.
    pub special_files: Vec<PathBuf>,
    pub cgroups: Vec<PathBuf>,
    /// BPF device programs of the test's containers still loaded.
    pub bpf_progs: Vec<u32>,
    /// Network namespaces named after the test (`/run/netns/*<marker>*`).
    pub netns: Vec<String>,
}

impl Leaks {
    /// Processes, cgroups and BPF programs get up to `grace` to vanish (killed processes exit,
    /// and the kernel frees a removed cgroup's programs, asynchronously).
    pub fn find(scope: &Scope, grace: Duration) -> Leaks {
        let mut leaks = Leaks::default();
        poll(grace, || {
            leaks.pids = procs::marked_pids(scope.marker);
            leaks.holders = fds::holders(scope.dir);
            (leaks.pids.is_empty() && leaks.holders.is_empty()).then_some(())
        });
        poll(grace, || {
            leaks.cgroups = cgroups::cgroup_dirs(scope.ids);
            leaks.cgroups.is_empty().then_some(())
        });
        poll(grace, || {
            leaks.bpf_progs = bpf::still_loaded(scope.bpf_progs);
            leaks.bpf_progs.is_empty().then_some(())
        });
        leaks.state_entries = state_entries(scope.state);
        leaks.mounts = mounts_mentioning(scope.dir);
        leaks.special_files = fds::special_files(scope.state, &[]);
        leaks.special_files.extend(fds::special_files(
            scope.bundle,
            &[scope.bundle.join("rootfs")],
        ));
        leaks.netns = net::netns_named(scope.marker);
        leaks
    }

    pub fn is_empty(&self) -> bool {
        self.state_entries.is_empty()
            && self.mounts.is_empty()
            && self.pids.is_empty()
            && self.holders.is_empty()
            && self.special_files.is_empty()
            && self.cgroups.is_empty()
            && self.bpf_progs.is_empty()
            && self.netns.is_empty()
    }
}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "  state root entries: {:?}", self.state_entries)?;
        writeln!(f, "  mounts: {:#?}", self.mounts)?;
        writeln!(f, "  marked processes: {}", procs::describe(&self.pids))?;
        writeln!(f, "  processes using the test's dir: {:#?}", self.holders)?;
        writeln!(
            f,
            "  sockets/fifos in state root or bundle: {:?}",
            self.special_files
        )?;
        writeln!(f, "  cgroup dirs: {:?}", self.cgroups)?;
        writeln!(
            f,
            "  BPF device programs of its containers still loaded: {:?}",
            self.bpf_progs
        )?;
        writeln!(f, "  network namespaces: {:?}", self.netns)
    }
}

/// BPF device programs attached to the cgroup v2 dirs of `ids` right now (the runtime loads
/// one per container on a cgroup v2 host); the Env records them to check they are unloaded.
pub fn bpf_progs_of(ids: &[String]) -> Vec<u32> {
    bpf::attached_device_progs(&cgroups::cgroup_dirs(ids))
}

/// True when `needle` occurs in `hay` not followed by a digit: `/tmp/x-1-1` is not mentioned
/// by `/tmp/x-1-10` (tags end in a counter), but is by `/tmp/x-1-1/state` or `x-1-1-0`.
pub(crate) fn mentions(hay: &str, needle: &str) -> bool {
    !needle.is_empty()
        && hay.match_indices(needle).any(|(i, _)| {
            !hay[i + needle.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
}

fn state_entries(state: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(state) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Lines of this process's mountinfo that mention `dir` (mount point or source), nsfs bind
/// mounts of network namespaces there included.
pub(crate) fn mounts_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|l| mentions(l, &needle))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_respects_the_counter_boundary() {
        assert!(mentions(
            "/tmp/gpurun-it/a-5-1/state",
            "/tmp/gpurun-it/a-5-1"
        ));
        assert!(mentions("/tmp/gpurun-it/a-5-1", "/tmp/gpurun-it/a-5-1"));
        assert!(mentions("a-5-1-0", "a-5-1"));
        assert!(!mentions(
            "/tmp/gpurun-it/a-5-10/state",
            "/tmp/gpurun-it/a-5-1"
        ));
        assert!(mentions("a-5-10 a-5-1 ", "a-5-1"));
        assert!(!mentions("anything", ""));
    }
}
