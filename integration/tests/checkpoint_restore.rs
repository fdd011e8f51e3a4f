//! `restore`: a counter container is checkpointed with CRIU and restored (same id, new id,
//! detached and in the foreground); bad input leaves nothing. CRIU must work on this kernel
//! (`criu check`): the QEMU VM's stock kernel, not our hosts' (see integration/vm/README.md).

use gpurun_integration::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A container counting into /out/count (a bind of the Env's `data` dir), its stdio all inside
/// the container, so the dump has nothing of the caller's. With `limit` it exits 7 there.
fn counter(env: &Env, limit: Option<u32>) -> PathBuf {
    let data = env.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cond = limit.map_or("true".to_string(), |n| format!("[ $i -lt {n} ]"));
    let script = format!(
        "exec >/out/count 2>&1 </dev/null; i=0; while {cond}; do echo $i; i=$((i+1)); sleep 0.1; done; exit 7"
    );
    env.config(|s| {
        set_args(s, &["sh", "-c", &script]);
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/out", "type": "bind",
            "source": data.to_str().unwrap(), "options": ["rbind", "rw"]
        }));
    });
    data.join("count")
}

/// The numbers in the count file; asserts they are 0, 1, 2, … (no restart, no gap).
#[track_caller]
fn counted(file: &PathBuf) -> usize {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, i.to_string(), "count file not a sequence:\n{text}");
    }
    lines.len()
}

#[track_caller]
fn wait_count(file: &PathBuf, n: usize) {
    let got = poll(Duration::from_secs(30), || {
        (counted(file) >= n).then_some(())
    });
    assert!(
        got.is_some(),
        "counter never reached {n}: {}",
        counted(file)
    );
}

/// run -d, count a little, checkpoint (which stops the container and frees its id, as runc
/// does); returns the count at the checkpoint.
#[track_caller]
fn run_and_checkpoint(env: &Env, id: &str, file: &PathBuf, images: &str) -> usize {
    let bundle = env.bundle.to_str().unwrap();
    env.gpurun(&["run", "-d", "--bundle", bundle, id])
        .assert_ok();
    wait_count(file, 3);
    env.gpurun(&["checkpoint", "--image-path", images, id])
        .assert_ok();
    assert!(
        env.state(id).is_none(),
        "{id} still exists after checkpoint"
    );
    let n = counted(file);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counted(file), n, "the counter went on after the checkpoint");
    n
}

#[test]
fn restore_detached_same_and_new_id() {
    if !criu_usable() {
        return;
    }
    let env = Env::new("restore_detached");
    let file = counter(&env, None);
    let bundle = env.bundle.to_str().unwrap();
    let images = env.dir.join("images");
    let images = images.to_str().unwrap();
    let id = env.id();
    let n = run_and_checkpoint(&env, &id, &file, images);

    // An id that exists is refused, and that container is left alone.
    let other = env.running(|_| {});
    env.gpurun(&[
        "restore",
        "-d",
        "--image-path",
        images,
        "--bundle",
        bundle,
        &other,
    ])
    .assert_err("exists");
    assert_eq!(env.status(&other).as_deref(), Some("running"));
    env.gpurun(&["delete", "-f", &other]).assert_ok();
    counter(&env, None); // `running` rewrote config.json

    env.gpurun(&[
        "restore",
        "-d",
        "--image-path",
        images,
        "--bundle",
        bundle,
        &id,
    ])
    .assert_ok();
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    wait_count(&file, n + 3);
    let out = env.gpurun(&["exec", &id, "cat", "/proc/1/cmdline"]);
    out.assert_ok();
    assert!(
        out.stdout.contains("exec >/out/count"),
        "{}",
        out.describe()
    );

    // Again, from the restored container, into a new id.
    let images2 = env.dir.join("images2");
    let images2 = images2.to_str().unwrap();
    env.gpurun(&["checkpoint", "--image-path", images2, &id])
        .assert_ok();
    assert!(
        env.state(&id).is_none(),
        "{id} still exists after checkpoint"
    );
    let n = counted(&file);
    let id2 = env.id();
    env.gpurun(&[
        "restore",
        "-d",
        "--image-path",
        images2,
        "--bundle",
        bundle,
        &id2,
    ])
    .assert_ok();
    assert_eq!(env.status(&id2).as_deref(), Some("running"));
    assert!(
        env.state(&id).is_none(),
        "restoring {id2} brought back {id}"
    );
    wait_count(&file, n + 3);

    env.gpurun(&["kill", &id2, "KILL"]).assert_ok();
    env.wait_status(&id2, "stopped");
    env.gpurun(&["delete", &id2]).assert_ok();
    counted(&file);
    if !is_gpurun() {
        // runc 1.1.5 leaves the cgroup of a restored container it checkpoints again.
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{id}"));
    }
    env.assert_clean();
}

#[test]
fn restore_foreground_returns_exit_code() {
    if !criu_usable() {
        return;
    }
    let env = Env::new("restore_foreground");
    let file = counter(&env, Some(40));
    let images = env.dir.join("images");
    let images = images.to_str().unwrap();
    let id = env.id();
    let n = run_and_checkpoint(&env, &id, &file, images);
    assert!(n < 40, "counted to the end before the checkpoint: {n}");
    let bundle = env.bundle.to_str().unwrap();
    let out = env.gpurun(&["restore", "--image-path", images, "--bundle", bundle, &id]);
    assert_eq!(out.code, 7, "{}", out.describe());
    assert_eq!(counted(&file), 40);
    // Deleted once it stopped, as `run` does.
    assert!(
        env.state(&id).is_none(),
        "{id} left after a foreground restore"
    );
    env.assert_clean();
}

#[test]
fn restore_bad_image_path_leaves_nothing() {
    if !criu_usable() {
        return;
    }
    let env = Env::new("restore_bad_image");
    counter(&env, None);
    let bundle = env.bundle.to_str().unwrap();
    let id = env.id();
    let missing = env.dir.join("no-such-images");
    let empty = env.dir.join("empty-images");
    std::fs::create_dir_all(&empty).unwrap();
    for dir in [&missing, &empty] {
        let dir = dir.to_str().unwrap();
        let out = env.gpurun(&[
            "restore",
            "-d",
            "--image-path",
            dir,
            "--bundle",
            bundle,
            &id,
        ]);
        out.assert_fail();
        if is_gpurun() {
            out.assert_err("inventory.img");
        }
        assert!(env.state(&id).is_none(), "{}", out.describe());
    }
    env.assert_clean();
}

/// Unmounts a persistent namespace file (made by `unshare --ipc=FILE`), even on failure.
struct NsFile(PathBuf);

impl Drop for NsFile {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A container that joined an ipc namespace by path (as a pod's containers do) is restored
/// into that namespace again, not into a private copy of it (runc's JoinNs).
#[test]
fn restore_rejoins_an_ipc_namespace_joined_by_path() {
    use std::os::unix::fs::MetadataExt;
    if !criu_usable() {
        return;
    }
    let env = Env::new("restore_joinns");
    let file = counter(&env, None);
    let ns = NsFile(env.dir.join("ipcns"));
    std::fs::write(&ns.0, "").unwrap();
    let made = Command::new("unshare")
        .arg(format!("--ipc={}", ns.0.display()))
        .arg("true")
        .status()
        .unwrap();
    assert!(made.success(), "unshare --ipc=FILE");
    let ns_path = ns.0.to_str().unwrap().to_string();
    // edited in place: `env.config` starts again from the default (the counter's args)
    let config = env.bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    for n in spec["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "ipc" {
            n["path"] = json!(ns_path);
        }
    }
    std::fs::write(&config, serde_json::to_vec(&spec).unwrap()).unwrap();
    let want = format!("ipc:[{}]", std::fs::metadata(&ns.0).unwrap().ino());
    let images = env.dir.join("images");
    let images = images.to_str().unwrap();
    let bundle = env.bundle.to_str().unwrap();
    let id = env.id();
    run_and_checkpoint(&env, &id, &file, images);
    env.gpurun(&[
        "restore",
        "-d",
        "--image-path",
        images,
        "--bundle",
        bundle,
        &id,
    ])
    .assert_ok();
    let pid = env.state(&id).unwrap()["pid"].as_i64().unwrap();
    let got = std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap();
    assert_eq!(
        got.to_str().unwrap(),
        want,
        "restored outside the joined ipc namespace"
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    drop(ns);
    env.assert_clean();
}
