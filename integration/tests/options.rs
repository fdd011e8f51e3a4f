//! create/run options and runtime-wide guarantees: concurrent creates of one id, --preserve-fds,
//! --no-pivot, session keyrings, --log in text format, and host fds not leaking in.

use std::process::{Command, Stdio};

use gpurun_integration::*;

#[test]
fn concurrent_create_exactly_one_wins() {
    // gpurun-only: in runc 1.1.5 a losing concurrent create may remove the winner's state,
    // leaving its `runc init` and cgroups behind (seen in about one run of three).
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("concurrent_create");
    env.config(|s| set_args(s, &["sleep", "3600"]));
    let id = env.id();
    // stderr goes to files: the winner's init inherits it and keeps it open.
    let errs: Vec<_> = (0..4)
        .map(|k| env.dir.join(format!("create{k}.err")))
        .collect();
    let children: Vec<_> = errs
        .iter()
        .map(|err| {
            Command::new(bin())
                .args(["--root", env.state.to_str().unwrap(), "create", "--bundle"])
                .arg(&env.bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(err).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<_> = children
        .into_iter()
        .map(|mut c| c.wait().unwrap().success())
        .collect();
    assert_eq!(codes.iter().filter(|ok| **ok).count(), 1, "{codes:?}");
    for (ok, err) in codes.iter().zip(&errs) {
        let err = std::fs::read_to_string(err).unwrap();
        assert!(*ok || err.contains("already exists"), "{err}");
    }
    assert_eq!(env.status(&id).as_deref(), Some("created"));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn preserve_fds_passes_extra_fds_only() {
    if !require_root() {
        return;
    }
    let env = Env::new("preserve_fds");
    let secret = env.dir.join("fd3.txt");
    std::fs::write(&secret, "through fd 3\n").unwrap();
    let leaked = env.dir.join("fd4.txt");
    std::fs::write(&leaked, "must not be visible\n").unwrap();
    env.config(|s| {
        set_args(
            s,
            &[
                "sh",
                "-c",
                "cat <&3; ls /proc/self/fd; cat <&4 && echo LEAK",
            ],
        )
    });
    let run = |preserve: &str| {
        let (f3, f4) = (
            std::fs::File::open(&secret).unwrap(),
            std::fs::File::open(&leaked).unwrap(),
        );
        let mut cmd = Command::new(bin());
        cmd.args([
            "--root",
            env.state.to_str().unwrap(),
            "run",
            "--preserve-fds",
            preserve,
            "--bundle",
        ])
        .arg(&env.bundle)
        .arg(env.id());
        use std::os::fd::AsRawFd;
        sys::pass_fds_3_and_4(&mut cmd, f3.as_raw_fd(), f4.as_raw_fd());
        cmd.stdin(Stdio::null()).output().unwrap()
    };
    let out = run("1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("through fd 3"), "{stdout}");
    assert!(
        !stdout.contains("LEAK"),
        "fd 4 leaked into the container: {stdout}"
    );
    // Without --preserve-fds not even fd 3 gets through.
    let out = run("0");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("through fd 3"), "{stdout}");
    env.assert_clean();
}

#[test]
fn no_pivot_runs() {
    if !require_root() {
        return;
    }
    let env = Env::new("no_pivot");
    env.config(|s| set_args(s, &["sh", "-c", "echo rooted; ls /"]));
    let out = env.gpurun(&[
        "run",
        "--no-pivot",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &env.id(),
    ]);
    out.assert_ok();
    assert!(
        out.stdout.contains("rooted") && out.stdout.contains("proc"),
        "{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn session_keyring() {
    if !require_root() {
        return;
    }
    let env = Env::new("session_keyring");
    // /proc/keys is masked by default; unmask it to look at our keyrings.
    env.config(|s| {
        set_args(s, &["cat", "/proc/keys"]);
        s["linux"]["maskedPaths"] = json!([]);
    });
    let id = env.id();
    let out = env.run(&id);
    out.assert_ok();
    assert!(
        out.stdout.contains(&format!("_ses.{id}")),
        "{}",
        out.describe()
    );
    let id = env.id();
    let out = env.gpurun(&[
        "run",
        "--no-new-keyring",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    out.assert_ok();
    assert!(
        !out.stdout.contains(&format!("_ses.{id}")),
        "{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn text_log_format() {
    if !require_root() {
        return;
    }
    let env = Env::new("text_log");
    let log = env.dir.join("log.txt");
    let out = env.gpurun_with(
        &["--log", log.to_str().unwrap(), "--log-format", "text"],
        &["state", "ghost"],
    );
    out.assert_err("does not exist");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("level=error") && text.contains("does not exist"),
        "{text}"
    );
    env.assert_clean();
}

/// gpurun-only: a state dir without state.json (a create killed before it recorded anything)
/// is cleared by `delete --force`, after which the id can be used again.
#[test]
fn delete_force_clears_a_dead_create() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("dead_create");
    env.config(|s| set_args(s, &["true"]));
    let id = env.id();
    std::fs::create_dir_all(env.state.join(&id)).unwrap();
    env.create(&id).assert_err("already exists");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    assert!(!env.state.join(&id).exists());
    env.create_ok(&id);
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// systemd socket activation: with `LISTEN_PID` = the runtime's pid, its `LISTEN_FDS` fds
/// (from 3) reach the container, then the --preserve-fds ones, and the container is told
/// `LISTEN_FDS=N LISTEN_PID=1` (runc's behaviour).
#[test]
fn socket_activation_fds_are_passed_on() {
    if !require_root() {
        return;
    }
    let env = Env::new("listen_fds");
    for (n, text) in [(3, "listen socket"), (4, "preserved"), (5, "not passed")] {
        std::fs::write(env.dir.join(format!("fd{n}.txt")), format!("{text}\n")).unwrap();
    }
    env.config(|s| {
        set_args(
            s,
            &[
                "sh",
                "-c",
                "echo fds=$LISTEN_FDS pid=$LISTEN_PID; for n in 3 4 5; do \
                 if [ -e /proc/self/fd/$n ]; then echo \"fd$n=$(cat <&$n)\"; \
                 else echo fd$n=none; fi; done",
            ],
        )
    });
    let run = |listen_pid: &str| {
        let script = format!(
            "LISTEN_PID={listen_pid} LISTEN_FDS=1 exec \"$0\" --root \"$1\" run --preserve-fds 1 \
             --bundle \"$2\" \"$3\" 3<fd3.txt 4<fd4.txt 5<fd5.txt"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(bin())
            .arg(&env.state)
            .arg(&env.bundle)
            .arg(env.id())
            .current_dir(&env.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{:?}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        (lines, text)
    };
    // `$$` is the shell, which execs the runtime: the same pid. fd 3 is the listen socket,
    // fd 4 the preserved one, fd 5 is not passed.
    let (lines, text) = run("$$");
    assert_eq!(
        lines,
        [
            "fds=1 pid=1",
            "fd3=listen socket",
            "fd4=preserved",
            "fd5=none"
        ],
        "{text}"
    );
    // LISTEN_PID naming another process: nothing is passed and nothing announced; fd 3 is
    // then the --preserve-fds one, and fd 4 is not passed.
    let (lines, text) = run("1");
    assert_eq!(
        lines,
        ["fds= pid=", "fd3=listen socket", "fd4=none", "fd5=none"],
        "{text}"
    );
    env.assert_clean();
}
