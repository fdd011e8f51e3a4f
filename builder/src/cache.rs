//! Step cache: key (parent state + instruction with resolved args + input digests) → the layer
//! that step produced (or none, for a step that changed no file). One small JSON file per key;
//! its mtime is the last use (`prune --keep-storage` evicts by it).

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
        let path = self.dir.join(key);
        let data = std::fs::read(&path).ok()?;
        let e: Entry = serde_json::from_slice(&data).ok()?;
        match e.layer {
            Some(l) if !self.store.has(&l.digest) => None,
            l => {
                touch(&path);
                Some(l)
            }
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
        std::fs::rename(&tmp, &dst).map_err(io(dst))?;
        // Every filesystem step ends here: the finished step stays cached, and a SIGINT/SIGTERM
        // that came during it (a COPY, a layer being written) stops the build before the next.
        crate::cancel::check()
    }
}

/// Mark an entry as used: `prune --keep-storage` evicts the least recently used first (by
/// mtime, since atime is often not kept).
fn touch(path: &std::path::Path) {
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}
