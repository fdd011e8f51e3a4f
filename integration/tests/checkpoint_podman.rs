//! Podman 4.3 `container checkpoint` / `restore` with `--runtime` the runtime under test
//! (integration/testdata/checkpoint/checkpoint-podman.sh, run with the engine scripts' leak
//! check). It needs root, podman and a working CRIU (`criu check`: the QEMU VM of
//! integration/vm); where it cannot run it skips with the reason.

use gpurun_integration::*;
use std::process::Command;

#[test]
fn podman_checkpoint_and_restore() {
    if !require_root() {
        return;
    }
    let has_podman = Command::new("sh")
        .args(["-c", "command -v podman"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_podman {
        skip("podman not installed");
        return;
    }
    engine_script("../testdata/checkpoint/checkpoint-podman.sh", &[]);
}
