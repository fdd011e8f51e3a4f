//! End-to-end builds with the real gpurun: Dockerfile → bundle that `gpurun run` runs, OCI
//! layouts that umoci/skopeo read, the cache, and errors. Root only (RUN steps are containers).

mod common;
use common::*;
use std::path::Path;

fn base_arg(env: &Env) -> String {
    format!("BASE=dir:{}", env.rootfs().display())
}

#[test]
fn ai_app_bundle_runs_under_gpurun() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-ai-app");
    let ctx = fixture("ai-app", &env.dir);
    // Files .dockerignore must keep out of the image.
    std::fs::create_dir_all(ctx.join(".git")).unwrap();
    std::fs::write(ctx.join(".git/HEAD"), "ref").unwrap();
    std::fs::create_dir_all(ctx.join("app/__pycache__")).unwrap();
    std::fs::write(ctx.join("app/__pycache__/model.cpython-311.pyc"), "pyc").unwrap();
    let cache = env.dir.join("cache");
    let out = env.dir.join("bundle-out");
    let b = build(
        &cache,
        &[
            "--build-arg",
            &base_arg(&env),
            "--build-arg",
            "TORCH_VERSION=2.4.1",
            "--bundle",
            out.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    b.ok();
    assert!(
        b.stdout.contains("[7/26] RUN --mount=type=cache"),
        "progress names step and instruction:\n{}",
        b.stdout
    );
    assert!(
        b.stderr.contains("HEALTHCHECK is kept as an annotation"),
        "{}",
        b.stderr
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["process"]["args"],
        serde_json::json!(["/bin/sh", "/srv/app/app/serve.sh", "--port", "8000"])
    );
    assert_eq!(cfg["process"]["user"]["uid"], 1000);
    assert_eq!(cfg["process"]["cwd"], "/srv/app");
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.title"],
        "ai-app"
    );
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.exposedPorts"],
        "8000/tcp,9000/udp"
    );
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.stopSignal"],
        "SIGINT"
    );
    assert!(cfg["annotations"]["org.gpurun.build.healthcheck"]
        .as_str()
        .unwrap()
        .contains("wget"));

    let run = run_bundle(&env, &out);
    run.assert_ok();
    let o = &run.stdout;
    assert!(o.contains("args: --port 8000"), "{o}");
    assert!(o.contains("user=app uid=1000 gid=1000 cwd=/srv/app"), "{o}");
    assert!(
        o.contains("files: ./app/model.py ./app/serve.sh ./data/config.json ./requirements.txt \n"),
        "dockerignore: {o}"
    );
    assert!(o.contains("owner: app:app"), "{o}");
    assert!(
        o.contains("torch==2.4.1 site: python3.11"),
        "build-arg and global ARG: {o}"
    );
    assert!(
        o.contains("env: MODEL_DIR=/models DEBUG=[] PATH=/opt/venv/bin:/usr/local/sbin"),
        "{o}"
    );
    assert!(o.contains("model_dir=/models"), "heredoc expanded: {o}");
    assert!(o.contains("whiteouts: ok"), "{o}");
    assert_build_clean(&cache);
    env.assert_clean();
}

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
    let c = case(
        "registry",
        "FROM docker.io/library/python:3.11-slim\nRUN true\n",
        &[],
    );
    build(&cache, &["--bundle", o, c.to_str().unwrap()])
        .fails_with(1, "registry pulls are not supported yet");
    let c = case("nolayout", "FROM oci:/nonexistent/layout:v1\n", &[]);
    build(&cache, &["--bundle", o, c.to_str().unwrap()])
        .fails_with(1, "Dockerfile line 1: image oci:/nonexistent/layout:v1");
    let c = case("user", &format!("{base}USER ghost\nRUN true\n"), &[]);
    build(&cache, &["--bundle", o, c.to_str().unwrap()])
        .fails_with(1, "Dockerfile line 3: USER ghost: unknown user");
    let c = case(
        "url",
        &format!("{base}ADD https://example.com/model.bin /models/\n"),
        &[],
    );
    build(&cache, &["--bundle", o, c.to_str().unwrap()])
        .fails_with(1, "URL sources are not supported");
    let c = case("syntax", &format!("{base}RUN true\nNOPE x\n"), &[]);
    build(&cache, &["--bundle", o, c.to_str().unwrap()]).fails_with(1, "line 3");
    let c = case("target", &format!("{base}RUN true\n"), &[]);
    build(
        &cache,
        &["--target", "nope", "--bundle", o, c.to_str().unwrap()],
    )
    .fails_with(2, "no stage named");
    build(&cache, &[c.to_str().unwrap()]).fails_with(2, "no output");
    let b = build(
        &cache,
        &[
            "--runtime",
            "/nonexistent/runc",
            "--bundle",
            o,
            c.to_str().unwrap(),
        ],
    );
    let b2 = std::process::Command::new(env!("CARGO_BIN_EXE_gpurun-build"))
        .args([
            "--runtime",
            "/nonexistent/runc",
            "--no-cache",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--bundle",
            o,
            c.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(b.code != 0 || b2.status.code() != Some(0));
    assert!(
        String::from_utf8_lossy(&b2.stderr).contains("cannot execute runtime /nonexistent/runc")
    );
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

/// Skip (with the reason) unless the tool can be run.
fn tool_or_skip(tool: &str) -> bool {
    let ok = has_tool(tool);
    if !ok {
        println!("skipped: {tool} not installed");
    }
    ok
}

#[test]
fn archive_imports_into_containerd_and_runs() {
    if !require_root() || !tool_or_skip("containerd") {
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

/// A Debian rootfs made by debootstrap once and kept in /var/tmp between runs (it takes about a
/// minute and needs the Debian mirror, like apt-get).
fn debian_rootfs() -> Option<std::path::PathBuf> {
    let dir = Path::new("/var/tmp/gpurun-build-test/debian");
    if dir.join("etc/debian_version").exists() {
        return Some(dir.to_path_buf());
    }
    if !has_tool("debootstrap") {
        let _ = std::process::Command::new("apt-get")
            .args(["install", "-y", "-q", "debootstrap"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    if !tool_or_skip("debootstrap") {
        return None;
    }
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let suite = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .unwrap_or("bookworm")
        .to_string();
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let out = std::process::Command::new("debootstrap")
        .args(["--variant=minbase", &suite])
        .arg(&tmp)
        .arg("http://deb.debian.org/debian")
        .output()
        .unwrap();
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        println!(
            "skipped: debootstrap {suite} failed (no Debian mirror?): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    std::fs::rename(&tmp, dir).unwrap();
    Some(dir.to_path_buf())
}

#[test]
fn debian_base_with_named_user() {
    if !require_root() {
        return;
    }
    let Some(debian) = debian_rootfs() else {
        return;
    };
    let env = Env::new("build-debian");
    let cache = env.dir.join("cache");
    let ctx = fixture("debian-ml", &env.dir);
    let out = env.dir.join("b");
    let arg = format!("DEBIAN={}", debian.display());
    build(
        &cache,
        &[
            "--build-arg",
            &arg,
            "--bundle",
            out.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    )
    .ok();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["user"]["uid"], 1001);
    assert_eq!(cfg["process"]["user"]["gid"], 1001);
    assert_eq!(
        cfg["process"]["user"]["additionalGids"],
        serde_json::json!([44]),
        "video, from /etc/group"
    );
    assert!(
        out.join("rootfs/bin").is_symlink() || out.join("rootfs/bin/bash").exists(),
        "merged /usr kept"
    );
    let run = run_bundle(&env, &out);
    run.assert_ok();
    let o = &run.stdout;
    assert!(
        o.contains("user=mluser:ml groups=ml,video home=/home/mluser"),
        "{o}"
    );
    let version = std::fs::read_to_string(debian.join("etc/debian_version")).unwrap();
    assert!(
        o.contains(&format!(
            "debian={} cwd=/workspace owner=mluser",
            version.split('.').next().unwrap().trim()
        )),
        "{o}"
    );
    assert!(o.contains("writable"), "{o}");
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn bundle_rebuild_reuses_an_untouched_rootfs_only() {
    if !require_root() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let env = Env::new("build-rebundle");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\nRUN echo v1 > /version\nCMD [\"cat\", \"/version\"]\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let args = ["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()];
    build(&cache, &args).ok();
    let ino = |p: &str| {
        std::fs::symlink_metadata(out.join("rootfs").join(p))
            .unwrap()
            .ino()
    };
    let first = ino("version");
    build(&cache, &args).ok();
    assert_eq!(
        ino("version"),
        first,
        "no-change rebuild keeps the extracted rootfs"
    );
    // The container wrote into its rootfs: the next build must not ship that.
    std::fs::write(out.join("rootfs/tmp/scratch"), "dirty").unwrap();
    build(&cache, &args).ok();
    assert!(
        !out.join("rootfs/tmp/scratch").exists(),
        "a touched rootfs is re-extracted"
    );
    // A changed Dockerfile: the new layer lands on the old tree or a fresh one, never a mix.
    std::fs::write(ctx.join("Dockerfile"), df.replace("v1", "v2")).unwrap();
    build(&cache, &args).ok();
    let run = run_bundle(&env, &out);
    run.assert_ok();
    assert_eq!(run.stdout, "v2\n");
    assert_build_clean(&cache);
    env.assert_clean();
}
