//! `checkpoint` through CRIU: a counting container dumped (and removed), dumped with
//! --leave-running, pre-dumped then dumped on top; bad ids and a missing criu fail cleanly.
//! CRIU needs a kernel it supports: these run in the QEMU VM (integration/vm) and skip where
//! `criu check` fails (the build host's kernel), except the two that never reach CRIU.

use gpurun_integration::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A container counting into /data/count (a bind mount of the Env's `data` dir); its stdio is
/// the container's own /dev/null and /data/log, which CRIU can dump.
fn counter(env: &Env) -> (String, PathBuf) {
    let data = env.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let script = "exec </dev/null >/data/log 2>&1; i=0; \
                  while true; do echo $i > /data/count; i=$((i+1)); sleep 0.1; done";
    let id = env.running(|s| {
        set_args(s, &["sh", "-c", script]);
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind",
            "source": data.to_str().unwrap(), "options": ["rbind", "rw"]
        }));
    });
    let count = data.join("count");
    assert!(
        poll(Duration::from_secs(5), || count_of(&count)
            .filter(|n| *n > 0))
        .is_some(),
        "the counter never counted"
    );
    (id, count)
}

fn count_of(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The counter goes on past `from`.
#[track_caller]
fn assert_counts_past(count: &Path, from: u64) {
    let got = poll(Duration::from_secs(10), || {
        count_of(count).filter(|n| *n > from + 2)
    });
    assert!(got.is_some(), "counter stuck at {:?}", count_of(count));
}

#[track_caller]
fn checkpoint(env: &Env, args: &[&str]) -> Out {
    let mut all = vec!["checkpoint"];
    all.extend_from_slice(args);
    env.gpurun(&all)
}

#[test]
fn checkpoint_dumps_and_removes_container() {
    if !criu_usable() {
        return;
    }
    let env = Env::new("checkpoint_dumps_and_removes_container");
    let (id, count) = counter(&env);
    let images = env.dir.join("images");
    checkpoint(&env, &["--image-path", images.to_str().unwrap(), &id]).assert_ok();
    assert!(images.join("inventory.img").is_file(), "no inventory.img");
    let fds: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(images.join("descriptors.json")).unwrap())
            .unwrap();
    assert!(
        fds.len() == 3 && fds.iter().all(|f| !f.is_empty()),
        "{fds:?}"
    );
    env.gpurun(&["state", &id]).assert_err("does not exist");
    // Nothing counts any more.
    let stopped = count_of(&count);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count_of(&count), stopped);
    env.assert_clean();
}

#[test]
fn checkpoint_leave_running_keeps_counting() {
    if !criu_usable() {
        return;
    }
    let env = Env::new("checkpoint_leave_running_keeps_counting");
    let (id, count) = counter(&env);
    let images = env.dir.join("images");
    let img = images.to_str().unwrap();
    checkpoint(&env, &["--image-path", img, "--leave-running", &id]).assert_ok();
    assert!(images.join("inventory.img").is_file(), "no inventory.img");
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    assert_counts_past(&count, count_of(&count).unwrap());
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn checkpoint_pre_dump_then_dump_on_parent() {
    if !criu_usable() {
        return;
    }
    let env = Env::new("checkpoint_pre_dump_then_dump_on_parent");
    let (id, count) = counter(&env);
    let pre = env.dir.join("pre");
    let fin = env.dir.join("final");
    checkpoint(
        &env,
        &["--pre-dump", "--image-path", pre.to_str().unwrap(), &id],
    )
    .assert_ok();
    assert!(
        std::fs::read_dir(&pre)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("pagemap")),
        "pre-dump wrote no pages"
    );
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    assert_counts_past(&count, count_of(&count).unwrap());
    let fin_s = fin.to_str().unwrap();
    if is_gpurun() {
        // gpurun-only: gpurun checks that the parent exists (relative to the images dir)
        // before anything is stopped; runc leaves it to CRIU.
        checkpoint(
            &env,
            &["--image-path", fin_s, "--parent-path", "../nope", &id],
        )
        .assert_err("parent-path");
        assert_eq!(env.status(&id).as_deref(), Some("running"));
        assert!(!fin.exists(), "images dir created for a missing parent");
    }
    checkpoint(
        &env,
        &["--image-path", fin_s, "--parent-path", "../pre", &id],
    )
    .assert_ok();
    assert!(fin.join("inventory.img").is_file(), "no inventory.img");
    assert!(fin.join("parent").exists(), "no parent link in the images");
    env.gpurun(&["state", &id]).assert_err("does not exist");
    env.assert_clean();
}

#[test]
fn checkpoint_unknown_id_creates_nothing() {
    if !require_root() {
        return;
    }
    let env = Env::new("checkpoint_unknown_id_creates_nothing");
    let images = env.dir.join("images");
    checkpoint(
        &env,
        &[
            "--image-path",
            images.to_str().unwrap(),
            "no-such-container",
        ],
    )
    .assert_err("does not exist");
    assert!(
        !images.exists(),
        "images dir created for an unknown container"
    );
    env.assert_clean();
}

#[test]
fn checkpoint_without_criu_leaves_container_running() {
    // gpurun-only: runc runs `criu` from PATH and has no GPURUN_CRIU.
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("checkpoint_without_criu_leaves_container_running");
    let (id, count) = counter(&env);
    let images = env.dir.join("images");
    env.extra_env
        .borrow_mut()
        .push(("GPURUN_CRIU".into(), "/nonexistent/criu".into()));
    checkpoint(&env, &["--image-path", images.to_str().unwrap(), &id])
        .assert_err("criu not found (/nonexistent/criu");
    env.extra_env.borrow_mut().clear();
    assert!(
        !images.exists(),
        "images dir created though criu is missing"
    );
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    assert_counts_past(&count, count_of(&count).unwrap());
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
