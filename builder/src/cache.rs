//! Step cache: key (parent state + instruction with resolved args + input digests) → the layer
//! that step produced (or none, for a step that changed no file). One small JSON file per key.

use crate::error::{io, Result};
use crate::layer::Layer;
use crate::store::Store;
use std::path::PathBuf;

pub struct Cache {
    dir: PathBuf,
    store: Store,
    pub enabled: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    layer: Option<Layer>,
}

impl Cache {
    pub fn new(store: &Store, enabled: bool) -> Cache {
        Cache {
            dir: store.root.join("cache"),
            store: store.clone(),
            enabled,
        }
    }

    /// Some(layer-or-none) on a hit whose layer blob is still present.
    pub fn get(&self, key: &str) -> Option<Option<Layer>> {
        if !self.enabled {
            return None;
        }
        let data = std::fs::read(self.dir.join(key)).ok()?;
        let e: Entry = serde_json::from_slice(&data).ok()?;
        match e.layer {
            Some(l) if !self.store.has(&l.digest) => None,
            l => Some(l),
        }
    }

    pub fn put(&self, key: &str, layer: Option<&Layer>) -> Result<()> {
        let e = Entry {
            layer: layer.cloned(),
        };
        let tmp = self.store.tmp("cache");
        let data = serde_json::to_vec(&e).expect("cache entry serializes");
        std::fs::write(&tmp, data).map_err(io(&tmp))?;
        let dst = self.dir.join(key);
        std::fs::rename(&tmp, &dst).map_err(io(dst))
    }
}
