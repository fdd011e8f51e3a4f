//! Fault injection for the leftover tests: `GPURUN_FAULT=<point>` makes this process SIGKILL
//! itself when it reaches the named point, the way an OOM kill or an operator's `kill -9` would
//! end it there. Points are named after what has just been done (see [`POINTS`]).
//!
//! Test-only, but compiled in: the tests drive the release binary engines run. Unset (always,
//! outside the suite), each point costs one lookup in the environment.

/// Every point, in the order a `create`/`run` (then `exec`, `delete`) passes them. The
/// fault-injection test (integration/tests/faults.rs) kills at each one.
pub const POINTS: &[&str] = &[
    "dir-made",      // the state dir exists, nothing recorded yet
    "recorded",      // state.json names the cgroup, nothing else exists
    "cgroup-made",   // the cgroup exists in every hierarchy, limits written
    "cloned",        // the init exists, its pid not yet recorded
    "pid-recorded",  // state.json names the init
    "init-placed",   // maps written / systemd unit started / cgroup joined
    "hooks-done",    // prestart + createRuntime hooks ran
    "ready",         // the init reported Ready, state not yet final
    "saved",         // the final state is written, the init still dies with us
    "detached",      // the init outlives us: create is done
    "started",       // run: the exec fifo was written
    "exec-cloned",   // exec: the process exists, not yet set up
    "delete-killed", // delete: every process is gone
    "delete-cgroup", // delete: the cgroup is removed, the state dir not yet
];

/// SIGKILL this process if `GPURUN_FAULT` names `point`.
pub fn point(point: &str) {
    debug_assert!(POINTS.contains(&point), "unlisted fault point {point}");
    if std::env::var_os("GPURUN_FAULT").is_some_and(|p| p == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
