//! RUN step behaviour (network, exec form, the runtime and devices handed to it) and errors:
//! each names the Dockerfile line and leaves nothing behind.

mod common;
use common::*;

#[test]
fn run_network_and_exec_form() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-net");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\n\
         SHELL [\"/bin/sh\", \"-ec\"]\n\
         RUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /net-none\n\
         RUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /net-host\n\
         RUN [\"/bin/sh\", \"-c\", \"echo exec-form $0\", \"arg0\"]\n\
         CMD cat /net-none; echo --; cat /net-host\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let b = build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    );
    b.ok();
    assert!(
        b.stdout.contains("exec-form arg0"),
        "RUN output is shown: {}",
        b.stdout
    );
    let run = run_bundle(&env, &out);
    run.assert_ok();
    let (none, host) = run.stdout.split_once("--\n").unwrap();
    assert_eq!(none.trim(), "lo", "--network=none: only loopback");
    let host_ifaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .count();
    assert_eq!(
        host.lines().count(),
        host_ifaces,
        "default: the host's network namespace\n{host}"
    );
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn errors_name_the_line_and_leave_nothing() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-errors");
    let cache = env.dir.join("cache");
    let base = format!("FROM dir:{}\n", env.rootfs().display());
    let out = env.dir.join("b");
    let o = out.to_str().unwrap();
    let case =
        |name: &str, df: &str, files: &[(&str, &str)]| context(&env.dir.join(name), df, files);

    // A failing RUN: its exit code, its output, its line.
    let c = case(
        "fail",
        &format!("{base}RUN echo step-ok\nRUN echo about-to-fail; exit 7\nRUN echo never\n"),
        &[],
    );
    let b = build(&cache, &["--bundle", o, c.to_str().unwrap()]);
    b.fails_with(7, "Dockerfile line 3: RUN failed with exit code 7");
    assert!(
        b.stdout.contains("about-to-fail") && !b.stdout.contains("never"),
        "{}",
        b.stdout
    );
    assert!(!out.exists(), "no output after a failed build");

    let c = case("missing", &format!("{base}COPY nothere.txt /x\n"), &[]);
    build(&cache, &["--bundle", o, c.to_str().unwrap()])
        .fails_with(1, "Dockerfile line 2: nothere.txt: no such file");
    let c = case("escape", &format!("{base}COPY ../../etc/passwd /x\n"), &[]);
    build(&cache, &["--bundle", o, c.to_str().unwrap()]).fails_with(1, "outside the build context");
    let c = case(
        "ignored",
        &format!("{base}COPY secret.key /x\n"),
        &[(".dockerignore", "*.key\n"), ("secret.key", "k")],
    );
    build(&cache, &["--bundle", o, c.to_str().unwrap()])
        .fails_with(1, "Dockerfile line 2: secret.key");
    // A registry nobody listens on (port 1 on loopback): a clear pull error, no retry loop.
    let c = case(
        "registry",
        "FROM 127.0.0.1:1/ml/python:3.11-slim\nRUN true\n",
        &[],
    );
    build(&cache, &["--bundle", o, c.to_str().unwrap()]).fails_with(
        1,
        "Dockerfile line 1: image 127.0.0.1:1/ml/python:3.11-slim: pulling the manifest from 127.0.0.1:1",
    );
    let c = case("nolayout", "FROM oci:/nonexistent/layout:v1\n", &[]);
    build(&cache, &["--bundle", o, c.to_str().unwrap()])
        .fails_with(1, "Dockerfile line 1: image oci:/nonexistent/layout:v1");
    let c = case("user", &format!("{base}USER ghost\nRUN true\n"), &[]);
    build(&cache, &["--bundle", o, c.to_str().unwrap()])
        .fails_with(1, "Dockerfile line 3: USER ghost: unknown user");
    let c = case(
        "url",
        &format!("{base}COPY https://example.com/model.bin /models/\n"),
        &[],
    );
    build(&cache, &["--bundle", o, c.to_str().unwrap()]).fails_with(
        1,
        "Dockerfile line 2: https://example.com/model.bin: COPY does not take URLs",
    );
    let c = case("syntax", &format!("{base}RUN true\nNOPE x\n"), &[]);
    build(&cache, &["--bundle", o, c.to_str().unwrap()]).fails_with(1, "line 3");
    let c = case("target", &format!("{base}RUN true\n"), &[]);
    build(
        &cache,
        &["--target", "nope", "--bundle", o, c.to_str().unwrap()],
    )
    .fails_with(2, "no stage named");
    build(&cache, &[c.to_str().unwrap()]).fails_with(2, "no output");
    let no_runtime = std::path::Path::new("/nonexistent/runc");
    let b = build_with(
        &cache,
        no_runtime,
        &["--no-cache", "--bundle", o, c.to_str().unwrap()],
    );
    b.fails_with(1, "cannot execute runtime /nonexistent/runc");
    // A non-bundle dir is never overwritten.
    let keep = env.dir.join("precious");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::write(keep.join("data"), "x").unwrap();
    build(
        &cache,
        &["--bundle", keep.to_str().unwrap(), c.to_str().unwrap()],
    )
    .fails_with(2, "refusing to overwrite");
    assert!(keep.join("data").exists());
    assert!(!out.exists());
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn runtime_flag_and_cdi_devices_reach_the_runtime() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-runtime");
    let cache = env.dir.join("cache");
    let log = env.dir.join("calls");
    std::fs::create_dir_all(&log).unwrap();
    // gpurun resolves the step's CDI device itself: a CDI spec for `nvidia.com/gpu=all` in a
    // private spec dir (named by a gpurun config file) whose edit the RUN step must see.
    let cdi_dir = env.dir.join("cdi");
    std::fs::create_dir_all(&cdi_dir).unwrap();
    std::fs::write(
        cdi_dir.join("gpu.json"),
        r#"{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[{"name":"all","containerEdits":{"env":["GPU_FROM=cdi"]}}]}"#,
    )
    .unwrap();
    let config = env.dir.join("gpurun.toml");
    std::fs::write(
        &config,
        format!(
            "[nvidia]\ncdi-spec-dirs = [{:?}]\n",
            cdi_dir.display().to_string()
        ),
    )
    .unwrap();
    // Any runc-compatible binary: here a wrapper that keeps each config.json, then runs gpurun.
    let wrapper = env.dir.join("runc-wrapper");
    let script = format!(
        "#!/bin/sh\nprev=\nfor a in \"$@\"; do [ \"$prev\" = --bundle ] && cp \"$a/config.json\" {log}/config-$$.json; prev=$a; done\n\
         echo \"$*\" >> {log}/argv\nGPURUN_CONFIG={config} exec {gpurun} \"$@\"\n",
        log = log.display(),
        config = config.display(),
        gpurun = bin().display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let df = format!(
        "FROM dir:{}\nARG MODEL=resnet\nRUN --device=nvidia.com/gpu=all echo \"gpu step $MODEL $GPU_FROM\"\nRUN echo plain > /plain\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let b = build_with(
        &cache,
        &wrapper,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    );
    b.ok();
    // the CDI edit is gpurun's own (runc ignores the annotation)
    if gpurun_integration::gpurun_only() {
        assert!(b.stdout.contains("gpu step resnet cdi"), "{}", b.stdout);
    }
    let argv = std::fs::read_to_string(log.join("argv")).unwrap();
    let runs = argv
        .lines()
        .filter(|l| l.contains(" run --bundle "))
        .count();
    let deletes = argv
        .lines()
        .filter(|l| l.contains(" delete --force "))
        .count();
    assert_eq!(
        (runs, deletes),
        (2, 2),
        "one run and one delete per RUN step:\n{argv}"
    );
    let configs: Vec<serde_json::Value> = std::fs::read_dir(&log)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("config-"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    assert_eq!(configs.len(), 2);
    let gpu: Vec<_> = configs
        .iter()
        .filter(|c| c["annotations"]["cdi.k8s.io/gpurun-build"] == "nvidia.com/gpu=all")
        .collect();
    assert_eq!(gpu.len(), 1, "only the --device step asks for the GPU");
    for c in &configs {
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert!(
            !ns.iter().any(|n| n["type"] == "network"),
            "host network by default"
        );
        assert!(
            c["linux"]["cgroupsPath"]
                .as_str()
                .unwrap()
                .starts_with("gpurun-build-"),
            "relative: under the caller's cgroup"
        );
        assert_eq!(c["root"]["readonly"], false);
        assert!(
            c["process"]["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "MODEL=resnet"),
            "ARGs are in RUN's environment"
        );
    }
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn add_extracts_archives_copy_globs_and_target_skips_stages() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-add");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{base} AS broken\n\
         RUN exit 1\n\
         FROM dir:{base} AS final\n\
         ADD weights.tar.gz /models/\n\
         ADD plain.tar /models/plain/\n\
         COPY *.py /app/\n\
         COPY --chmod=700 scripts /app/scripts\n\
         FROM final AS unused\n\
         RUN exit 2\n",
        base = env.rootfs().display()
    );
    let ctx = context(
        &env.dir.join("ctx"),
        &df,
        &[
            ("a.py", "a"),
            ("b.py", "b"),
            ("c.txt", "c"),
            ("scripts/run.sh", "echo run"),
            ("w/layer1.bin", "w1"),
            ("w/sub/layer2.bin", "w2"),
        ],
    );
    let tar = |args: &[&str]| {
        let st = std::process::Command::new("tar")
            .current_dir(&ctx)
            .args(args)
            .status()
            .unwrap();
        assert!(st.success());
    };
    tar(&["czf", "weights.tar.gz", "-C", "w", "."]);
    tar(&["cf", "plain.tar", "-C", "w", "sub"]);
    let out = env.dir.join("b");
    let b = build(
        &cache,
        &[
            "--target",
            "final",
            "--bundle",
            out.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    b.ok();
    assert!(
        !b.stdout.contains("RUN exit"),
        "stages --target does not need are skipped:\n{}",
        b.stdout
    );
    let r = out.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(r.join("models/layer1.bin")).unwrap(),
        "w1",
        "ADD extracts .tar.gz"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("models/sub/layer2.bin")).unwrap(),
        "w2"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("models/plain/sub/layer2.bin")).unwrap(),
        "w2",
        "and plain tar"
    );
    assert!(!r.join("models/weights.tar.gz").exists());
    assert!(
        r.join("app/a.py").is_file()
            && r.join("app/b.py").is_file()
            && !r.join("app/c.txt").exists(),
        "glob"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(r.join("app/scripts/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "--chmod");
    assert_build_clean(&cache);
    env.assert_clean();
}
