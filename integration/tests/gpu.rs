//! NVIDIA GPU support (gpurun-only) on a fake host: the mock NVML, a driver root with real tiny
//! libraries and a dev root with mknod'ed nodes (integration/src/gpu.rs). Every selection form,
//! capability sets, requirements, device rules in place before the process runs, read-only
//! driver mounts, the container's ld cache, CDI generate/apply, and clean failures.

use gpurun_integration::*;

fn gpu_env(name: &str, desc: Value) -> Option<(Env, FakeGpuHost)> {
    if !require_root() || !gpurun_only() {
        return None;
    }
    let env = Env::new(name);
    let host = FakeGpuHost::new(&env, desc);
    host.apply(&env);
    Some((env, host))
}

fn with_env<'a>(vars: &'a [&'a str]) -> impl FnOnce(&mut Value) + 'a {
    move |s: &mut Value| {
        let e = s["process"]["env"].as_array_mut().unwrap();
        e.extend(vars.iter().map(|v| json!(v)));
    }
}

/// The GPU nodes (`/dev/nvidia<N>`) the container sees, sorted, by the nvidia-smi stand-in.
fn visible_nodes(env: &Env, vars: &[&str]) -> Vec<String> {
    let out = env.sh("ls /dev | grep '^nvidia[0-9]' || true", with_env(vars));
    let mut v: Vec<String> = out.stdout.split_whitespace().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn every_selection_form_sees_exactly_its_gpus() {
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
