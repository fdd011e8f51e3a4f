//! FROM a registry reference (`registry/name:tag`, `name@sha256:…`), pulled with the
//! `oci-client` crate: manifest (the platform's entry of an index), config, and each layer
//! blob (digest-checked) into the store. Anonymous access; loopback registries (`localhost`,
//! `127.*`, `[::1]`) are spoken to over plain HTTP as Docker does, every other one over HTTPS.

use crate::base::Base;
use crate::error::{Error, Result};
use crate::store::Store;

#[cfg(not(feature = "registry"))]
pub fn pull(_store: &Store, image: &str) -> Result<Base> {
    Err(Error::Image {
        image: image.to_string(),
        msg:
            "registry pulls are not supported by this build (built without the `registry` feature)"
                .into(),
    })
}

#[cfg_attr(not(feature = "registry"), allow(dead_code))]
fn loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            registry
        }
    });
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

#[cfg(feature = "registry")]
pub fn pull(store: &Store, image: &str) -> Result<Base> {
    use crate::error::io;
    use crate::layer::Layer;
    use crate::oci::ImageConfig;
    use oci_client::client::{ClientConfig, ClientProtocol};
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    let err = |msg: String| Error::Image {
        image: image.to_string(),
        msg,
    };
    let reference: Reference = image
        .parse()
        .map_err(|e| err(format!("not an image reference: {e}")))?;
    let protocol = if loopback(reference.registry()) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        ..Default::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("starting the async runtime: {e}")))?;
    rt.block_on(async {
        let auth = RegistryAuth::Anonymous;
        let (manifest, digest, config) = client
            .pull_manifest_and_config(&reference, &auth)
            .await
            .map_err(|e| {
            let host = reference.registry();
            err(format!(
                "pulling the manifest from {host}: {}",
                crate::fetch::explain(&e, host)
            ))
        })?;
        let config: ImageConfig =
            serde_json::from_str(&config).map_err(|e| err(format!("image config: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(err(
                "manifest layers and config diff_ids differ in number".into()
            ));
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if !store.has(&desc.digest) {
                let tmp = store.tmp("pull");
                let file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
                let res = client.pull_blob(&reference, desc, file).await;
                if let Err(e) = res {
                    let _ = std::fs::remove_file(&tmp);
                    let why = crate::fetch::explain(&e, reference.registry());
                    return Err(err(format!("pulling layer {}: {why}", desc.digest)));
                }
                store.adopt(&tmp, &desc.digest)?;
            }
            let size = u64::try_from(desc.size).unwrap_or(0);
            layers.push(Layer {
                digest: desc.digest.clone(),
                diff_id: diff_id.clone(),
                size,
            });
        }
        Ok(Base {
            config,
            layers,
            id: digest,
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_hosts() {
        assert!(super::loopback("localhost:5000"));
        assert!(super::loopback("127.0.0.1:41234"));
        assert!(super::loopback("localhost"));
        assert!(!super::loopback("docker.io"));
        assert!(!super::loopback("ghcr.io:443"));
    }
}
