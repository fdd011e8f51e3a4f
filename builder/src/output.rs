//! Outputs: `--bundle DIR` (config.json + rootfs/, runnable with `gpurun run`), `--oci-layout
//! DIR` and `--oci-archive FILE` (manifest, config and gzip layers that umoci, skopeo, ctr and
//! podman accept).

use crate::error::{io, Error, Result};
use crate::oci::{self, Descriptor, ImageConfig, Index, Manifest};
use crate::spec::{config_json, process_args, SpecInput};
use crate::stage::Stage;
use crate::store::Store;
use crate::user::resolve_user;
use std::collections::BTreeMap;
use std::path::Path;

/// `NAME[:TAG]` → (full name for containerd, tag for `org.opencontainers.image.ref.name`).
pub fn split_name(name: &str) -> (String, String) {
    let (repo, tag) = match name.rfind(':') {
        Some(i) if !name[i + 1..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "latest"),
    };
    let first = repo.split('/').next().unwrap_or("");
    let full = if !repo.contains('/') {
        format!("docker.io/library/{repo}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        repo.to_string()
    } else {
        format!("docker.io/{repo}")
    };
    (format!("{full}:{tag}"), tag.to_string())
}

/// Record of what a bundle's rootfs holds: the image's layers and a digest of the tree's
/// metadata when written (any later change, e.g. by running the bundle, moves ctimes).
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct RootfsStamp {
    layers: Vec<String>,
    tree: String,
}

const STAMP: &str = ".gpurun-build-rootfs.json";

fn tree_digest(rootfs: &Path) -> Result<String> {
    Ok(crate::store::sha256_hex(
        format!("{:?}", crate::layer::snapshot(rootfs)?).as_bytes(),
    ))
}

/// Fill `dir/rootfs` with the stage's layers. Reuses an earlier bundle's rootfs when it is
/// untouched and holds a prefix of these layers (a no-change rebuild extracts nothing), else
/// moves the stage's up-to-date working tree there, else extracts every layer.
fn materialize(store: &Store, stage: &mut Stage, dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    let want: Vec<String> = stage.layers.iter().map(|l| l.digest.clone()).collect();
    let old: Option<RootfsStamp> = std::fs::read(dir.join(STAMP))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    if let Some(old) = old.filter(|o| want.starts_with(&o.layers) && rootfs.is_dir()) {
        if tree_digest(&rootfs)? == old.tree {
            for l in &stage.layers[old.layers.len()..] {
                crate::unpack::apply(&store.blob(&l.digest), &rootfs)?;
            }
            return Ok(());
        }
    }
    crate::unpack::remove(&rootfs)?;
    let _ = std::fs::remove_file(dir.join(STAMP));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if stage.is_materialized() && std::fs::rename(stage.rootfs_path(), &rootfs).is_ok() {
        stage.forget_tree();
        return Ok(());
    }
    std::fs::create_dir_all(&rootfs).map_err(io(&rootfs))?;
    for l in &stage.layers {
        crate::unpack::apply(&store.blob(&l.digest), &rootfs)?;
    }
    Ok(())
}

/// Write `DIR/config.json` and `DIR/rootfs`. DIR must be absent, empty, or an earlier bundle.
pub fn write_bundle(store: &Store, stage: &mut Stage, dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    if dir.exists() {
        let empty = std::fs::read_dir(dir).map_err(io(dir))?.next().is_none();
        if !empty && !dir.join("config.json").exists() {
            return Err(Error::Usage(format!(
                "--bundle {}: exists and is not a bundle; refusing to overwrite",
                dir.display()
            )));
        }
    }
    materialize(store, stage, dir)?;
    let c = &stage.config.config;
    let ids = resolve_user(&rootfs, &c.user)
        .map_err(|m| Error::Usage(format!("USER {}: {m}", c.user)))?;
    if !c.working_dir.is_empty() {
        let wd = crate::unpack::resolve(&rootfs, Path::new(c.working_dir.trim_start_matches('/')))?;
        std::fs::create_dir_all(&wd).map_err(io(&wd))?;
    }
    for d in ["proc", "sys", "dev"] {
        let _ = std::fs::create_dir_all(rootfs.join(d));
    }
    let mut annotations: BTreeMap<String, String> = c.labels.clone();
    annotations.extend(stage.annotations.clone());
    if !c.exposed_ports.is_empty() {
        annotations.insert(
            "org.opencontainers.image.exposedPorts".into(),
            c.exposed_ports
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if !c.stop_signal.is_empty() {
        annotations.insert(
            "org.opencontainers.image.stopSignal".into(),
            c.stop_signal.clone(),
        );
    }
    annotations.insert(
        "org.opencontainers.image.os".into(),
        stage.config.os.clone(),
    );
    annotations.insert(
        "org.opencontainers.image.architecture".into(),
        stage.config.architecture.clone(),
    );
    let mut env = c.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let env = crate::user::with_home(env, &rootfs, ids.uid);
    let spec = config_json(&SpecInput {
        args: process_args(c.entrypoint.as_deref(), c.cmd.as_deref()),
        env,
        cwd: c.working_dir.clone(),
        ids,
        own_network: true,
        binds: Vec::new(),
        annotations,
        cgroups_path: None,
        hostname: "gpurun",
    });
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        serde_json::to_vec_pretty(&spec).expect("spec serializes"),
    )
    .map_err(io(&cfg))?;
    let stamp = RootfsStamp {
        layers: stage.layers.iter().map(|l| l.digest.clone()).collect(),
        tree: tree_digest(&rootfs)?,
    };
    let p = dir.join(STAMP);
    std::fs::write(&p, serde_json::to_vec(&stamp).expect("stamp serializes")).map_err(io(&p))
}

/// Store the config and manifest blobs; returns the manifest's descriptor.
fn manifest(store: &Store, stage: &Stage) -> Result<Descriptor> {
    let cfg: &ImageConfig = &stage.config;
    let (cdig, csize) = store.put(&serde_json::to_vec(cfg).expect("config serializes"))?;
    let m = Manifest {
        schema_version: 2,
        media_type: Some(oci::MT_MANIFEST.into()),
        config: desc(oci::MT_CONFIG, &cdig, csize),
        layers: stage
            .layers
            .iter()
            .map(|l| desc(oci::MT_LAYER_GZIP, &l.digest, l.size))
            .collect(),
        annotations: stage.annotations.clone(),
    };
    let (mdig, msize) = store.put(&serde_json::to_vec(&m).expect("manifest serializes"))?;
    Ok(desc(oci::MT_MANIFEST, &mdig, msize))
}

fn desc(mt: &str, digest: &str, size: u64) -> Descriptor {
    Descriptor {
        media_type: mt.into(),
        digest: digest.into(),
        size,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

/// Write (or add to) an OCI image layout at `dir`, tagged `name`.
pub fn write_layout(store: &Store, stage: &Stage, dir: &Path, name: &str) -> Result<Descriptor> {
    let mut md = manifest(store, stage)?;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    let cfg_digest = {
        let m: Manifest =
            serde_json::from_slice(&store.read(&md.digest)?).expect("manifest we wrote");
        m.config.digest
    };
    let digests = stage
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .chain([cfg_digest, md.digest.clone()]);
    for d in digests {
        let dst = blobs.join(d.trim_start_matches("sha256:"));
        if !dst.exists() {
            let tmp = dst.with_extension("tmp");
            if std::fs::hard_link(store.blob(&d), &tmp).is_err() {
                std::fs::copy(store.blob(&d), &tmp).map_err(io(&tmp))?;
            }
            std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
        }
    }
    let (full, tag) = split_name(name);
    md.annotations.insert(oci::REF_NAME.into(), tag.clone());
    md.annotations
        .insert("io.containerd.image.name".into(), full);
    md.platform =
        Some(serde_json::json!({"architecture": stage.config.architecture, "os": stage.config.os}));
    let index_path = dir.join("index.json");
    let mut index = match std::fs::read(&index_path) {
        Ok(data) => serde_json::from_slice::<Index>(&data)
            .map_err(|e| Error::Usage(format!("{}: {e}", index_path.display())))?,
        Err(_) => Index {
            schema_version: 2,
            media_type: Some(oci::MT_INDEX.into()),
            manifests: Vec::new(),
        },
    };
    index
        .manifests
        .retain(|d| d.annotations.get(oci::REF_NAME) != Some(&tag));
    index.manifests.push(md.clone());
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(&layout))?;
    let tmp = dir.join("index.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&index).expect("index serializes"))
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &index_path).map_err(io(&index_path))?;
    Ok(md)
}

/// Write an OCI archive (a tar of a one-image layout) at `file`.
pub fn write_archive(store: &Store, stage: &Stage, file: &Path, name: &str) -> Result<Descriptor> {
    let tmp = store.tmp("layout");
    let res = (|| {
        let md = write_layout(store, stage, &tmp, name)?;
        let part = file.with_extension("tar.part");
        let f = std::fs::File::create(&part).map_err(io(&part))?;
        let mut tar = tar::Builder::new(f);
        tar.mode(tar::HeaderMode::Deterministic);
        for entry in ["oci-layout", "index.json"] {
            tar.append_path_with_name(tmp.join(entry), entry)
                .map_err(io(&part))?;
        }
        tar.append_dir_all("blobs", tmp.join("blobs"))
            .map_err(io(&part))?;
        tar.into_inner()
            .and_then(|f| f.sync_all())
            .map_err(io(&part))?;
        std::fs::rename(&part, file).map_err(io(file))?;
        Ok(md)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    res
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn names() {
        assert_eq!(
            split_name("app"),
            ("docker.io/library/app:latest".into(), "latest".into())
        );
        assert_eq!(
            split_name("localhost:5000/ml/app:v1"),
            ("localhost:5000/ml/app:v1".into(), "v1".into())
        );
        assert_eq!(
            split_name("me/app:2"),
            ("docker.io/me/app:2".into(), "2".into())
        );
    }
}
