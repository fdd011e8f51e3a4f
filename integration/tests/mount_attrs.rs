//! Recursive mount attributes (`rro`, `rnosuid`, … : runtime-spec 1.1+, applied with
//! mount_setattr(2) to a mount and every submount), `nosymfollow`, and the refusal of a `proc`
//! or `sysfs` mount whose destination is a symlink (CVE-2019-19921).

use gpurun_integration::*;
use std::path::PathBuf;
use std::process::Command;

/// A host directory of the test's own with a tmpfs mounted at `sub/`: the submount an `rbind`
/// carries into the container. Unmounted on drop, whatever happened.
struct Tree(PathBuf);

impl Tree {
    fn new(env: &Env) -> Tree {
        let dir = env.dir.join("tree");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let tree = Tree(dir);
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "gpurun-it-sub"])
            .arg(tree.0.join("sub"))
            .status();
        assert!(st.is_ok_and(|s| s.success()), "mount tmpfs on tree/sub");
        tree
    }

    /// The host's own view of the submount (the container's attributes must not reach it).
    fn host_sub(&self) -> Mount {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let point = self.0.join("sub");
        find_mount(&info, point.to_str().unwrap()).expect("host submount")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.join("sub")).status();
    }
}

const PROBE: &str = "cat /proc/self/mountinfo; \
    touch /data/x && echo TOP-WRITABLE; touch /data/sub/x && echo SUB-WRITABLE; true";

/// Run PROBE with the tree bound at /data with `options`.
fn probe_tree(env: &Env, tree: &Tree, options: &[&str]) -> Out {
    env.sh(PROBE, |s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": tree.0, "options": options
        }));
    })
}

#[track_caller]
fn mount_at(out: &Out, point: &str) -> Mount {
    find_mount(&out.stdout, point).unwrap_or_else(|| panic!("no mount at {point}\n{}", out.stdout))
}

#[test]
fn rro_makes_submounts_read_only() {
    if !require_root() {
        return;
    }
    let env = Env::new("rro_makes_submounts_read_only");
    let tree = Tree::new(&env);
    let out = probe_tree(&env, &tree, &["rbind", "rro"]);
    assert!(mount_at(&out, "/data").has_opt("ro"), "{}", out.stdout);
    let sub = mount_at(&out, "/data/sub");
    assert!(sub.fstype == "tmpfs" && sub.has_opt("ro"), "{sub:?}");
    assert!(!out.stdout.contains("WRITABLE"), "{}", out.describe());
    // Only the container's copies changed.
    assert!(tree.host_sub().has_opt("rw"), "{:?}", tree.host_sub());
    drop(tree);
    env.assert_clean();
}

#[test]
fn plain_ro_leaves_submounts_writable() {
    // Why `rro` exists: `ro` is a remount of the top mount only.
    if !require_root() {
        return;
    }
    let env = Env::new("plain_ro_leaves_submounts_writable");
    let tree = Tree::new(&env);
    let out = probe_tree(&env, &tree, &["rbind", "ro"]);
    assert!(mount_at(&out, "/data").has_opt("ro"), "{}", out.stdout);
    assert!(mount_at(&out, "/data/sub").has_opt("rw"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("TOP-WRITABLE") && out.stdout.contains("SUB-WRITABLE"),
        "{}",
        out.describe()
    );
    drop(tree);
    env.assert_clean();
}

#[test]
fn rnoexec_rnosuid_reach_submounts() {
    if !require_root() {
        return;
    }
    let env = Env::new("rnoexec_rnosuid_reach_submounts");
    let tree = Tree::new(&env);
    let opts = [
        "rbind",
        "rnoexec",
        "rnosuid",
        "rnodev",
        "rnoatime",
        "rnosymfollow",
    ];
    let script = format!(
        "{PROBE}; cp /bin/busybox /data/sub/bb && /data/sub/bb true && echo EXECUTED; true"
    );
    let out = env.sh(&script, |s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": tree.0, "options": opts
        }));
    });
    for point in ["/data", "/data/sub"] {
        let m = mount_at(&out, point);
        for o in ["noexec", "nosuid", "nodev", "noatime", "nosymfollow", "rw"] {
            assert!(m.has_opt(o), "{point} lacks {o}: {m:?}");
        }
    }
    assert!(out.stdout.contains("SUB-WRITABLE"), "{}", out.describe());
    assert!(!out.stdout.contains("EXECUTED"), "{}", out.describe());
    let host = tree.host_sub();
    assert!(
        !host.has_opt("noexec") && !host.has_opt("noatime"),
        "{host:?}"
    );
    drop(tree);
    env.assert_clean();
}

#[test]
fn rro_on_a_tmpfs() {
    // gpurun-only: runc (1.1.5 as 1.2+) applies the recursive options to bind mounts only.
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("rro_on_a_tmpfs");
    let out = env.sh(
        "cat /proc/self/mountinfo; touch /t/x && echo WRITABLE; true",
        |s| {
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/t", "type": "tmpfs", "source": "tmpfs",
                "options": ["rro", "rnosuid", "size=1m"]
            }));
        },
    );
    let t = mount_at(&out, "/t");
    assert!(t.has_opt("ro") && t.has_opt("nosuid"), "{t:?}");
    assert!(t.super_opts.contains(&"size=1024k".into()), "{t:?}");
    assert!(!out.stdout.contains("WRITABLE"), "{}", out.describe());
    env.assert_clean();
}

#[test]
fn nosymfollow_on_a_tmpfs() {
    if !require_root() {
        return;
    }
    let env = Env::new("nosymfollow_on_a_tmpfs");
    let script =
        "cat /proc/self/mountinfo; echo hi > /t/f; ln -s f /t/l; cat /t/l && echo FOLLOWED; \
        cat /t/f && echo DIRECT; true";
    let out = env.sh(script, |s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/t", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosymfollow"]
        }));
    });
    assert!(
        mount_at(&out, "/t").has_opt("nosymfollow"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("FOLLOWED") && out.stdout.contains("DIRECT"),
        "{}",
        out.describe()
    );
    env.assert_clean();
}

/// Replace `/<dir>` of the rootfs with a dangling symlink and create: refused with runc's
/// message for `fs`, and nothing made where the link points.
///
/// Whether something was *mounted* there cannot be seen from here: the init mounts in its own
/// mount namespace (slave or private), gone when create fails, and the refusal comes before
/// the createContainer hooks, so no hook could look either (a mount that reached the host's
/// namespace would be in env.assert_clean's mountinfo check). What can be seen is a directory
/// made by following the link (a mkdir -p of the destination before the check): the target
/// does not exist, and must not afterwards.
fn refused_through_symlink(name: &str, dir: &str, fs: &str, inside: bool) {
    let env = Env::new(name);
    // In the rootfs, or a host path (absolute, as in CVE-2019-19921), which a runtime
    // resolving in the rootfs (gpurun, runc) would find under the rootfs instead.
    let points_to = if inside {
        PathBuf::from("/tmp/elsewhere")
    } else {
        env.dir.join(format!("host-{dir}"))
    };
    let mut targets = vec![env.rootfs().join(points_to.strip_prefix("/").unwrap())];
    if !inside {
        targets.push(points_to.clone());
    }
    let link = env.rootfs().join(dir);
    std::fs::remove_dir(&link).unwrap();
    std::os::unix::fs::symlink(&points_to, &link).unwrap();
    env.config(|s| set_args(s, &["true"]));
    let out = env.create(&env.id());
    out.assert_fail();
    // runc's log escapes the quotes.
    let want = format!("filesystem \"{fs}\" must be mounted on ordinary directory");
    assert!(
        out.stderr.replace('\\', "").contains(&want),
        "{}",
        out.describe()
    );
    for t in &targets {
        assert!(!t.exists(), "{} was made\n{}", t.display(), out.describe());
    }
    env.assert_clean();
}

#[test]
fn proc_on_a_symlink_is_refused() {
    if !require_root() {
        return;
    }
    refused_through_symlink("proc_symlink_inside", "proc", "proc", true);
    refused_through_symlink("proc_symlink_host", "proc", "proc", false);
}

#[test]
fn sysfs_on_a_symlink_is_refused() {
    if !require_root() {
        return;
    }
    refused_through_symlink("sysfs_symlink_inside", "sys", "sysfs", true);
    refused_through_symlink("sysfs_symlink_host", "sys", "sysfs", false);
}
