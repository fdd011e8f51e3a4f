//! Unit tests of netdev.rs (validation, which addresses go where, undo reporting).

use super::*;
use serde_json::json;

fn spec(linux: serde_json::Value) -> Spec {
    serde_json::from_value(json!({"ociVersion": "1.2.0", "linux": linux})).unwrap()
}

#[test]
fn validation() {
    let net = json!([{"type": "network"}]);
    let ok = |devs| validate(&spec(json!({"namespaces": net, "netDevices": devs})));
    if !crate::rootless::is_rootless() {
        assert_eq!(ok(json!({"eth0": {}})), Ok(()));
        assert_eq!(ok(json!({"eth0": {"name": "ctr%d"}})), Ok(()));
    }
    assert!(ok(json!({"eth0": {"name": "a/b"}}))
        .unwrap_err()
        .contains("\"a/b\""));
    assert!(ok(json!({"..": {}})).is_err());
    assert!(ok(json!({"eth0": {"name": "x".repeat(16)}})).is_err());
    assert!(ok(json!({"eth%d": {}})).is_err());
    assert!(ok(json!({"eth0": {"name": "c%s"}})).is_err());
    assert!(ok(json!({"eth0": {"name": "c%d%d"}})).is_err());
    let twice = ok(json!({"eth0": {"name": "x"}, "eth1": {"name": "x"}}));
    assert!(twice.unwrap_err().contains("given twice"));
    let no_ns = validate(&spec(json!({"netDevices": {"eth0": {}}})));
    assert_eq!(
        no_ns.unwrap_err(),
        "unable to move network devices without a NET namespace"
    );
    assert_eq!(validate(&spec(json!({}))), Ok(()));
}

#[test]
fn undo_failures_are_appended() {
    let err = || fail("a", "move", Errno::EEXIST);
    assert_eq!(also(err(), Ok(())).to_string(), err().to_string());
    let both = also(err(), Err(fail("b", "move back", Errno::EBUSY)));
    let text = both.to_string();
    assert!(
        text.starts_with("linux.netDevices: \"a\": move: EEXIST"),
        "{text}"
    );
    assert!(
        text.contains("; linux.netDevices: \"b\": move back: EBUSY"),
        "{text}"
    );
}

#[test]
fn addresses_kept_for_the_host_and_the_container() {
    let addr = |ip: &str, flags, scope| {
        let (family, bytes) = match ip.parse().unwrap() {
            std::net::IpAddr::V4(v4) => (2, v4.octets().to_vec()),
            std::net::IpAddr::V6(v6) => (AF_INET6, v6.octets().to_vec()),
        };
        let attrs = vec![(1, bytes)]; // IFA_ADDRESS
        let index = 1;
        Addr {
            family,
            prefix_len: 24,
            flags,
            scope,
            index,
            attrs,
        }
    };
    const P: u32 = IFA_F_PERMANENT;
    let saved = restorable(vec![
        addr("10.0.0.1", P, RT_SCOPE_UNIVERSE),
        addr("169.254.0.1", P, RT_SCOPE_LINK),
        addr("fe80::1", P, RT_SCOPE_LINK),
        addr("2001:db8::1", 0, RT_SCOPE_UNIVERSE),
        addr("2001:db8::2", P, RT_SCOPE_UNIVERSE),
    ]);
    let shown = |a: Vec<&Addr>| a.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let host = ["10.0.0.1/24", "169.254.0.1/24", "2001:db8::2/24"];
    assert_eq!(shown(saved.iter().collect()), host);
    let inside = ["10.0.0.1/24", "2001:db8::2/24"];
    assert_eq!(shown(carried(&saved).collect()), inside);
}

/// A socket opened in another namespace lists that one's devices, and the thread comes
/// back to its own.
#[test]
fn a_socket_opened_in_another_namespace() {
    use nix::sched::{setns, unshare, CloneFlags};
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let ns = || std::fs::read_link(OWN_NETNS).unwrap();
    let open_ns = || open(OWN_NETNS, OFlag::O_RDONLY, Mode::empty()).unwrap();
    let (here, own) = (ns(), open_ns());
    // A fresh namespace (this test thread's, gone with `other`): only lo, down.
    unshare(CloneFlags::CLONE_NEWNET).unwrap();
    let other = open_ns();
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
    let mut sock = Socket::open_in(other.as_fd()).unwrap();
    assert_eq!(ns(), here);
    let links = sock.links().unwrap();
    assert!(links.len() == 1 && links[0].name == "lo", "{links:?}");
    assert!(!links[0].is_up());
}

#[test]
fn joined_namespace_path_wins() {
    let pid = nix::unistd::Pid::from_raw(42);
    let s = spec(json!({"namespaces": [{"type": "network"}]}));
    assert_eq!(netns_path(&s, pid), PathBuf::from("/proc/42/ns/net"));
    let s = spec(json!({"namespaces": [{"type": "network", "path": "/run/netns/x"}]}));
    assert_eq!(netns_path(&s, pid), PathBuf::from("/run/netns/x"));
}
