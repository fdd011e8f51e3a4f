//! Real container engines (containerd 1.6 + ctr, Podman 4.3, buildah 1.28) driving the runtime
//! under test through the scripts in `integration/engines/`.  Each script installs its engine
//! with apt-get when missing (set ENGINES_NO_INSTALL=1 to skip instead), runs against a private
//! engine root in a temp dir and cleans up after itself.  Exit 77 = engine unavailable (skipped).
//! The scripts run one at a time: podman and buildah share host-wide state (libpod_parent).

use gpurun_integration::*;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn engine(script: &str, tool: &str) {
    if !require_root() {
        return;
    }
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let has_tool = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tool && std::env::var_os("ENGINES_NO_INSTALL").is_some() {
        println!("skipped: {tool} not installed (ENGINES_NO_INSTALL set)");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("engines")
        .join(script);
    let out = Command::new("bash")
        .arg(&path)
        .env("RUNTIME", bin())
        .output()
        .expect("running engine script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(77) => println!("{}", stdout.trim()),
        _ => panic!(
            "{script} failed ({:?}) with runtime {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status,
            bin().display()
        ),
    }
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
