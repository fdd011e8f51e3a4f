//! The container process: cwd, env, user, umask, rlimits, oom, caps, nnp, sysctl, hostname.

use gpurun_integration::*;

#[track_caller]
fn status_field(out: &Out, field: &str) -> String {
    read_status_field(&out.stdout, field)
        .unwrap_or_else(|| panic!("no {field}:\n{}", out.describe()))
}

#[test]
fn cwd_existing_and_created() {
    if !require_root() {
        return;
    }
    let env = Env::new("cwd_existing_and_created");
    let out = env.sh("pwd", |s| s["process"]["cwd"] = json!("/etc"));
    assert_eq!(out.stdout.trim(), "/etc");
    assert!(!env.rootfs().join("work").exists());
    let out = env.sh("pwd", |s| {
        s["process"]["cwd"] = json!("/work/sub");
        s["root"]["readonly"] = json!(false);
    });
    assert_eq!(out.stdout.trim(), "/work/sub");
    assert!(env.rootfs().join("work/sub").is_dir());
    env.assert_clean();
}

#[test]
fn env_vars() {
    if !require_root() {
        return;
    }
    let env = Env::new("env_vars");
    let out = env.sh("env", |s| {
        s["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("FOO=bar baz"));
    });
    let lines: Vec<&str> = out.stdout.lines().collect();
    for want in [
        "FOO=bar baz",
        "TERM=xterm",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ] {
        assert!(lines.contains(&want), "{want}\n{}", out.stdout);
    }
    env.assert_clean();
}

#[test]
fn user_and_groups() {
    if !require_root() {
        return;
    }
    let env = Env::new("user_and_groups");
    let out = env.sh("id -u; id -g; cat /proc/self/status", |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20]});
    });
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("1000"));
    assert_eq!(lines.next(), Some("1001"));
    assert!(status_field(&out, "Uid")
        .split_whitespace()
        .all(|u| u == "1000"));
    assert!(status_field(&out, "Gid")
        .split_whitespace()
        .all(|g| g == "1001"));
    let groups: Vec<String> = status_field(&out, "Groups")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(groups, ["10", "20"]);
    env.assert_clean();
}

#[test]
fn umask() {
    if !require_root() {
        return;
    }
    let env = Env::new("umask");
    let out = env.sh("umask", |s| s["process"]["user"]["umask"] = json!(0o077));
    assert_eq!(out.stdout.trim(), "0077");
    env.assert_clean();
}

#[test]
fn rlimits() {
    if !require_root() {
        return;
    }
    let env = Env::new("rlimits");
    // Without CAP_SYS_RESOURCE the hard limit can only go down.
    let hard = sys::nofile_limit().1.min(4096);
    let soft = hard / 2;
    let out = env.sh("ulimit -n; ulimit -Hn", |s| {
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": soft, "hard": hard}]);
    });
    assert_eq!(out.stdout, format!("{soft}\n{hard}\n"));
    env.assert_clean();
}

#[test]
fn oom_score_adj() {
    if !require_root() {
        return;
    }
    let env = Env::new("oom_score_adj");
    let out = env.sh("cat /proc/self/oom_score_adj", |s| {
        s["process"]["oomScoreAdj"] = json!(500)
    });
    assert_eq!(out.stdout.trim(), "500");
    env.assert_clean();
}

const CAP_FIELDS: [(&str, &str); 5] = [
    ("bounding", "CapBnd"),
    ("effective", "CapEff"),
    ("permitted", "CapPrm"),
    ("inheritable", "CapInh"),
    ("ambient", "CapAmb"),
];

#[track_caller]
fn check_caps(env: &Env, user: Value, sets: [&[&str]; 5]) {
    let out = env.sh("cat /proc/self/status", |s| {
        s["process"]["user"] = user;
        for ((key, _), set) in CAP_FIELDS.iter().zip(sets) {
            s["process"]["capabilities"][key] = json!(set);
        }
    });
    for ((key, field), set) in CAP_FIELDS.iter().zip(sets) {
        let got = u64::from_str_radix(&status_field(&out, field), 16).unwrap();
        assert_eq!(
            got,
            cap_mask(set),
            "{key} ({field}): got {got:#x}, want {:#x} {set:?}",
            cap_mask(set)
        );
    }
}

#[test]
fn capabilities_root() {
    if !require_root() {
        return;
    }
    let env = Env::new("capabilities_root");
    // For uid 0 the kernel sets permitted = effective = bounding on exec, so
    // those three are configured equal; inheritable and ambient are a subset.
    let main: &[&str] = &[
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_WRITE",
        "CAP_SETUID",
    ];
    let inh: &[&str] = &["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    check_caps(
        &env,
        json!({"uid": 0, "gid": 0}),
        [main, main, main, inh, &["CAP_NET_BIND_SERVICE"]],
    );
    env.assert_clean();
}

#[test]
fn capabilities_non_root_ambient() {
    if !require_root() {
        return;
    }
    let env = Env::new("capabilities_non_root_ambient");
    // A non-root exec keeps only ambient caps in permitted/effective.
    let amb: &[&str] = &["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let bnd: &[&str] = &["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"];
    check_caps(
        &env,
        json!({"uid": 1000, "gid": 1000}),
        [bnd, amb, amb, amb, amb],
    );
    env.assert_clean();
}

#[test]
fn no_new_privileges() {
    if !require_root() {
        return;
    }
    let env = Env::new("no_new_privileges");
    let out = env.sh("cat /proc/self/status", |_| {});
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    let out = env.sh("cat /proc/self/status", |s| {
        s["process"]["noNewPrivileges"] = json!(false)
    });
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    env.assert_clean();
}

#[test]
fn path_lookup() {
    if !require_root() {
        return;
    }
    let env = Env::new("path_lookup");
    let out = env.run_args(&["echo", "found", "via", "PATH"]);
    out.assert_ok();
    assert_eq!(out.stdout, "found via PATH\n");
    // Only the spec's PATH counts: with PATH=/nowhere, "echo" is not found.
    env.config(|s| {
        set_args(s, &["echo", "x"]);
        s["process"]["env"] = json!(["PATH=/nowhere", format!("GPURUN_IT={}", env.marker)]);
    });
    env.create(&env.id())
        .assert_err("executable file not found in $PATH");
    env.assert_clean();
}

#[test]
fn sysctl_in_new_netns() {
    if !require_root() {
        return;
    }
    let env = Env::new("sysctl_in_new_netns");
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want = if host_before.trim() == "1" { "0" } else { "1" };
    let out = env.sh("cat /proc/sys/net/ipv4/ip_forward", |s| {
        s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    });
    assert_eq!(out.stdout.trim(), want);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
    env.assert_clean();
}

#[test]
fn hostname_and_domainname() {
    if !require_root() {
        return;
    }
    let env = Env::new("hostname_and_domainname");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = env.sh("hostname; cat /proc/sys/kernel/domainname", |s| {
        s["hostname"] = json!("box-one");
        s["domainname"] = json!("example.org");
    });
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "box-one");
    // runc 1.1.5 predates "domainname" (runtime-spec 1.1) and ignores it.
    if is_gpurun() {
        assert_eq!(lines[1], "example.org");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );
    env.assert_clean();
}
