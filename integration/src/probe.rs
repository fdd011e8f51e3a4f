//! A container that reports its own cgroup files: the probe the cgroup tests read limits
//! back through, as the container itself sees them.

use crate::cgroup::cgroup2_host;
use crate::env::Env;
use crate::util::{set_args, Out};
use serde_json::Value;

/// The v1 or the v2 name of a cgroup file (relative to /sys/fs/cgroup inside): `v1` on
/// v1/hybrid hosts, `v2` on a pure cgroup v2 host.
pub fn cg<'a>(v1: &'a str, v2: &'a str) -> &'a str {
    if cgroup2_host() {
        v2
    } else {
        v1
    }
}

pub fn alive(pid: i32) -> bool {
    // Zombies (reaped later by whoever inherited them) count as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// A long-running init that prints `file=value` for each of `files` (under
/// /sys/fs/cgroup) then `end N`, at start and on every SIGUSR1.
pub fn probe(env: &Env, files: &[&str], edit: impl FnOnce(&mut Value)) {
    let script = r#"files="$*"; n=0
dump() { n=$((n+1)); for f in $files; do printf '%s=%s\n' "$f" "$(cat /sys/fs/cgroup/$f 2>&1)"; done; echo "end $n"; }
trap dump USR1; dump; sleep 3600 & while :; do wait; done"#;
    env.config(|s| {
        let mut args = vec!["sh", "-c", script, "sh"];
        args.extend(files);
        set_args(s, &args);
        edit(s);
    });
}

/// The `file=value` pairs of dump `n` in a probe's output.
#[track_caller]
pub fn dump(env: &Env, out: &mut Out, n: usize) -> Vec<(String, String)> {
    let text = env.wait_output(out, &format!("end {n}\n"));
    let start = if n == 1 {
        0
    } else {
        let m = format!("end {}\n", n - 1);
        text.find(&m).unwrap() + m.len()
    };
    let end = text.find(&format!("end {n}\n")).unwrap();
    text[start..end]
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[track_caller]
pub fn get<'a>(vals: &'a [(String, String)], file: &str) -> &'a str {
    vals.iter()
        .find(|(k, _)| k == file)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {file} in {vals:?}"))
}
