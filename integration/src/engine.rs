//! Running an engine script of `integration/engines/` against the runtime under test, then
//! checking that it left nothing behind.

use crate::leak::{HostSnapshot, ScriptScope};
use crate::util::bin;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Run `integration/engines/SCRIPT` with `RUNTIME` = the runtime under test and `envs` added:
/// prints its output when it passed or skipped (exit 77), panics with all of it otherwise.
///
/// Then the leak check: the script runs with `GPURUN_IT=<marker>` (so its engines and, unless
/// an engine clears the environment, the runtime carry it); after it, no marked process, no
/// process using its base dir or holding its output, no engine daemon, shim or runtime process
/// started during it, no mount or file under its base dir, no cgroup of its containers, and no
/// new bridge, iptables rule, network namespace or BPF device program may be left. The
/// before/after comparisons hold because the scripts run one at a time.
pub fn engine_script(script: &str, envs: &[(&str, &Path)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("engines")
        .join(script);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let marker = format!(
        "engine-{}-{}-{n}",
        Path::new(script)
            .file_stem()
            .map_or(script.into(), |s| s.to_string_lossy()),
        std::process::id()
    );
    let out_dir = Path::new("/tmp/gpurun-it").join(&marker);
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let (out_file, err_file) = (out_dir.join("stdout"), out_dir.join("stderr"));
    let before = HostSnapshot::take();
    // Output to files, not pipes: a leftover daemon holding them can't hang the test (and is
    // seen holding them).
    let mut child = Command::new("bash")
        .arg(&path)
        .env("RUNTIME", bin())
        .env("GPURUN_IT", &marker)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&out_file).unwrap())
        .stderr(File::create(&err_file).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    let script_pid = child.id();
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("waiting for {}: {e}", path.display()));
    let stdout = std::fs::read_to_string(&out_file).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    let base = base_dir(&stdout);
    let runtime = bin();
    let scope = ScriptScope {
        base: base.as_deref(),
        out_dir: &out_dir,
        marker: &marker,
        script_pid,
        runtime: &runtime,
    };
    let leaks = before.leaks_after(&scope, Duration::from_secs(10));
    match status.code() {
        Some(0) | Some(77) if leaks.is_empty() => {
            println!("{}", if status.code() == Some(77) { stdout.trim() } else { &stdout });
            let _ = std::fs::remove_dir_all(&out_dir);
        }
        Some(0) | Some(77) => panic!(
            "{script} passed but leaked (base {base:?}, output kept in {}):\n{leaks}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out_dir.display()
        ),
        _ => panic!(
            "{script} failed ({status:?}) with runtime {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- leak check (base {base:?}){}\n{leaks}",
            runtime.display(),
            if leaks.is_empty() { ": clean" } else { "" }
        ),
    }
}

/// The script's temp dir, from the first line that says `base DIR` (every script does).
fn base_dir(stdout: &str) -> Option<PathBuf> {
    stdout.lines().find_map(|l| {
        let rest = &l[l.find(" base ")? + 6..];
        let dir = rest.split_whitespace().next()?.trim_end_matches(',');
        dir.starts_with('/').then(|| PathBuf::from(dir))
    })
}

#[cfg(test)]
mod tests {
    use super::base_dir;
    use std::path::PathBuf;

    #[test]
    fn base_dir_from_the_scripts_first_line() {
        let got = base_dir("containerd 1.6.20, runtime /x/gpurun (via /tmp/ctrd-eng.ab/bin/gpurun), base /tmp/ctrd-eng.ab\n=== run\n");
        assert_eq!(got, Some(PathBuf::from("/tmp/ctrd-eng.ab")));
        let got = base_dir(
            "docker 20.10.24, runtime R (via B), base /tmp/docker-eng.x, cgroup v1, parent P",
        );
        assert_eq!(got, Some(PathBuf::from("/tmp/docker-eng.x")));
        assert_eq!(base_dir("skipped: containerd not installed"), None);
    }
}
