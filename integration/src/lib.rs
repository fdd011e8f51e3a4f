//! Integration-test harness for gpurun (or any runc-compatible runtime).
//!
//! The binary under test is `$GPURUN_BIN` (default `<workspace>/target/release/gpurun`).
//! Every test builds an [`Env`]: a private temp dir with its own state root and
//! busybox bundle, and ends with [`Env::assert_clean`], which proves the runtime
//! left no container state, mounts, processes or cgroups behind. Its only `unsafe` code is
//! in [`sys`].

mod cgroup;
mod console;
mod criu;
mod engine;
mod env;
mod gpu;
mod leak;
pub mod mps;
mod probe;
mod rootless;
pub mod seccomp_agent;
mod skip;
pub mod sys;
mod systemd;
mod util;

pub use cgroup::{cgroup2_host, has_controller, proc_cgroup_dir, proc_cgroup_dirs};
pub use console::{read_until, receive_pty};
pub use criu::criu_usable;
pub use engine::engine_script;
pub use env::Env;
pub use gpu::{
    a100x8_mig, gpu_env, h100x2, mock_nvml, with_env, FakeGpuHost, DRIVER_VERSION, UVM_MAJOR,
};
pub use leak::{cgroup_dirs, marked_pids, Holder, Leaks, ScriptLeaks, CGROUP_PREFIX};
pub use probe::{alive, cg, dump, get, probe};
pub use rootless::{
    as_user, as_user_with, rootless_env, rootless_user, RootlessUser, ROOTLESS_USER,
};
pub use serde_json::{json, Value};
pub use skip::{skip, skip_log};
pub use systemd::{
    assert_no_unit, cgfile, create_sd, require_systemd, require_systemd_on, scoped, show,
    systemctl, systemd_is_pid1,
};
pub use util::{
    bin, cap_mask, find_mount, gpurun_only, is_gpurun, parse_mountinfo, poll, read_status_field,
    require_root, set_args, shipped_seccomp_profile, Mount, Out,
};
