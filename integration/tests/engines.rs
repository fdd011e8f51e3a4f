//! Real container engines (containerd 1.6 + ctr, Podman 4.3, buildah 1.28, Docker 20.10) driving
//! the runtime under test through the scripts in `integration/engines/`.  Each script installs its
//! engine with apt-get when missing (set ENGINES_NO_INSTALL=1 to skip instead), runs against a
//! private engine root in a temp dir and cleans up after itself.  Exit 77 = engine unavailable
//! (skipped).
//! The scripts run one at a time: podman and buildah share host-wide state (libpod_parent).

use gpurun_integration::*;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// False (after saying why) when `tool` is missing and may not be installed.
fn tool_available(tool: &str) -> bool {
    let has_tool = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tool && std::env::var_os("ENGINES_NO_INSTALL").is_some() {
        skip(&format!("{tool} not installed (ENGINES_NO_INSTALL set)"));
        return false;
    }
    true
}

fn engine(script: &str, tool: &str) {
    engine_with(script, tool, &[]);
}

/// Run `script` with `envs` added to its environment.
fn engine_with(script: &str, tool: &str, envs: &[(&str, &Path)]) {
    if !require_root() || !tool_available(tool) {
        return;
    }
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    engine_script(script, envs);
}

#[test]
fn containerd_ctr() {
    engine("containerd.sh", "containerd");
}

#[test]
fn podman() {
    engine("podman.sh", "podman");
}

#[test]
fn buildah() {
    engine("buildah.sh", "buildah");
}

/// 2×H100 whose minors are not their indices: GPU 0 is /dev/nvidia4, GPU 1 /dev/nvidia5.
fn h100x2_minors_4_5() -> Value {
    let mut desc = h100x2();
    desc["devices"][0]["minor"] = json!(4);
    desc["devices"][1]["minor"] = json!(5);
    desc
}

/// dockerd → containerd → shim → the runtime; `--gpus` through dockerd's
/// nvidia-container-runtime-hook prestart hook (gpurun under that name) on a fake GPU host.
#[test]
fn docker() {
    if !require_root() || !tool_available("dockerd") {
        return;
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/libmock_nvml.so");
    if !lib.is_file() {
        skip(&format!(
            "part: docker --gpus cases (no {}: cargo build --release -p mock-nvml)",
            lib.display()
        ));
        engine("docker.sh", "dockerd");
        return;
    }
    let env = Env::new("docker-gpus");
    let host = FakeGpuHost::new(&env, h100x2_minors_4_5());
    host.write_procfs();
    engine_with(
        "docker.sh",
        "dockerd",
        &[
            ("GPURUN_CONFIG", &host.config),
            ("MOCK_NVML_CONFIG", &host.machine),
        ],
    );
    env.assert_clean();
}
