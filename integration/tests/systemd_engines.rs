//! Docker 20.10, containerd 1.6's CRI and Podman 4.3 with the systemd cgroup driver, driving the
//! runtime under test (`--systemd-cgroup`) as on a node whose PID 1 is systemd: the VM_SYSTEMD=1
//! guest of `integration/vm/run-suite.sh`. The checks are in `integration/engines/systemd.sh`
//! (its engines are installed on the host by `systemd.sh setup`, which run-suite.sh runs before
//! the guest boots). Skipped, saying why, where PID 1 is not systemd.

use gpurun_integration::{engine_script, require_root};
use std::path::Path;

/// Why not, when this machine's PID 1 is not a running systemd (sd_booted(3): /run/systemd/system).
fn not_systemd() -> Option<String> {
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if comm.trim() != "systemd" {
        return Some(format!("PID 1 is {:?}, not systemd", comm.trim()));
    }
    if !Path::new("/run/systemd/system").is_dir() {
        return Some("no /run/systemd/system: systemd is not the running init".into());
    }
    None
}

#[test]
fn engines_with_the_systemd_cgroup_driver() {
    if !require_root() {
        return;
    }
    if let Some(why) = not_systemd() {
        println!("skipped: {why} (run VM_SYSTEMD=1 integration/vm/run-suite.sh)");
        return;
    }
    engine_script("systemd.sh", &[]);
}
