//! `linux.netDevices`: a host interface is moved into the container's network namespace,
//! renamed, with its permanent global addresses, and up; it is gone from the host while the
//! container lives and, being virtual, destroyed with the container's namespace. Bad input
//! fails before anything moves.
//!
//! Each test plays the host in a network namespace of its own (`ip netns add`), with a veth
//! pair (the dummy driver is not on every kernel), and runs the runtime there with
//! `nsenter --net`. runc 1.1.5 predates netDevices: every test is gpurun-only.

use gpurun_integration::*;
use std::process::Command;
use std::time::Duration;

/// A named network namespace, deleted on drop, whatever happened.
struct HostNs {
    name: String,
}

impl HostNs {
    /// An empty one.
    fn bare(name: String) -> HostNs {
        let st = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(st.is_ok_and(|s| s.success()), "ip netns add {name}");
        HostNs { name }
    }

    /// One with a veth pair `gpit0` (10.99.0.1/24, 2001:db8::1/64, up) and `gpit0p`.
    fn new(env: &Env) -> HostNs {
        let ns = HostNs::bare(format!("gpit-{}", env.marker));
        ns.veth(0);
        ns
    }

    /// A veth pair `gpitN` (10.99.N.1/24, 2001:db8:N::1/64, up) and `gpitNp`.
    fn veth(&self, n: u8) {
        for cmd in [
            format!("link add gpit{n} type veth peer name gpit{n}p"),
            format!("addr add 10.99.{n}.1/24 dev gpit{n}"),
            format!("addr add 2001:db8:{n}::1/64 dev gpit{n} nodad"),
            format!("link set gpit{n}p up"),
            format!("link set gpit{n} up"),
        ] {
            let out = self.ip(&cmd);
            assert!(out.status.success(), "ip {cmd}: {out:?}");
        }
    }

    /// Links and addresses, one line each (to compare before and after).
    fn snapshot(&self) -> String {
        let text = |args| String::from_utf8_lossy(&self.ip(args).stdout).into_owned();
        text("-o link show") + &text("-o addr show")
    }

    /// `ip -n NS <args>`.
    fn ip(&self, args: &str) -> std::process::Output {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args.split(' '))
            .output()
            .expect("ip")
    }

    fn has(&self, dev: &str) -> bool {
        self.ip(&format!("link show {dev}")).status.success()
    }

    /// The runtime, run in this namespace: `nsenter --net=… RUNTIME --root STATE args…`.
    fn runtime(&self, env: &Env, args: &[&str]) -> Out {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name))
            .arg(bin())
            .arg("--root")
            .arg(&env.state)
            .args(args)
            .current_dir(&env.dir);
        env.command_out(cmd)
    }
}

impl Drop for HostNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn devices(env: &Env, args: &[&str], devs: Value) {
    env.config(|s| {
        set_args(s, args);
        s["linux"]["netDevices"] = devs;
    });
}

/// gpit0 is on the host, up, with both its addresses.
fn assert_untouched(ns: &HostNs) {
    assert_on_host(ns, 0);
}

/// gpitN is on the host under that name, up, with both its addresses.
fn assert_on_host(ns: &HostNs, n: u8) {
    let host = ns.ip(&format!("addr show gpit{n}"));
    let text = String::from_utf8_lossy(&host.stdout);
    assert!(text.contains(",UP"), "gpit{n}: {host:?}");
    // As `ip` shows it: 2001:db8::1 for 0.
    let v6: std::net::Ipv6Addr = format!("2001:db8:{n}::1").parse().unwrap();
    let (v4, v6) = (format!("inet 10.99.{n}.1/24"), format!("inet6 {v6}/64"));
    assert!(text.contains(&v4) && text.contains(&v6), "{text}");
}

fn bundle(env: &Env) -> &str {
    env.bundle.to_str().unwrap()
}

#[test]
fn device_moves_renamed_with_its_addresses_and_up() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("netdev_moves");
    let ns = HostNs::new(&env);
    devices(
        &env,
        &["sleep", "3600"],
        json!({"gpit0": {"name": "ctnet0"}}),
    );
    let id = env.id();
    ns.runtime(&env, &["create", "--bundle", bundle(&env), &id])
        .assert_ok();
    env.gpurun(&["start", &id]).assert_ok();
    let inside = env.gpurun(&["exec", &id, "ip", "addr", "show", "ctnet0"]);
    inside.assert_ok();
    let flags = inside.stdout.split(['<', '>']).nth(1).unwrap_or_default();
    assert!(flags.split(',').any(|f| f == "UP"), "{}", inside.stdout);
    assert!(
        inside.stdout.contains("inet 10.99.0.1/24"),
        "{}",
        inside.stdout
    );
    assert!(
        inside.stdout.contains("2001:db8::1/64"),
        "{}",
        inside.stdout
    );
    // Moved, not copied: the host side has only the peer left.
    assert!(!ns.has("gpit0") && ns.has("gpit0p"));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    // Not moved back: a veth dies with the container's namespace, its peer with it.
    let gone = poll(Duration::from_secs(30), || {
        (!ns.has("gpit0p")).then_some(())
    });
    assert!(gone.is_some(), "the veth pair outlived the container");
    assert!(!ns.has("gpit0"));
    drop(ns);
    env.assert_clean();
}

#[test]
fn a_namespace_joined_by_path_receives_the_device_and_keeps_it() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("netdev_joined");
    let ns = HostNs::new(&env);
    let target = HostNs::bare(format!("gpit-t-{}", env.marker));
    let path = format!("/run/netns/{}", target.name);
    env.config(|s| {
        set_args(s, &["ip", "addr", "show", "ctnet0"]);
        s["linux"]["netDevices"] = json!({"gpit0": {"name": "ctnet0"}});
        for n in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!(path);
            }
        }
    });
    let out = ns.runtime(&env, &["run", "--bundle", bundle(&env), &env.id()]);
    out.assert_ok();
    assert!(out.stdout.contains("inet 10.99.0.1/24"), "{}", out.stdout);
    // The namespace outlives the container, and the device stays in it: nothing moves back.
    let kept = target.ip("addr show ctnet0");
    assert!(
        String::from_utf8_lossy(&kept.stdout).contains("inet 10.99.0.1/24"),
        "{kept:?}"
    );
    assert!(!ns.has("gpit0"));
    drop((ns, target));
    env.assert_clean();
}

/// gpit0 → ctnet0 and gpit1 → ctnet1 into the namespace `target` joined by path, where lo has
/// the `altnames`: the early check looks at names only, the kernel at altnames too, so
/// gpit0 moves and gpit1 fails. None may be left there, nor changed on the host.
fn second_fails_in_a_joined_namespace(name: &str, altnames: &[&str]) {
    let env = Env::new(name);
    let ns = HostNs::new(&env);
    ns.veth(1);
    let target = HostNs::bare(format!("gpit-t-{}", env.marker));
    for alt in altnames {
        if !target
            .ip(&format!("link property add dev lo altname {alt}"))
            .status
            .success()
        {
            skip("alternative interface names (Linux 5.5) unsupported");
            return;
        }
    }
    let path = format!("/run/netns/{}", target.name);
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["netDevices"] =
            json!({"gpit0": {"name": "ctnet0"}, "gpit1": {"name": "ctnet1"}});
        for n in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!(path);
            }
        }
    });
    let before = target.snapshot();
    let out = ns.runtime(&env, &["create", "--bundle", bundle(&env), &env.id()]);
    out.assert_err("\"gpit1\": move into the container's network namespace: EEXIST");
    assert_eq!(target.snapshot(), before);
    // Moved back, by its own name, with its addresses (re-added: the move dropped them).
    assert_on_host(&ns, 0);
    // Moved back, or set up again with its IPv6 address (set down, it lost it).
    assert_on_host(&ns, 1);
    drop((ns, target));
    env.assert_clean();
}

#[test]
fn a_device_refused_by_a_joined_namespace_sends_the_others_back() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    // Both names taken there: the kernel refuses gpit1 before it moves.
    second_fails_in_a_joined_namespace("netdev_refused", &["gpit1", "ctnet1"]);
}

#[test]
fn a_device_moved_but_not_renamed_in_a_joined_namespace_comes_back() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    // Its own name is free there: the kernel moves gpit1, then fails to rename it.
    second_fails_in_a_joined_namespace("netdev_not_renamed", &["ctnet1"]);
}

#[test]
fn a_device_refused_by_a_new_namespace_sends_the_others_back() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("netdev_new_ns_undo");
    let ns = HostNs::new(&env);
    // A missing device fails before any moves; lo is there but never leaves its namespace.
    devices(
        &env,
        &["true"],
        json!({"gpit0": {"name": "ctnet0"}, "lo": {"name": "ctlo"}}),
    );
    let out = ns.runtime(&env, &["create", "--bundle", bundle(&env), &env.id()]);
    out.assert_err("\"lo\": move into the container's network namespace: EINVAL");
    // Back before the namespace dies (which would destroy the veth).
    assert_untouched(&ns);
    assert!(ns.has("lo") && ns.has("gpit0p"));
    drop(ns);
    env.assert_clean();
}

/// A create that fails after the move (here: a prestart hook) gives the device back too, with
/// its address: the container never ran.
#[test]
fn a_create_failing_after_the_move_sends_the_device_back() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("netdev_hook_fails_undo");
    let ns = HostNs::new(&env);
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["netDevices"] = json!({"gpit0": {"name": "ctnet0"}});
        s["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    });
    let out = ns.runtime(&env, &["create", "--bundle", bundle(&env), &env.id()]);
    out.assert_err("error running prestart hook #0");
    assert_untouched(&ns);
    drop(ns);
    env.assert_clean();
}

#[test]
fn a_name_template_gets_a_number_from_the_kernel() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("netdev_template");
    let ns = HostNs::new(&env);
    let script = "ip -o addr show ct0";
    devices(
        &env,
        &["sh", "-c", script],
        json!({"gpit0": {"name": "ct%d"}}),
    );
    let out = ns.runtime(&env, &["run", "--bundle", bundle(&env), &env.id()]);
    out.assert_ok();
    let line = out.stdout.lines().find(|l| l.contains("inet 10.99.0.1/24"));
    assert!(line.is_some_and(|l| l.contains(" ct0 ")), "{}", out.stdout);
    drop(ns);
    env.assert_clean();
}

#[test]
fn a_missing_device_fails_and_leaves_nothing() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("netdev_missing");
    let ns = HostNs::new(&env);
    devices(&env, &["true"], json!({"gpit0": {}, "nope0": {}}));
    let out = ns.runtime(&env, &["create", "--bundle", bundle(&env), &env.id()]);
    out.assert_err("network device \"nope0\" not found");
    // Every device is checked before the first moves: gpit0 is still here, as it was.
    assert_untouched(&ns);
    drop(ns);
    env.assert_clean();
}

#[test]
fn a_name_taken_in_the_container_fails_before_the_move() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("netdev_taken");
    let ns = HostNs::new(&env);
    devices(&env, &["true"], json!({"gpit0": {"name": "lo"}}));
    let out = ns.runtime(&env, &["create", "--bundle", bundle(&env), &env.id()]);
    out.assert_err("\"lo\" already exists");
    assert_untouched(&ns);
    drop(ns);
    env.assert_clean();
}

#[test]
fn bad_configs_are_refused() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("netdev_bad_config");
    let cases = [
        (
            json!({"eth0": {"name": "a/b"}}),
            "invalid network device name \"a/b\"",
        ),
        (
            json!({"eth%d": {}}),
            "invalid network device name \"eth%d\"",
        ),
    ];
    for (devs, want) in cases {
        devices(&env, &["true"], devs);
        let out = env.create(&env.id());
        out.assert_err(want);
    }
    env.config(|s| {
        s["linux"]["netDevices"] = json!({"eth0": {}});
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
    });
    env.create(&env.id())
        .assert_err("unable to move network devices without a NET namespace");
    env.assert_clean();
}

#[test]
fn rootless_is_refused() {
    // gpurun-only: runc 1.1.5 predates linux.netDevices
    if !require_root() || !gpurun_only() {
        return;
    }
    let Some(user) = rootless_user() else { return };
    let env = rootless_env("netdev_rootless", &user);
    devices(&env, &["true"], json!({"eth0": {}}));
    let out = as_user(&env, &user, true, &["create", &env.id()]);
    out.assert_err("network devices are not supported for rootless containers");
    env.assert_clean();
}
