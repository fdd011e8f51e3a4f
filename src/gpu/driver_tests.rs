//! Tests of driver-file discovery (src/gpu/driver.rs).
use super::*;

#[test]
fn symlinks_stay_in_the_driver_root() {
    let t = tempfile::tempdir().unwrap();
    let lib = t.path().join("usr/lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libcuda.so.550.54.15"), "").unwrap();
    std::os::unix::fs::symlink("libcuda.so.550.54.15", lib.join("libcuda.so.1")).unwrap();
    std::os::unix::fs::symlink("/usr/lib/libcuda.so.1", lib.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../etc/passwd", lib.join("escape")).unwrap();
    let cfg = Config {
        driver_root: t.path().into(),
        ..Config::default()
    };
    assert_eq!(
        resolve_in_driver_root(&cfg, "/usr/lib/libcuda.so.1").unwrap(),
        "/usr/lib/libcuda.so.550.54.15"
    );
    assert_eq!(
        resolve_in_driver_root(&cfg, "/usr/lib/abs").unwrap(),
        "/usr/lib/libcuda.so.550.54.15"
    );
    // `..` past the driver root ends at its top, where there is no etc/passwd.
    assert_eq!(resolve_in_driver_root(&cfg, "/usr/lib/escape"), None);
    let files = DriverFiles {
        libs: vec!["/usr/lib/libcuda.so.550.54.15".into()],
        ..Default::default()
    };
    assert_eq!(
        dev_symlinks(&files),
        [(
            "/usr/lib/libcuda.so".to_string(),
            "libcuda.so.1".to_string()
        )]
    );
    assert_eq!(files.lib_dirs(), ["/usr/lib"]);
}

#[test]
fn programs_beside_the_libraries_win_and_scripts_are_skipped() {
    let t = tempfile::tempdir().unwrap();
    let put = |p: &str, body: &[u8]| {
        let p = t.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    // A wrapper script first on PATH, the real program beside the driver's lib64.
    put(
        "/usr/bin/nvidia-smi",
        b"#!/bin/sh\nexec /usr/local/nvidia/bin/nvidia-smi \"$@\"\n",
    );
    put("/usr/local/nvidia/bin/nvidia-smi", b"\x7fELF-smi");
    put("/usr/bin/nvidia-debugdump", b"\x7fELF-dd");
    put("/usr/bin/nvidia-cuda-mps-control", b"\x7fELF-mps");
    let cfg = Config {
        driver_root: t.path().into(),
        ..Config::default()
    };
    let caps = Caps::parse("utility").unwrap();
    let bins = find_bins(&cfg, caps, &["/usr/local/nvidia/lib64".into()]);
    assert_eq!(
        bins,
        [
            "/usr/local/nvidia/bin/nvidia-smi",
            "/usr/bin/nvidia-debugdump"
        ]
    );
    let files = DriverFiles {
        libs: vec!["/usr/local/nvidia/lib64/libcuda.so.580.1".into()],
        bins,
        ..Default::default()
    };
    let binds: Vec<(String, String)> = files.binds().map(|(c, h)| (c, h.clone())).collect();
    assert_eq!(
        binds,
        [
            (
                "/usr/local/nvidia/lib64/libcuda.so.580.1".into(),
                "/usr/local/nvidia/lib64/libcuda.so.580.1".into()
            ),
            (
                "/usr/bin/nvidia-smi".into(),
                "/usr/local/nvidia/bin/nvidia-smi".into()
            ),
            (
                "/usr/bin/nvidia-debugdump".into(),
                "/usr/bin/nvidia-debugdump".into()
            ),
        ]
    );
    // Without the lib dir hint the script is all there is: taken as the last resort.
    assert_eq!(
        find_bins(&cfg, caps, &[]),
        ["/usr/bin/nvidia-smi", "/usr/bin/nvidia-debugdump"]
    );
    // A script first on PATH loses to an ELF program later on it.
    put("/bin/nvidia-smi", b"\x7fELF-smi");
    assert_eq!(find_bins(&cfg, caps, &[])[0], "/bin/nvidia-smi");
}
