//! NVIDIA GPU support (gpurun-only) on a fake host (integration/src/gpu.rs): which driver
//! files each capability set brings in, read-only, and the container's ld cache (the host's
//! ldconfig or gpurun's builtin one).

use gpurun_integration::*;

#[test]
fn gpu_capabilities_pick_the_driver_files_read_only_with_ld_cache() {
    let Some((env, host)) = gpu_env("gpu_caps", h100x2()) else {
        return;
    };
    let v = DRIVER_VERSION;
    let cuda = host.lib(&format!("libcuda.so.{v}"));
    let ml = host.lib(&format!("libnvidia-ml.so.{v}"));
    let enc = host.lib(&format!("libnvidia-encode.so.{v}"));
    let gl = host.lib(&format!("libnvidia-glcore.so.{v}"));
    let mounted = |caps: Option<&str>| -> String {
        let var = caps.map(|c| format!("NVIDIA_DRIVER_CAPABILITIES={c}"));
        let mut vars = vec!["NVIDIA_VISIBLE_DEVICES=0"];
        vars.extend(var.as_deref());
        env.sh("cat /proc/self/mountinfo; ls /dev", with_env(&vars))
            .stdout
    };
    let has = |text: &str, p: &str| {
        text.lines()
            .any(|l| l.split(' ').nth(4) == Some(p) || l == p.trim_start_matches("/dev/"))
    };
    // Default: compute + utility.
    let m = mounted(None);
    for p in [
        &cuda,
        &ml,
        "/usr/bin/nvidia-smi",
        "/run/nvidia-persistenced/socket",
    ] {
        assert!(has(&m, p), "default caps lack {p}\n{m}");
    }
    let fw = format!("/lib/firmware/nvidia/{v}");
    assert!(has(&m, &fw), "{m}");
    assert!(!has(&m, &enc) && !has(&m, &gl), "{m}");
    assert!(has(&m, "nvidia-uvm") && !has(&m, "nvidia-modeset"), "{m}");
    // The library of an older driver is never mounted.
    assert!(!m.contains("libnvidia-cfg.so.470"), "{m}");
    // video only: no CUDA, no uvm.
    let m = mounted(Some("video"));
    assert!(has(&m, &enc) && !has(&m, &cuda) && !has(&m, &ml), "{m}");
    assert!(!has(&m, "nvidia-uvm") && has(&m, "nvidiactl"), "{m}");
    // graphics,display: GL libraries and the modeset node.
    let m = mounted(Some("graphics,display"));
    assert!(
        has(&m, &gl) && has(&m, "nvidia-modeset") && !has(&m, &cuda),
        "{m}"
    );
    let m = mounted(Some("all"));
    for p in [&cuda, &ml, &enc, &gl] {
        assert!(has(&m, p), "all lacks {p}\n{m}");
    }
    // Unknown capability: a clear error.
    env.config(with_env(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=compute,warp",
    ]));
    env.run(&env.id())
        .assert_err("unknown driver capability \"warp\"");

    // Read-only, nosuid, nodev; libcuda.so symlinks and the container's ld cache.
    let script = format!(
        "grep ' {cuda} ' /proc/self/mountinfo; touch {cuda} 2>&1; readlink /usr/lib/x86_64-linux-gnu/libcuda.so; \
         readlink /usr/lib/x86_64-linux-gnu/libcuda.so.1"
    );
    let out = env.sh(&script, with_env(&["NVIDIA_VISIBLE_DEVICES=all"]));
    let line = out.stdout.lines().next().unwrap_or_default();
    let opts = line.split(' ').nth(5).unwrap_or_default();
    for o in ["ro", "nosuid", "nodev"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing: {line}");
    }
    assert!(
        out.stdout.contains("Read-only file system"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("\nlibcuda.so.1\n"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(&format!("\nlibcuda.so.{v}")),
        "{}",
        out.describe()
    );
    assert_cache_lists_libcuda(&env);
    env.assert_clean();
}

#[track_caller]
fn assert_cache_lists_libcuda(env: &Env) {
    let cache = std::process::Command::new("ldconfig")
        .arg("-p")
        .arg("-C")
        .arg(env.rootfs().join("etc/ld.so.cache"))
        .output()
        .unwrap();
    let cache = String::from_utf8_lossy(&cache.stdout);
    for lib in ["libcuda.so.1", "libnvidia-ml.so.1"] {
        let line = format!("{lib} (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/{lib}");
        assert!(cache.contains(&line), "{line} missing:\n{cache}");
    }
}

/// `ldconfig = "builtin"`: the soname links and the cache come from gpurun itself, merged
/// into the image's existing cache (an entry of which must survive).
#[test]
fn gpu_builtin_ld_cache() {
    let Some((env, host)) = gpu_env("gpu_builtin_ldcache", h100x2()) else {
        return;
    };
    host.write_config_with(
        &mock_nvml().display().to_string(),
        "ldconfig = \"builtin\"\n",
    );
    // An image cache with one library of its own (made by the host's ldconfig).
    let own = env.rootfs().join("opt/own");
    std::fs::create_dir_all(&own).unwrap();
    let src = host.driver_root.join(format!(
        "usr/lib/x86_64-linux-gnu/libnvidia-encode.so.{DRIVER_VERSION}"
    ));
    std::fs::copy(src, own.join("libown.so.1")).unwrap();
    let st = std::process::Command::new("ldconfig")
        .arg("-r")
        .arg(env.rootfs())
        .arg("/opt/own")
        .status()
        .unwrap();
    assert!(st.success());
    let out = env.sh(
        "readlink /usr/lib/x86_64-linux-gnu/libcuda.so.1; readlink /usr/lib/x86_64-linux-gnu/libcuda.so",
        with_env(&["NVIDIA_VISIBLE_DEVICES=0"]),
    );
    let want = format!("libcuda.so.{DRIVER_VERSION}\nlibcuda.so.1\n");
    assert_eq!(out.stdout, want, "{}", out.describe());
    assert_cache_lists_libcuda(&env);
    let cache = std::process::Command::new("ldconfig")
        .args(["-p", "-C"])
        .arg(env.rootfs().join("etc/ld.so.cache"))
        .output()
        .unwrap();
    let cache = String::from_utf8_lossy(&cache.stdout);
    assert!(
        cache.contains("libnvidia-encode.so.1 (libc6,x86-64) => /opt/own/libnvidia-encode.so.1"),
        "{cache}"
    );
    env.assert_clean();
}
