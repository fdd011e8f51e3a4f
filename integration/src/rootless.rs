//! A real unprivileged user for rootless tests: created once (idempotent, with /etc/subuid and
//! /etc/subgid ranges), and commands run as that user with a private `XDG_RUNTIME_DIR`.

use crate::env::Env;
use crate::util::{bin, is_gpurun, require_root, Out};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

pub const ROOTLESS_USER: &str = "gpurun-rootless";

#[derive(Debug, Clone)]
pub struct RootlessUser {
    pub uid: u32,
    pub gid: u32,
    /// The user's first /etc/subuid (= subgid) range: (start, count).
    pub subids: (u32, u32),
}

/// The user's range in an /etc/subuid-style file, adding one past every other range if missing.
fn ensure_subids(file: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut end = 100_000u32;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let (Some(start), Some(count)) = (
            f.get(1).and_then(|s| s.parse::<u32>().ok()),
            f.get(2).and_then(|s| s.parse::<u32>().ok()),
        ) else {
            continue;
        };
        if f[0] == ROOTLESS_USER {
            return (start, count);
        }
        end = end.max(start + count);
    }
    let line = format!("{ROOTLESS_USER}:{end}:65536\n");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .unwrap();
    std::io::Write::write_all(&mut f, line.as_bytes()).unwrap();
    (end, 65536)
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id")
        .args([flag, ROOTLESS_USER])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The test user, or None (with the reason printed) where the machine cannot run rootless
/// containers: not root (cannot create the user), or unprivileged user namespaces are off.
pub fn rootless_user() -> Option<RootlessUser> {
    if !require_root() {
        return None;
    }
    std::fs::create_dir_all("/tmp/gpurun-it").unwrap();
    let lock = std::fs::File::create("/tmp/gpurun-it/.rootless-user.lock").unwrap();
    // Test binaries run in parallel: one creates the user, the others wait.
    crate::sys::lock_exclusive(&lock).expect("flock");
    if id_of("-u").is_none() {
        let st = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-d", "/nonexistent", ROOTLESS_USER])
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {ROOTLESS_USER} failed");
    }
    let subids = ensure_subids("/etc/subuid");
    assert_eq!(
        ensure_subids("/etc/subgid"),
        subids,
        "subuid/subgid ranges differ"
    );
    let user = RootlessUser {
        uid: id_of("-u").unwrap(),
        gid: id_of("-g").unwrap(),
        subids,
    };
    // A copy of the runtime the user can reach (the repository may be under a 0700 dir).
    // Made under the lock, while no thread of ours forks (a child holding the file open for
    // writing would make exec fail with ETXTBSY), and renamed into place atomically.
    let tmp = runtime_copy().with_extension(std::process::id().to_string());
    std::fs::create_dir_all(runtime_copy().parent().unwrap()).unwrap();
    std::fs::copy(bin(), &tmp).unwrap();
    std::fs::rename(&tmp, runtime_copy()).unwrap();
    drop(lock);
    for knob in [
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/user/max_user_namespaces",
    ] {
        if std::fs::read_to_string(knob).is_ok_and(|v| v.trim() == "0") {
            crate::skip::skip(&format!(
                "unprivileged user namespaces are off ({knob} is 0)"
            ));
            return None;
        }
    }
    let probe = user_command(&user).args(["unshare", "-U", "true"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        crate::skip::skip(&format!(
            "{ROOTLESS_USER} cannot create a user namespace: {probe:?}"
        ));
        return None;
    }
    Some(user)
}

/// `setpriv` to the user: its uid/gid, no supplementary groups, no capabilities left.
fn user_command(user: &RootlessUser) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .args(["--clear-groups", "--inh-caps=-all", "--"]);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
    cmd
}

/// The directory under `$XDG_RUNTIME_DIR` where the runtime keeps a rootless caller's state:
/// `gpurun` for gpurun, `runc` for runc (whatever the file name of the copy the user runs).
fn rootless_state_dir_name() -> &'static str {
    if is_gpurun() {
        "gpurun"
    } else {
        "runc"
    }
}

/// A rootless Env: the bundle dir is the user's (`spec` writes there) and its
/// `XDG_RUNTIME_DIR` is `<dir>/xdg` (so its state root is `<dir>/xdg/gpurun`, or
/// `<dir>/xdg/runc` under runc: [`rootless_state_dir_name`]).
pub fn rootless_env(name: &str, user: &RootlessUser) -> Env {
    let mut env = Env::new(name);
    let xdg = env.dir.join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    for p in [&xdg, &env.bundle, &env.dir.join("out")] {
        std::os::unix::fs::chown(p, Some(user.uid), Some(user.gid)).unwrap();
    }
    env.state = xdg.join(rootless_state_dir_name());
    env
}

fn runtime_copy() -> PathBuf {
    PathBuf::from("/tmp/gpurun-it/.rootless/gpurun")
}

/// Run the runtime copy as the user, in the bundle dir, with its XDG_RUNTIME_DIR
/// (`xdg: false`: none, to see the default root refused) and no `--root`.
pub fn as_user(env: &Env, user: &RootlessUser, xdg: bool, args: &[&str]) -> Out {
    as_user_with(env, user, xdg, &[], args)
}

/// [`as_user`] with `vars` added to the user's environment.
pub fn as_user_with(
    env: &Env,
    user: &RootlessUser,
    xdg: bool,
    vars: &[(&str, &str)],
    args: &[&str],
) -> Out {
    let mut cmd = user_command(user);
    cmd.envs(vars.iter().copied());
    if xdg {
        cmd.env("XDG_RUNTIME_DIR", env.dir.join("xdg"));
    }
    cmd.arg(runtime_copy()).args(args).current_dir(&env.bundle);
    env.command_out(cmd)
}
