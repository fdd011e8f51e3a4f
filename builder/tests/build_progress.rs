//! RUN output as `--progress` and `-q` say: plain streams it; tty captures it and redraws one
//! status line; `-q` prints it only when the step fails (so a CI log still shows why).

mod common;
use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

/// Clear-line sequence of the tty status line.
const REDRAW: &str = "\r\x1b[K";

/// Build `RUN`s on the test rootfs with `args` (no cache, a fresh bundle dir).
fn build_runs(env: &Env, name: &str, runs: &str, args: &[&str]) -> Build {
    let df = format!("FROM dir:{}\n{runs}", env.rootfs().display());
    let ctx = context(&env.dir.join(name), &df, &[]);
    let out = env.dir.join(format!("{name}-bundle"));
    let mut all: Vec<&str> = vec!["--no-cache"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()]);
    build(&env.dir.join("cache"), &all)
}

/// Lines as a terminal shows them: each `\n` line's segments between redraws.
fn segments(s: &str) -> Vec<&str> {
    s.split('\n').flat_map(|l| l.split(REDRAW)).collect()
}

#[test]
fn quiet_hides_run_output_on_success() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-progress-q");
    let b = build_runs(
        &env,
        "ok",
        "RUN echo QUIET-MARK-out; echo QUIET-MARK-err >&2\n",
        &["-q"],
    );
    b.ok();
    for (name, s) in [("stdout", &b.stdout), ("stderr", &b.stderr)] {
        assert!(!s.contains("QUIET-MARK"), "-q: RUN output on {name}:\n{s}");
        assert!(!s.contains("] "), "-q: a step line on {name}:\n{s}");
    }
    assert_build_clean(&env.dir.join("cache"));
    env.assert_clean();
}

#[test]
fn quiet_prints_a_failed_runs_output_before_the_error() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-progress-qfail");
    let b = build_runs(
        &env,
        "fail",
        "RUN echo FAIL-MARK-out; echo FAIL-MARK-err >&2; exit 3\n",
        &["-q"],
    );
    b.fails_with(3, "RUN failed with exit code 3");
    let out = b.stderr.find("FAIL-MARK-out").expect("stdout of the RUN");
    let err = b.stderr.find("FAIL-MARK-err").expect("stderr of the RUN");
    let msg = b.stderr.find("RUN failed").unwrap();
    assert!(
        out < msg && err < msg,
        "output before the error\n{}",
        b.stderr
    );
    assert!(!b.stdout.contains("FAIL-MARK"), "{}", b.stdout);
    // the capture file in the cache's tmp dir is gone
    assert_build_clean(&env.dir.join("cache"));
    env.assert_clean();
}

#[test]
fn tty_redraws_a_status_line_with_the_last_output() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-progress-tty");
    // A first line longer than the terminal (80): every drawn line must fit.
    let b = build_runs(
        &env,
        "tty",
        "RUN echo TTY-MARK-1; sleep 0.5; echo TTY-MARK-2 >&2; sleep 0.3 # a long comment that makes this line wider than eighty columns\n\
         RUN touch /done\n",
        &["--progress", "tty"],
    );
    b.ok();
    let s = &b.stdout;
    let segs = segments(s);
    // `[2/3] RUN echo TTY-MARK-1; … 0.4s  TTY-MARK-1`: label, time, last output line
    let ticks = segs
        .iter()
        .filter(|l| l.starts_with("[2/3] RUN echo TTY-MARK-1") && l.contains("s  TTY-MARK-"))
        .count();
    assert!(
        (3..=12).contains(&ticks),
        "status line redrawn ~10 times a second while the RUN runs ({ticks})\n{s:?}"
    );
    assert!(
        segs.iter().any(|l| l.ends_with("TTY-MARK-1"))
            && segs.iter().any(|l| l.ends_with("TTY-MARK-2")),
        "the last output line shown in the status line\n{s:?}"
    );
    assert!(
        !segs.iter().any(|l| l.trim().starts_with("TTY-MARK")),
        "RUN output printed as plain lines\n{s:?}"
    );
    assert!(!b.stderr.contains("TTY-MARK"), "{}", b.stderr);
    for l in &segs {
        assert!(
            l.chars().count() < 80,
            "line wider than the terminal: {l:?}"
        );
    }
    let done: Vec<&str> = s
        .split('\n')
        .filter_map(|l| l.rsplit(REDRAW).next())
        .filter(|l| l.contains(" done in "))
        .collect();
    assert_eq!(done.len(), 2, "one final line per RUN\n{s:?}");
    assert!(done[0].starts_with("[2/3] RUN echo TTY-MARK-1"), "{done:?}");
    assert!(
        done[1].starts_with("[3/3] RUN touch /done done in "),
        "{done:?}"
    );
    assert!(s.contains("[1/3] FROM "), "{s:?}");
    assert_build_clean(&env.dir.join("cache"));
    env.assert_clean();
}

#[test]
fn tty_prints_a_failed_runs_output() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-progress-ttyfail");
    let b = build_runs(
        &env,
        "fail",
        "RUN echo TFAIL-line1; echo TFAIL-line2; exit 4\n",
        &["--progress", "tty"],
    );
    b.fails_with(4, "RUN failed with exit code 4");
    assert!(
        b.stderr.contains("TFAIL-line1\nTFAIL-line2\n"),
        "whole output on stderr\n{}",
        b.stderr
    );
    assert!(
        b.stdout.ends_with('\n'),
        "status line ended\n{:?}",
        b.stdout
    );
    assert_build_clean(&env.dir.join("cache"));
    env.assert_clean();
}

#[test]
fn plain_and_auto_stream_run_output() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-progress-plain");
    let runs = "RUN echo PLAIN-MARK; echo PLAIN-ERR >&2\n";
    // auto: stdout is a pipe here, so plain
    for (name, args) in [("plain", &["--progress", "plain"][..]), ("auto", &[][..])] {
        let b = build_runs(&env, name, runs, args);
        b.ok();
        assert!(
            b.stdout.lines().any(|l| l == "PLAIN-MARK"),
            "{name}: RUN output streamed\n{}",
            b.stdout
        );
        assert!(b.stderr.lines().any(|l| l == "PLAIN-ERR"), "{}", b.stderr);
        assert!(
            b.stdout.contains("[2/2] RUN echo PLAIN-MARK"),
            "{}",
            b.stdout
        );
        assert!(b.stdout.contains("[2/2] done in "), "{}", b.stdout);
        assert!(
            !b.stdout.contains('\x1b'),
            "{name}: no redraws\n{:?}",
            b.stdout
        );
    }
    assert_build_clean(&env.dir.join("cache"));
    env.assert_clean();
}

/// The RUN's capture file (`<cache>/tmp/runlog-*`) holds `mark`: the command has started.
fn captured(cache: &Path, mark: &str) -> bool {
    std::fs::read_dir(cache.join("tmp"))
        .map(|rd| {
            rd.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("runlog-")
                    && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(mark))
            })
        })
        .unwrap_or(false)
}

#[test]
fn tty_status_line_ends_before_the_cancel_message() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-progress-cancel");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\nRUN echo CANCEL-MARK; sleep 300\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let child = spawn_build(
        &cache,
        &[
            "--progress",
            "tty",
            "--bundle",
            out.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    let t = Instant::now();
    // (a RUN that never starts is still interrupted below, so that nothing is left running)
    while !captured(&cache, "CANCEL-MARK") && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let b = finish_within(child, Duration::from_secs(20)).expect("SIGINT stops the build");
    b.fails_with(
        130,
        "gpurun-build: cancelled by SIGINT at Dockerfile line 2",
    );
    assert!(b.stdout.contains(REDRAW), "{:?}", b.stdout);
    assert!(
        b.stdout.ends_with('\n'),
        "status line ended\n{:?}",
        b.stdout
    );
    assert!(!b.stderr.contains("CANCEL-MARK"), "{}", b.stderr);
    assert_build_clean(&cache);
    env.assert_clean();
}
