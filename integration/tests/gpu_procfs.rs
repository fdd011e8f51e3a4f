//! The create-time fast path: GPUs read from the driver's procfs instead of NVML when the request
//! needs no MIG device and no requirement check (gpurun-only, fake host). NVML is made
//! unloadable, so a container that gets its GPUs proves NVML was not asked; one that needs NVML
//! fails saying so.

use gpurun_integration::*;

fn visible_nodes(env: &Env, vars: &[&str]) -> Out {
    env.sh(
        "ls /dev | grep '^nvidia[0-9]' | sort | tr '\\n' ' '",
        with_env(vars),
    )
}

#[test]
fn gpu_procfs_fast_path_matches_nvml() {
    let Some((env, host)) = gpu_env("gpu_procfs", h100x2()) else {
        return;
    };
    let uuid0 = host.uuid(0);
    // GPU 0 is /dev/nvidia1 and GPU 1 is /dev/nvidia0: minors are not indices.
    let cases: Vec<(String, &str)> = vec![
        ("all".into(), "nvidia0 nvidia1"),
        ("0".into(), "nvidia1"),
        ("1".into(), "nvidia0"),
        (uuid0.clone(), "nvidia1"),
        ("00000000:19:00.0".into(), "nvidia0"),
        ("none".into(), ""),
    ];
    // First through the mock NVML (the reference), then through procfs with NVML unloadable.
    let mut reference = Vec::new();
    for (sel, want) in &cases {
        let out = visible_nodes(&env, &[&format!("NVIDIA_VISIBLE_DEVICES={sel}")]);
        assert_eq!(out.stdout.trim(), *want, "NVML, {sel}: {}", out.describe());
        reference.push(out.stdout);
    }
    host.write_procfs();
    host.write_config("/nonexistent/libnvidia-ml.so.1");
    for ((sel, _), want) in cases.iter().zip(&reference) {
        let out = visible_nodes(&env, &[&format!("NVIDIA_VISIBLE_DEVICES={sel}")]);
        assert_eq!(&out.stdout, want, "procfs, {sel}: {}", out.describe());
    }
    // The driver files still match the driver version (read from procfs' `version`).
    let out = env.sh(
        "ls /usr/lib/x86_64-linux-gnu/ | grep libcuda.so",
        with_env(&["NVIDIA_VISIBLE_DEVICES=0"]),
    );
    assert!(
        out.stdout.contains(&format!("libcuda.so.{DRIVER_VERSION}")),
        "{}",
        out.describe()
    );
    // What procfs cannot answer goes to NVML, which cannot load here: a clear failure.
    for vars in [
        &[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.0",
        ][..],
        &["NVIDIA_VISIBLE_DEVICES=0:0"],
        &["NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=12.0"],
    ] {
        env.config(|s| {
            set_args(s, &["true"]);
            with_env(vars)(s);
        });
        let out = env.run(&env.id());
        assert!(!out.ok(), "{vars:?}: {}", out.describe());
        assert!(
            out.stderr.contains("cannot load NVML"),
            "{vars:?}: {}",
            out.describe()
        );
    }
    // With requirements disabled, procfs suffices again.
    let out = visible_nodes(
        &env,
        &[
            "NVIDIA_VISIBLE_DEVICES=all",
            "CUDA_VERSION=12.0",
            "NVIDIA_DISABLE_REQUIRE=1",
        ],
    );
    assert_eq!(out.stdout.trim(), "nvidia0 nvidia1", "{}", out.describe());
    env.assert_clean();
}

/// NVML is loaded by the `gpurun-nvml` helper beside the binary, never by gpurun itself: a
/// gpurun installed without it still runs procfs-only GPU containers, and a request that needs
/// NVML fails naming the missing helper, leaving nothing behind.
#[test]
fn gpu_nvml_helper_is_a_separate_program() {
    let Some((env, host)) = gpu_env("gpu_nvml_helper", h100x2()) else {
        return;
    };
    host.write_procfs();
    let alone = env.dir.join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    let gpurun = alone.join("gpurun");
    std::fs::copy(bin(), &gpurun).unwrap();
    let run = |vars: &[&str]| {
        env.config(|s| {
            set_args(s, &["sh", "-c", "ls /dev | grep -c '^nvidia[0-9]'"]);
            with_env(vars)(s);
        });
        let mut cmd = std::process::Command::new(&gpurun);
        cmd.arg("--root").arg(&env.state).args(["run", "--bundle"]);
        cmd.arg(&env.bundle).arg(env.id());
        cmd.envs(env.extra_env.borrow().iter().cloned());
        // Only the directory beside the binary and PATH are searched: keep PATH free of it.
        cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        env.command_out(cmd)
    };
    let out = run(&["NVIDIA_VISIBLE_DEVICES=all"]);
    assert!(out.ok(), "procfs needs no helper: {}", out.describe());
    assert_eq!(out.stdout.trim(), "2", "{}", out.describe());
    let out = run(&["NVIDIA_VISIBLE_DEVICES=0:0"]);
    assert!(!out.ok(), "{}", out.describe());
    assert!(
        out.stderr.contains("cannot run the NVML helper") && out.stderr.contains("gpurun-nvml"),
        "{}",
        out.describe()
    );
    env.assert_clean();
}
