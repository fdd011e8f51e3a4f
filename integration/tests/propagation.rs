//! `linux.rootfsPropagation`: the propagation of the container's `/` from the first remount
//! on. Under `rshared`, a mount made inside a shared bind reaches the host (Kubernetes'
//! `mountPropagation: Bidirectional`, CSI node plugins); by default (`rslave`) nothing does.

use gpurun_integration::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of the test's own on the host, made shared; unmounted (with whatever a container
/// propagated into it) on drop.
struct SharedDir(PathBuf);

impl SharedDir {
    fn new(env: &Env) -> SharedDir {
        let dir = env.dir.join("shared");
        std::fs::create_dir_all(&dir).unwrap();
        let guard = SharedDir(dir);
        for args in [
            &["-t", "tmpfs", "gpurun-it-shared"][..],
            &["--make-shared"][..],
        ] {
            let st = Command::new("mount").args(args).arg(&guard.0).status();
            assert!(st.is_ok_and(|s| s.success()), "mount {args:?}");
        }
        guard
    }

    fn host_sees(&self, point: &Path) -> bool {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        find_mount(&info, point.to_str().unwrap()).is_some()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.0).status();
    }
}

/// Run a container that binds `shared` at /shared (`rbind`, `rshared`) and mounts a tmpfs
/// at /shared/sub, with `propagation` as its rootfsPropagation.
fn mount_inside(env: &Env, shared: &SharedDir, propagation: Option<&str>) {
    env.sh(
        "mkdir -p /shared/sub && mount -t tmpfs inside /shared/sub",
        |s| {
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/shared", "type": "bind",
                "source": shared.0, "options": ["rbind", "rshared"]
            }));
            for set in ["bounding", "effective", "permitted"] {
                s["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_ADMIN"));
            }
            if let Some(p) = propagation {
                s["linux"]["rootfsPropagation"] = json!(p);
            }
        },
    );
}

#[test]
fn rshared_root_propagates_mounts_to_the_host() {
    if !require_root() {
        return;
    }
    let env = Env::new("rshared_root_propagates_mounts_to_the_host");
    let shared = SharedDir::new(&env);
    let sub = shared.0.join("sub");
    mount_inside(&env, &shared, None);
    assert!(
        !shared.host_sees(&sub),
        "default rslave: nothing may propagate"
    );
    mount_inside(&env, &shared, Some("rshared"));
    assert!(
        shared.host_sees(&sub),
        "rshared: the mount must reach the host"
    );
    drop(shared);
    env.assert_clean();
}
