//! Block I/O throttling (v1 blkio.throttle.*, v2 io.max) read back from inside, and the
//! refused --systemd-cgroup.

use gpurun_integration::*;

/// `major:minor` of a real block device of this machine (not a loop or zram device).
fn block_device() -> Option<(u64, u64)> {
    let entries = std::fs::read_dir("/sys/block").ok()?;
    entries.filter_map(|e| e.ok()).find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        if name.starts_with("loop") || name.starts_with("zram") || name.starts_with("ram") {
            return None;
        }
        let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
        let (maj, min) = dev.trim().split_once(':')?;
        Some((maj.parse().ok()?, min.parse().ok()?))
    })
}

#[test]
fn io_throttle_read_back() {
    if !require_root() {
        return;
    }
    let controller = if cgroup2_host() { "io" } else { "blkio" };
    if !has_controller(controller) {
        return;
    }
    let Some((maj, min)) = block_device() else {
        skip("no block device");
        return;
    };
    let env = Env::new("io_throttle");
    let script = if cgroup2_host() {
        "cat /sys/fs/cgroup/io.max"
    } else {
        "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device"
    };
    let out = env.sh(script, |s| {
        s["linux"]["resources"]["blockIO"] = json!({
            "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 100}]
        });
    });
    let dev = format!("{maj}:{min}");
    if cgroup2_host() {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&dev))
            .unwrap_or_default();
        assert!(
            line.contains("rbps=1048576") && line.contains("wiops=100"),
            "{}",
            out.describe()
        );
    } else {
        assert!(
            out.stdout.contains(&format!("{dev} 1048576")),
            "{}",
            out.describe()
        );
        assert!(
            out.stdout.contains(&format!("{dev} 100")),
            "{}",
            out.describe()
        );
    }
    env.assert_clean();
}

#[test]
fn systemd_cgroup_is_refused_clearly() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("systemd_cgroup");
    env.config(|s| set_args(s, &["true"]));
    let id = env.id();
    let out = env.gpurun_with(
        &["--systemd-cgroup"],
        &["create", "--bundle", env.bundle.to_str().unwrap(), &id],
    );
    out.assert_err("systemd");
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["cgroupsPath"] = json!("system.slice:gpurun:x");
    });
    env.create(&env.id()).assert_err("systemd");
    env.assert_clean();
}
