//! NVIDIA GPU support (gpurun-only) on a fake host: the mock NVML, a driver root with real tiny
//! libraries and a dev root with mknod'ed nodes (integration/src/gpu.rs). Every selection form,
//! requirements, device rules in place before the process runs, MIG, and
//! clean failures. The driver's files and the ld cache: gpu_driver_files.rs.

use gpurun_integration::*;

/// The GPU nodes (`/dev/nvidia<N>`) the container sees, sorted, by the nvidia-smi stand-in.
fn visible_nodes(env: &Env, vars: &[&str]) -> Vec<String> {
    let out = env.sh("ls /dev | grep '^nvidia[0-9]' || true", with_env(vars));
    let mut v: Vec<String> = out.stdout.split_whitespace().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn gpu_every_selection_form_sees_exactly_its_gpus() {
    let Some((env, host)) = gpu_env("gpu_select", h100x2()) else {
        return;
    };
    // GPU 0 is /dev/nvidia1 and GPU 1 is /dev/nvidia0: minors are not indices.
    let uuid1 = host.uuid(1);
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("all".into(), vec!["nvidia0", "nvidia1"]),
        ("0".into(), vec!["nvidia1"]),
        ("1".into(), vec!["nvidia0"]),
        (uuid1.clone(), vec!["nvidia0"]),
        (uuid1.to_lowercase(), vec!["nvidia0"]),
        ("0000:18:00.0".into(), vec!["nvidia1"]),
        ("1,0".into(), vec!["nvidia0", "nvidia1"]),
        ("none".into(), vec![]),
    ];
    for (sel, want) in cases {
        let var = format!("NVIDIA_VISIBLE_DEVICES={sel}");
        assert_eq!(visible_nodes(&env, &[&var]), want, "{var}");
    }
    // `none` still gets the control node and driver files; `void` and unset get nothing (earlier
    // runs left empty mount points in this rootfs, as runc does: look at the mounts).
    let out = env.sh(
        "ls /dev/nvidiactl /dev/nvidia-uvm && nvidia-smi && echo ok",
        with_env(&["NVIDIA_VISIBLE_DEVICES=none"]),
    );
    assert!(out.stdout.contains("ok"), "{}", out.describe());
    for vars in [
        &["NVIDIA_VISIBLE_DEVICES=void"][..],
        &["NVIDIA_VISIBLE_DEVICES="],
        &[],
    ] {
        let out = env.sh("ls /dev; cat /proc/self/mountinfo", with_env(vars));
        assert!(
            !out.stdout.contains("nvidia"),
            "{vars:?}: {}",
            out.describe()
        );
    }
    // The driver's nvidia-smi (stand-in) lists what the container got.
    let out = env.sh("nvidia-smi", with_env(&["NVIDIA_VISIBLE_DEVICES=1"]));
    assert_eq!(
        out.stdout.trim(),
        "GPU 0: stand-in (/dev/nvidia0)",
        "{}",
        out.describe()
    );
    env.assert_clean();
}

/// Allowed nodes open as far as the (absent) driver (ENXIO); an unselected GPU's node, bound in
/// from the dev root, is refused by the device cgroup (EPERM) — on v1 and v2 alike.
#[test]
fn gpu_device_rules_are_in_place_before_the_process_runs() {
    let Some((env, host)) = gpu_env("gpu_rules", h100x2()) else {
        return;
    };
    let unselected = host.dev_root.join("dev/nvidia0");
    env.config(|s| {
        with_env(&["NVIDIA_VISIBLE_DEVICES=0"])(s);
        set_args(s, &["sh", "-c", "cat /dev/nvidia1 2>&1; cat /dev/nvidia-uvm 2>&1; cat /mnt/unselected 2>&1; true"]);
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/unselected", "type": "bind", "source": unselected, "options": ["bind"]
        }));
    });
    let id = env.id();
    let mut created = env.create_ok(&id);
    if !cgroup2_host() {
        // v1: the rules are in the container's devices cgroup while the init waits for start.
        let dir = proc_cgroup_dir(env.pid(&id), "devices").expect("devices cgroup");
        let list = std::fs::read_to_string(dir.join("devices.list")).unwrap();
        for rule in [
            "c 195:255 rwm",
            "c 195:1 rwm",
            &format!("c {UVM_MAJOR}:0 rwm"),
        ] {
            assert!(list.lines().any(|l| l == rule), "{rule} missing:\n{list}");
        }
        assert!(!list.lines().any(|l| l.starts_with("c 195:0 ")), "{list}");
    }
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "stopped");
    created.reread();
    let lines: Vec<&str> = created.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", created.describe());
    assert!(
        lines[0].contains("No such device or address"),
        "{}",
        created.describe()
    );
    assert!(
        lines[1].contains("No such device or address"),
        "{}",
        created.describe()
    );
    assert!(
        lines[2].contains("Operation not permitted"),
        "{}",
        created.describe()
    );
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn gpu_requirements_and_legacy_images() {
    let Some((env, _host)) = gpu_env("gpu_require", h100x2()) else {
        return;
    };
    let ok = |vars: &[&str]| {
        env.sh("true", with_env(vars));
    };
    let fails = |vars: &[&str], needle: &str| {
        env.config(with_env(vars));
        env.run(&env.id()).assert_err(needle);
    };
    ok(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_REQUIRE_CUDA=cuda>=12.2 brand=tesla,driver>=470",
    ]);
    ok(&[
        "NVIDIA_VISIBLE_DEVICES=all",
        "NVIDIA_REQUIRE_ARCH=arch>=9.0",
        "NVIDIA_REQUIRE_DRIVER=driver>=535,driver<560",
    ]);
    fails(
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=12.5"],
        "requirement error: unsatisfied condition: cuda>=12.5",
    );
    fails(
        &["NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_REQUIRE_ARCH=arch=8.0"],
        "unsatisfied condition: arch=8.0",
    );
    ok(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_REQUIRE_CUDA=cuda>=12.5",
        "NVIDIA_DISABLE_REQUIRE=1",
    ]);
    // Legacy image (CUDA_VERSION, no NVIDIA_REQUIRE_CUDA): every GPU, and cuda >= its version.
    let out = env.sh(
        "ls /dev | grep '^nvidia[0-9]'",
        with_env(&["CUDA_VERSION=12.0.1"]),
    );
    assert_eq!(
        out.stdout.split_whitespace().count(),
        2,
        "{}",
        out.describe()
    );
    fails(
        &["CUDA_VERSION=12.6.0"],
        "unsatisfied condition: cuda>=12.6",
    );
    env.assert_clean();
}

#[test]
fn gpu_bad_selections_fail_clearly_and_leave_nothing() {
    let Some((env, host)) = gpu_env("gpu_bad", h100x2()) else {
        return;
    };
    for (sel, needle) in [
        ("7", "no GPU with index 7: this machine has 2 GPU(s)"),
        (
            "GPU-deadbeef-0000",
            "no GPU or MIG device matches \"GPU-deadbeef-0000\"",
        ),
        ("0:0", "GPU 0 is not in MIG mode"),
    ] {
        env.config(with_env(&[&format!("NVIDIA_VISIBLE_DEVICES={sel}")]));
        let id = env.id();
        env.gpurun(&["create", "--bundle", env.bundle.to_str().unwrap(), &id])
            .assert_err(needle);
        assert!(env.leaks_now().is_empty(), "{sel}: {}", env.leaks_now());
    }
    // No driver: NVML cannot be loaded.
    host.write_config("/nonexistent/libnvidia-ml.so.1");
    env.config(with_env(&["NVIDIA_VISIBLE_DEVICES=all"]));
    env.run(&env.id())
        .assert_err("cannot load NVML from /nonexistent/libnvidia-ml.so.1");
    // A GPU node missing from the dev root.
    host.write_config(&mock_nvml().display().to_string());
    std::fs::remove_file(host.dev_root.join("dev/nvidia1")).unwrap();
    env.config(with_env(&["NVIDIA_VISIBLE_DEVICES=0"]));
    env.run(&env.id()).assert_err("nvidia1 does not exist");
    // A container that asks for no GPU never reads the config (here: unreadable garbage).
    std::fs::write(&host.config, "this is [not toml").unwrap();
    env.config(with_env(&["NVIDIA_DRIVER_CAPABILITIES=all"]));
    env.run(&env.id()).assert_ok();
    for none in ["void", ""] {
        env.config(with_env(&[&format!("NVIDIA_VISIBLE_DEVICES={none}")]));
        env.run(&env.id()).assert_ok();
    }
    env.config(with_env(&["NVIDIA_VISIBLE_DEVICES=0"]));
    env.run(&env.id()).assert_err("gpu config");
    env.assert_clean();
}

#[test]
fn gpu_mig_devices_by_index_and_uuid() {
    let Some((env, _host)) = gpu_env("gpu_mig", a100x8_mig()) else {
        return;
    };
    assert_eq!(
        visible_nodes(&env, &["NVIDIA_VISIBLE_DEVICES=all"]).len(),
        8
    );
    assert_eq!(
        visible_nodes(&env, &["NVIDIA_VISIBLE_DEVICES=0:1"]),
        ["nvidia0"]
    );
    assert_eq!(
        visible_nodes(
            &env,
            &["NVIDIA_VISIBLE_DEVICES=MIG-00000001-aaaa-bbbb-cccc-000000000001,5"]
        ),
        ["nvidia0", "nvidia5"]
    );
    // Each MIG device also gets its GPU instance's and compute instance's access nodes (minors
    // from mig-minors: gpu0/gi1 → 3, gpu0/gi1/ci0 → 4, gpu0/gi2 → 5, gpu0/gi2/ci0 → 6), and
    // only those.
    let caps = |sel: &str| {
        let out = env.sh(
            "ls /dev/nvidia-caps 2>/dev/null | sort | tr '\\n' ' '",
            with_env(&[&format!("NVIDIA_VISIBLE_DEVICES={sel}")]),
        );
        out.stdout.trim().to_string()
    };
    assert_eq!(caps("0:1"), "nvidia-cap5 nvidia-cap6");
    assert_eq!(
        caps("MIG-00000000-aaaa-bbbb-cccc-000000000000"),
        "nvidia-cap3 nvidia-cap4"
    );
    assert_eq!(caps("0"), "");
    env.config(with_env(&["NVIDIA_VISIBLE_DEVICES=0:2"]));
    env.run(&env.id())
        .assert_err("GPU 0 has 2 MIG device(s), no 0:2");
    env.assert_clean();
}
