//! process.terminal with --console-socket: the pty master arrives over the socket
//! (SCM_RIGHTS), the container's stdio is the pty slave and its controlling terminal.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use gpurun_integration::*;

#[test]
fn console_socket_gets_the_pty_master() {
    if !require_root() {
        return;
    }
    let env = Env::new("console_socket");
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    env.config(|s| {
        set_args(
            s,
            &[
                "sh",
                "-c",
                "tty; test -t 0 && echo stdin-is-a-tty; read line; echo got:$line",
            ],
        );
        s["process"]["terminal"] = json!(true);
    });
    let id = env.id();
    let create = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| receive_pty(&listener));
        let out = env.gpurun(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            env.bundle.to_str().unwrap(),
            &id,
        ]);
        (out, receiver.join().unwrap())
    });
    let (out, (name, mut master)) = create;
    out.assert_ok();
    assert_eq!(name, "/dev/ptmx", "runc sends the master's file name");
    env.gpurun(&["start", &id]).assert_ok();
    master.write_all(b"hello\n").unwrap();
    // Read what the container printed until it has answered.
    let seen = read_until(&mut master, "got:hello");
    assert!(seen.contains("/dev/pts/0"), "{seen:?}");
    assert!(seen.contains("stdin-is-a-tty"), "{seen:?}");
    assert!(seen.contains("got:hello"), "{seen:?}");
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn terminal_without_console_socket_fails_cleanly() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("terminal_no_socket");
    env.config(|s| s["process"]["terminal"] = json!(true));
    let id = env.id();
    env.create(&id).assert_err("console-socket");
    env.assert_clean();
}

/// A pty standing in for the user's terminal, `rows`×`cols`; returns (master, slave).
fn caller_terminal(rows: u16, cols: u16) -> (std::fs::File, OwnedFd) {
    let winsize = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&winsize), None).unwrap();
    (std::fs::File::from(pty.master), pty.slave)
}

/// Run `gpurun ARGS` with the pty's slave as its stdio, type `input` into the terminal, and
/// return (exit code, everything the terminal showed, the terminal's mode afterwards).
fn run_on_terminal(env: &Env, args: &[&str], input: &str) -> (i32, String, bool) {
    use std::process::{Command, Stdio};
    let (mut master, slave) = caller_terminal(33, 101);
    let canonical_before = nix::sys::termios::tcgetattr(&slave)
        .unwrap()
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ICANON);
    assert!(canonical_before);
    let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(&env.state)
        .args(args)
        .current_dir(&env.dir)
        .stdin(stdio(&slave))
        .stdout(stdio(&slave))
        .stderr(stdio(&slave))
        .spawn()
        .unwrap();
    master.write_all(input.as_bytes()).unwrap();
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once gpurun (the last holder of the slave besides us) has exited and we close ours.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&shown).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gpurun on a terminal did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let canonical_after = nix::sys::termios::tcgetattr(&slave)
        .unwrap()
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ICANON);
    drop(slave);
    let shown = reader.join().unwrap();
    (status.code().unwrap_or(-1), shown, canonical_after)
}

#[test]
fn run_with_terminal_attaches_the_callers_tty() {
    if !require_root() {
        return;
    }
    let env = Env::new("run_tty_attach");
    env.config(|s| {
        set_args(
            s,
            &[
                "sh",
                "-c",
                "tty; stty size; read line; echo got:$line; exit 3",
            ],
        );
        s["process"]["terminal"] = json!(true);
    });
    let id = env.id();
    let bundle = env.bundle.to_str().unwrap().to_string();
    let (code, shown, canonical) =
        run_on_terminal(&env, &["run", "--bundle", &bundle, &id], "hello\r");
    assert_eq!(code, 3, "terminal showed: {shown:?}");
    assert!(shown.contains("/dev/pts/0"), "{shown:?}");
    assert!(
        shown.contains("33 101"),
        "window size not copied: {shown:?}"
    );
    assert!(
        shown.contains("got:hello"),
        "input not passed on: {shown:?}"
    );
    assert!(canonical, "the caller's terminal was left in raw mode");
    env.assert_clean();
}

#[test]
fn exec_tty_attaches_the_callers_tty() {
    if !require_root() {
        return;
    }
    let env = Env::new("exec_tty_attach");
    env.config(|s| set_args(s, &["sleep", "100"]));
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    let (code, shown, canonical) = run_on_terminal(
        &env,
        &[
            "exec",
            "-t",
            &id,
            "sh",
            "-c",
            "tty; read line; echo got:$line; exit 4",
        ],
        "typed\r",
    );
    assert_eq!(code, 4, "terminal showed: {shown:?}");
    assert!(shown.contains("/dev/pts/"), "{shown:?}");
    assert!(shown.contains("got:typed"), "{shown:?}");
    assert!(canonical, "the caller's terminal was left in raw mode");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
