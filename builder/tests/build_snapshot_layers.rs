//! Layers that mean something only over the layers below (crafted OCI images): extracted
//! into overlay snapshots they give the tree a plain extraction gives.

mod common;
use common::*;
use std::path::Path;

/// One tar entry of a crafted layer.
enum E {
    Dir(&'static str),
    File(&'static str, &'static str),
    Link(&'static str, &'static str),
    Symlink(&'static str, &'static str),
}

/// An OCI layout at `dir` whose image has these layers (plain tar), tagged `latest`.
fn crafted_image(dir: &Path, layers: &[&[E]]) {
    use sha2::{Digest, Sha256};
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex: String = Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(blobs.join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for entries in layers {
        let mut b = tar::Builder::new(Vec::new());
        for e in *entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(0);
            match e {
                E::Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    b.append_data(&mut h, p, std::io::empty()).unwrap();
                }
                E::File(p, body) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(body.len() as u64);
                    b.append_data(&mut h, p, body.as_bytes()).unwrap();
                }
                E::Link(p, target) => {
                    h.set_entry_type(tar::EntryType::Link);
                    b.append_link(&mut h, p, target).unwrap();
                }
                E::Symlink(p, target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    b.append_link(&mut h, p, target).unwrap();
                }
            }
        }
        let (d, size) = put(&b.into_inner().unwrap());
        diff_ids.push(d.clone());
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size}));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs});
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Layers that mean something only over the layers below: a whiteout then the same name as
/// a new directory, a hard link to a lower file, a path through a lower symlink, and a
/// `.wh...` entry (which must delete nothing). Extracted into snapshots, they give the tree a
/// plain extraction gives.
#[test]
fn snapshots_of_layers_that_depend_on_lower_ones() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-snap-lower");
    let image = env.dir.join("image");
    let layer0: &[E] = &[
        E::Dir("d"),
        E::File("d/old", "old"),
        E::File("target", "t"),
        E::Dir("usr"),
        E::Dir("usr/lib"),
        E::Symlink("lib", "usr/lib"),
    ];
    let layer1: &[E] = &[
        E::File(".wh.d", ""),
        E::Dir("d"),
        E::File("d/new", "new"),
        E::Link("h", "target"),
        E::File("lib/b", "b"),
        E::File(".wh...", ""),
    ];
    crafted_image(&image, &[layer0, layer1]);
    let df = format!("FROM oci:{}\nCOPY x /x\n", image.display());
    let ctx = context(&env.dir.join("ctx"), &df, &[("x", "x\n")]);
    let (ovl, ext) = (env.dir.join("ovl"), env.dir.join("ext"));
    let c1 = env.dir.join("c1");
    let b = build(
        &c1,
        &["--bundle", ovl.to_str().unwrap(), ctx.to_str().unwrap()],
    );
    b.ok();
    assert!(
        !b.stderr.contains("extracting layers instead"),
        "{}",
        b.stderr
    );
    build_env(
        &env.dir.join("c2"),
        EXTRACT,
        &["--bundle", ext.to_str().unwrap(), ctx.to_str().unwrap()],
    )
    .ok();
    let r = ovl.join("rootfs");
    assert!(
        !r.join("d/old").exists(),
        "a whiteout then a dir: the old contents are gone"
    );
    assert_eq!(std::fs::read_to_string(r.join("usr/lib/b")).unwrap(), "b");
    assert!(std::fs::symlink_metadata(r.join("lib"))
        .unwrap()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(r.join("h")).unwrap(), "t");
    assert_same_tree(&r, &ext.join("rootfs"));
    assert!(
        c1.join("tmp").is_dir(),
        "the store's temp dir survived `.wh...`"
    );
    assert_build_clean(&c1);
    env.assert_clean();
}
