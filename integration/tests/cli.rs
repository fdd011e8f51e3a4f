//! Commands that run no container: --version, features, spec.

use gpurun_integration::*;

#[test]
fn version() {
    if !require_root() {
        return;
    }
    let env = Env::new("version");
    let out = env.gpurun(&["--version"]);
    out.assert_ok();
    assert!(out.stdout.contains("spec: 1."), "{}", out.describe());
    if is_gpurun() {
        assert!(
            out.stdout.starts_with("gpurun version "),
            "{}",
            out.describe()
        );
    }
    env.assert_clean();
}

#[test]
fn features_json() {
    if !require_root() {
        return;
    }
    let env = Env::new("features_json");
    let out = env.gpurun(&["features"]);
    out.assert_ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("features JSON");
    for key in ["ociVersionMin", "ociVersionMax"] {
        assert!(
            v[key].as_str().is_some_and(|s| s.starts_with("1.")),
            "{key}: {v}"
        );
    }
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
        assert!(ns.contains(&want), "{want} missing from {ns:?}");
    }
    if is_gpurun() {
        // The same document every time (capabilities come from an unordered set), and no
        // claim to be runc: engines gate runc's bugs on runc's own version annotation.
        for _ in 0..3 {
            assert_eq!(env.gpurun(&["features"]).stdout, out.stdout);
        }
        let caps = v["linux"]["capabilities"].as_array().expect("capabilities");
        assert_eq!(
            caps.first(),
            Some(&json!("CAP_CHOWN")),
            "kernel order: {caps:?}"
        );
        assert!(v["annotations"]
            .get("org.opencontainers.runc.version")
            .is_none());
        // runtime-spec 1.3: the version and each field gpurun implements since 1.2.
        assert_eq!(v["ociVersionMax"], "1.3.0");
        assert!(env.gpurun(&["--version"]).stdout.contains("spec: 1.3.0"));
        assert!(ns.contains(&"time"), "{ns:?}");
        let opts = v["mountOptions"].as_array().expect("mountOptions");
        for want in ["rro", "rnosuid", "rnoexec", "rnosymfollow", "nosymfollow"] {
            assert!(opts.contains(&json!(want)), "{want} missing from {opts:?}");
        }
        assert_eq!(v["linux"]["netDevices"]["enabled"], true);
        assert_eq!(v["linux"]["intelRdt"]["enabled"], true);
        assert!(v["linux"]["memoryPolicy"]["modes"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("MPOL_BIND"))));
    }
    env.assert_clean();
}

#[test]
fn default_spec_runs() {
    if !require_root() {
        return;
    }
    let env = Env::new("default_spec_runs");
    let b = env.bundle.to_str().unwrap();
    env.gpurun(&["spec", "--bundle", b])
        .assert_err("config.json");
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    env.gpurun(&["spec", "--bundle", b]).assert_ok();
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(env.bundle.join("config.json")).unwrap())
            .unwrap();
    assert!(spec["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(spec["root"]["path"], "rootfs");
    if !is_gpurun() {
        // runc's default spec asks for a terminal, which needs a console socket.
        spec["process"]["terminal"] = json!(false);
    }
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("GPURUN_IT={}", env.marker)));
    env.write_config(&spec);
    // The default args are ["sh"]; stdin is /dev/null, so it exits 0 at once.
    let out = env.run(&env.id());
    out.assert_ok();
    env.assert_clean();
}
