//! What a rebuild leaves alone: a cached step reads nothing it does not need.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

/// The last layer of the image `layout` holds (its index's first manifest).
fn last_layer(layout: &Path) -> String {
    let read = |p: &Path| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let blob = |d: &Value| {
        layout
            .join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = read(&layout.join("index.json"));
    let manifest = read(&blob(&index["manifests"][0]["digest"]));
    let layers = manifest["layers"].as_array().unwrap();
    layers.last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A cached `COPY --from=stage` takes the stage's content from its chain, not from its files:
/// with the stage's RUN layer made unreadable in the store, the rebuild still succeeds,
/// fully cached (extracting the stage, as before, would fail on that layer).
#[test]
fn cached_copy_from_extracts_nothing() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-copy-from");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{} AS builder\n\
         RUN echo built > /out\n\
         FROM scratch\n\
         COPY --from=builder /out /out\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let ctx = ctx.to_str().unwrap();
    let (image, stage) = (env.dir.join("image"), env.dir.join("stage"));
    let image_s = image.to_str().unwrap();
    let first = build(&cache, &["--oci-layout", image_s, ctx]);
    first.ok();
    // the builder stage alone (fully cached): its RUN layer's digest
    let args = [
        "--target",
        "builder",
        "--oci-layout",
        stage.to_str().unwrap(),
        ctx,
    ];
    build(&cache, &args).ok();
    let run_layer = last_layer(&stage);
    assert_ne!(
        run_layer,
        last_layer(&image),
        "the final image holds only the COPY layer"
    );
    let blob = cache
        .join("blobs/sha256")
        .join(run_layer.trim_start_matches("sha256:"));
    std::fs::write(&blob, b"not a layer").unwrap();

    let again = build(&cache, &["--oci-layout", image_s, ctx]);
    again.ok();
    assert_eq!(again.executed(), 0, "{}", again.stdout);
    assert_eq!(again.digest(), first.digest());
    // and a miss still reads the stage (the COPY's destination changes): from the layer's
    // snapshot, the step's own upper dir, which the broken blob does not matter to...
    let df2 = df.replace(
        "COPY --from=builder /out /out",
        "COPY --from=builder /out /out2",
    );
    let ctx2 = context(&env.dir.join("ctx2"), &df2, &[]);
    let bundle = env.dir.join("bundle");
    let args = ["--bundle", bundle.to_str().unwrap(), ctx2.to_str().unwrap()];
    build(&cache, &args).ok();
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/out2")).unwrap(),
        "built\n"
    );
    // ... or, without snapshots (GPURUN_BUILD_OVERLAY=0), from the blob, which fails
    let df3 = df.replace(
        "COPY --from=builder /out /out",
        "COPY --from=builder /out /out3",
    );
    let ctx3 = context(&env.dir.join("ctx3"), &df3, &[]);
    let args = ["--oci-layout", image_s, ctx3.to_str().unwrap()];
    build_env(&cache, &[("GPURUN_BUILD_OVERLAY", "0")], &args).fails_with(1, "");
    assert_build_clean(&cache);
    env.assert_clean();
}
