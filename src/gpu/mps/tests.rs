use super::lease::admit;
use super::*;

fn spec(ann: &[(&str, &str)]) -> Spec {
    let ann: std::collections::HashMap<String, String> = ann
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "annotations": ann})).unwrap()
}

#[test]
fn annotations() {
    assert_eq!(request(&spec(&[])).unwrap(), None);
    let r = request(&spec(&[(ANN_SHARE, "30"), (ANN_MEMORY, "8G")])).unwrap();
    assert_eq!(
        r,
        Some(Request {
            share: 30,
            memory: 8 << 30
        })
    );
    let r = request(&spec(&[(ANN_SHARE, "100")])).unwrap();
    assert_eq!(
        r,
        Some(Request {
            share: 100,
            memory: 0
        })
    );
    for (ann, want) in [
        (vec![(ANN_SHARE, "0")], ANN_SHARE),
        (vec![(ANN_SHARE, "101")], ANN_SHARE),
        (vec![(ANN_SHARE, "x")], ANN_SHARE),
        (vec![(ANN_MEMORY, "1G")], "is required"),
        (vec![(ANN_SHARE, "10"), (ANN_MEMORY, "8X")], ANN_MEMORY),
        (
            vec![(ANN_SHARE, "10"), ("gpurun.io/mps.threads", "1")],
            "gpurun.io/mps.threads: unknown",
        ),
    ] {
        let e = request(&spec(&ann)).unwrap_err().to_string();
        assert!(e.contains(want), "{ann:?}: {e}");
    }
}

#[test]
fn memory_sizes() {
    assert_eq!(parse_memory("1048576").unwrap(), 1 << 20);
    assert_eq!(parse_memory("512M").unwrap(), 512 << 20);
    assert_eq!(parse_memory("8g").unwrap(), 8 << 30);
    assert_eq!(parse_memory("8GiB").unwrap(), 8 << 30);
    assert_eq!(parse_memory("2T").unwrap(), 2 << 40);
    for bad in [
        "",
        "M",
        "1000",
        "1K",
        "-1G",
        "1.5G",
        "1Q",
        "99999999999999999999G",
        "1048577",
        "1025K",
    ] {
        assert!(parse_memory(bad).is_err(), "{bad:?} accepted");
    }
}

fn lease(share: u32, memory: u64) -> Lease {
    Lease {
        gpu: "GPU-1".into(),
        dir: "/x".into(),
        share,
        memory,
        memory_total: 80 << 30,
        control: "c".into(),
        lease_file: None,
    }
}

#[test]
fn lease_arithmetic() {
    admit(&lease(70, 0), [(30, 0)].into_iter()).unwrap();
    admit(&lease(100, 0), std::iter::empty()).unwrap();
    let e = admit(&lease(30, 0), [(30, 0), (70, 0)].into_iter()).unwrap_err();
    assert!(
        e.to_string()
            .contains("GPU-1: shares would total 130% (> 100%)"),
        "{e}"
    );
    admit(&lease(10, 40 << 30), [(10, 40 << 30)].into_iter()).unwrap();
    let e = admit(&lease(10, 41 << 30), [(10, 40 << 30)].into_iter()).unwrap_err();
    assert!(e.to_string().contains("memory limits would total"), "{e}");
    // Uncapped containers count no memory.
    admit(&lease(10, 80 << 30), [(10, 0)].into_iter()).unwrap();
}

#[test]
fn pipe_dir_names_the_gpu() {
    let root = Path::new("/run/gpurun/mps");
    assert_eq!(
        gpu_of(root, Path::new("/run/gpurun/mps/GPU-1/pipe")).as_deref(),
        Some("GPU-1")
    );
    for other in [
        "/tmp/nvidia-mps",
        "/run/gpurun/mps/GPU-1",
        "/run/gpurun/mps/GPU-1/log",
        "/run/gpurun/mps/../pipe",
    ] {
        assert_eq!(gpu_of(root, Path::new(other)), None, "{other}");
    }
}

#[test]
fn edits_wire_pipe_and_shm() {
    let cfg = Config::default();
    let e = edits(&cfg, "GPU-1");
    assert_eq!(
        e.env,
        ["CUDA_MPS_PIPE_DIRECTORY=/run/gpurun/mps/GPU-1/pipe"]
    );
    let dests: Vec<&str> = e.mounts.iter().map(|m| m.container_path.as_str()).collect();
    assert_eq!(dests, ["/run/gpurun/mps/GPU-1/pipe", "/dev/shm"]);
    assert_eq!(e.mounts[1].host_path, "/run/gpurun/mps/GPU-1/shm");
}
