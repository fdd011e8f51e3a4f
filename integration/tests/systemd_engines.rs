//! Docker 20.10, containerd 1.6's CRI and Podman 4.3 with the systemd cgroup driver, driving the
//! runtime under test (`--systemd-cgroup`) as on a node whose PID 1 is systemd: the VM_SYSTEMD=1
//! guest of `integration/vm/run-suite.sh`. The checks are in `integration/engines/systemd.sh`
//! (its engines are installed on the host by `systemd.sh setup`, which run-suite.sh runs before
//! the guest boots). Skipped, saying why, where PID 1 is not systemd.

use gpurun_integration::{engine_script, require_root, skip, systemd_is_pid1};

#[test]
fn engines_with_the_systemd_cgroup_driver() {
    if !require_root() {
        return;
    }
    if !systemd_is_pid1() {
        skip("systemd is not PID 1 here (run VM_SYSTEMD=1 integration/vm/run-suite.sh)");
        return;
    }
    engine_script("systemd.sh", &[]);
}
