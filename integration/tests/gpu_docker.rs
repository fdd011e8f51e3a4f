//! Docker's `--gpus` without the NVIDIA toolkit: dockerd adds `nvidia-container-runtime-hook
//! prestart` as a prestart hook and puts the request in process.env. gpurun as the runtime does
//! the work built in and drops the hook; under the hook's name (a link to gpurun) it is the
//! hook, for runc. (integration/engines/docker.sh drives the same through a real dockerd.)

use gpurun_integration::*;
use std::path::{Path, PathBuf};

const HOOK: &str = "nvidia-container-runtime-hook";

/// The prestart hook dockerd adds for `--gpus` (args and env as dockerd writes them).
fn docker_gpu_hook(path: &Path, host: &FakeGpuHost) -> Value {
    json!({
        "path": path,
        "args": [HOOK, "prestart"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            format!("GPURUN_CONFIG={}", host.config.display()),
            format!("MOCK_NVML_CONFIG={}", host.machine.display()),
        ]
    })
}

/// `DIR/nvidia-container-runtime-hook` → `target`.
fn hook_link(env: &Env, target: &Path) -> PathBuf {
    let dir = env.dir.join("hookbin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(HOOK);
    std::os::unix::fs::symlink(target, &link).unwrap();
    link
}

const LIST_GPUS: &str = "ls /dev | grep '^nvidia[0-9]'";

#[test]
fn gpurun_gives_the_gpus_once_and_drops_dockers_hook() {
    let Some((env, host)) = gpu_env("gpu_docker_runtime", h100x2()) else {
        return;
    };
    // Were the hook run, the container would fail: gpurun must not run it.
    let hook = hook_link(&env, Path::new("/bin/false"));
    env.config(|s| {
        with_env(&["NVIDIA_VISIBLE_DEVICES=1"])(s);
        set_args(s, &["sh", "-c", LIST_GPUS]);
        s["hooks"] = json!({"prestart": [docker_gpu_hook(&hook, &host)]});
    });
    let out = env.run(&env.id());
    out.assert_ok();
    // GPU 1 of h100x2 is /dev/nvidia0.
    assert_eq!(out.stdout.trim(), "nvidia0", "{}", out.describe());
    env.assert_clean();
}

#[test]
fn gpurun_under_the_hooks_name_is_the_hook_for_runc() {
    let Some((env, host)) = gpu_env("gpu_docker_hook", h100x2()) else {
        return;
    };
    let runc = Path::new("/usr/sbin/runc");
    if !runc.is_file() {
        skip("runc is not installed");
        env.assert_clean();
        return;
    }
    let hook = hook_link(&env, &std::fs::canonicalize(bin()).unwrap());
    let runc_run = |env: &Env| {
        let id = env.id();
        let out = std::process::Command::new(runc)
            .arg("--root")
            .arg(&env.state)
            .args(["run", "--bundle"])
            .arg(&env.bundle)
            .arg(&id)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        (out.status.success(), stdout, all)
    };
    env.config(|s| {
        with_env(&["NVIDIA_VISIBLE_DEVICES=1"])(s);
        set_args(s, &["sh", "-c", LIST_GPUS]);
        s["hooks"] = json!({"prestart": [docker_gpu_hook(&hook, &host)]});
    });
    let (ok, stdout, all) = runc_run(&env);
    assert!(ok, "{all}");
    assert_eq!(stdout.trim(), "nvidia0", "{all}");

    // No driver on the host: the hook fails create, saying so.
    host.write_config("/nonexistent/libnvidia-ml.so.1");
    env.config(|s| {
        with_env(&["NVIDIA_VISIBLE_DEVICES=all"])(s);
        s["hooks"] = json!({"prestart": [docker_gpu_hook(&hook, &host)]});
    });
    let (ok, _, all) = runc_run(&env);
    assert!(!ok, "{all}");
    assert!(all.contains("is the NVIDIA driver installed?"), "{all}");

    // Anything but the toolkit's stages is a usage error.
    let usage = std::process::Command::new(&hook)
        .arg("bogus")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    env.assert_clean();
}
