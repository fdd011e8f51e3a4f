//! The build flags users expect (`--network`, `--secret` + `RUN --mount=type=secret`,
//! `--platform`, `--progress`, `-q`). A bundle that serves: build_serve.rs.

mod common;
use common::*;
use std::process::Command;

/// Interface names a RUN step sees, one per line, sorted.
const IFACES: &str = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort";

#[test]
fn network_flag_sets_runs_default() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-netflag");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\n\
         RUN {IFACES} > /net-default\n\
         RUN --network=host {IFACES} > /net-host\n\
         RUN --network=default {IFACES} > /net-default2\n\
         CMD cat /net-default; echo --; cat /net-host; echo --; cat /net-default2\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let b = build(
        &cache,
        &[
            "--network",
            "none",
            "--bundle",
            out.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    b.ok();
    let run = run_bundle(&env, &out);
    run.assert_ok();
    let parts: Vec<&str> = run.stdout.split("--\n").collect();
    assert_eq!(parts[0].trim(), "lo", "--network none: only loopback");
    assert_eq!(
        parts[2].trim(),
        "lo",
        "RUN --network=default is the build's"
    );
    let host_ifaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .count();
    assert!(host_ifaces > 1, "the host has more than lo");
    assert_eq!(
        parts[1].lines().count(),
        host_ifaces,
        "RUN --network=host overrides --network none\n{}",
        parts[1]
    );
    let o = out.to_str().unwrap();
    build(
        &cache,
        &["--network", "bridge", "--bundle", o, ctx.to_str().unwrap()],
    )
    .fails_with(2, "--network bridge: use host or none");
    assert_build_clean(&cache);
    env.assert_clean();
}

/// Every layer blob of the layout, decompressed.
fn layer_bytes(layout: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let out = Command::new("zcat").arg(e.path()).output().unwrap();
        if out.status.success() {
            all.extend(out.stdout);
        }
    }
    all
}

#[test]
fn secrets_are_mounted_for_one_step_only() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-secret");
    let cache = env.dir.join("cache");
    let secret = env.dir.join("token.txt");
    std::fs::write(&secret, "s3cret-v1").unwrap();
    let df = format!(
        "FROM dir:{}\n\
         SHELL [\"/bin/sh\", \"-ec\"]\n\
         RUN --mount=type=secret,id=tok test \"$(cat /run/secrets/tok)\" = s3cret-v1; \
             if sh -c 'echo x > /run/secrets/tok' 2>/dev/null; then exit 9; fi; echo ok > /seen\n\
         RUN --mount=type=secret,id=tok,target=/run/secrets/other,required=true \
             test \"$(cat /run/secrets/other)\" = s3cret-v1\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent\n\
         RUN test ! -e /run/secrets/tok\n\
         CMD [\"cat\", \"/seen\"]\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let layout = env.dir.join("layout");
    let flag = format!("id=tok,src={}", secret.display());
    let args = [
        "--secret",
        flag.as_str(),
        "-t",
        "s:1",
        "--oci-layout",
        layout.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ];
    let b = build(&cache, &args);
    b.ok();
    assert_eq!(b.executed(), 4, "{}", b.stdout);
    for (i, l) in layer_entries(&layout, "1").iter().enumerate() {
        assert!(
            !l.iter()
                .any(|e| e.contains("secrets") || e.trim_end_matches('/') == "run"),
            "layer {i} has the secret's mount point: {l:?}"
        );
    }
    let bytes = layer_bytes(&layout);
    assert!(!bytes.is_empty(), "layers were read");
    assert!(
        !bytes.windows(6).any(|w| w == b"s3cret"),
        "the secret's content is in a layer"
    );
    // Docker: a new value of the secret does not invalidate the steps.
    std::fs::write(&secret, "s3cret-v2").unwrap();
    let again = build(&cache, &args);
    again.ok();
    assert_eq!(again.executed(), 0, "{}", again.stdout);

    let missing = context(
        &env.dir.join("missing"),
        &format!(
            "FROM dir:{}\nRUN --mount=type=secret,id=key,required=true true\n",
            env.rootfs().display()
        ),
        &[],
    );
    let o = env.dir.join("m");
    let o = o.to_str().unwrap();
    build(&cache, &["--bundle", o, missing.to_str().unwrap()]).fails_with(
        1,
        "Dockerfile line 2: secret \"key\" is required but no --secret id=key,src=PATH was given",
    );
    build(
        &cache,
        &[
            "--secret",
            "id=x,src=/nonexistent",
            "--bundle",
            o,
            missing.to_str().unwrap(),
        ],
    )
    .fails_with(
        2,
        "--secret id=x,src=/nonexistent: /nonexistent: not a readable file",
    );
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn platform_progress_quiet_and_help() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-platform");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\nARG TARGETPLATFORM\nRUN echo \"target=$TARGETPLATFORM\"\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let c = ctx.to_str().unwrap();
    let o = env.dir.join("b");
    let o = o.to_str().unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let host = format!("linux/{arch}");
    let b = build(
        &cache,
        &["--platform", &host, "--progress", "plain", "--bundle", o, c],
    );
    b.ok();
    assert!(b.stdout.contains(&format!("target={host}")), "{}", b.stdout);
    assert!(b.stdout.contains("[1/3] FROM"), "{}", b.stdout);
    build(&cache, &["--platform", "linux/s390x", "--bundle", o, c]).fails_with(
        2,
        &format!("--platform linux/s390x: only {host} (this machine) can be built here"),
    );
    let other = context(
        &env.dir.join("other"),
        &format!(
            "FROM --platform=linux/s390x dir:{}\n",
            env.rootfs().display()
        ),
        &[],
    );
    build(&cache, &["--bundle", o, other.to_str().unwrap()])
        .fails_with(1, "Dockerfile line 1: --platform=linux/s390x: only");
    build(&cache, &["--progress", "fancy", "--bundle", o, c]).fails_with(2, "--progress fancy");

    let q = build(
        &cache,
        &["-q", "--no-cache", "--progress", "tty", "--bundle", o, c],
    );
    q.ok();
    assert!(
        !q.stdout.lines().any(|l| l.starts_with('[')),
        "-q prints no step lines\n{}",
        q.stdout
    );
    let help = Command::new(env!("CARGO_BIN_EXE_gpurun-build"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for f in [
        "--network",
        "--secret",
        "--platform",
        "--progress",
        "--quiet",
    ] {
        assert!(help.contains(f), "--help lacks {f}\n{help}");
    }
    assert_build_clean(&cache);
    env.assert_clean();
}
