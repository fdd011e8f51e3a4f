//! User namespaces (runtime as root): uid/gid maps written for the init, container root is an
//! unprivileged host uid, devices are bound instead of made, `exec` joins the same namespace,
//! and mapping mistakes fail create cleanly.

use gpurun_integration::*;
use std::process::Command;

const HOST_BASE: u32 = 100000;

/// An Env whose rootfs belongs to the mapped root (as a user-namespaced image would).
fn mapped_env(name: &str) -> Env {
    let env = Env::new(name);
    let st = Command::new("chown")
        .args(["-R", &format!("{HOST_BASE}:{HOST_BASE}")])
        .arg(env.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    env
}

fn with_userns(s: &mut Value) {
    s["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]);
    s["linux"]["uidMappings"] = map.clone();
    s["linux"]["gidMappings"] = map;
}

#[test]
fn user_namespace_maps_container_root_to_an_unprivileged_host_uid() {
    if !require_root() {
        return;
    }
    let env = mapped_env("userns_maps");
    let out = env.sh(
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; \
         echo data >/dev/null && echo null-ok; head -c4 /dev/zero | wc -c; \
         touch /tmp/x 2>/dev/null || echo ro-root; ls /sys/kernel >/dev/null && echo sys-ok; \
         grep -q ' /dev/null ' /proc/self/mountinfo && echo null-bound",
        with_userns,
    );
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(lines[0], "0", "{}", out.describe());
    assert_eq!(lines[1], "0", "{}", out.describe());
    for map in &lines[2..4] {
        let fields: Vec<&str> = map.split_whitespace().collect();
        assert_eq!(fields, ["0", "100000", "65536"], "{}", out.describe());
    }
    assert!(out.stdout.contains("null-ok"), "{}", out.describe());
    assert!(
        out.stdout.contains("\n4\n"),
        "/dev/zero: {}",
        out.describe()
    );
    assert!(out.stdout.contains("sys-ok"), "{}", out.describe());
    // The read-only root stays read-only in the user namespace (a locked mount flag).
    assert!(out.stdout.contains("ro-root"), "{}", out.describe());
    // Devices are bound from the host, not made (mknod is refused in a user namespace).
    assert!(
        out.stdout.contains("null-bound"),
        "/dev/null is not a bind mount: {}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn the_host_sees_the_mapped_uid_and_exec_joins_the_namespace() {
    if !require_root() {
        return;
    }
    let env = mapped_env("userns_exec");
    env.config(|s| {
        set_args(s, &["sleep", "100"]);
        with_userns(s);
    });
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let pid = env.pid(&id);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = read_status_field(&status, "Uid").unwrap();
    assert!(
        uids.split_whitespace().all(|u| u == "100000"),
        "init's host uids: {uids}"
    );
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let out = env.gpurun(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; readlink /proc/self/ns/user",
    ]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("0"), "{}", out.describe());
    assert_eq!(
        lines.get(1).copied(),
        Some(init_ns.to_str().unwrap()),
        "exec is not in the container's user namespace: {}",
        out.describe()
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn sysfs_without_a_network_namespace_is_bound_from_the_host() {
    // runc 1.1 fails here ("mount sysfs: operation not permitted"); runc 1.2 and gpurun bind /sys.
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = mapped_env("userns_sysfs");
    let out = env.sh("ls /sys/class >/dev/null && echo sys-ok", |s| {
        with_userns(s);
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
    });
    assert!(out.stdout.contains("sys-ok"), "{}", out.describe());
    env.assert_clean();
}

#[test]
fn mapping_mistakes_fail_create_cleanly() {
    if !require_root() {
        return;
    }
    let env = mapped_env("userns_bad");
    // A user namespace without maps, and maps without a user namespace.
    env.config(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
    });
    env.create(&env.id()).assert_err("uid mappings");
    env.config(|s| {
        with_userns(s);
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
    });
    // (runc 1.1 ignores the maps then; newer runc refuses them, as gpurun does.)
    if is_gpurun() {
        env.create(&env.id())
            .assert_err("user namespaces not enabled");
    }
    // A map the kernel refuses (overlapping ranges): the init is killed, nothing is left.
    env.config(|s| {
        with_userns(s);
        s["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": HOST_BASE, "size": 10},
            {"containerID": 5, "hostID": 200000, "size": 10}
        ]);
    });
    env.create(&env.id()).assert_fail();
    env.assert_clean();
}

/// A user namespace held by an `unshare -U` sleeper, with `HOST_BASE` mapped to root.
struct HeldUserns(std::process::Child);

impl HeldUserns {
    fn new() -> HeldUserns {
        let child = Command::new("unshare")
            .args(["-U", "sleep", "100"])
            .spawn()
            .unwrap();
        let pid = child.id();
        // The sleeper must be in its namespace before its maps can be written.
        let own = std::fs::read_link("/proc/self/ns/user").unwrap();
        poll(std::time::Duration::from_secs(5), || {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()?;
            (ns != own).then_some(())
        })
        .expect("unshare -U never entered its namespace");
        let map = format!("0 {HOST_BASE} 65536");
        std::fs::write(format!("/proc/{pid}/uid_map"), &map).unwrap();
        std::fs::write(format!("/proc/{pid}/gid_map"), &map).unwrap();
        HeldUserns(child)
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/user", self.0.id())
    }
}

impl Drop for HeldUserns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_user_namespace_is_joined_by_path() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let held = HeldUserns::new();
    let env = mapped_env("userns_join");
    let out = env.sh(
        "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user; echo $$; \
         ls /proc/1 >/dev/null && echo proc-ok",
        |s| {
            let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
            ns.push(json!({"type": "user", "path": held.path()}));
        },
    );
    let lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let held_ns = std::fs::read_link(held.path()).unwrap();
    assert_eq!(lines[0], "0", "{}", out.describe());
    assert_eq!(
        lines[1],
        format!("0 {HOST_BASE} 65536"),
        "{}",
        out.describe()
    );
    assert_eq!(lines[2], held_ns.to_str().unwrap(), "{}", out.describe());
    // Its own pid namespace (made inside the joined user namespace) and a working /proc.
    assert_eq!(lines[3], "1", "{}", out.describe());
    assert!(out.stdout.contains("proc-ok"), "{}", out.describe());

    // runc's rule: a joined namespace brings its maps; giving some too is refused.
    env.config(|s| {
        with_userns(s);
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
        ns.push(json!({"type": "user", "path": held.path()}));
    });
    env.run(&env.id()).assert_err("joined by path");
    // A path that is not a namespace.
    env.config(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user", "path": "/nonexistent/ns/user"}));
    });
    env.run(&env.id()).assert_err("/nonexistent/ns/user");
    env.assert_clean();
}
