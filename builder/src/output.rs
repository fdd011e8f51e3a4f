//! Outputs: `--bundle DIR` (config.json + rootfs/, runnable with `gpurun run`), `--oci-layout
//! DIR` and `--oci-archive FILE` (manifest, config and gzip layers that umoci, skopeo, ctr and
//! podman accept).

use crate::error::{io, Error, Result};
use crate::oci::{self, Descriptor, Format, ImageConfig, Index, Manifest};
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
    crate::bundle_tree::materialize(store, stage, dir)?;
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
    crate::bundle_tree::stamp(stage, dir)
}

/// Media types of (manifest, config, gzip layer) for `--format`.
fn media_types(format: Format) -> (&'static str, &'static str, &'static str) {
    match format {
        Format::Oci => (oci::MT_MANIFEST, oci::MT_CONFIG, oci::MT_LAYER_GZIP),
        Format::Docker => (
            oci::DOCKER_MANIFEST,
            oci::DOCKER_CONFIG,
            oci::DOCKER_LAYER_GZIP,
        ),
    }
}

/// Store the config and manifest blobs; returns the manifest's descriptor and the config's.
fn manifest(store: &Store, stage: &Stage, format: Format) -> Result<(Descriptor, Descriptor)> {
    let (mt_manifest, mt_config, mt_layer) = media_types(format);
    let cfg: ImageConfig = stage
        .config
        .for_format(format, &stage.annotations, &stage.shell)
        .map_err(Error::Usage)?;
    let (cdig, csize) = store.put(&serde_json::to_vec(&cfg).expect("config serializes"))?;
    let m = Manifest {
        schema_version: 2,
        media_type: Some(mt_manifest.into()),
        config: desc(mt_config, &cdig, csize),
        layers: stage
            .layers
            .iter()
            .map(|l| desc(mt_layer, &l.digest, l.size))
            .collect(),
        // Docker's schema 2 has no annotations: HEALTHCHECK/ONBUILD are in its config
        annotations: match format {
            Format::Oci => stage.annotations.clone(),
            Format::Docker => BTreeMap::new(),
        },
    };
    let (mdig, msize) = store.put(&serde_json::to_vec(&m).expect("manifest serializes"))?;
    Ok((desc(mt_manifest, &mdig, msize), m.config))
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

/// Write `data` at `path` unless it already holds it (an unchanged output keeps its mtime).
fn write_if_changed(path: &Path, data: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == data) {
        return Ok(());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, data).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Write (or add to) an OCI image layout at `dir`, tagged `name`.
pub fn write_layout(
    store: &Store,
    stage: &Stage,
    dir: &Path,
    name: &str,
    format: Format,
) -> Result<Descriptor> {
    let (mut md, cd) = manifest(store, stage, format)?;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    let digests = stage
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .chain([cd.digest, md.digest.clone()]);
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
    write_if_changed(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    write_if_changed(
        &index_path,
        &serde_json::to_vec(&index).expect("index serializes"),
    )?;
    Ok(md)
}

/// Write an OCI archive (a tar of a one-image layout) at `file`; with `--format docker` it
/// also holds Docker's `manifest.json`, so `docker load` of any version reads it. An archive
/// that already holds this image is left as it is.
pub fn write_archive(
    store: &Store,
    stage: &Stage,
    file: &Path,
    name: &str,
    format: Format,
) -> Result<Descriptor> {
    let tmp = store.tmp("layout");
    let res = (|| {
        let md = write_layout(store, stage, &tmp, name, format)?;
        if format == Format::Docker {
            docker_manifest(store, &tmp, &md, name)?;
        }
        let mut entries: Vec<String> = ["oci-layout", "index.json", "blobs", "blobs/sha256"]
            .map(String::from)
            .into();
        if format == Format::Docker {
            entries.insert(2, "manifest.json".into());
        }
        let blobs = tmp.join("blobs/sha256");
        let mut names: Vec<String> = std::fs::read_dir(&blobs)
            .map_err(io(&blobs))?
            .map(|e| e.map(|e| format!("blobs/sha256/{}", e.file_name().to_string_lossy())))
            .collect::<std::io::Result<_>>()
            .map_err(io(&blobs))?;
        names.sort();
        entries.extend(names);
        if archive_holds(file, &tmp, &entries) {
            return Ok(md);
        }
        let part = file.with_extension("tar.part");
        let f = std::fs::File::create(&part).map_err(io(&part))?;
        let mut tar = tar::Builder::new(f);
        tar.mode(tar::HeaderMode::Deterministic);
        for e in &entries {
            tar.append_path_with_name(tmp.join(e), e)
                .map_err(io(&part))?;
        }
        tar.into_inner()
            .and_then(|f| f.sync_all())
            .map_err(io(&part))?;
        std::fs::rename(&part, file).map_err(io(file))?;
        Ok(md)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    res
}

/// Docker's `manifest.json` (docker-archive) beside the layout's index.json.
fn docker_manifest(store: &Store, layout: &Path, md: &Descriptor, name: &str) -> Result<()> {
    let m: Manifest = serde_json::from_slice(&store.read(&md.digest)?).expect("manifest we wrote");
    let path = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let json = serde_json::json!([{
        "Config": path(&m.config.digest),
        "RepoTags": [split_name(name).0],
        "Layers": m.layers.iter().map(|l| path(&l.digest)).collect::<Vec<_>>(),
    }]);
    let p = layout.join("manifest.json");
    std::fs::write(&p, serde_json::to_vec(&json).expect("json serializes")).map_err(io(&p))
}

/// Does `file` already hold exactly these entries (same names and sizes, same index.json and
/// manifest.json)? Reads only tar headers and the two small JSON files: blobs are named by
/// their digests, so equal names and sizes mean equal content.
fn archive_holds(file: &Path, layout: &Path, entries: &[String]) -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    let mut ar = tar::Archive::new(f);
    let Ok(iter) = ar.entries_with_seek() else {
        return false;
    };
    let mut want = entries.iter();
    for e in iter {
        let Ok(mut e) = e else { return false };
        let (Some(name), Ok(path)) = (want.next(), e.path().map(|p| p.into_owned())) else {
            return false;
        };
        let Ok(meta) = std::fs::metadata(layout.join(name)) else {
            return false;
        };
        let size = if meta.is_dir() { 0 } else { meta.len() };
        if path != Path::new(name) || e.size() != size {
            return false;
        }
        if name.ends_with(".json") {
            let mut data = Vec::new();
            if e.read_to_end(&mut data).is_err()
                || std::fs::read(layout.join(name)).ok() != Some(data)
            {
                return false;
            }
        }
    }
    want.next().is_none()
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
