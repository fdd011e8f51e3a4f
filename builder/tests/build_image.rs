//! OCI image outputs and the cache: no-change rebuilds, invalidation, layouts that umoci and
//! skopeo read (whiteouts, opaque dirs), archives that containerd imports and runs.

mod common;
use common::*;
use std::path::Path;

#[test]
fn rebuild_is_cached_and_inputs_invalidate() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-cache");
    let ctx = fixture("ai-app", &env.dir);
    let cache = env.dir.join("cache");
    let layout = env.dir.join("layout");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "--build-arg".into(),
            base_arg(&env),
            "--oci-layout".into(),
            layout.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(ctx.display().to_string());
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        build(&cache, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let first = run(&[]);
    first.ok();
    assert_eq!(first.cached(), 0);
    let steps = first.executed();
    assert_eq!(
        steps, 10,
        "4 RUN + 1 COPY in the builder, 3 RUN + 3 COPY in the runtime stage, minus none:\n{}",
        first.stdout
    );

    let again = run(&[]);
    again.ok();
    assert_eq!(
        (again.cached(), again.executed()),
        (steps, 0),
        "no-change rebuild:\n{}",
        again.stdout
    );
    assert_eq!(again.digest(), first.digest(), "same manifest digest");

    // A context change re-runs the COPY that reads it and what follows, nothing before.
    std::fs::write(ctx.join("app/model.py"), "WEIGHTS = 'v2'\n").unwrap();
    let changed = run(&[]);
    changed.ok();
    assert_eq!(
        changed.executed(),
        2,
        "COPY . . and the heredoc COPY after it:\n{}",
        changed.stdout
    );
    assert_ne!(changed.digest(), first.digest());
    // An ignored file changes nothing.
    std::fs::write(ctx.join("README.md"), "edited\n").unwrap();
    assert_eq!(run(&[]).executed(), 0);
    // A build-arg used by a RUN invalidates that RUN.
    let arg = run(&["--build-arg", "TORCH_VERSION=9"]);
    assert!(
        arg.stdout.contains("] RUN --mount=type=cache"),
        "{}",
        arg.stdout
    );

    let nocache = run(&["--no-cache"]);
    nocache.ok();
    assert_eq!(nocache.cached(), 0);
    // The cache mount survived between builds: three builds ran the step that appends to it.
    let runs = std::fs::read_dir(cache.join("mounts"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("runs"))
        .find(|p| p.exists())
        .expect("cache mount dir with the step's file");
    assert_eq!(std::fs::read_to_string(runs).unwrap().lines().count(), 3);
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn oci_layout_whiteouts_and_readers() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-oci");
    let cache = env.dir.join("cache");
    let layout = env.dir.join("layout");
    let l = layout.to_str().unwrap();
    // A busybox base image as an OCI layout, then an image FROM it.
    let base_ctx = context(
        &env.dir.join("base"),
        &format!("FROM dir:{}\nENV BASE_ENV=1\n", env.rootfs().display()),
        &[],
    );
    build(
        &cache,
        &[
            "-t",
            "busybox:base",
            "--oci-layout",
            l,
            base_ctx.to_str().unwrap(),
        ],
    )
    .ok();
    let df = "FROM oci:${LAYOUT}:base\n\
              RUN mkdir -p /opt/tmp && echo x > /opt/tmp/f && echo keep > /opt/keep && echo gone > /etc/motd\n\
              RUN rm -rf /opt/tmp /etc/motd\n\
              RUN rm -rf /opt && mkdir /opt && echo new > /opt/new\n\
              CMD [\"cat\", \"/opt/new\"]\n";
    let ctx = context(&env.dir.join("ctx"), &df.replace("${LAYOUT}", l), &[]);
    let b = build(
        &cache,
        &[
            "-t",
            "localhost/wh:1",
            "--oci-layout",
            l,
            ctx.to_str().unwrap(),
        ],
    );
    b.ok();
    let layers = layer_entries(&layout, "1");
    assert_eq!(layers.len(), 4, "base + 3 RUN layers");
    assert!(
        layers[2].contains(&"opt/.wh.tmp".to_string())
            && layers[2].contains(&"etc/.wh.motd".to_string()),
        "{:?}",
        layers[2]
    );
    // rm -rf + mkdir: an opaque dir, or (when the new dir reused the old inode number) a
    // whiteout for each old entry; either way the old contents must not show through.
    let l3 = &layers[3];
    assert!(
        l3.contains(&"opt/.wh..wh..opq".to_string()) || l3.contains(&"opt/.wh.keep".to_string()),
        "{l3:?}"
    );

    if has_tool("umoci") {
        let ub = env.dir.join("umoci-bundle");
        let st = std::process::Command::new("umoci")
            .args(["unpack", "--image", &format!("{l}:1")])
            .arg(&ub)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "umoci unpack: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let r = ub.join("rootfs");
        assert!(
            !r.join("opt/tmp").exists()
                && !r.join("etc/motd").exists()
                && !r.join("opt/keep").exists()
        );
        assert_eq!(std::fs::read_to_string(r.join("opt/new")).unwrap(), "new\n");
    } else {
        panic!("umoci is required (Makefile APT_PACKAGES installs it)");
    }
    if has_tool("skopeo") {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", &format!("oci:{l}:1")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 4);
        assert!(v["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "BASE_ENV=1"));
    } else {
        panic!("skopeo is required (Makefile APT_PACKAGES installs it)");
    }

    // The same image through an OCI archive, as a FROM source, into a bundle.
    let archive = env.dir.join("wh.tar");
    build(
        &cache,
        &[
            "-t",
            "localhost/wh:1",
            "--oci-archive",
            archive.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    )
    .ok();
    let ctx2 = context(
        &env.dir.join("ctx2"),
        &format!("FROM oci-archive:{}\n", archive.display()),
        &[],
    );
    let out = env.dir.join("b2");
    build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx2.to_str().unwrap()],
    )
    .ok();
    let run = run_bundle(&env, &out);
    run.assert_ok();
    assert_eq!(run.stdout, "new\n");
    assert!(
        !out.join("rootfs/opt/keep").exists(),
        "opaque dir applied when unpacking"
    );
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn archive_imports_into_containerd_and_runs() {
    if !require_root() || !tool_or_install("containerd", "containerd") || !tool_or_skip("ctr") {
        return;
    }
    let env = Env::new("build-ctr");
    let cache = env.dir.join("cache");
    let ctx = fixture("ai-app", &env.dir);
    let archive = env.dir.join("ai-app.tar");
    build(
        &cache,
        &[
            "--build-arg",
            &base_arg(&env),
            "-t",
            "localhost/ai-app:test",
            "--oci-archive",
            archive.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    )
    .ok();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/containerd-import.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(&archive)
        .arg("localhost/ai-app:test")
        .env("RUNTIME", bin())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("user=app uid=1000 gid=1000 cwd=/srv/app"),
        "{stdout}"
    );
    assert!(stdout.contains("whiteouts: ok"), "{stdout}");
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn archive_loads_into_podman() {
    if !require_root() || !tool_or_install("podman", "podman") {
        return;
    }
    let env = Env::new("build-podman");
    let cache = env.dir.join("cache");
    let ctx = fixture("ai-app", &env.dir);
    let archive = env.dir.join("ai-app.tar");
    let a = archive.to_str().unwrap();
    build(
        &cache,
        &[
            "--build-arg",
            &base_arg(&env),
            "-t",
            "localhost/ai-app:podman",
            "--oci-archive",
            a,
            ctx.to_str().unwrap(),
        ],
    )
    .ok();
    // A private store: nothing touches the host's podman images.
    let podman = |args: &[&str]| podman(&env.dir, args);
    let load = podman(&["load", "-i", a]);
    assert!(
        load.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let inspect = podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{.Config.WorkingDir}} {{len .RootFS.Layers}}",
        "localhost/ai-app:podman",
    ]);
    assert!(
        inspect.status.success(),
        "podman image inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        "app /srv/app 7"
    );
    let rm = podman(&["rmi", "-a", "-f"]);
    assert!(rm.status.success());
    // vfs leaves no mounts; the store goes with the env's dir
    assert_build_clean(&cache);
    env.assert_clean();
}
