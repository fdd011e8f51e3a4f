//! FROM sources: `scratch`, `oci:DIR[:TAG]` (OCI image layout), `oci-archive:FILE[:TAG]`, and
//! `dir:PATH` (a rootfs directory, turned into one layer); anything else is a registry reference
//! (registry.rs).

use crate::cache::Cache;
use crate::error::{io, Error, Result};
use crate::layer::{self, Layer, Snapshot};
use crate::oci::{self, ImageConfig, Index, Manifest};
use crate::store::{sha256_hex, Store};
use std::path::{Path, PathBuf};

/// A base image: its config, its layers (in the store), and an id for cache keys.
pub struct Base {
    pub config: ImageConfig,
    pub layers: Vec<Layer>,
    pub id: String,
}

pub fn load(store: &Store, cache: &Cache, image: &str) -> Result<Base> {
    let err = |msg: String| Error::Image {
        image: image.to_string(),
        msg,
    };
    // checked here, at every FROM, so a bad value fails before any step is dated
    crate::stage::source_date()?;
    if image == "scratch" {
        return Ok(Base {
            config: ImageConfig::scratch(),
            layers: Vec::new(),
            id: "scratch".into(),
        });
    }
    if let Some(rest) = image.strip_prefix("oci:") {
        let (dir, tag) = split_tag(rest);
        return from_layout(store, Path::new(dir), tag).map_err(|e| err(e.to_string()));
    }
    if let Some(rest) = image.strip_prefix("oci-archive:") {
        let (file, tag) = split_tag(rest);
        let tmp = store.tmp("archive");
        let res = (|| {
            std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
            let f = std::fs::File::open(file).map_err(io(file))?;
            tar::Archive::new(f).unpack(&tmp).map_err(io(file))?;
            from_layout(store, &tmp, tag)
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        return res.map_err(|e| err(e.to_string()));
    }
    if let Some(dir) = image.strip_prefix("dir:") {
        return from_dir(store, cache, Path::new(dir)).map_err(|e| err(e.to_string()));
    }
    crate::registry::pull(store, image)
}

/// `path:tag` → (path, Some(tag)); a `:` inside the path's last component only.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') && i > 0 => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let data = std::fs::read(p).map_err(io(p))?;
    serde_json::from_slice(&data).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    layout.join("blobs").join(alg).join(hex)
}

fn from_layout(store: &Store, layout: &Path, tag: Option<&str>) -> Result<Base> {
    let index: Index = read_json(&layout.join("index.json"))?;
    let want = tag.unwrap_or("latest");
    let named =
        |d: &&oci::Descriptor| d.annotations.get(oci::REF_NAME).map(String::as_str) == Some(want);
    let desc = match index.manifests.iter().find(named) {
        Some(d) => d.clone(),
        None if tag.is_none() && index.manifests.len() == 1 => index.manifests[0].clone(),
        None => {
            return Err(Error::Usage(format!(
                "{}: no image tagged {want:?} in index.json",
                layout.display()
            )));
        }
    };
    let desc = platform_manifest(layout, desc)?;
    let manifest: Manifest = read_json(&blob_path(layout, &desc.digest))?;
    let config: ImageConfig = read_json(&blob_path(layout, &manifest.config.digest))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::Usage(
            "manifest layers and config diff_ids differ in number".into(),
        ));
    }
    let mut layers = Vec::new();
    for (l, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let src = blob_path(layout, &l.digest);
        store.import(&src, &l.digest)?;
        layers.push(Layer {
            digest: l.digest.clone(),
            diff_id: diff_id.clone(),
            size: l.size,
        });
    }
    Ok(Base {
        config,
        layers,
        id: desc.digest,
    })
}

/// An index (multi-platform image) → the manifest for this machine's architecture.
fn platform_manifest(layout: &Path, desc: oci::Descriptor) -> Result<oci::Descriptor> {
    if desc.media_type != oci::MT_INDEX && desc.media_type != oci::DOCKER_LIST {
        return Ok(desc);
    }
    let idx: Index = read_json(&blob_path(layout, &desc.digest))?;
    idx.manifests
        .into_iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_none_or(|p| p["architecture"] == oci::arch())
        })
        .ok_or_else(|| {
            Error::Usage(format!(
                "no manifest for linux/{} in the image index",
                oci::arch()
            ))
        })
}

/// A rootfs directory as a one-layer image, cached by the directory's metadata.
fn from_dir(store: &Store, cache: &Cache, dir: &Path) -> Result<Base> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!("{}: not a directory", dir.display())));
    }
    let snap = layer::snapshot(dir)?;
    let key = sha256_hex(format!("dir:{}\n{snap:?}", dir.display()).as_bytes());
    let mut fresh = false;
    let layer = match cache.get(&key) {
        Some(Some(l)) if store.has(&l.digest) => l,
        _ => {
            fresh = true;
            let l = layer::diff(store, dir, &Snapshot::new())?
                .ok_or_else(|| Error::Usage(format!("{}: empty directory", dir.display())))?;
            cache.put(&key, Some(&l))?;
            l
        }
    };
    let mut config = ImageConfig::scratch();
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    // the image goes to other hosts: name the directory only by its last component
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    config.created = crate::stage::step_date(&store.root, &key, fresh);
    config.history.push(oci::History {
        created: config.created.clone(),
        created_by: format!("FROM dir:{name}"),
        comment: "gpurun-build: rootfs directory".into(),
        ..Default::default()
    });
    config
        .config
        .env
        .push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    Ok(Base {
        config,
        layers: vec![layer],
        id: format!("dir:{key}"),
    })
}
