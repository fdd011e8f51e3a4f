//! Images others can run unchanged: `--format docker` (HEALTHCHECK in Docker's config, read by
//! podman), dates (`SOURCE_DATE_EPOCH`, cached steps keep theirs), no host path of a `dir:`
//! base in the history, and an archive left untouched by a no-change rebuild.

mod common;
use common::*;
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const DOCKERFILE: &str = "ARG BASE\nFROM ${BASE}\nCOPY app.txt /app.txt\nENV MODE=serve\n\
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD cat /app.txt\nONBUILD RUN echo next\n\
CMD [\"cat\", \"/app.txt\"]\n";

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &Value) -> PathBuf {
    let d = digest.as_str().unwrap().trim_start_matches("sha256:");
    layout.join("blobs/sha256").join(d)
}

/// (index entry, manifest, config) of the only image of a layout.
fn image(layout: &Path) -> (Value, Value, Value) {
    let index = json(&layout.join("index.json"));
    let entry = index["manifests"][0].clone();
    let manifest = json(&blob(layout, &entry["digest"]));
    let config = json(&blob(layout, &manifest["config"]["digest"]));
    (entry, manifest, config)
}

/// An archive unpacked into `dir`.
fn untar(archive: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let st = Command::new("tar")
        .arg("xf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .status();
    assert!(
        st.is_ok_and(|s| s.success()),
        "tar xf {}",
        archive.display()
    );
    dir.to_path_buf()
}

/// `gpurun-build` with SOURCE_DATE_EPOCH set (common::build passes the test's environment).
fn build_dated(cache: &Path, epoch: &str, args: &[&str]) -> Build {
    let out = Command::new(env!("CARGO_BIN_EXE_gpurun-build"))
        .arg("--runtime")
        .arg(bin())
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .expect("running gpurun-build");
    Build {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn docker_format_keeps_healthcheck_for_podman() {
    if !require_root() || !tool_or_install("podman", "podman") {
        return;
    }
    let env = Env::new("build-docker-fmt");
    let cache = env.dir.join("cache");
    let ctx = context(&env.dir.join("ctx"), DOCKERFILE, &[("app.txt", "ready\n")]);
    let (base, c) = (base_arg(&env), ctx.to_str().unwrap());
    // Default: OCI media types, HEALTHCHECK only as an annotation (the OCI config has no field).
    let oci = env.dir.join("oci");
    build(
        &cache,
        &[
            "--build-arg",
            &base,
            "--oci-layout",
            oci.to_str().unwrap(),
            c,
        ],
    )
    .ok();
    let (entry, manifest, config) = image(&oci);
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert!(config["config"].get("Healthcheck").is_none(), "{config}");
    assert!(manifest["annotations"]["org.gpurun.build.healthcheck"]
        .as_str()
        .is_some_and(|h| h.contains("cat /app.txt")));

    let archive = env.dir.join("app.tar");
    let a = archive.to_str().unwrap();
    let tag = "localhost/fmt-app:docker";
    let args = [
        "--build-arg",
        &base,
        "--format",
        "docker",
        "-t",
        tag,
        "--oci-archive",
        a,
        c,
    ];
    build(&cache, &args).ok();
    let layout = untar(&archive, &env.dir.join("unpacked"));
    let (entry, manifest, config) = image(&layout);
    let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
    assert_eq!(entry["mediaType"], docker_manifest);
    assert_eq!(manifest["mediaType"], docker_manifest);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    for l in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
    let hc = &config["config"]["Healthcheck"];
    assert_eq!(hc["Test"], serde_json::json!(["CMD-SHELL", "cat /app.txt"]));
    assert_eq!(
        (hc["Interval"].as_u64(), hc["Retries"].as_u64()),
        (Some(30_000_000_000), Some(3))
    );
    assert_eq!(
        config["config"]["OnBuild"],
        serde_json::json!(["RUN echo next"])
    );
    // docker-archive's manifest.json too, pointing at the same config
    let dm = json(&layout.join("manifest.json"));
    assert_eq!(
        dm[0]["Config"].as_str().unwrap(),
        format!(
            "blobs/sha256/{}",
            manifest["config"]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        )
    );

    // podman, with a private store: it reads the Healthcheck and runs the image
    let runtime = bin();
    let podman = |args: &[&str]| {
        let with_runtime = [&["--runtime", runtime.to_str().unwrap()], args].concat();
        podman(&env.dir, &with_runtime)
    };
    let load = podman(&["load", "-i", a]);
    assert!(
        load.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let inspect = podman(&["image", "inspect", tag]);
    assert!(
        inspect.status.success(),
        "podman image inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    // podman 4 shows it beside Config, later versions inside it
    let phc = match &info[0]["Config"]["Healthcheck"] {
        Value::Null => &info[0]["Healthcheck"],
        hc => hc,
    };
    assert_eq!(
        phc["Test"],
        serde_json::json!(["CMD-SHELL", "cat /app.txt"]),
        "{info}"
    );
    assert_eq!(info[0]["ManifestType"], docker_manifest, "{info}");
    assert_eq!(phc["Retries"], 3);
    // no healthcheck timer (podman arms it through systemd) and nofile/nproc limits the test's
    // container allows (podman's default exceeds it)
    let run = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--no-healthcheck",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=512:512",
        tag,
    ]);
    let ran = String::from_utf8_lossy(&run.stdout).into_owned();
    let _ = podman(&["rmi", "-a", "-f"]);
    assert!(
        run.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(ran.trim(), "ready");
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn source_date_epoch_is_reproducible() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-sde");
    // a RUN step writes new files: their mtimes are clamped to the epoch
    let df = format!("{DOCKERFILE}RUN mkdir /out && echo built > /out/x\n");
    let ctx = context(&env.dir.join("ctx"), &df, &[("app.txt", "ready\n")]);
    let base = base_arg(&env);
    let mut digests = Vec::new();
    for n in 0..2 {
        if n == 1 {
            // the second build's files are written in a later second
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let cache = env.dir.join(format!("cache{n}"));
        let layout = env.dir.join(format!("layout{n}"));
        let args = [
            "--build-arg",
            &base,
            "--oci-layout",
            layout.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ];
        let b = build_dated(&cache, "1700000000", &args);
        b.ok();
        digests.push(b.digest());
        let (_, _, config) = image(&layout);
        assert_eq!(config["created"], "2023-11-14T22:13:20Z", "{config}");
        let history = config["history"].as_array().unwrap();
        assert_eq!(history.len(), 7, "FROM dir: and 6 steps: {config}");
        for h in history {
            assert_eq!(h["created"], "2023-11-14T22:13:20Z", "{config}");
        }
        // the dir: base is named without the host's path
        let text = config.to_string();
        let host = env.rootfs().display().to_string();
        assert!(
            !text.contains(&host) && !text.contains(env.dir.to_str().unwrap()),
            "{text}"
        );
        assert!(
            history[0]["created_by"]
                .as_str()
                .unwrap()
                .starts_with("FROM dir:"),
            "{text}"
        );
    }
    assert_eq!(
        digests[0], digests[1],
        "two clean caches, same SOURCE_DATE_EPOCH"
    );
    let bad_layout = env.dir.join("layout-bad");
    let bad = build_dated(
        &env.dir.join("cache-bad"),
        "yesterday",
        &[
            "--build-arg",
            &base,
            "--oci-layout",
            bad_layout.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    bad.fails_with(1, "SOURCE_DATE_EPOCH=yesterday");
    env.assert_clean();
}

#[test]
fn no_change_rebuild_keeps_archive_and_dates() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-keep");
    let cache = env.dir.join("cache");
    let df = format!("{DOCKERFILE}RUN echo built > /stamp\n");
    let ctx = context(&env.dir.join("ctx"), &df, &[("app.txt", "ready\n")]);
    let archive = env.dir.join("app.tar");
    let args = [
        "--build-arg",
        &base_arg(&env),
        "--oci-archive",
        archive.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ];
    let first = build(&cache, &args);
    first.ok();
    let before = std::fs::metadata(&archive).unwrap();
    let layout = untar(&archive, &env.dir.join("unpacked"));
    let (_, _, config) = image(&layout);
    let created = config["created"].as_str().unwrap().to_string();
    assert!(
        created.as_str() > "2024-01-01",
        "a real build date, not the epoch: {config}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let again = build(&cache, &args);
    again.ok();
    assert_eq!(again.executed(), 0, "{}", again.stdout);
    assert_eq!(
        again.digest(),
        first.digest(),
        "cached steps keep their dates"
    );
    let after = std::fs::metadata(&archive).unwrap();
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec()),
        "a no-change rebuild rewrote the archive"
    );

    // A changed input writes a new archive, with a new date on the steps that ran.
    std::fs::write(ctx.join("app.txt"), "changed\n").unwrap();
    let changed = build(&cache, &args);
    changed.ok();
    assert_ne!(changed.digest(), first.digest());
    let after = std::fs::metadata(&archive).unwrap();
    assert_ne!(
        (after.ino(), after.mtime_nsec()),
        (before.ino(), before.mtime_nsec())
    );
    let (_, _, config) = image(&untar(&archive, &env.dir.join("unpacked2")));
    assert!(
        config["created"].as_str().unwrap() > created.as_str(),
        "{config}"
    );
    assert_build_clean(&cache);
    env.assert_clean();
}
