//! Bad input beyond the spec's own fields: a full state filesystem, an unreadable
//! config.json, a rootfs that is a file, a console socket that refuses, a hook that hangs.
//! Each gets a clear error and leaves nothing: no state, cgroup, mount or process.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use gpurun_integration::*;

/// `create` must fail with `needle` (gpurun's wording; another runtime must only fail), and
/// `state` then says it does not exist; `root`: a state root other than the Env's.
#[track_caller]
fn create_fails_with(env: &Env, root: Option<&std::path::Path>, needle: &str) -> String {
    let id = env.id();
    let runtime = |args: &[&str]| {
        let mut cmd = Command::new(bin());
        cmd.arg("--root").arg(root.unwrap_or(&env.state)).args(args);
        env.command_out(cmd)
    };
    let out = runtime(&["create", "--bundle", env.bundle.to_str().unwrap(), &id]);
    match is_gpurun() {
        true => out.assert_err(needle),
        false => out.assert_fail(),
    };
    runtime(&["state", &id]).assert_err("does not exist");
    id
}

/// A tmpfs of 64 KiB, filled up, mounted for the test and unmounted whatever happens.
struct FullFs(std::path::PathBuf);

impl FullFs {
    fn new(at: std::path::PathBuf) -> FullFs {
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "gpurun-it-full"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs at {}", at.display());
        let fs = FullFs(at);
        let filler = fs.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        fs
    }
}

impl Drop for FullFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn state_root_on_a_full_filesystem() {
    if !require_root() {
        return;
    }
    let env = Env::new("bad_full_root");
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
    });
    let full = FullFs::new(env.dir.join("full"));
    let root = full.0.join("root");
    create_fails_with(&env, Some(&root), "no space left on device");
    // Nothing in the state root but the root itself (made before the disk filled).
    let left: Vec<_> = std::fs::read_dir(&full.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler" && n != "root")
        .collect();
    assert!(left.is_empty(), "left on the full fs: {left:?}");
    let in_root = std::fs::read_dir(&root).map(|d| d.count()).unwrap_or(0);
    assert_eq!(in_root, 0, "state left under {}", root.display());
    drop(full);
    env.assert_clean();
}

#[test]
fn unreadable_config() {
    if !require_root() {
        return;
    }
    let env = Env::new("bad_unreadable_config");
    env.config(|s| set_args(s, &["true"]));
    let config = env.bundle.join("config.json");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything: without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH it cannot.
    let id = env.id();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--bounding-set=-dac_override,-dac_read_search",
        "--inh-caps=-all",
    ])
    .arg(bin())
    .arg("--root")
    .arg(&env.state)
    .args(["create", "--bundle", env.bundle.to_str().unwrap(), &id]);
    let out = env.command_out(cmd);
    match is_gpurun() {
        true => out.assert_err("permission denied"),
        false => out.assert_fail(),
    };
    if is_gpurun() {
        out.assert_err("config.json");
    }
    env.gpurun(&["state", &id]).assert_err("does not exist");
    // A directory where the file should be.
    std::fs::remove_file(&config).unwrap();
    std::fs::create_dir(&config).unwrap();
    create_fails_with(&env, None, "config.json");
    std::fs::remove_dir(&config).unwrap();
    env.assert_clean();
}

#[test]
fn rootfs_is_a_file() {
    if !require_root() {
        return;
    }
    let env = Env::new("bad_rootfs_file");
    std::fs::write(env.bundle.join("rootfs-file"), "not a directory").unwrap();
    env.config(|s| {
        set_args(s, &["true"]);
        s["root"]["path"] = json!("rootfs-file");
        s["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
    });
    create_fails_with(&env, None, "not a directory");
    env.assert_clean();
}

#[test]
fn console_socket_refuses() {
    if !require_root() {
        return;
    }
    let env = Env::new("bad_console_socket");
    env.config(|s| {
        set_args(s, &["true"]);
        s["process"]["terminal"] = json!(true);
        s["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
    });
    // A socket file nobody listens on any more: connect gets ECONNREFUSED.
    let path = env.dir.join("console.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let path_s = path.to_str().unwrap().to_string();
    let id = env.id();
    let out = env.gpurun(&[
        "create",
        "--console-socket",
        &path_s,
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    match is_gpurun() {
        true => out.assert_err("connection refused"),
        false => out.assert_fail(),
    };
    env.gpurun(&["state", &id]).assert_err("does not exist");
    std::fs::remove_file(&path).unwrap();
    env.assert_clean();
}

#[test]
fn hook_hangs_past_its_timeout() {
    if !require_root() {
        return;
    }
    let env = Env::new("bad_hook_timeout");
    // The hook starts a child of its own and waits: both must go (its process group is
    // killed), and both carry the leak marker the check looks for.
    let marker = format!("GPURUN_IT={}", env.marker);
    // gpurun-only: runc kills the hook but then waits for its output pipe, which the hook's
    // child holds: it hangs for as long as that child lives.
    let script = match is_gpurun() {
        true => "sleep 300 & sleep 301",
        false => "exec sleep 301",
    };
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
        s["hooks"] = json!({"createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", script],
            "env": [marker],
            "timeout": 1
        }]});
    });
    create_fails_with(&env, None, "timed out");
    env.assert_clean();
}
