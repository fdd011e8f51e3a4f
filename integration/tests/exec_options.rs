//! `exec` options engines pass that exec.rs does not cover: `--cap`, `-u` with `-g`,
//! `--no-new-privs`, `--preserve-fds`, `-t --console-socket` (containerd's and Podman's detached
//! tty exec), `--env` over the spec's variables, a bad `--cwd`, and containerd's
//! `exec --process F --detach --pid-file P`. Each is checked from inside the process.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::Duration;

use gpurun_integration::*;

/// `exec ID cat /proc/self/status` with `flags` before the id; the fields asked for.
#[track_caller]
fn exec_status(env: &Env, id: &str, flags: &[&str], fields: &[&str]) -> Vec<String> {
    let mut argv = vec!["exec"];
    argv.extend(flags);
    argv.extend([id, "cat", "/proc/self/status"]);
    let out = env.gpurun(&argv);
    out.assert_ok();
    fields
        .iter()
        .map(|f| {
            read_status_field(&out.stdout, f)
                .unwrap_or_else(|| panic!("no {f}:\n{}", out.describe()))
        })
        .collect()
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v, 16).unwrap()
}

const SPEC_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

#[test]
fn exec_cap_adds_capabilities() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_cap");
    let id = env.running(|_| {});
    let base = cap_mask(&SPEC_CAPS);
    let v = exec_status(&env, &id, &[], &["CapEff", "CapBnd"]);
    assert_eq!(
        (hex(&v[0]), hex(&v[1])),
        (base, base),
        "without --cap: {v:?}"
    );
    let added = ["CAP_SYS_ADMIN", "CAP_CHOWN"];
    let flags = ["--cap", added[0], "--cap", added[1]];
    let v = exec_status(&env, &id, &flags, &["CapEff", "CapPrm", "CapBnd"]);
    let want = base | cap_mask(&added);
    for (field, got) in ["CapEff", "CapPrm", "CapBnd"].iter().zip(&v) {
        assert_eq!(hex(got), want, "{field} with --cap: {v:?}");
    }
    // The init keeps the spec's set.
    let init = std::fs::read_to_string(format!("/proc/{}/status", env.pid(&id))).unwrap();
    assert_eq!(hex(&read_status_field(&init, "CapEff").unwrap()), base);
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn exec_user_with_additional_gids() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_additional_gids");
    let id = env.running(|_| {});
    let fields = ["Uid", "Gid", "Groups"];
    let v = exec_status(&env, &id, &["-u", "1000:1001"], &fields);
    assert_eq!(v[0], "1000\t1000\t1000\t1000", "{v:?}");
    assert_eq!(v[1], "1001\t1001\t1001\t1001", "{v:?}");
    assert_eq!(v[2], "", "uid 1000 has no groups in the rootfs: {v:?}");
    let flags = ["-u", "1000:1001", "-g", "10", "-g", "20"];
    let v = exec_status(&env, &id, &flags, &fields);
    assert_eq!(v[2], "10 20", "{v:?}");
    let long = ["--user", "1000:1001", "--additional-gids", "30"];
    let v = exec_status(&env, &id, &long, &fields);
    assert_eq!(v[0], "1000\t1000\t1000\t1000", "{v:?}");
    assert_eq!(v[1], "1001\t1001\t1001\t1001", "{v:?}");
    assert_eq!(v[2], "30", "{v:?}");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn exec_no_new_privs() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_no_new_privs");
    let id = env.running(|s| s["process"]["noNewPrivileges"] = json!(false));
    let v = exec_status(&env, &id, &[], &["NoNewPrivs"]);
    assert_eq!(v[0], "0", "spec says noNewPrivileges false");
    let v = exec_status(&env, &id, &["--no-new-privs"], &["NoNewPrivs"]);
    assert_eq!(v[0], "1", "--no-new-privs");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn exec_preserve_fds() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_preserve_fds");
    let id = env.running(|_| {});
    let (passed, extra) = (env.dir.join("passed"), env.dir.join("extra"));
    std::fs::write(&passed, "through fd 3\n").unwrap();
    std::fs::write(&extra, "fd 4\n").unwrap();
    let exec = |n: &str| {
        let (f3, f4) = (
            std::fs::File::open(&passed).unwrap(),
            std::fs::File::open(&extra).unwrap(),
        );
        let mut cmd = Command::new(bin());
        cmd.arg("--root").arg(&env.state);
        cmd.args(["exec", "--preserve-fds", n, &id, "sh", "-c"]);
        cmd.arg("cat <&3; cat <&4 && echo LEAK; true");
        sys::pass_fds_3_and_4(&mut cmd, f3.as_raw_fd(), f4.as_raw_fd());
        env.command_out(cmd)
    };
    let out = exec("1");
    out.assert_ok();
    assert!(out.stdout.contains("through fd 3"), "{}", out.describe());
    assert!(
        !out.stdout.contains("LEAK"),
        "fd 4 got through\n{}",
        out.describe()
    );
    let out = exec("0");
    out.assert_ok();
    assert!(
        !out.stdout.contains("through fd 3"),
        "fd 3 without --preserve-fds\n{}",
        out.describe()
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// containerd/Podman: `exec -d -t --console-socket S --pid-file P`; the pty master comes over
/// the socket, the process's stdio is the slave.
#[test]
fn exec_tty_with_console_socket() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_console_socket");
    let id = env.running(|_| {});
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let pid_file = env.dir.join("exec.pid");
    let script = "tty; test -t 1 && echo stdout-is-a-tty; read line; echo got:$line";
    let out = env.gpurun(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        script,
    ]);
    out.assert_ok();
    listener.set_nonblocking(true).unwrap();
    let (_, mut master) = receive_pty(&listener);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    master.write_all(b"hello\n").unwrap();
    let seen = read_until(&mut master, "got:hello");
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    assert!(seen.contains("stdout-is-a-tty"), "{seen:?}");
    assert!(seen.contains("got:hello"), "{seen:?}");
    let gone = poll(Duration::from_secs(5), || (!alive(pid)).then_some(()));
    assert!(gone.is_some(), "exec'd process {pid} did not exit");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn exec_env_overrides_the_spec_and_bad_cwd_fails() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_env_cwd");
    let id = env.running(|_| {});
    let out = env.gpurun(&["exec", "--env", "TERM=dumb", "--env", "NEW=1", &id, "env"]);
    out.assert_ok();
    let mut lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("GPURUN_IT="))
        .collect();
    lines.sort();
    let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    assert!(lines.contains(&path), "{}", out.describe());
    let term: Vec<&&str> = lines.iter().filter(|l| l.starts_with("TERM=")).collect();
    assert_eq!(
        term,
        [&"TERM=dumb"],
        "one TERM, the --env one\n{}",
        out.describe()
    );
    assert!(lines.contains(&"NEW=1"), "{}", out.describe());

    env.gpurun(&["exec", "--cwd", "/nonexistent", &id, "true"])
        .assert_err("nonexistent");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// containerd's exec: `exec --process F --detach --pid-file P ID`.
#[test]
fn exec_process_file_detached_with_pid_file() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_process_detached");
    let id = env.running(|_| {});
    let process = env.dir.join("process.json");
    let p = json!({
        "args": ["sh", "-c", "echo started $X $(pwd); exec sleep 100"],
        "cwd": "/etc", "env": ["X=y", "PATH=/bin", format!("GPURUN_IT={}", env.marker)],
        "user": {"uid": 0, "gid": 0}, "terminal": false
    });
    std::fs::write(&process, p.to_string()).unwrap();
    let pid_file = env.dir.join("exec.pid");
    let mut out = env.gpurun(&[
        "exec",
        "--process",
        process.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    out.assert_ok();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    env.wait_output(&mut out, "started y /etc");
    let comm = poll(Duration::from_secs(5), || {
        let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (c.trim() == "sleep").then_some(())
    });
    assert!(comm.is_some(), "pid file {pid} is not the exec'd sleep");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    let gone = poll(Duration::from_secs(5), || (!alive(pid)).then_some(()));
    assert!(gone.is_some(), "delete --force left the exec'd process");
    env.assert_clean();
}

/// `exec` without --process starts from the container's process as it was at create: a
/// config.json edited afterwards does not change it (the spec: "Any updates to config.json
/// after this step MUST NOT affect the container"). gpurun-only: runc 1.1.5 re-reads the
/// bundle's config.json for an exec without --process.
#[test]
fn exec_uses_the_process_as_at_create() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("exec_process_as_at_create");
    let id = env.running(|s| {
        s["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("AT_CREATE=yes"));
    });
    env.config(|s| {
        s["process"]["env"] = json!(["PATH=/bin", "AT_CREATE=edited"]);
        s["process"]["cwd"] = json!("/tmp");
    });
    let out = env.gpurun(&["exec", &id, "sh", "-c", "echo $AT_CREATE $(pwd)"]);
    assert_eq!(out.stdout, "yes /\n", "{}", out.describe());
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
