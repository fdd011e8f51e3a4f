//! Namespaces: new ones differ from the host's, joining by path, omitted ones are shared.

use gpurun_integration::*;

const NS: [(&str, &str); 6] = [
    ("pid", "pid"),
    ("network", "net"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("mount", "mnt"),
    ("cgroup", "cgroup"),
];

fn host_ns(file: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{file}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn ns_script() -> String {
    NS.iter()
        .map(|(_, f)| format!("echo {f}=$(readlink /proc/self/ns/{f}); "))
        .collect()
}

fn ns_of(out: &Out, file: &str) -> String {
    let prefix = format!("{file}=");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{file}?\n{}", out.stdout))
        .to_string()
}

#[test]
fn new_namespaces_differ_from_host() {
    if !require_root() {
        return;
    }
    let env = Env::new("new_namespaces_differ_from_host");
    let out = env.sh(&ns_script(), |_| {});
    for (_, f) in NS {
        let inside = ns_of(&out, f);
        assert!(inside.starts_with(&format!("{f}:[")), "{inside}");
        assert_ne!(inside, host_ns(f), "{f} namespace is the host's");
    }
    env.assert_clean();
}

#[test]
fn init_is_pid_1() {
    if !require_root() {
        return;
    }
    let env = Env::new("init_is_pid_1");
    let out = env.sh("echo $$; cat /proc/1/cmdline | tr '\\0' ' '", |_| {});
    assert!(out.stdout.starts_with("1\nsh -c "), "{}", out.stdout);
    env.assert_clean();
}

#[test]
fn omitted_namespaces_are_the_hosts() {
    if !require_root() {
        return;
    }
    let env = Env::new("omitted_namespaces_are_the_hosts");
    let out = env.sh(&ns_script(), |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network" && n["type"] != "ipc");
    });
    assert_eq!(ns_of(&out, "net"), host_ns("net"));
    assert_eq!(ns_of(&out, "ipc"), host_ns("ipc"));
    assert_ne!(ns_of(&out, "uts"), host_ns("uts"));
    env.assert_clean();
}

#[test]
fn join_namespace_by_path() {
    if !require_root() {
        return;
    }
    let env = Env::new("join_namespace_by_path");
    env.config(|s| set_args(s, &["sleep", "3600"]));
    let holder = env.id();
    env.create_ok(&holder);
    let pid = env.pid(&holder);
    let net_path = format!("/proc/{pid}/ns/net");
    let uts_path = format!("/proc/{pid}/ns/uts");
    let want_net = std::fs::read_link(&net_path)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let want_uts = std::fs::read_link(&uts_path)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_ne!(want_net, host_ns("net"));

    let out = env.sh(&ns_script(), |s| {
        for ns in s["linux"]["namespaces"].as_array_mut().unwrap() {
            match ns["type"].as_str() {
                Some("network") => ns["path"] = json!(net_path),
                Some("uts") => ns["path"] = json!(uts_path),
                _ => {}
            }
        }
        // Joining a uts namespace: the spec must not set a hostname.
        s.as_object_mut().unwrap().remove("hostname");
    });
    assert_eq!(ns_of(&out, "net"), want_net);
    assert_eq!(ns_of(&out, "uts"), want_uts);
    assert_ne!(ns_of(&out, "ipc"), host_ns("ipc"));
    env.gpurun(&["delete", "--force", &holder]).assert_ok();
    env.assert_clean();
}

#[test]
fn new_network_namespace_has_loopback_up() {
    if !require_root() {
        return;
    }
    let env = Env::new("new_network_namespace_has_loopback_up");
    // A server on 127.0.0.1 is reachable from inside (an AI service's health check).
    let out = env.sh(
        "cat /sys/class/net/lo/operstate; cat /sys/class/net/lo/flags; \
         (echo pong | nc -l -p 8080 &); sleep 0.2; nc 127.0.0.1 8080 </dev/null",
        |_| {},
    );
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP not set on lo: {}", out.describe());
    assert!(out.stdout.contains("pong"), "{}", out.describe());
    env.assert_clean();
}

/// A new time namespace with `linux.timeOffsets`: the container's monotonic and boot clocks
/// run ahead by the offsets, the host's do not move, and `exec` joins the same namespace.
/// gpurun-only: runc 1.1.5 predates time namespaces.
#[test]
fn time_namespace_with_offsets() {
    if !require_root() || !gpurun_only() {
        return;
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip("kernel without time namespaces");
        return;
    }
    let env = Env::new("time_namespace_with_offsets");
    let host_uptime = || -> f64 {
        let text = std::fs::read_to_string("/proc/uptime").unwrap();
        text.split(' ').next().unwrap().parse().unwrap()
    };
    let id = env.running(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        s["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": 86400, "nanosecs": 0},
            "boottime": {"secs": 172800, "nanosecs": 500}
        });
    });
    let before = host_uptime();
    let out = env.gpurun(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/self/timens_offsets; cat /proc/uptime; readlink /proc/self/ns/time",
    ]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        lines.iter().any(|l| words(l) == "monotonic 86400 0")
            && lines.iter().any(|l| words(l) == "boottime 172800 500"),
        "{}",
        out.describe()
    );
    // /proc/uptime is CLOCK_BOOTTIME: two days ahead of the host's.
    let inside: f64 = lines[2].split(' ').next().unwrap().parse().unwrap();
    assert!(
        (inside - before - 172800.0).abs() < 60.0,
        "uptime {inside} vs host {before}"
    );
    assert_ne!(lines[3], host_ns("time"));
    // The init itself is in it (not only its children).
    let pid = env.pid(&id);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/time"))
            .unwrap()
            .to_string_lossy(),
        lines[3]
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();

    // Offsets without a new time namespace: refused before anything exists.
    env.config(|s| s["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 1}}));
    let bad = env.id();
    env.create(&bad)
        .assert_err("linux.timeOffsets needs a new time namespace");
    env.gpurun(&["state", &bad]).assert_err("does not exist");
    env.assert_clean();
}

/// Without a `mount` entry in linux.namespaces the container shares the runtime's mount
/// namespace (the spec's rule): its root is a chroot into the rootfs and nothing is mounted —
/// a mount would be made in the host's namespace and outlive the container (runc 1.1.5 leaves
/// its rootfs bind mount and every `mounts[]` entry there). What would mount is refused.
/// gpurun-only: runc 1.1.5 mounts into the host's namespace.
#[test]
fn no_mount_namespace_shares_the_runtimes_and_mounts_nothing() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("no_mount_namespace");
    std::fs::write(env.rootfs().join("marker"), "in the rootfs\n").unwrap();
    let shared = |s: &mut Value| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
    };
    let rootfs = env.rootfs().canonicalize().unwrap();
    let host_mounts_rootfs = || {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        text.lines()
            .filter(|l| l.contains(rootfs.to_str().unwrap()))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    env.config(|s| {
        shared(s);
        set_args(s, &["sleep", "3600"]);
        s["mounts"] = json!([]);
        s["linux"]["maskedPaths"] = json!([]);
        s["linux"]["readonlyPaths"] = json!([]);
        s["root"]["readonly"] = json!(false);
        // Written through the runtime's /proc: the chroot has none.
        s["process"]["oomScoreAdj"] = json!(123);
    });
    let id = env.id();
    env.create_ok(&id);
    let pid = env.pid(&id);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .unwrap()
            .to_string_lossy(),
        host_ns("mnt")
    );
    env.gpurun(&["start", &id]).assert_ok();
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(adj.trim(), "123");
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(root, rootfs);
    assert_eq!(
        host_mounts_rootfs(),
        Vec::<String>::new(),
        "mounted in the host's namespace"
    );
    // An exec'd process gets the same root.
    let out = env.gpurun(&["exec", &id, "cat", "/marker"]);
    assert_eq!(out.stdout, "in the rootfs\n", "{}", out.describe());
    env.gpurun(&["delete", "--force", &id]).assert_ok();

    // The default mounts would land in the host's namespace: refused, naming the first.
    env.config(shared);
    let bad = env.id();
    env.create(&bad)
        .assert_err("mounts[0] (/proc) needs a mount namespace");
    env.gpurun(&["state", &bad]).assert_err("does not exist");
    assert_eq!(host_mounts_rootfs(), Vec::<String>::new());
    env.assert_clean();
}
