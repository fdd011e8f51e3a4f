//! Checkpoint and restore of a container with a terminal (`process.terminal`, a
//! `--console-socket` at create and again at restore): the restored shell answers on the pty
//! master the restore's console socket receives (CRIU hands gpurun the pty's master through
//! its `orphan-pts-master` notification, as runc gets it). Needs a working CRIU (`criu check`):
//! the QEMU VM's stock kernel, not our hosts' (see integration/vm/README.md).

use std::io::Write;
use std::os::unix::net::UnixListener;

use gpurun_integration::*;

/// Run `args` (a runtime command given `--console-socket SOCK`) while receiving the pty
/// master on SOCK.
fn with_console(env: &Env, sock_name: &str, args: &[&str]) -> (Out, std::fs::File) {
    let sock = env.dir.join(sock_name);
    let listener = UnixListener::bind(&sock).unwrap();
    let sock = sock.to_str().unwrap().to_string();
    let mut full = vec![args[0], "--console-socket", &sock];
    full.extend_from_slice(&args[1..]);
    let (out, received) = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| receive_pty(&listener));
        let out = env.gpurun(&full);
        (out, receiver.join())
    });
    let (_name, master) = received.unwrap_or_else(|_| panic!("no pty master: {}", out.describe()));
    (out, master)
}

#[test]
fn restore_with_a_terminal_sends_a_new_master() {
    if !criu_usable() {
        return;
    }
    let env = Env::new("restore_terminal");
    env.config(|s| {
        set_args(s, &["sh", "-c", "while read l; do echo got:$l; done"]);
        s["process"]["terminal"] = json!(true);
    });
    let id = env.id();
    let bundle = env.bundle.to_str().unwrap();
    let (out, mut master) = with_console(&env, "c1.sock", &["create", "--bundle", bundle, &id]);
    out.assert_ok();
    env.gpurun(&["start", &id]).assert_ok();
    master.write_all(b"one\n").unwrap();
    let seen = read_until(&mut master, "got:one");
    assert!(seen.contains("got:one"), "{seen:?}");

    let images = env.dir.join("images");
    let images = images.to_str().unwrap();
    env.gpurun(&["checkpoint", "--image-path", images, &id])
        .assert_ok();
    assert!(
        env.state(&id).is_none(),
        "{id} still there after checkpoint"
    );
    drop(master);

    let args = [
        "restore",
        "-d",
        "--image-path",
        images,
        "--bundle",
        bundle,
        &id,
    ];
    let (out, mut master) = with_console(&env, "c2.sock", &args);
    out.assert_ok();
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    master.write_all(b"two\n").unwrap();
    let seen = read_until(&mut master, "got:two");
    assert!(
        seen.contains("got:two"),
        "the restored shell did not answer: {seen:?}"
    );

    env.gpurun(&["kill", &id, "KILL"]).assert_ok();
    env.wait_status(&id, "stopped");
    env.gpurun(&["delete", &id]).assert_ok();
    env.assert_clean();
}
