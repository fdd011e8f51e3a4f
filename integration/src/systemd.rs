//! Helpers of the systemd cgroup driver tests (`tests/systemd*.rs`): gates, `systemctl`, the
//! unit of a container.

use crate::cgroup2_host;
use crate::env::Env;
use crate::util::{poll, require_root, Out};
use std::process::Command;
use std::time::Duration;

pub fn systemd_is_pid1() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
        && std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
}

/// Root and systemd as PID 1 with the cgroup layout `unified` (pure v2) or not (hybrid), or a
/// printed reason. The VM suite boots both.
pub fn require_systemd_on(unified: bool) -> bool {
    if !require_root() {
        return false;
    }
    if !systemd_is_pid1() {
        crate::skip::skip(
            "systemd is not PID 1 here (run in the VM: VM_SYSTEMD=1 integration/vm/run-suite.sh)",
        );
        return false;
    }
    if cgroup2_host() != unified {
        crate::skip::skip(&format!(
            "written for a {} host",
            if unified {
                "pure cgroup v2"
            } else {
                "hybrid cgroup"
            }
        ));
        return false;
    }
    true
}

pub fn require_systemd() -> bool {
    require_systemd_on(true)
}

pub fn systemctl(args: &[&str]) -> String {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `systemctl show -p NAME --value UNIT`.
pub fn show(unit: &str, prop: &str) -> String {
    systemctl(&["show", "-p", prop, "--value", unit])
        .trim()
        .to_string()
}

pub fn cgfile(unit: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/system.slice/{unit}/{file}"))
        .unwrap_or_else(|e| format!("<{e}>"))
        .trim()
        .to_string()
}

/// A container id and its cgroupsPath, the way Docker sends them.
pub fn scoped(env: &Env) -> (String, String, String) {
    let id = env.id();
    let path = format!("system.slice:gpurun-it:{id}");
    let unit = format!("gpurun-it-{id}.scope");
    (id, path, unit)
}

pub fn create_sd(env: &Env, id: &str) -> Out {
    env.gpurun_with(
        &["--systemd-cgroup"],
        &["create", "--bundle", env.bundle.to_str().unwrap(), id],
    )
}

/// The unit is gone: not loaded, not failed, and its cgroup removed.
#[track_caller]
pub fn assert_no_unit(unit: &str) {
    let gone = poll(Duration::from_secs(5), || {
        (show(unit, "LoadState") == "not-found").then_some(())
    });
    assert!(
        gone.is_some(),
        "unit {unit} still loaded: {}",
        systemctl(&["status", "--no-pager", unit])
    );
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/system.slice/{unit}")).exists());
}
