//! Small helpers: which binary, skip gates, command output, polling, capabilities.

use serde_json::{json, Value};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The runtime under test: `$GPURUN_BIN`, else the workspace's release build.
pub fn bin() -> PathBuf {
    match std::env::var_os("GPURUN_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/gpurun"
        )),
    }
}

/// True unless the binary under test is runc (judged by its file name).
pub fn is_gpurun() -> bool {
    bin().file_name().is_none_or(|n| n != "runc")
}

/// Gate for tests of gpurun-specific behaviour; a counted skip ([`crate::skip`]) when not.
pub fn gpurun_only() -> bool {
    if !is_gpurun() {
        crate::skip::skip("gpurun-only");
    }
    is_gpurun()
}

/// Containers need root; a counted skip ([`crate::skip`]) when not.
pub fn require_root() -> bool {
    let root = crate::sys::euid() == 0;
    if !root {
        crate::skip::skip("needs root");
    }
    root
}

/// Replace `process.args` of a spec.
pub fn set_args(spec: &mut Value, args: &[&str]) {
    spec["process"]["args"] = json!(args);
}

/// Poll `f` every 10 ms until it returns Some, or give up after `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Result of one runtime invocation. stdout/stderr went to files, so a
/// container init that inherited them (create, run -d) never blocks us.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit code; 128+N when killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
    out_path: PathBuf,
    err_path: PathBuf,
}

impl Out {
    pub(crate) fn exec(cmd: Command, out_path: PathBuf, err_path: PathBuf) -> Out {
        Out::exec_stdin(cmd, Stdio::null(), out_path, err_path)
    }

    /// Like `exec` with `stdin` as the command's standard input.
    pub(crate) fn exec_stdin(
        mut cmd: Command,
        stdin: Stdio,
        out_path: PathBuf,
        err_path: PathBuf,
    ) -> Out {
        let cmdline = format!("{:?}", cmd);
        cmd.stdin(stdin)
            .stdout(File::create(&out_path).expect("stdout file"))
            .stderr(File::create(&err_path).expect("stderr file"));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
        let status =
            poll(Duration::from_secs(60), || child.try_wait().unwrap()).unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("timed out after 60s: {cmdline}")
            });
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let mut out = Out {
            code,
            stdout: String::new(),
            stderr: String::new(),
            cmdline,
            out_path,
            err_path,
        };
        out.reread();
        out
    }

    /// Re-read stdout/stderr: a created container keeps writing to them.
    pub fn reread(&mut self) -> &mut Self {
        self.stdout = std::fs::read_to_string(&self.out_path).unwrap_or_default();
        self.stderr = std::fs::read_to_string(&self.err_path).unwrap_or_default();
        self
    }

    pub fn ok(&self) -> bool {
        self.code == 0
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.ok(),
            "expected success, got exit {}\n{}",
            self.code,
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn assert_fail(&self) -> &Self {
        assert!(
            !self.ok(),
            "expected failure, got exit 0\n{}",
            self.describe()
        );
        self
    }

    /// Assert failure with `needle` in stderr.
    #[track_caller]
    pub fn assert_err(&self, needle: &str) -> &Self {
        self.assert_fail();
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }
}

/// The value of `Field:` in a `/proc/<pid>/status`-style text.
pub fn read_status_field(status: &str, field: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    })
}

const CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Bitmask of capability names (`CAP_KILL`, ...) as shown in /proc/<pid>/status.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |m, n| {
        let short = n.strip_prefix("CAP_").unwrap_or(n);
        let bit = CAPS
            .iter()
            .position(|c| *c == short)
            .unwrap_or_else(|| panic!("unknown cap {n}"));
        m | 1u64 << bit
    })
}

/// One line of /proc/<pid>/mountinfo.
#[derive(Debug, Clone)]
pub struct Mount {
    /// major:minor of the filesystem.
    pub dev: String,
    pub root: String,
    pub point: String,
    /// Per-mount options (ro, nosuid, ...).
    pub opts: Vec<String>,
    /// Optional fields (shared:N, master:N, ...).
    pub tags: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Superblock options (size=..., mode=..., ptmxmode=...).
    pub super_opts: Vec<String>,
}

impl Mount {
    pub fn has_opt(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
}

/// Parse mountinfo text; later lines shadow earlier ones, so [`find_mount`] takes the last.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let split = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(Mount {
                dev: pre.get(2)?.to_string(),
                root: pre.get(3)?.to_string(),
                point: pre.get(4)?.to_string(),
                opts: split(pre.get(5)?),
                tags: pre[6..].iter().map(|s| s.to_string()).collect(),
                fstype: post.first()?.to_string(),
                source: post.get(1)?.to_string(),
                super_opts: split(post.get(2).unwrap_or(&"")),
            })
        })
        .collect()
}

/// The topmost mount at `point` in mountinfo `text`.
pub fn find_mount(text: &str, point: &str) -> Option<Mount> {
    parse_mountinfo(text)
        .into_iter()
        .rev()
        .find(|m| m.point == point)
}

/// gpurun's shipped default seccomp profile (Docker's/Podman's default for the default
/// capabilities), as `gpurun spec --seccomp-default` writes it.
pub fn shipped_seccomp_profile() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bundles/seccomp/default.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
