//! GPU sharing through CUDA MPS on the fake GPU host, with a stand-in control binary
//! (testdata/mps/nvidia-cuda-mps-control) that logs its calls: one daemon per GPU for all its
//! sharing containers, the limits, pipe dir and shared /dev/shm in the container, refused
//! over-subscription that leaves nothing, the daemon stopping with the last container, CDI
//! `-share` devices, and a create killed mid-way released by `delete --force`.
//! gpurun-only: runc has no GPU support (gpu_env skips under runc and without root).

use gpurun_integration::mps::*;
use gpurun_integration::*;

#[test]
fn gpu_mps_two_containers_share_one_daemon() {
    let Some((env, host)) = gpu_env("gpu_mps_share", h100x2()) else {
        return;
    };
    let mps = Mps::new(&env, &host);
    let u0 = host.uuid(0);
    let gpu0 = ["NVIDIA_VISIBLE_DEVICES=0"];
    let a = env.running(with(&gpu0, &[(SHARE, "30"), (MEMORY, "8G")]));
    assert_eq!(mps.starts(&u0), 1, "{}", mps.log(&u0));
    assert!(
        mps.log(&u0)
            .contains(&format!("start argv=-f visible={u0} pipe=")),
        "{}",
        mps.log(&u0)
    );
    let b = env.running(with(&gpu0, &[(SHARE, "70")]));
    assert_eq!(mps.starts(&u0), 1, "one daemon per GPU\n{}", mps.log(&u0));
    assert_eq!(mps.leases(&u0), 2);
    let pipe = mps.dir(&u0).join("pipe").display().to_string();
    let seen = inside(&env, &a);
    let want = format!(
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30\nCUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=8192M\nCUDA_MPS_PIPE_DIRECTORY={pipe}\npipe-dir\ndaemon of {u0}\nnvidia1\n"
    );
    assert_eq!(seen, want);
    let seen = inside(&env, &b);
    assert!(
        seen.starts_with(&format!(
            "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=70\nCUDA_MPS_PIPE_DIRECTORY={pipe}\npipe-dir\n"
        )),
        "{seen}"
    );
    // A third one would take the GPU to 110 %.
    refused(
        &env,
        &mps,
        &u0,
        with(&gpu0, &[(SHARE, "10")]),
        &format!("{u0}: shares would total 110% (> 100%)"),
    );
    // The other GPU has its own daemon and shares.
    let c = env.running(with(&["NVIDIA_VISIBLE_DEVICES=1"], &[(SHARE, "100")]));
    let u1 = host.uuid(1);
    assert_eq!((mps.starts(&u1), mps.leases(&u1)), (1, 1));
    let daemon = mps.daemon(&u0).expect("daemon of GPU 0 runs");
    // gpurun knows the daemon by the pid it spawned, not by a file containers can write; the
    // daemon got none of gpurun's environment.
    assert_eq!(mps.recorded(&u0), Some(daemon));
    let denv = mps.daemon_env(&u0);
    assert!(
        denv.contains(&format!("CUDA_VISIBLE_DEVICES={u0}")),
        "{denv}"
    );
    assert!(
        !denv.contains("GPURUN_IT="),
        "the caller's env reached the daemon:\n{denv}"
    );
    env.gpurun(&["delete", "--force", &a]).assert_ok();
    assert_eq!(
        mps.daemon(&u0),
        Some(daemon),
        "daemon stopped before the last container"
    );
    assert!(!mps.log(&u0).contains("cmd quit"), "{}", mps.log(&u0));
    env.gpurun(&["delete", "--force", &b]).assert_ok();
    assert!(mps.log(&u0).contains("cmd quit"), "{}", mps.log(&u0));
    assert!(
        mps.wait_gone(&u0),
        "daemon of GPU 0 outlived its last container"
    );
    assert_eq!(mps.leases(&u0), 0);
    assert!(mps.daemon(&u1).is_some());
    env.gpurun(&["delete", "--force", &c]).assert_ok();
    assert!(mps.wait_gone(&u1));
    env.assert_clean();
}

#[test]
fn gpu_mps_bad_requests_leave_nothing() {
    let Some((env, host)) = gpu_env("gpu_mps_bad", h100x2()) else {
        return;
    };
    let mps = Mps::new(&env, &host);
    let u0 = host.uuid(0);
    let gpu0 = ["NVIDIA_VISIBLE_DEVICES=0"];
    for (ann, want) in [
        (
            vec![(SHARE, "0")],
            format!("annotation {SHARE}: \"0\" is not a percentage"),
        ),
        (vec![(SHARE, "abc")], format!("annotation {SHARE}")),
        (
            vec![(MEMORY, "1G")],
            format!("annotation {SHARE} is required"),
        ),
        (
            vec![(SHARE, "10"), (MEMORY, "8X")],
            format!("annotation {MEMORY}: \"8X\""),
        ),
        (
            vec![(SHARE, "10"), ("gpurun.io/mps.threads", "1")],
            "gpurun.io/mps.threads: unknown".into(),
        ),
        // 80 GiB > the H100's 85520809984 bytes.
        (
            vec![(SHARE, "10"), (MEMORY, "80G")],
            format!(
                "{u0}: memory limits would total 85899345920 bytes (> the device's 85520809984)"
            ),
        ),
    ] {
        refused(&env, &mps, &u0, with(&gpu0, &ann), &want);
    }
    refused(
        &env,
        &mps,
        &u0,
        with(&["NVIDIA_VISIBLE_DEVICES=0,1"], &[(SHARE, "10")]),
        "MPS sharing needs exactly one GPU, NVIDIA_VISIBLE_DEVICES selects 2",
    );
    refused(
        &env,
        &mps,
        &u0,
        with(&[], &[(SHARE, "10")]),
        "no GPU to share",
    );
    // Memory limits add up: 50G + 40G > 79.6G.
    let a = env.running(with(&gpu0, &[(SHARE, "10"), (MEMORY, "50G")]));
    refused(
        &env,
        &mps,
        &u0,
        with(&gpu0, &[(SHARE, "10"), (MEMORY, "40G")]),
        "memory limits would total 96636764160 bytes",
    );
    env.gpurun(&["delete", "--force", &a]).assert_ok();
    assert!(mps.wait_gone(&u0));
    env.assert_clean();
}

#[test]
fn gpu_mps_cdi_share_device() {
    let Some((env, host)) = gpu_env("gpu_mps_cdi", h100x2()) else {
        return;
    };
    let mps = Mps::new(&env, &host);
    let u0 = host.uuid(0);
    let spec = host.cdi_dirs[0].join("nvidia.json");
    env.gpurun(&[
        "cdi",
        "generate",
        "--format",
        "json",
        "--output",
        spec.to_str().unwrap(),
    ])
    .assert_ok();
    let list = env.gpurun(&["cdi", "list"]);
    assert!(
        list.stdout.lines().any(|l| l == "nvidia.com/gpu=0-share"),
        "{}",
        list.describe()
    );
    let cdi = ("cdi.k8s.io/gpu", "nvidia.com/gpu=0-share");
    let a = env.running(with(&[], &[cdi, (SHARE, "40")]));
    let pipe = mps.dir(&u0).join("pipe").display().to_string();
    let seen = inside(&env, &a);
    assert_eq!(seen, format!("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=40\nCUDA_MPS_PIPE_DIRECTORY={pipe}\npipe-dir\ndaemon of {u0}\nnvidia1\n"));
    assert_eq!((mps.starts(&u0), mps.leases(&u0)), (1, 1));
    // The same registry as the NVIDIA_VISIBLE_DEVICES path.
    refused(
        &env,
        &mps,
        &u0,
        with(&["NVIDIA_VISIBLE_DEVICES=0"], &[(SHARE, "70")]),
        "shares would total 110% (> 100%)",
    );
    refused(
        &env,
        &mps,
        &u0,
        with(&[], &[cdi]),
        &format!("GPU {u0} is shared through MPS: annotation {SHARE} is required"),
    );
    env.gpurun(&["delete", "--force", &a]).assert_ok();
    assert!(mps.wait_gone(&u0));
    assert_eq!(mps.starts(&u0), 1);
    env.assert_clean();
}

/// A create killed after taking its lease (the daemon started): `delete --force` releases it.
#[test]
fn gpu_mps_killed_create_released_by_delete() {
    let Some((env, host)) = gpu_env("gpu_mps_killed", h100x2()) else {
        return;
    };
    let mps = Mps::new(&env, &host);
    let u0 = host.uuid(0);
    env.config(|s| {
        set_args(s, &["true"]);
        with(&["NVIDIA_VISIBLE_DEVICES=0"], &[(SHARE, "60")])(s);
    });
    let id = env.id();
    env.extra_env
        .borrow_mut()
        .push(("GPURUN_FAULT".into(), "cgroup-made".into()));
    env.create(&id).assert_fail();
    env.extra_env
        .borrow_mut()
        .retain(|(k, _)| k != "GPURUN_FAULT");
    assert_eq!(mps.leases(&u0), 1);
    assert!(mps.daemon(&u0).is_some());
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    assert_eq!(mps.leases(&u0), 0);
    assert!(mps.wait_gone(&u0), "{}", mps.log(&u0));
    env.assert_clean();
}
