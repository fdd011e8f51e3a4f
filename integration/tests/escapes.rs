//! Escape-class regression tests: one per known class of runtime container escape, each
//! attacking from a real container and checking the host afterwards.

use gpurun_integration::*;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

/// The host's mount points right now (this test runs in the host's mount namespace).
fn host_mount_points() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    parse_mountinfo(&text)
        .into_iter()
        .map(|m| m.point)
        .collect()
}

/// `GPURUN --root STATE ARGS…` with the caller's fds 3 and 4 open on host directories and
/// not close-on-exec, as a careless engine (or an attacker controlling one) would leave them.
/// Returns what the container printed.
fn with_host_fds(env: &Env, args: &[&str]) -> String {
    let out = Command::new("sh")
        .args(["-c", r#"exec 3</ 4</etc; exec "$@""#, "sh"])
        .arg(bin())
        .arg("--root")
        .arg(&env.state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Lists the shell's open fds (`ls` from outside the shell, so no fd of the listing itself
/// shows); "LEAK" if a host directory is reachable through fd 3 or 4.
const FD_SCRIPT: &str = "ls -l /proc/$$/fd; ls /proc/$$/fd/3/ >/dev/null 2>&1 && echo LEAK3; \
     cd /proc/self/fd/4 2>/dev/null && echo LEAK4; true";

fn fd_numbers(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let arrow = words.iter().position(|w| *w == "->")?;
            Some(words.get(arrow.checked_sub(1)?)?.to_string())
        })
        .collect()
}

/// CVE-2024-21626: no host fd reaches the container, neither the runtime's own nor ones its
/// caller leaked to it; a cwd through /proc/self/fd/N or `..` resolves inside.
/// Prints `cwd-inside` when walking `..` up from the cwd meets the container's `/`,
/// `cwd-ESCAPED` when it ends at another root (a host directory), and exits 0 either way.
const CWD_INSIDE_SCRIPT: &str = "root=$(stat -c %d:%i /); d=.; prev=; \
    for i in $(seq 64); do cur=$(stat -c %d:%i $d) || exit 1; \
    if [ \"$cur\" = \"$root\" ]; then echo cwd-inside; exit 0; fi; \
    if [ \"$cur\" = \"$prev\" ]; then break; fi; prev=$cur; d=$d/..; done; \
    echo cwd-ESCAPED; ls -a .";

#[test]
fn cve_2024_21626_no_host_fd_reaches_the_container() {
    if !require_root() {
        return;
    }
    let env = Env::new("escape_fds");
    env.config(|s| set_args(s, &["sh", "-c", FD_SCRIPT]));
    let b = env.bundle.to_str().unwrap().to_string();
    let out = with_host_fds(&env, &["run", "--bundle", &b, &env.id()]);
    assert_eq!(fd_numbers(&out), ["0", "1", "2"], "{out}");
    assert!(!out.contains("LEAK"), "{out}");

    // exec into a running container, same leaked fds.
    env.config(|s| set_args(s, &["sleep", "3600"]));
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let out = with_host_fds(&env, &["exec", &id, "sh", "-c", FD_SCRIPT]);
    assert_eq!(fd_numbers(&out), ["0", "1", "2"], "{out}");
    assert!(!out.contains("LEAK"), "{out}");
    env.gpurun(&["delete", "--force", &id]).assert_ok();

    // process.cwd through a runtime fd: refused, or inside the container — never the host.
    // Inside, climbing `..` from the cwd reaches the container's `/` (the kernel stops `..` at
    // the process's root); from a host directory it ends at the host's root instead, which is
    // not the container's `/`.
    for n in 3..10 {
        let cwd = format!("/proc/self/fd/{n}");
        env.config(|s| {
            set_args(s, &["sh", "-c", CWD_INSIDE_SCRIPT]);
            s["process"]["cwd"] = json!(cwd);
        });
        let out = env.run(&env.id());
        if out.ok() {
            assert_eq!(
                out.stdout.lines().last(),
                Some("cwd-inside"),
                "{cwd} reached a host directory: {}",
                out.describe()
            );
        } else {
            assert!(
                !out.stdout.contains("cwd-"),
                "{cwd}: the process ran, then failed: {}",
                out.describe()
            );
        }
    }
    // The control: a cwd inside the container is seen as inside.
    env.config(|s| {
        set_args(s, &["sh", "-c", CWD_INSIDE_SCRIPT]);
        s["process"]["cwd"] = json!("/tmp");
    });
    let out = env.run(&env.id());
    out.assert_ok();
    assert_eq!(
        out.stdout.lines().last(),
        Some("cwd-inside"),
        "{}",
        out.describe()
    );
    // `..` cannot climb above the container's root: runc lands in "/", gpurun refuses the cwd.
    env.config(|s| {
        set_args(s, &["sh", "-c", "pwd; ls /"]);
        s["process"]["cwd"] = json!("/../../../..");
    });
    let out = env.run(&env.id());
    if out.ok() {
        assert!(out.stdout.starts_with("/\n"), "{}", out.describe());
        assert!(out.stdout.contains("bin\n"), "{}", out.describe());
    } else {
        out.assert_err("escapes the container's rootfs");
    }
    env.assert_clean();
}

/// CVE-2019-5736: while the runtime is inside the container (the init waiting for `start`,
/// an `exec` being set up), the container cannot open the host's runtime binary through
/// /proc/PID/exe, for reading or writing.
#[test]
fn cve_2019_5736_runtime_binary_is_out_of_reach() {
    if !require_root() {
        return;
    }
    let env = Env::new("escape_exe");
    let binary = std::fs::read(bin()).unwrap();
    env.config(|s| set_args(s, &["sleep", "3600"]));
    let id = env.id();
    env.create_ok(&id);
    // Not started: pid 1 of the container is still the runtime (waiting on its exec fifo).
    let script = "readlink /proc/1/exe && echo READLINK; cat /proc/1/exe >/dev/null && echo READ; \
                  (: >>/proc/1/exe) && echo WROTE; echo done";
    let out = env.gpurun(&["exec", &id, "sh", "-c", script]);
    out.assert_ok();
    assert!(out.stdout.ends_with("done\n"), "{}", out.describe());
    // runc 1.1 runs its init from a sealed memfd copy of itself: reading /proc/1/exe reads
    // that copy. gpurun's init is non-dumpable, so /proc/1/exe is closed altogether.
    let bad: &[&str] = if is_gpurun() {
        &["READLINK", "READ", "WROTE"]
    } else {
        &["WROTE"]
    };
    for bad in bad {
        assert!(
            !out.stdout.lines().any(|l| l == *bad),
            "{bad}: the container reached the runtime's /proc/1/exe\n{}",
            out.describe()
        );
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    assert!(
        std::fs::read(bin()).unwrap() == binary,
        "runtime binary changed"
    );
    env.assert_clean();
}

/// CVE-2021-30465: a mount destination that is (or goes through) a symlink to `/` or out of
/// the rootfs with `../..` is resolved inside the rootfs or refused; no host path gains a mount.
#[test]
fn cve_2021_30465_symlinked_mount_destinations_stay_inside() {
    if !require_root() {
        return;
    }
    let env = Env::new("escape_mountdest");
    let host_dir = env.dir.join("hostdir");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("marker"), "host").unwrap();
    let rootfs = env.rootfs();
    let up = "../".repeat(12);
    let rel = format!("{up}{}", host_dir.to_str().unwrap().trim_start_matches('/'));
    symlink(&rel, rootfs.join("climb")).unwrap();
    symlink(&host_dir, rootfs.join("abs")).unwrap();
    symlink("/", rootfs.join("rootlink")).unwrap();
    let before = host_mount_points();
    // Where each destination lands when resolved inside the rootfs (symlinks followed as if
    // the rootfs were `/`).
    let inside = host_dir.to_str().unwrap().to_string();
    let landing = [
        ("/climb", inside.clone()),
        ("/abs", inside.clone()),
        ("/rootlink/tmp", "/tmp".to_string()),
        ("/climb/sub", format!("{inside}/sub")),
    ];
    for (dest, lands) in landing {
        env.config(|s| {
            set_args(s, &["sh", "-c", "cat /proc/self/mountinfo"]);
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
            }));
        });
        let out = env.run(&env.id());
        if out.ok() {
            // Landed inside: at the destination resolved under the container's root, never
            // on the host dir.
            let m = find_mount(&out.stdout, &lands);
            assert!(
                m.as_ref()
                    .is_some_and(|m| m.fstype == "tmpfs" && m.has_opt("nosuid")),
                "{dest}: no tmpfs at {lands} in the container: {}",
                out.describe()
            );
        }
        assert_eq!(
            host_mount_points(),
            before,
            "{dest}: the host gained a mount"
        );
        assert_eq!(
            std::fs::read_to_string(host_dir.join("marker")).unwrap(),
            "host"
        );
        assert_eq!(std::fs::read_dir(&host_dir).unwrap().count(), 1);
    }
    env.assert_clean();
}

/// maskedPaths, readonlyPaths and a bind-mount destination planted as symlinks to host files:
/// the runtime must not mount over (or remount read-only) anything on the host.
#[test]
fn planted_symlinks_cannot_redirect_masks_or_binds() {
    if !require_root() {
        return;
    }
    let env = Env::new("escape_masks");
    let host_file = env.dir.join("host-secret");
    std::fs::write(&host_file, "secret").unwrap();
    let host_dir = env.dir.join("host-rw");
    std::fs::create_dir(&host_dir).unwrap();
    let rootfs = env.rootfs();
    let up = "../".repeat(12);
    let abs = |p: &Path| format!("{up}{}", p.to_str().unwrap().trim_start_matches('/'));
    symlink(abs(&host_file), rootfs.join("etc/masked-link")).unwrap();
    symlink(abs(&host_dir), rootfs.join("etc/ro-link")).unwrap();
    symlink(&host_file, rootfs.join("etc/abs-link")).unwrap();
    let before = host_mount_points();
    env.config(|s| {
        set_args(
            s,
            &[
                "sh",
                "-c",
                "cat /etc/masked-link; cat /etc/abs-link; echo end",
            ],
        );
        s["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .extend([json!("/etc/masked-link"), json!("/etc/abs-link")]);
        s["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/etc/ro-link"));
    });
    let out = env.run(&env.id());
    assert!(!out.stdout.contains("secret"), "{}", out.describe());
    assert_eq!(host_mount_points(), before, "the host gained a mount");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "secret");
    std::fs::write(host_dir.join("still-writable"), "x").unwrap();
    // A bind mount of a host file onto a planted /dev/null-style link to a host file.
    env.config(|s| {
        set_args(s, &["sh", "-c", "echo pwned > /etc/abs-link; echo rc=$?"]);
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/etc/abs-link", "type": "bind", "source": "/dev/null",
            "options": ["bind"]
        }));
    });
    let _ = env.run(&env.id());
    assert_eq!(host_mount_points(), before, "the host gained a mount");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "secret");
    env.assert_clean();
}

/// The default spec's capabilities: no mount, no module loading, and a setuid or
/// file-capability binary gains nothing under no_new_privs.
#[test]
fn default_capabilities_hold() {
    if !require_root() {
        return;
    }
    let env = Env::new("escape_caps");
    let script = "mount -t tmpfs t /tmp && echo MOUNTED; unshare -m true && echo UNSHARED; \
                  grep -E '^Cap(Eff|Bnd)' /proc/self/status; \
                  echo junk > /dev/shm/m.ko; insmod /dev/shm/m.ko; echo insmod=$?";
    let out = env.sh(script, |_| {});
    assert!(!out.stdout.contains("MOUNTED") && !out.stdout.contains("UNSHARED"));
    // busybox words EPERM from mount(2) as "permission denied (are you root?)".
    assert!(
        out.stderr.contains("mount: permission denied")
            && out
                .stderr
                .contains("unshare(0x20000): Operation not permitted"),
        "{}",
        out.describe()
    );
    let defaults = cap_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for set in ["CapEff", "CapBnd"] {
        let want = format!("{set}:\t{defaults:016x}");
        assert!(out.stdout.contains(&want), "{want}\n{}", out.describe());
    }
    // Without CAP_SYS_MODULE init_module fails with EPERM before looking at the module;
    // a kernel built without module support answers ENOSYS to everyone.
    if Path::new("/proc/modules").exists() {
        assert!(out.stdout.contains("insmod=1"), "{}", out.describe());
        assert!(out
            .stderr
            .contains("insmod: can't insert '/dev/shm/m.ko': Operation not permitted"));
    } else {
        println!("note: this kernel has no module support; CAP_SYS_MODULE is checked via CapBnd");
    }
    // A setuid-root copy of busybox and one with file capabilities, run by uid 1000.
    let rootfs = env.rootfs();
    let suid = rootfs.join("bin/busybox-suid");
    std::fs::copy(rootfs.join("bin/busybox"), &suid).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let fcap = rootfs.join("bin/busybox-fcap");
    std::fs::copy(rootfs.join("bin/busybox"), &fcap).unwrap();
    // CAP_KILL is in the default bounding set: only no_new_privs keeps it from the file.
    let has_setcap = Command::new("setcap")
        .args(["cap_kill+ep"])
        .arg(&fcap)
        .status()
        .is_ok_and(|s| s.success());
    let script = "/bin/busybox-suid grep -E '^(Uid|CapEff)' /proc/self/status; \
                  [ -u /bin/busybox-suid ] && echo suid-bit-set; \
                  /bin/busybox-fcap grep CapEff /proc/self/status";
    // The process holds no capability itself (with permitted ones, a file capability it
    // already has may legitimately be kept): under no_new_privs it must gain none.
    let out = env.sh(script, |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        s["process"]["noNewPrivileges"] = json!(true);
        for set in ["effective", "permitted", "inheritable", "ambient"] {
            s["process"]["capabilities"][set] = json!([]);
        }
    });
    assert!(out.stdout.contains("suid-bit-set"), "{}", out.describe());
    for line in out.stdout.lines() {
        if let Some(v) = line.strip_prefix("Uid:") {
            assert!(v.split_whitespace().all(|u| u == "1000"), "{line}");
        }
        if let Some(v) = line.strip_prefix("CapEff:") {
            assert_eq!(v.trim(), "0000000000000000", "{}", out.describe());
        }
    }
    if has_setcap {
        assert_eq!(
            out.stdout.matches("CapEff:").count(),
            2,
            "{}",
            out.describe()
        );
    } else {
        println!("note: setcap unavailable, file-capability case not exercised");
    }
    env.assert_clean();
}
