//! Counted skips: every test (or part of one) that does not run says why, on the real stderr
//! (not captured by the test harness), and adds one line to the skip log, which
//! `integration/skips-summary.sh` counts and groups by reason.
//!
//! The log is `$GPURUN_SKIP_LOG`, default `<workspace>/target/skips.log`; each line is
//! `<test binary>::<test>\t<reason>`. The engine scripts (`integration/engines/lib.sh`) append
//! to the same file.

use std::io::Write;
use std::path::PathBuf;

/// The skip log: `$GPURUN_SKIP_LOG`, else `<workspace>/target/skips.log`.
pub fn skip_log() -> PathBuf {
    match std::env::var_os("GPURUN_SKIP_LOG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/skips.log")),
    }
}

/// The running test: `<binary>::<test>` (libtest names each test's thread after the test;
/// with one test thread the thread is `main` and only the binary is known).
fn test_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // Cargo names test executables `<name>-<hash>`.
    let bin = exe
        .rsplit_once('-')
        .map_or(exe.as_str(), |(name, _)| name)
        .to_string();
    match std::thread::current().name() {
        Some(t) if t != "main" => format!("{bin}::{t}"),
        _ => bin,
    }
}

/// Record a skip of the running test (or of a part of it: say which in `reason`): prints
/// `SKIP <test>: <reason>` to stderr, past the harness's capture, and appends a line to the
/// skip log. The caller then returns (or goes on without that part).
pub fn skip(reason: &str) {
    let test = test_name();
    let reason = reason.replace(['\n', '\t'], " ");
    let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {reason}");
    let path = skip_log();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // One write of one short line to an O_APPEND file: lines of parallel tests do not mix.
    let line = format!("{test}\t{reason}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIP log {}: {e} (skip not counted)",
            path.display()
        );
    }
}
