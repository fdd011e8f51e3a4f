//! Cancellation: SIGTERM/SIGINT during a RUN step stops the RUN container through the runtime,
//! removes the work tree, says so and exits 128 + signal, leaving nothing in the cache dir.

mod common;
use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

/// A file in a work tree: the RUN step has started its command. The tree is an overlay
/// mounted in the builder's own mount namespace, so from here the file is in its upper dir
/// (or in `rootfs/` where layers are extracted).
fn started(cache: &Path) -> bool {
    std::fs::read_dir(cache.join("work"))
        .map(|rd| {
            rd.flatten().any(|e| {
                e.path().join("rootfs/started").exists() || e.path().join("upper/started").exists()
            })
        })
        .unwrap_or(false)
}

fn cancel_during_run(sig: Signal, code: i32) {
    let env = Env::new(&format!("build-cancel-{}", sig.as_str()));
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\nRUN touch /started && sleep 300\nRUN echo never > /never\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let child = spawn_build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    );
    let pid = Pid::from_raw(child.id() as i32);
    let t = Instant::now();
    while !started(&cache) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the RUN step did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    kill(pid, sig).unwrap();
    let b = finish_within(child, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{sig} did not stop the build within 20 s"));
    let took = t.elapsed();
    b.fails_with(
        code,
        &format!(
            "gpurun-build: cancelled by {} at Dockerfile line 2: RUN container stopped, work tree removed",
            sig.as_str()
        ),
    );
    assert!(took < Duration::from_secs(10), "cancelling took {took:?}");
    assert!(!b.stdout.contains("echo never"), "the next step ran");
    assert!(!out.join("config.json").exists(), "a bundle was written");
    // RUN state under the builder's --root, work trees, temp files and cgroups: all gone.
    assert_build_clean(&cache);
    let list = std::process::Command::new(bin())
        .arg("--root")
        .arg(cache.join("run"))
        .arg("list")
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.contains("gpurun-build-"),
        "RUN container still listed:\n{list}"
    );
    env.assert_clean();
}

#[test]
fn sigterm_stops_the_run_container_and_exits_143() {
    if !require_root() {
        return;
    }
    cancel_during_run(Signal::SIGTERM, 143);
}

#[test]
fn sigint_stops_the_run_container_and_exits_130() {
    if !require_root() {
        return;
    }
    cancel_during_run(Signal::SIGINT, 130);
}

/// A signal during a step that runs no container (a big COPY) stops the build after that step,
/// still cached for the next build.
#[test]
fn sigterm_during_copy_stops_before_the_next_step() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-cancel-copy");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\nCOPY big /big\nRUN echo next > /next\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    // Large enough that the COPY is still running when the signal comes.
    let f = std::fs::File::create(ctx.join("big")).unwrap();
    f.set_len(0).unwrap();
    let chunk = vec![7u8; 1 << 20];
    let mut w = std::io::BufWriter::new(f);
    for _ in 0..200 {
        std::io::Write::write_all(&mut w, &chunk).unwrap();
    }
    drop(w);
    let out = env.dir.join("b");
    let args = ["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()];
    let child = spawn_build(&cache, &args);
    let pid = Pid::from_raw(child.id() as i32);
    // Once the stage's work tree exists the COPY is under way.
    let t = Instant::now();
    while std::fs::read_dir(cache.join("work")).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no work tree appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(pid, Signal::SIGTERM).unwrap();
    let b = finish_within(child, Duration::from_secs(60)).expect("build stopped");
    b.fails_with(143, "gpurun-build: cancelled by SIGTERM at Dockerfile line");
    assert!(
        !b.stdout.contains("echo next"),
        "the RUN after the COPY ran"
    );
    assert_build_clean(&cache);
    env.assert_clean();
}
