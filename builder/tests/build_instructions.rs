//! Instructions the other tests do not reach: platform ARGs, ONBUILD/HEALTHCHECK annotations
//! (with warnings), COPY --from an image, `-f` with a Dockerfile-specific `.dockerignore`.

mod common;
use common::*;

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

#[test]
fn platform_args_annotations_copy_from_image_and_dockerfile_ignore() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-instr");
    let cache = env.dir.join("cache");
    let layout = env.dir.join("layout");
    // An image (not a stage) to COPY --from.
    let img = context(
        &env.dir.join("img"),
        "FROM scratch\nCOPY tokenizer.json /assets/tokenizer.json\n",
        &[("tokenizer.json", "{\"vocab\": 32000}")],
    );
    build(
        &cache,
        &[
            "-t",
            "assets:v1",
            "--oci-layout",
            layout.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    )
    .ok();
    // -f names a Dockerfile outside the context; its own .dockerignore replaces the context's.
    let ctx = context(
        &env.dir.join("ctx"),
        "FROM scratch\n",
        &[
            (".dockerignore", "*.txt\n"),
            (
                "notes.txt",
                "kept: only the context's .dockerignore excludes it",
            ),
            ("model.ckpt", "excluded by ml.Dockerfile.dockerignore"),
            ("serve.py", "print('serve')"),
        ],
    );
    let dfdir = env.dir.join("dockerfiles");
    std::fs::create_dir_all(&dfdir).unwrap();
    let df = format!(
        "ARG BUILDPLATFORM\n\
         FROM --platform=$BUILDPLATFORM dir:{busybox}\n\
         ARG TARGETARCH\n\
         ARG TARGETPLATFORM\n\
         RUN echo \"$TARGETARCH $TARGETPLATFORM\" > /platform\n\
         COPY --from=oci:{layout}:v1 /assets/tokenizer.json /srv/\n\
         COPY . /srv/app/\n\
         ONBUILD COPY . /app\n\
         ONBUILD RUN make\n\
         HEALTHCHECK CMD false\n\
         HEALTHCHECK --interval=5s CMD true\n\
         CMD [\"cat\", \"/platform\", \"/srv/tokenizer.json\"]\n",
        busybox = env.rootfs().display(),
        layout = layout.display()
    );
    std::fs::write(dfdir.join("ml.Dockerfile"), df).unwrap();
    std::fs::write(dfdir.join("ml.Dockerfile.dockerignore"), "*.ckpt\n").unwrap();
    let out = env.dir.join("b");
    let b = build(
        &cache,
        &[
            "-f",
            dfdir.join("ml.Dockerfile").to_str().unwrap(),
            "--bundle",
            out.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    b.ok();
    assert!(
        b.stderr
            .contains("warning: line 8: ONBUILD is kept as an annotation only")
            && b.stderr.contains("warning: line 11: HEALTHCHECK is kept"),
        "{}",
        b.stderr
    );
    let cfg = bundle_config(&out);
    let ann = &cfg["annotations"];
    assert_eq!(
        ann["org.gpurun.build.onbuild"], "ONBUILD COPY . /app\nONBUILD RUN make",
        "every ONBUILD trigger"
    );
    assert_eq!(
        ann["org.gpurun.build.healthcheck"], "HEALTHCHECK --interval=5s CMD true",
        "the last HEALTHCHECK"
    );
    let r = out.join("rootfs/srv/app");
    assert!(r.join("serve.py").is_file() && r.join("notes.txt").is_file());
    assert!(
        !r.join("model.ckpt").exists(),
        "ml.Dockerfile.dockerignore applies"
    );
    let run = run_bundle(&env, &out);
    run.assert_ok();
    let arch = oci_arch();
    assert_eq!(
        run.stdout,
        format!("{arch} linux/{arch}\n{{\"vocab\": 32000}}")
    );
    assert_build_clean(&cache);
    env.assert_clean();
}
