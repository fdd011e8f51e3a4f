//! One stage's build state: image config, layers, cache chain, declared ARGs, and a working
//! rootfs that is only materialised (layers applied) when a step needs files.

use crate::base::Base;
use crate::error::Result;
use crate::expand::Vars;
use crate::layer::Layer;
use crate::oci::{History, ImageConfig};
use crate::store::Store;
use crate::tree::WorkTree;
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
    tree: WorkTree,
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
            tree: WorkTree::new(work.clone()),
            work,
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

    /// Does the working tree hold every layer, extracted (so it may be moved)?
    pub fn is_materialized(&self) -> bool {
        self.tree.extracted(self.layers.len())
    }

    /// The working tree was moved away (into a bundle), or is not needed any more.
    pub fn forget_tree(&mut self) {
        self.tree.release();
    }

    pub fn rootfs_path(&self) -> PathBuf {
        self.tree.rootfs_path()
    }

    /// The working tree, with every layer applied.
    pub fn rootfs(&mut self, store: &Store) -> Result<PathBuf> {
        self.tree.rootfs(store, &self.layers)
    }

    /// The working tree, ready for a step that changes it.
    pub fn begin_change(&mut self, store: &Store) -> Result<PathBuf> {
        let root = self.rootfs(store)?;
        self.tree.begin()?;
        Ok(root)
    }

    /// The layer of what changed since [`Self::begin_change`] (None: nothing did).
    pub fn finish_change(&mut self, store: &Store) -> Result<Option<Layer>> {
        self.tree.finish(store, &self.layers)
    }

    /// Record a step's result.
    /// `fresh`: the step ran now (its tree change came from [`Self::finish_change`]) rather
    /// than from the cache.
    pub fn push(&mut self, key: &str, layer: Option<Layer>, created_by: &str, fresh: bool) {
        let empty = layer.is_none();
        if let Some(l) = layer {
            self.config.rootfs.diff_ids.push(l.diff_id.clone());
            self.layers.push(l);
        }
        self.chain = key.to_string();
        // a step that ran now is (re)dated now; a cache hit keeps its first build's date
        self.dated_history(key, fresh, created_by, empty);
    }

    /// A config-only step (ENV, CMD …): not cached, so dated by its parent state and text.
    pub fn history(&mut self, created_by: &str, empty_layer: bool) {
        let key = crate::store::sha256_hex(format!("{}\n{created_by}", self.chain).as_bytes());
        self.dated_history(&key, false, created_by, empty_layer);
    }

    fn dated_history(&mut self, key: &str, fresh: bool, created_by: &str, empty_layer: bool) {
        let created = match self.store_root() {
            Some(root) => step_date(root, key, fresh),
            None => source_date().ok().flatten().unwrap_or_else(now),
        };
        self.config.created = created.clone();
        self.config.history.push(History {
            created,
            created_by: created_by.to_string(),
            comment: "gpurun-build".into(),
            empty_layer,
        });
    }

    /// The store holding this stage's work dir (`<store>/work/<id>`, see build.rs).
    fn store_root(&self) -> Option<&Path> {
        self.work.parent()?.parent()
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
        self.tree.cleanup();
    }
}

/// `SOURCE_DATE_EPOCH` as an RFC 3339 date, when set.
pub fn source_date() -> Result<Option<String>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            v.trim()
                .parse::<u64>()
                .map(|s| Some(rfc3339(s)))
                .map_err(|_| {
                    crate::error::Error::Usage(format!(
                        "SOURCE_DATE_EPOCH={v}: expected whole seconds since 1970-01-01"
                    ))
                })
        }
        _ => Ok(None),
    }
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Date of the step `key` in history: SOURCE_DATE_EPOCH when set; else the date recorded in
/// `<store>/dates/<key>` when the step was first built (rewritten when `fresh`), so a
/// no-change rebuild gives the same config digest.
pub fn step_date(root: &Path, key: &str, fresh: bool) -> String {
    if let Ok(Some(d)) = source_date() {
        return d;
    }
    let dir = root.join("dates");
    let file = dir.join(key);
    if !fresh {
        if let Ok(d) = std::fs::read_to_string(&file) {
            if !d.is_empty() {
                return d;
            }
        }
    }
    let d = now();
    // best effort: without the record the date is only less stable
    let tmp = dir.join(format!(".{key}.{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&tmp, &d))
        .and_then(|()| std::fs::rename(&tmp, &file));
    d
}

/// Seconds since the epoch → `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
