//! One stage's build state: image config, layers, cache chain, declared ARGs, and a working
//! rootfs that is only materialised (layers applied) when a step needs files.

use crate::base::Base;
use crate::error::{io, Result};
use crate::expand::Vars;
use crate::layer::Layer;
use crate::oci::{History, ImageConfig};
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Stage {
    pub config: ImageConfig,
    pub layers: Vec<Layer>,
    /// Cache chain id: changes with every filesystem step.
    pub chain: String,
    /// ARGs declared in this stage (in scope for expansion and RUN's environment).
    pub args: Vars,
    pub shell: Vec<String>,
    /// CMD was set in this stage (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// HEALTHCHECK / ONBUILD text, kept as manifest/bundle annotations.
    pub annotations: BTreeMap<String, String>,
    /// Bundle dir of RUN steps; its `rootfs/` is the working tree.
    pub work: PathBuf,
    /// How many of `layers` the working tree holds (None: not created yet).
    applied: Option<usize>,
}

impl Stage {
    pub fn new(base: Base, work: PathBuf) -> Stage {
        Stage {
            chain: format!("base:{}", base.id),
            config: base.config,
            layers: base.layers,
            args: Vars::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_set: false,
            annotations: BTreeMap::new(),
            work,
            applied: None,
        }
    }

    /// A stage starting from another stage's result (`FROM build AS test`).
    pub fn from_stage(parent: &Stage, work: PathBuf) -> Stage {
        let base = Base {
            config: parent.config.clone(),
            layers: parent.layers.clone(),
            id: parent.chain.clone(),
        };
        let mut s = Stage::new(base, work);
        s.chain = parent.chain.clone();
        s.annotations = parent.annotations.clone();
        s
    }

    /// Does the working tree hold every layer?
    pub fn is_materialized(&self) -> bool {
        self.applied == Some(self.layers.len())
    }

    /// The working tree was moved away (into a bundle).
    pub fn forget_tree(&mut self) {
        self.applied = None;
    }

    pub fn rootfs_path(&self) -> PathBuf {
        self.work.join("rootfs")
    }

    /// The working tree, with every layer applied.
    pub fn rootfs(&mut self, store: &Store) -> Result<PathBuf> {
        let root = self.rootfs_path();
        let from = match self.applied {
            Some(n) => n,
            None => {
                if root.exists() {
                    std::fs::remove_dir_all(&root).map_err(io(&root))?;
                }
                std::fs::create_dir_all(&root).map_err(io(&root))?;
                0
            }
        };
        for l in &self.layers[from..] {
            crate::unpack::apply(&store.blob(&l.digest), &root)?;
        }
        self.applied = Some(self.layers.len());
        Ok(root)
    }

    /// Record a step's result. `in_tree`: the working tree already holds the change (a step
    /// that ran here) rather than only the cache.
    pub fn push(&mut self, key: &str, layer: Option<Layer>, created_by: &str, in_tree: bool) {
        let up_to_date = self.applied == Some(self.layers.len());
        let empty = layer.is_none();
        if let Some(l) = layer {
            self.config.rootfs.diff_ids.push(l.diff_id.clone());
            self.layers.push(l);
        }
        if in_tree && up_to_date {
            self.applied = Some(self.layers.len());
        }
        self.chain = key.to_string();
        self.history(created_by, empty);
    }

    pub fn history(&mut self, created_by: &str, empty_layer: bool) {
        self.config.history.push(History {
            created: "1970-01-01T00:00:00Z".into(),
            created_by: created_by.to_string(),
            comment: "gpurun-build".into(),
            empty_layer,
        });
    }

    /// Variables for expansion: declared ARGs, overridden by ENV (Docker's precedence).
    pub fn vars(&self) -> Vars {
        let mut v = self.args.clone();
        for kv in &self.config.config.env {
            if let Some((k, val)) = kv.split_once('=') {
                v.insert(k.into(), val.into());
            }
        }
        v
    }

    /// RUN's environment: the image's Env plus declared ARGs that ENV does not set.
    pub fn run_env(&self) -> Vec<String> {
        let mut env = self.config.config.env.clone();
        for (k, v) in &self.args {
            if self.config.env(k).is_none() {
                env.push(format!("{k}={v}"));
            }
        }
        if self.config.env("PATH").is_none() {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        env
    }

    pub fn workdir(&self) -> &str {
        let w = self.config.config.working_dir.as_str();
        if w.is_empty() {
            "/"
        } else {
            w
        }
    }

    pub fn cleanup(&self) {
        let _ = remove_tree(&self.work);
    }
}

fn remove_tree(p: &Path) -> std::io::Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p)?;
    }
    Ok(())
}
