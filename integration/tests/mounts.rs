//! Mounts, masked/readonly paths and devices, checked from inside the container.

use gpurun_integration::*;

fn add_mount(spec: &mut Value, m: Value) {
    spec["mounts"].as_array_mut().unwrap().push(m);
}

#[track_caller]
fn mount_at(out: &Out, point: &str) -> Mount {
    find_mount(&out.stdout, point).unwrap_or_else(|| panic!("no mount at {point}\n{}", out.stdout))
}

#[test]
fn default_mounts() {
    if !require_root() {
        return;
    }
    let env = Env::new("default_mounts");
    let out = env.sh("cat /proc/self/mountinfo", |_| {});
    let root = mount_at(&out, "/");
    assert!(root.has_opt("ro"), "root.readonly: {root:?}");
    assert_eq!(mount_at(&out, "/proc").fstype, "proc");
    let sys = mount_at(&out, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    assert!(sys.has_opt("ro"), "{sys:?}");
    let dev = mount_at(&out, "/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert!(
        dev.has_opt("nosuid") && dev.super_opts.contains(&"mode=755".into()),
        "{dev:?}"
    );
    let pts = mount_at(&out, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    assert!(
        pts.has_opt("noexec") && pts.super_opts.contains(&"ptmxmode=666".into()),
        "{pts:?}"
    );
    let shm = mount_at(&out, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    assert!(
        ["nosuid", "nodev", "noexec"].iter().all(|o| shm.has_opt(o)),
        "{shm:?}"
    );
    assert_eq!(mount_at(&out, "/dev/mqueue").fstype, "mqueue");
    // /sys/fs/cgroup is mounted, and every cgroup filesystem under it is read-only.
    mount_at(&out, "/sys/fs/cgroup");
    let cg: Vec<Mount> = parse_mountinfo(&out.stdout)
        .into_iter()
        .filter(|m| m.point.starts_with("/sys/fs/cgroup") && m.fstype.starts_with("cgroup"))
        .collect();
    assert!(
        !cg.is_empty(),
        "no cgroup fs under /sys/fs/cgroup\n{}",
        out.stdout
    );
    assert!(cg.iter().all(|m| m.has_opt("ro")), "{cg:#?}");
    env.assert_clean();
}

#[test]
fn tmpfs_size_mode_and_flags() {
    if !require_root() {
        return;
    }
    let env = Env::new("tmpfs_size_mode_and_flags");
    let out = env.sh(
        "cat /proc/self/mountinfo; echo MODE=$(stat -c %a /data)",
        |s| {
            add_mount(
                s,
                json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=0750"]}),
            );
        },
    );
    let m = mount_at(&out, "/data");
    assert_eq!(m.fstype, "tmpfs");
    assert!(
        ["nosuid", "nodev", "noexec"].iter().all(|o| m.has_opt(o)),
        "{m:?}"
    );
    assert!(m.super_opts.contains(&"size=1024k".into()), "{m:?}");
    assert!(out.stdout.contains("MODE=750"), "{}", out.stdout);
    env.assert_clean();
}

#[test]
fn devpts_and_ptmx() {
    if !require_root() {
        return;
    }
    let env = Env::new("devpts_and_ptmx");
    let out = env.sh(
        "readlink /dev/ptmx; stat -c '%F' /dev/pts/ptmx; cat /proc/self/mountinfo",
        |_| {},
    );
    assert_eq!(
        out.stdout.lines().next(),
        Some("pts/ptmx"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("character special file"),
        "{}",
        out.stdout
    );
    let pts = mount_at(&out, "/dev/pts");
    // newinstance: a private devpts instance, not the host's.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    match parse_mountinfo(&host)
        .into_iter()
        .find(|m| m.fstype == "devpts")
    {
        Some(host_pts) => assert_ne!(
            host_pts.dev, pts.dev,
            "container reuses the host devpts: {pts:?}"
        ),
        None => skip("part: newinstance devpts vs the host's (the host has no devpts mounted)"),
    }
    env.assert_clean();
}

fn host_dir(env: &Env) -> std::path::PathBuf {
    let d = env.dir.join("hostdir");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("file"), "host-content\n").unwrap();
    d
}

#[test]
fn bind_mounts_ro_and_rw() {
    if !require_root() {
        return;
    }
    let env = Env::new("bind_mounts_ro_and_rw");
    let d = host_dir(&env);
    let src = d.to_str().unwrap();
    let script = "cat /ro/file; cat /rro/file; touch /ro/new && echo RO-WRITABLE; \
                  touch /rro/new && echo RRO-WRITABLE; echo hi > /rw/fromctr; cat /proc/self/mountinfo";
    let out = env.sh(script, |s| {
        add_mount(s, json!({"destination": "/ro", "type": "bind", "source": src, "options": ["bind", "ro"]}));
        add_mount(s, json!({"destination": "/rro", "type": "bind", "source": src, "options": ["rbind", "ro"]}));
        add_mount(s, json!({"destination": "/rw", "type": "bind", "source": src, "options": ["rbind", "rw"]}));
    });
    assert_eq!(
        out.stdout.matches("host-content").count(),
        2,
        "{}",
        out.describe()
    );
    assert!(!out.stdout.contains("WRITABLE"), "{}", out.describe());
    assert!(mount_at(&out, "/ro").has_opt("ro") && mount_at(&out, "/rro").has_opt("ro"));
    assert!(!mount_at(&out, "/rw").has_opt("ro"));
    assert_eq!(std::fs::read_to_string(d.join("fromctr")).unwrap(), "hi\n");
    assert!(!d.join("new").exists());
    env.assert_clean();
}

#[test]
fn file_bind_mount() {
    if !require_root() {
        return;
    }
    let env = Env::new("file_bind_mount");
    let f = env.dir.join("hostfile");
    std::fs::write(&f, "file-bind-ok\n").unwrap();
    let out = env.sh(
        "cat /etc/hostfile; test -f /etc/hostfile && echo IS-FILE",
        |s| {
            add_mount(
                s,
                json!({"destination": "/etc/hostfile", "type": "bind",
            "source": f.to_str().unwrap(), "options": ["bind", "ro"]}),
            );
        },
    );
    assert!(
        out.stdout.contains("file-bind-ok") && out.stdout.contains("IS-FILE"),
        "{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn relative_destination() {
    if !require_root() {
        return;
    }
    let env = Env::new("relative_destination");
    let out = env.sh("cat /proc/self/mountinfo", |s| {
        add_mount(
            s,
            json!({"destination": "reldest", "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    assert_eq!(mount_at(&out, "/reldest").fstype, "tmpfs");
    env.assert_clean();
}

#[test]
fn readonly_root_with_writable_tmp() {
    if !require_root() {
        return;
    }
    let env = Env::new("readonly_root_with_writable_tmp");
    let out = env.sh(
        "touch /rootfile && echo ROOT-WRITABLE; touch /tmp/ok && echo TMP-OK",
        |s| {
            add_mount(
                s,
                json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}),
            );
        },
    );
    assert!(
        !out.stdout.contains("ROOT-WRITABLE") && out.stdout.contains("TMP-OK"),
        "{}",
        out.describe()
    );
    assert!(!env.rootfs().join("rootfile").exists());
    // And with readonly false, / is writable (and the write lands in the rootfs).
    env.sh("touch /rootfile", |s| s["root"]["readonly"] = json!(false));
    assert!(env.rootfs().join("rootfile").exists());
    env.assert_clean();
}

#[test]
fn rootfs_propagation() {
    if !require_root() {
        return;
    }
    let env = Env::new("rootfs_propagation");
    // runc 1.1.5 applies rootfsPropagation before it bind-mounts the rootfs
    // (from a parent it has just made private), so "shared" never reaches the
    // container's "/" there; later runc versions and gpurun apply it after pivot_root.
    if is_gpurun() {
        let out = env.sh("cat /proc/self/mountinfo", |s| {
            s["linux"]["rootfsPropagation"] = json!("shared")
        });
        let root = mount_at(&out, "/");
        assert!(
            root.tags.iter().any(|t| t.starts_with("shared:")),
            "{root:?}"
        );
    }
    let out = env.sh("cat /proc/self/mountinfo", |s| {
        s["linux"]["rootfsPropagation"] = json!("private")
    });
    let root = mount_at(&out, "/");
    assert!(
        !root
            .tags
            .iter()
            .any(|t| t.starts_with("shared:") || t.starts_with("master:")),
        "{root:?}"
    );
    env.assert_clean();
}

#[test]
fn masked_and_readonly_paths() {
    if !require_root() {
        return;
    }
    let env = Env::new("masked_and_readonly_paths");
    // Mask a file and a directory that exist on every kernel, plus the defaults.
    let out = env.sh(
        "echo KEYS=$(cat /proc/keys | wc -c); echo TL=$(cat /proc/timer_list | wc -c); \
         echo DRV=$(ls /proc/driver | wc -l); echo 1 > /proc/sys/kernel/domainname && echo SYS-WRITABLE; \
         cat /proc/self/mountinfo",
        |s| {
            s["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/proc/driver"));
        },
    );
    assert!(
        std::path::Path::new("/proc/driver").exists(),
        "host lacks /proc/driver"
    );
    for want in ["KEYS=0", "TL=0", "DRV=0"] {
        assert!(out.stdout.contains(want), "{want}\n{}", out.describe());
    }
    assert!(!out.stdout.contains("SYS-WRITABLE"), "{}", out.describe());
    assert!(mount_at(&out, "/proc/sys").has_opt("ro"));
    assert!(mount_at(&out, "/proc/driver").has_opt("ro"));
    if std::path::Path::new("/proc/acpi").is_dir() {
        assert!(mount_at(&out, "/proc/acpi").has_opt("ro"));
    } else {
        skip("part: /proc/acpi read-only (the kernel has no /proc/acpi)");
    }
    env.assert_clean();
}

#[test]
fn default_devices() {
    if !require_root() {
        return;
    }
    let env = Env::new("default_devices");
    let devs = [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ];
    let mut script = String::new();
    for (d, _) in devs {
        script += &format!("echo {d} $(stat -c '%F %t:%T %a' /dev/{d}); ");
    }
    script += "for l in fd stdin stdout stderr; do echo $l '->' $(readlink /dev/$l); done; test -d /dev/shm && echo SHM-DIR";
    let out = env.sh(&script, |_| {});
    for (d, mm) in devs {
        let (maj, min) = mm.split_once(':').unwrap();
        let hex = format!(
            "{:x}:{:x}",
            maj.parse::<u32>().unwrap(),
            min.parse::<u32>().unwrap()
        );
        let want = format!("{d} character special file {hex} 666");
        assert!(
            out.stdout.lines().any(|l| l == want),
            "{want}\n{}",
            out.stdout
        );
    }
    for want in [
        "fd -> /proc/self/fd",
        "stdin -> /proc/self/fd/0",
        "stdout -> /proc/self/fd/1",
        "stderr -> /proc/self/fd/2",
        "SHM-DIR",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == want),
            "{want}\n{}",
            out.stdout
        );
    }
    env.assert_clean();
}

#[test]
fn linux_devices_entry() {
    if !require_root() {
        return;
    }
    let env = Env::new("linux_devices_entry");
    let out = env.sh("stat -c '%F %t:%T %a %u %g' /dev/mydev", |s| {
        s["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3,
            "fileMode": 0o640, "uid": 1000, "gid": 1001}]);
    });
    assert_eq!(
        out.stdout.trim(),
        "character special file 1:3 640 1000 1001",
        "{}",
        out.describe()
    );
    env.assert_clean();
}

/// `ctr run --mount type=cgroup,…` adds a second cgroup mount on /sys/fs/cgroup to a spec that
/// has one already; with and without a cgroup namespace both must mount (read-only here).
#[test]
fn cgroup_mounted_twice() {
    if !require_root() {
        return;
    }
    let env = Env::new("cgroup_twice");
    for cgroupns in [true, false] {
        let out = env.sh(
            "grep -c ' /sys/fs/cgroup' /proc/self/mountinfo; touch /sys/fs/cgroup/x 2>/dev/null || echo read-only",
            |s| {
                s["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                    "options": ["ro", "nosuid", "noexec", "nodev"]
                }));
                let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
                ns.retain(|n| n["type"] != "cgroup");
                if cgroupns {
                    ns.push(json!({"type": "cgroup"}));
                }
            },
        );
        assert!(
            out.stdout.contains("read-only"),
            "cgroupns={cgroupns}: {}",
            out.describe()
        );
    }
    env.assert_clean();
}
