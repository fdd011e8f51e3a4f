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
