//! Dockerfile → bundle → `gpurun run`: the AI-app fixture (multi-stage, non-root USER, ARG/ENV,
//! .dockerignore, heredocs, whiteouts), rebuilds into the same bundle, and a Debian base.

mod common;
use common::*;
use std::path::Path;

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
    let cfg = bundle_config(&out);
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
    let cfg = bundle_config(&out);
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
