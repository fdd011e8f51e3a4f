//! The build: global ARGs, stage selection (`--target` and the stages it needs), one stage at
//! a time with per-step progress, then the image (config + layers) of the target stage.

use crate::cache::Cache;
use crate::dockerfile::{Dockerfile, Kind, Step};
use crate::error::{at, Error, Result};
use crate::expand::{self, Vars};
use crate::ignore::Ignore;
use crate::oci;
use crate::stage::Stage;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

pub struct Opts {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub runtime: PathBuf,
    pub devices: Vec<String>,
    pub store_root: PathBuf,
    /// `--network`: RUN's default network (host when `None`).
    pub network: Option<String>,
    /// `--secret id=ID,src=PATH`, as given.
    pub secrets: Vec<String>,
    /// `--platform`, as given.
    pub platform: Option<String>,
    /// `--progress`: plain, tty or auto.
    pub progress: String,
    /// `-q`: no step output.
    pub quiet: bool,
}

pub struct Builder {
    pub opts: Opts,
    pub store: Store,
    pub cache: Cache,
    pub ignore: std::rc::Rc<Ignore>,
    pub escape: char,
    /// Global ARGs (before the first FROM) with build-arg overrides, plus the platform ARGs.
    pub globals: Vars,
    /// Finished stages, by index.
    pub done: Vec<Option<Stage>>,
    pub names: BTreeMap<String, usize>,
    pub step_no: usize,
    pub step_total: usize,
    pub used_args: BTreeSet<String>,
    /// The last RUN/COPY step was a cache hit.
    pub last_cached: bool,
    /// `--secret`s, for `RUN --mount=type=secret`.
    pub secrets: crate::secret::Secrets,
    /// RUN's network when a step does not say (`--network none`).
    pub network_none: bool,
    seq: usize,
}

/// The result: image config, layers and annotations of the target stage.
pub struct Built {
    pub stage: Stage,
}

impl Builder {
    pub fn new(opts: Opts) -> Result<Builder> {
        // Flags are checked before anything is opened or pulled.
        let network_none = match opts.network.as_deref() {
            None | Some("host" | "default") => false,
            Some("none") => true,
            Some(v) => return Err(Error::Usage(format!("--network {v}: use host or none"))),
        };
        if let Some(p) = &opts.platform {
            check_platform(p).map_err(|m| Error::Usage(format!("--platform {p}: {m}")))?;
        }
        if !matches!(opts.progress.as_str(), "plain" | "tty" | "auto") {
            return Err(Error::Usage(format!(
                "--progress {}: use plain, tty or auto",
                opts.progress
            )));
        }
        let secrets = crate::secret::Secrets::parse(&opts.secrets)?;
        let store = Store::open(&opts.store_root)?;
        crate::context_cache::set_cache_dir(&store.root);
        crate::progress::init(&opts.progress, opts.quiet, store.root.join("tmp"));
        let cache = Cache::new(&store, !opts.no_cache);
        let ignore = std::rc::Rc::new(Ignore::load(&opts.context, &opts.dockerfile)?);
        Ok(Builder {
            store,
            cache,
            ignore,
            escape: '\\',
            globals: Vars::new(),
            done: Vec::new(),
            names: BTreeMap::new(),
            step_no: 0,
            step_total: 0,
            used_args: BTreeSet::new(),
            last_cached: false,
            secrets,
            network_none,
            seq: 0,
            opts,
        })
    }

    /// A fresh work dir for a stage or a RUN container id.
    pub fn unique(&mut self, tag: &str) -> String {
        self.seq += 1;
        format!("gpurun-build-{}-{}-{tag}", std::process::id(), self.seq)
    }

    pub fn build(&mut self, df: &Dockerfile) -> Result<Built> {
        self.escape = df.escape;
        self.globals = platform_args(self.opts.platform.as_deref());
        for step in &df.global_args {
            let Kind::Arg(text) = &step.kind else {
                continue;
            };
            for (k, v) in self
                .declare_args(text, &self.globals.clone())
                .map_err(|m| at(step.line, m))?
            {
                self.globals.insert(k, v);
            }
        }
        let target = match &self.opts.target {
            None => df.stages.len() - 1,
            Some(t) => df
                .stages
                .iter()
                .position(|s| matches!(&s.from.kind, Kind::From { alias: Some(a), .. } if a.eq_ignore_ascii_case(t)))
                .ok_or_else(|| Error::Usage(format!("--target {t}: no stage named {t:?} in the Dockerfile")))?,
        };
        let needed = self.needed_stages(df, target);
        self.step_total = needed.iter().map(|&i| 1 + df.stages[i].steps.len()).sum();
        self.done = (0..df.stages.len()).map(|_| None).collect();
        for (i, st) in df.stages.iter().enumerate() {
            if let Kind::From { alias: Some(a), .. } = &st.from.kind {
                self.names.insert(a.to_ascii_lowercase(), i);
            }
        }
        for &i in &needed {
            let st = &df.stages[i];
            let mut stage = self.from(&st.from, i)?;
            for step in &st.steps {
                self.step_no += 1;
                let t = Instant::now();
                let res = crate::cancel::check().and_then(|()| self.step(&mut stage, step));
                if let Err(e) = res {
                    stage.cleanup();
                    self.cleanup();
                    return Err(e.at_line(step.line));
                }
                if matches!(step.kind, Kind::Run { .. } | Kind::Copy { .. })
                    && !self.last_cached
                    && !self.opts.quiet
                {
                    crate::progress::done(self.step_no, self.step_total, t.elapsed());
                }
            }
            self.done[i] = Some(stage);
        }
        for k in self.opts.build_args.keys() {
            if !self.used_args.contains(k) && !platform_args(None).contains_key(k) {
                eprintln!("warning: build-arg {k} was not consumed by any ARG");
            }
        }
        let stage = self.done[target].take().expect("target stage was built");
        self.cleanup();
        Ok(Built { stage })
    }

    /// Remove the work dirs of finished stages (the target's is removed by the caller).
    pub fn cleanup(&mut self) {
        for s in self.done.iter().flatten() {
            s.cleanup();
        }
    }

    /// The target and every stage it reaches through `FROM stage` or `COPY --from=stage`.
    fn needed_stages(&self, df: &Dockerfile, target: usize) -> Vec<usize> {
        let index_of = |r: &str| -> Option<usize> {
            df.stages.iter().position(|s| matches!(&s.from.kind, Kind::From { alias: Some(a), .. } if a.eq_ignore_ascii_case(r))).or_else(|| r.parse().ok())
        };
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !need.insert(i) {
                continue;
            }
            let st = &df.stages[i];
            let mut refs: Vec<String> = Vec::new();
            if let Kind::From { image, .. } = &st.from.kind {
                refs.push(image.clone());
            }
            for s in &st.steps {
                if let Kind::Copy { flags, .. } = &s.kind {
                    refs.extend(
                        flags
                            .iter()
                            .filter(|(k, _)| k == "from")
                            .map(|(_, v)| v.clone()),
                    );
                }
            }
            for r in refs {
                if let Some(j) = index_of(&r).filter(|&j| j < i) {
                    todo.push(j);
                }
            }
        }
        need.into_iter().collect()
    }

    /// ARG text → (name, value) pairs: build-arg, else the default, else a global's value.
    pub fn declare_args(
        &mut self,
        text: &str,
        scope: &Vars,
    ) -> std::result::Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for w in expand::words(text, scope, self.escape)? {
            let (k, default) = match w.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (w.clone(), None),
            };
            let v = if let Some(v) = self.opts.build_args.get(&k) {
                self.used_args.insert(k.clone());
                v.clone()
            } else if let Some(d) = default {
                d
            } else {
                self.globals.get(&k).cloned().unwrap_or_default()
            };
            out.push((k, v));
        }
        Ok(out)
    }

    fn from(&mut self, step: &Step, index: usize) -> Result<Stage> {
        let Kind::From {
            image,
            alias,
            platform,
        } = &step.kind
        else {
            unreachable!("stage starts with FROM")
        };
        self.step_no += 1;
        let image =
            expand::word(image, &self.globals, self.escape).map_err(|m| at(step.line, m))?;
        if let Some(p) = platform {
            let p = expand::word(p, &self.globals, self.escape).map_err(|m| at(step.line, m))?;
            check_platform(&p).map_err(|m| at(step.line, format!("--platform={p}: {m}")))?;
        }
        if !self.opts.quiet {
            crate::progress::print_line(&format!(
                "[{}/{}] FROM {image}{}",
                self.step_no,
                self.step_total,
                alias
                    .as_ref()
                    .map(|a| format!(" AS {a}"))
                    .unwrap_or_default()
            ));
        }
        let work = self
            .store
            .root
            .join("work")
            .join(self.unique(&format!("stage{index}")));
        if let Some(&j) = self
            .names
            .get(&image.to_ascii_lowercase())
            .filter(|&&j| j < index)
        {
            let parent = self.done[j].as_ref().expect("dependency stage built first");
            return Ok(Stage::from_stage(parent, work));
        }
        let base = crate::base::load(&self.store, &self.cache, &image)
            .map_err(|e| e.at_line(step.line))?;
        Ok(Stage::new(base, work))
    }
}

/// `--platform` / `FROM --platform`: this host's `linux/ARCH[/VARIANT]` only, since RUN steps
/// run natively (no emulation). Returns the variant.
fn check_platform(p: &str) -> std::result::Result<String, String> {
    let arch = oci::arch();
    let parts: Vec<&str> = p.split('/').collect();
    let variant = match parts[..] {
        ["linux", a] if a == arch => "",
        ["linux", a, v] if a == arch => v,
        _ => {
            return Err(format!(
                "only linux/{arch} (this machine) can be built here; RUN steps are not emulated"
            ))
        }
    };
    let known: &[&str] = match arch {
        "amd64" => &["v1", "v2", "v3", "v4"],
        "arm64" => &["v8"],
        _ => &[],
    };
    if !variant.is_empty() && !known.contains(&variant) {
        return Err(format!("unknown variant {variant:?} of linux/{arch}"));
    }
    Ok(variant.to_string())
}

/// TARGETPLATFORM, TARGETOS, TARGETARCH, BUILDPLATFORM … (this machine; no cross builds; a
/// checked `--platform` may add a variant to the TARGET ones).
fn platform_args(platform: Option<&str>) -> Vars {
    let arch = oci::arch();
    let mut v = Vars::new();
    for p in ["TARGET", "BUILD"] {
        v.insert(format!("{p}PLATFORM"), format!("linux/{arch}"));
        v.insert(format!("{p}OS"), "linux".into());
        v.insert(format!("{p}ARCH"), arch.into());
        v.insert(format!("{p}VARIANT"), String::new());
    }
    if let Some(variant) = platform.and_then(|p| check_platform(p).ok()) {
        if !variant.is_empty() {
            v.insert("TARGETPLATFORM".into(), format!("linux/{arch}/{variant}"));
            v.insert("TARGETVARIANT".into(), variant);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn platforms() {
        let host = format!("linux/{}", super::oci::arch());
        assert_eq!(super::check_platform(&host).unwrap(), "");
        assert!(super::check_platform("linux/s390x").is_err());
        assert!(super::check_platform("windows/amd64").is_err());
        assert!(super::check_platform(&format!("{host}/v9")).is_err());
    }
}
