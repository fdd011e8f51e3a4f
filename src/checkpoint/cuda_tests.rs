//! Unit tests of cuda.rs: parsing, GPU signals, and suspend/resume against the stand-in
//! `cuda-checkpoint` of the integration tests.

use super::*;

const HELP_570: &str = "CUDA checkpoint and restore utility.\n    --toggle --pid <value>\n    \
    --get-state --pid <value>\n    --action <value> --pid <value> [--timeout <value>]\n";

#[test]
fn features_and_states_parse() {
    let f = Features::parse(HELP_570);
    assert!(f.action && f.get_state && f.toggle);
    let f = Features::parse("    --toggle --pid <value>\n    --get-state --pid <value>\n");
    assert!(!f.action && f.get_state && f.toggle);
    assert_eq!(
        Features::parse("error: driver too old"),
        Features::default()
    );
    assert_eq!(CudaState::parse("running\n"), Some(CudaState::Running));
    assert_eq!(CudaState::parse("locked"), Some(CudaState::Locked));
    assert_eq!(
        CudaState::parse(" checkpointed "),
        Some(CudaState::Checkpointed)
    );
    assert_eq!(CudaState::parse("failed"), Some(CudaState::Failed));
    assert_eq!(CudaState::parse(""), None);
    assert_eq!(
        CudaState::parse("Could not get state: OPERATION_NOT_SUPPORTED"),
        None
    );
}

#[test]
fn gpu_signals() {
    for (n, yes) in [
        ("/dev/nvidia0", true),
        ("/dev/nvidiactl", true),
        ("/dev/nvidia-uvm", true),
        ("/dev/nvidia-caps/nvidia-cap1", false),
        ("/dev/null", false),
        ("socket:[123]", false),
    ] {
        assert_eq!(is_nvidia_node(Path::new(n)), yes, "{n}");
    }
    let state = |env: &str, ann: &str| -> State {
        let j = format!(
            r#"{{"ociVersion":"1.3.0","id":"c","pid":1,"pidStartTime":1,"bundle":"/b",
            "rootfs":"/r","created":"","ownPidNs":true,"annotations":{{{ann}}},
            "process":{{"env":[{env}]}}}}"#
        );
        serde_json::from_str(&j).unwrap()
    };
    assert!(requested_gpu(&state(r#""NVIDIA_VISIBLE_DEVICES=all""#, "")));
    assert!(requested_gpu(&state(r#""NVIDIA_VISIBLE_DEVICES=0,1""#, "")));
    assert!(requested_gpu(&state(r#""CUDA_VERSION=12.4""#, "")));
    assert!(!requested_gpu(&state(
        r#""NVIDIA_VISIBLE_DEVICES=void""#,
        ""
    )));
    assert!(!requested_gpu(&state(
        r#""NVIDIA_VISIBLE_DEVICES=none""#,
        ""
    )));
    assert!(!requested_gpu(&state(r#""PATH=/bin""#, "")));
    let cdi = r#""cdi.k8s.io/gpu":"nvidia.com/gpu=0""#;
    assert!(requested_gpu(&state("", cdi)));
    assert!(!requested_gpu(&state(
        "",
        r#""cdi.k8s.io/x":"vendor.com/net=a""#
    )));
}

/// The integration tests' stand-in, in a private directory, and a "CUDA process" (a child
/// of this test; on the host its own-namespace pid is its pid).
fn stand_in(mode: &str) -> (tempfile::TempDir, Tool, std::process::Child) {
    let t = tempfile::tempdir().unwrap();
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/integration/testdata/checkpoint/cuda-checkpoint"
    );
    let path = t.path().join("cuda-checkpoint");
    std::fs::copy(src, &path).unwrap();
    std::fs::create_dir(t.path().join("state")).unwrap();
    std::fs::write(t.path().join("mode"), mode).unwrap();
    let child = Command::new("sleep").arg("100").spawn().unwrap();
    std::fs::write(t.path().join(format!("state/{}", child.id())), "running").unwrap();
    let help = Command::new(&path).arg("--help").output().unwrap();
    let features = Features::parse(&String::from_utf8_lossy(&help.stdout));
    (t, Tool { path, features }, child)
}

fn log(t: &tempfile::TempDir) -> Vec<String> {
    let text = std::fs::read_to_string(t.path().join("log")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with("help") && !l.starts_with("get-state"))
        .map(|l| l.split(" pid=").next().unwrap().to_string())
        .collect()
}

#[test]
fn suspend_resume_and_rollback_with_the_stand_in() {
    for mode in ["", "toggle-only"] {
        let (t, tool, mut child) = stand_in(mode);
        let pid = child.id() as i32;
        assert_eq!(tool.features.action, mode.is_empty());
        assert_eq!(tool.state(pid), Some(CudaState::Running));
        assert_eq!(tool.state(std::process::id() as i32), None);
        let mut c = Cuda {
            tool: tool.clone(),
            procs: vec![(pid, CudaState::Running)],
            done: Vec::new(),
        };
        c.suspend().unwrap();
        assert_eq!(tool.state(pid), Some(CudaState::Checkpointed));
        c.resume().unwrap();
        assert_eq!(tool.state(pid), Some(CudaState::Running));
        let got = log(&t);
        match mode {
            "" => assert_eq!(
                got,
                [
                    "action lock",
                    "action checkpoint",
                    "action restore",
                    "action unlock"
                ]
            ),
            _ => assert_eq!(got, ["toggle", "toggle"]),
        }
        // A failed checkpoint unlocks what it locked, and reports the tool's message.
        if mode.is_empty() {
            std::fs::write(t.path().join("fail-checkpoint"), "").unwrap();
            let mut c = Cuda {
                tool: tool.clone(),
                procs: vec![(pid, CudaState::Running)],
                done: Vec::new(),
            };
            let e = c.suspend().unwrap_err().to_string();
            assert!(
                e.contains("--action checkpoint --pid") && e.contains("injected"),
                "{e}"
            );
            assert_eq!(tool.state(pid), Some(CudaState::Running));
            assert_eq!(
                log(&t)[4..],
                ["action lock", "action checkpoint", "action unlock"]
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn resolve_paths_and_names() {
    assert_eq!(
        resolve(Path::new("sh")).map(|p| p.is_absolute()),
        Some(true)
    );
    assert_eq!(
        resolve(Path::new("/bin/sh")),
        Some(PathBuf::from("/bin/sh"))
    );
    assert_eq!(resolve(Path::new("/nonexistent/cuda-checkpoint")), None);
    assert_eq!(resolve(Path::new("no-such-tool-gpurun")), None);
    // Not executable.
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("cuda-checkpoint");
    std::fs::write(&f, "#!/bin/sh\n").unwrap();
    assert_eq!(resolve(&f), None);
}
