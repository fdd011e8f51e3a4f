//! `gpurun-build prune`: what killed builds left (work trees, temp files, a RUN container still
//! running), orphan blobs, least recently used cache entries (`--keep-storage`), everything
//! (`--all`); what a cached build uses stays.

mod common;
use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A pid no process has now.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn prune_removes_leftovers_and_orphans_but_keeps_the_cache() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-prune");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\nRUN echo one > /one\nCOPY f /f\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[("f", "file\n")]);
    let layout = env.dir.join("layout");
    let args = [
        "--oci-layout",
        layout.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ];
    build(&cache, &args).ok();

    // A build killed with SIGKILL during `RUN sleep`: its work tree and its RUN container
    // (still running, its `gpurun run` orphaned) stay behind.
    let killed_df = format!("FROM dir:{}\nRUN sleep 300\n", env.rootfs().display());
    let kctx = context(&env.dir.join("kctx"), &killed_df, &[]);
    let kout = env.dir.join("kb");
    let child = spawn_build(
        &cache,
        &["--bundle", kout.to_str().unwrap(), kctx.to_str().unwrap()],
    );
    let t = Instant::now();
    while names(&cache.join("run")).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(60), "RUN did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut child = child;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    // Not its output: the orphaned `gpurun run` holds the pipes open.
    child.wait().unwrap();
    assert!(
        !names(&cache.join("work")).is_empty(),
        "the killed build left its work tree"
    );

    // Planted: a dead build's work tree and temp layer, a live one's work tree, an orphan blob.
    let dead = dead_pid();
    let stale = cache.join(format!("work/gpurun-build-{dead}-1-stage0"));
    std::fs::create_dir_all(stale.join("rootfs/usr")).unwrap();
    std::fs::write(stale.join("rootfs/usr/big"), vec![1u8; 100_000]).unwrap();
    let stale_tmp = cache.join(format!("tmp/layer-{dead}-0"));
    std::fs::write(&stale_tmp, b"partial layer").unwrap();
    let live = cache.join(format!("work/gpurun-build-{}-1-stage0", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    let orphan = cache.join("blobs/sha256").join("0".repeat(64));
    std::fs::write(&orphan, b"nobody uses me").unwrap();

    let p = prune(&cache, &[]);
    p.ok();
    assert!(p.stdout.contains("gpurun-build prune:"), "{}", p.stdout);
    assert!(p.stdout.contains("1 RUN containers"), "{}", p.stdout);

    assert!(!stale.exists(), "a dead build's work tree is removed");
    assert!(!stale_tmp.exists(), "a dead build's temp layer is removed");
    assert!(!orphan.exists(), "an orphan blob is removed");
    assert!(live.exists(), "a running build's work tree is kept");
    std::fs::remove_dir(&live).unwrap();
    // The killed build's RUN container was stopped and deleted: no state, no cgroup.
    assert_build_clean(&cache);

    // What the cached build uses stayed: a rebuild runs nothing.
    let b = build(&cache, &args);
    b.ok();
    assert_eq!(b.executed(), 0, "rebuild after prune:\n{}", b.stdout);
    assert_eq!(b.cached(), 2, "rebuild after prune:\n{}", b.stdout);
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn keep_storage_evicts_least_recently_used_and_all_empties() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-prune-lru");
    let cache = env.dir.join("cache");
    let base = format!("FROM dir:{}\n", env.rootfs().display());
    let a = context(
        &env.dir.join("a"),
        &format!("{base}RUN head -c 200000 /dev/urandom > /a\n"),
        &[],
    );
    let b = context(
        &env.dir.join("b"),
        &format!("{base}RUN head -c 200000 /dev/urandom > /b\n"),
        &[],
    );
    let out = env.dir.join("out");
    let args = |ctx: &Path| {
        vec![
            "--oci-layout".to_string(),
            out.display().to_string(),
            ctx.display().to_string(),
        ]
    };
    let run = |ctx: &Path| {
        let v = args(ctx);
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        let r = build(&cache, &v);
        r.ok();
        r
    };
    run(&a);
    std::thread::sleep(Duration::from_millis(20));
    run(&b);
    let blobs = cache.join("blobs/sha256");
    // First the blobs no entry reaches (the outputs' manifests and configs).
    prune(&cache, &[]).ok();
    let total: u64 = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    // Just below what the store holds: only the least recently used entry (a's RUN) goes.
    let p = prune(&cache, &["--keep-storage", &(total - 1).to_string()]);
    p.ok();
    assert!(p.stdout.contains("1 cache entries"), "{}", p.stdout);
    assert_eq!(run(&b).executed(), 0, "b, used last, stays cached");
    assert_eq!(run(&a).executed(), 1, "a's RUN was evicted");

    let p = prune(&cache, &["--all"]);
    p.ok();
    assert!(names(&blobs).is_empty(), "--all leaves blobs");
    assert!(
        names(&cache.join("cache")).is_empty(),
        "--all leaves entries"
    );
    assert_eq!(run(&b).cached(), 0, "after --all nothing is cached");

    // Bad sizes are usage errors that name the flag.
    let p = prune(&cache, &["--keep-storage", "lots"]);
    assert_eq!(p.code, 2, "{}", p.stderr);
    assert!(p.stderr.contains("--keep-storage"), "{}", p.stderr);
    assert_build_clean(&cache);
    env.assert_clean();
}
