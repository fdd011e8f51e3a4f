//! Checkpoint and restore of a GPU container (gpurun-only: the fake driver of integration/src/
//! gpu.rs is gpurun's built-in GPU support) with the stand-in `cuda-checkpoint` of
//! integration/testdata/checkpoint: it logs every call with the pid (and the pid in the
//! container's namespace, which survives a restore) and keeps a fake CUDA state per process.
//! The dump needs CRIU working (`criu check`): on kernels where it fails these tests skip; run
//! them in the QEMU VM (integration/vm).

use gpurun_integration::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const COUNTER: &str =
    "sleep 1000 & i=0; while true; do echo $i > /tmp/count; i=$((i+1)); sleep 0.1; done";

/// The stand-in in `host.dir/cuda`, configured as `[nvidia] cuda-checkpoint`; `cuda_nspids`
/// are the (own-namespace) pids it treats as CUDA processes, state `running`.
fn stand_in(host: &FakeGpuHost, cuda_nspids: &[u32]) -> PathBuf {
    let dir = host.dir.join("cuda");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/checkpoint/cuda-checkpoint");
    std::fs::copy(src, dir.join("cuda-checkpoint")).unwrap();
    for p in cuda_nspids {
        std::fs::write(dir.join(format!("state/{p}")), "running\n").unwrap();
    }
    let line = format!("cuda-checkpoint = {:?}\n", dir.join("cuda-checkpoint"));
    host.write_config_with(&mock_nvml().display().to_string(), &line);
    dir
}

/// The stand-in's calls that change state: "ACTION pid=P nspid=N", in order. None of them may
/// find the process frozen (cgroup v2's `frozen 1`; v1 logs `frozen=?`): cuda-checkpoint must
/// run before CRIU freezes the container.
#[track_caller]
fn actions(dir: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let acts: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("action") || l.starts_with("toggle"))
        .collect();
    assert!(!acts.iter().any(|l| l.contains("frozen=1")), "{log}");
    acts.iter()
        .map(|l| l.split(" frozen=").next().unwrap().to_string())
        .collect()
}

fn cuda_state(dir: &Path, nspid: u32) -> String {
    std::fs::read_to_string(dir.join(format!("state/{nspid}")))
        .unwrap()
        .trim()
        .to_string()
}

/// `gpurun ARGS` with stdio pipes, as engines give (CRIU restores pipes, not the test's
/// files); the pipes are kept open by the returned child handle.
/// The stdio pipes of a detached container (kept open while the test runs, as an engine
/// keeps them).
type Pipes = (
    Option<std::process::ChildStdin>,
    Option<std::process::ChildStdout>,
    Option<std::process::ChildStderr>,
);

fn detached(env: &Env, host: &FakeGpuHost, args: &[&str]) -> Pipes {
    let mut cmd = Command::new(bin());
    cmd.arg("--root").arg(&env.state).args(args);
    cmd.env("GPURUN_CONFIG", &host.config);
    cmd.env("MOCK_NVML_CONFIG", &host.machine);
    cmd.env("GPURUN_IT", &env.marker).current_dir(&env.dir);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn runtime");
    let st = child.wait().unwrap();
    if !st.success() {
        let mut err = String::new();
        use std::io::Read;
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("{args:?}: {st}: {err}");
    }
    (child.stdin.take(), child.stdout.take(), child.stderr.take())
}

fn count(env: &Env) -> Option<u64> {
    std::fs::read_to_string(env.rootfs().join("tmp/count"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Wait until the counter exceeds `above`.
#[track_caller]
fn counts_past(env: &Env, above: Option<u64>) -> u64 {
    let got = poll(Duration::from_secs(20), || {
        count(env).filter(|&c| above.is_none_or(|a| c > a))
    });
    got.unwrap_or_else(|| panic!("counter stuck at {:?} (want > {above:?})", count(env)))
}

fn gpu_counter(env: &Env) {
    gpu_counter_on(env, "all");
}

/// The counter as a GPU container given `visible` (NVIDIA_VISIBLE_DEVICES).
fn gpu_counter_on(env: &Env, visible: &str) {
    std::fs::create_dir_all(env.rootfs().join("tmp")).unwrap();
    let _ = std::fs::remove_file(env.rootfs().join("tmp/count"));
    let visible = format!("NVIDIA_VISIBLE_DEVICES={visible}");
    env.config(|s| {
        set_args(s, &["sh", "-c", COUNTER]);
        s["root"]["readonly"] = json!(false);
        with_env(&[&visible])(s);
    });
}

fn stop(env: &Env, id: &str) {
    env.gpurun(&["kill", id, "KILL"]);
    let _ = poll(Duration::from_secs(10), || {
        (env.status(id).as_deref() != Some("running")).then_some(())
    });
    env.gpurun(&["delete", "-f", id]);
}

#[test]
fn checkpoint_gpu_container_locks_and_checkpoints_cuda_before_the_dump() {
    let Some((env, host)) = gpu_env("ckpt_gpu", h100x2()) else {
        return;
    };
    if !criu_usable() {
        return;
    }
    // The container's sh (pid 1 in its namespace) is the CUDA process; its `sleep` is not.
    let cuda = stand_in(&host, &[1]);
    gpu_counter(&env);
    let id = env.id();
    let bundle = env.bundle.to_str().unwrap().to_string();
    let _run = detached(&env, &host, &["run", "-d", "--bundle", &bundle, &id]);
    let pid = env.pid(&id);
    let before = counts_past(&env, None);
    let images = env.dir.join("images");
    let images = images.to_str().unwrap();
    let out = env.gpurun(&["checkpoint", "--image-path", images, &id]);
    let log = || std::fs::read_to_string(cuda.join("log")).unwrap_or_default();
    assert!(
        out.ok(),
        "{}\ncuda-checkpoint calls:\n{}",
        out.describe(),
        log()
    );
    // Lock then checkpoint, on the CUDA process only, while it was alive and not frozen (a
    // dumped process would be gone: nspid=-).
    assert_eq!(
        actions(&cuda),
        [
            format!("action lock pid={pid} nspid=1"),
            format!("action checkpoint pid={pid} nspid=1"),
        ],
        "{}",
        out.describe()
    );
    assert_eq!(cuda_state(&cuda, 1), "checkpointed");
    assert!(
        env.state(&id).is_none(),
        "checkpointed container still there"
    );
    let stopped = count(&env);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&env), stopped, "counter runs after the dump");
    assert!(stopped >= Some(before));

    let _restored = detached(
        &env,
        &host,
        &[
            "restore",
            "-d",
            "--image-path",
            images,
            "--bundle",
            &bundle,
            &id,
        ],
    );
    let new_pid = env.pid(&id);
    let acts = actions(&cuda);
    assert_eq!(
        acts[2..],
        [
            format!("action restore pid={new_pid} nspid=1"),
            format!("action unlock pid={new_pid} nspid=1"),
        ],
        "{acts:?}"
    );
    assert_eq!(cuda_state(&cuda, 1), "running");
    counts_past(&env, stopped);
    stop(&env, &id);
    env.assert_clean();
}

#[test]
fn checkpoint_gpu_container_without_usable_cuda_checkpoint_fails_first() {
    let Some((env, host)) = gpu_env("ckpt_gpu_none", h100x2()) else {
        return;
    };
    // The refusal comes before CRIU is asked to do anything, so `criu check` need not pass; the
    // version check before it needs criu itself.
    if Command::new("criu").arg("--version").output().is_err() {
        skip("criu not installed");
        return;
    }
    gpu_counter(&env);
    let id = env.id();
    let bundle = env.bundle.to_str().unwrap().to_string();
    let _run = detached(&env, &host, &["run", "-d", "--bundle", &bundle, &id]);
    let images = env.dir.join("images");
    let images = images.to_str().unwrap();
    let check = |want: &str| {
        let out = env.gpurun(&["checkpoint", "--image-path", images, &id]);
        out.assert_err(want);
        assert_eq!(env.status(&id).as_deref(), Some("running"));
        let dumped = std::fs::read_dir(images).map_or(0, |d| d.count());
        assert_eq!(dumped, 0, "images written\n{}", out.describe());
        let c = counts_past(&env, None);
        counts_past(&env, Some(c));
    };
    // Not configured and not on PATH.
    let on_path = Command::new("sh")
        .args(["-c", "command -v cuda-checkpoint"])
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        skip("cuda-checkpoint is on PATH: the unconfigured case is not tested");
    } else {
        check("uses a GPU and cuda-checkpoint (cuda-checkpoint) was not found");
    }
    // A configured path that does not exist.
    let line = "cuda-checkpoint = \"/nonexistent/cuda-checkpoint\"\n";
    host.write_config_with(&mock_nvml().display().to_string(), line);
    check("cuda-checkpoint (/nonexistent/cuda-checkpoint) was not found");
    // A driver too old for checkpointing: the tool's help offers nothing; nothing is locked.
    let cuda = stand_in(&host, &[1]);
    std::fs::write(cuda.join("mode"), "old").unwrap();
    check("the NVIDIA driver is too old");
    assert!(actions(&cuda).is_empty());
    assert_eq!(cuda_state(&cuda, 1), "running");
    stop(&env, &id);
    env.assert_clean();
}

/// Restored where the same GPU has another minor (another node, or a driver that renumbered
/// its GPUs): the container's /dev has this node's node for its GPU, not the dumped one.
#[test]
fn restore_makes_this_nodes_gpu_nodes() {
    let Some((env, host)) = gpu_env("ckpt_gpu_nodes", h100x2()) else {
        return;
    };
    if !criu_usable() {
        return;
    }
    stand_in(&host, &[1]);
    gpu_counter_on(&env, &host.uuid(0));
    let id = env.id();
    let bundle = env.bundle.to_str().unwrap().to_string();
    let _run = detached(&env, &host, &["run", "-d", "--bundle", &bundle, &id]);
    // GPU 0 is /dev/nvidia1 here (h100x2)
    let nodes = |id: &str| env.gpurun(&["exec", id, "sh", "-c", "ls /dev | grep '^nvidia[0-9]'"]);
    let out = nodes(&id);
    assert_eq!(out.stdout.trim(), "nvidia1", "{}", out.describe());
    counts_past(&env, None);
    let images = env.dir.join("images");
    let images = images.to_str().unwrap();
    env.gpurun(&["checkpoint", "--image-path", images, &id])
        .assert_ok();
    let stopped = count(&env);

    // The node it is restored on: the same UUID is minor 0.
    let mut desc = host.desc.clone();
    desc["devices"][0]["minor"] = json!(0);
    desc["devices"][1]["minor"] = json!(1);
    std::fs::write(&host.machine, desc.to_string()).unwrap();
    let args = [
        "restore",
        "-d",
        "--image-path",
        images,
        "--bundle",
        &bundle,
        &id,
    ];
    let _restored = detached(&env, &host, &args);
    let out = env.gpurun(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ls /dev | grep '^nvidia[0-9]'; stat -c '%t:%T' /dev/nvidia0",
    ]);
    // 195 = 0xc3
    assert_eq!(out.stdout.trim(), "nvidia0\nc3:0", "{}", out.describe());
    counts_past(&env, stopped);
    stop(&env, &id);
    env.assert_clean();
}
