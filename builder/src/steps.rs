//! One instruction applied to a stage: config-only instructions change the image config;
//! RUN and COPY/ADD look up the cache, else execute and record their layer.

use crate::build::Builder;
use crate::context::SourceRoot;
use crate::copy::{copy_inline, copy_sources, dest_rel, CopyOpts};
use crate::dockerfile::{CmdForm, Kind, Src, Step};
use crate::error::{at, Error, Result};
use crate::expand;
use crate::layer;
use crate::run::{run, RunStep};
use crate::stage::Stage;
use crate::store::sha256_hex;
use crate::user::resolve_user;
use std::path::{Path, PathBuf};
use std::time::Instant;

impl Builder {
    fn progress(&self, text: &str, cached: bool) {
        let first = text.lines().next().unwrap_or("");
        let short: String = first.chars().take(100).collect();
        let more = if short.len() < text.len() { " …" } else { "" };
        let tag = if cached { "CACHED " } else { "" };
        println!("[{}/{}] {tag}{short}{more}", self.step_no, self.step_total);
    }

    pub fn step(&mut self, stage: &mut Stage, step: &Step) -> Result<()> {
        let vars = stage.vars();
        let esc = self.escape;
        let line = step.line;
        let x = |s: &str| expand::word(s, &vars, esc).map_err(|m| at(line, m));
        self.last_cached = false;
        match &step.kind {
            Kind::Run { .. } => return self.run_step(stage, step),
            Kind::Copy { .. } => return self.copy_step(stage, step),
            _ => self.progress(&step.text, false),
        }
        let cfg = &mut stage.config.config;
        match &step.kind {
            Kind::Arg(text) => {
                for (k, v) in self.declare_args(text, &vars).map_err(|m| at(line, m))? {
                    stage.args.insert(k, v);
                }
            }
            Kind::Env(text) => {
                for (k, v) in expand::pairs(text, &vars, esc, true).map_err(|m| at(line, m))? {
                    stage.config.set_env(&k, &v);
                }
            }
            Kind::Label(text) => {
                for (k, v) in expand::pairs(text, &vars, esc, false).map_err(|m| at(line, m))? {
                    cfg.labels.insert(k, v);
                }
            }
            Kind::Maintainer(m) => {
                cfg.labels.insert("maintainer".into(), m.clone());
            }
            Kind::Workdir(w) => {
                let w = x(w)?;
                let joined = Path::new(stage.workdir()).join(w);
                let clean = crate::unpack::clean(&joined).unwrap_or_default();
                stage.config.config.working_dir = format!("/{}", clean.display());
            }
            Kind::User(u) => cfg.user = x(u)?,
            Kind::Expose(ports) => {
                for p in ports {
                    for p in expand::words(p, &vars, esc).map_err(|m| at(line, m))? {
                        let p = if p.contains('/') { p.to_ascii_lowercase() } else { format!("{p}/tcp") };
                        cfg.exposed_ports.insert(p, Default::default());
                    }
                }
            }
            Kind::Volume(vols) => {
                for v in vols {
                    cfg.volumes.insert(x(v)?, Default::default());
                }
            }
            Kind::Stopsignal(s) => cfg.stop_signal = x(s)?,
            Kind::Cmd(c) => cfg.cmd = Some(command(c, &stage.shell)),
            Kind::Entrypoint(c) => {
                cfg.entrypoint = Some(command(c, &stage.shell));
                // Docker: a new ENTRYPOINT drops the CMD inherited from the base image.
                if !stage.config.history.iter().any(|h| h.created_by.starts_with("CMD")) {
                    stage.config.config.cmd = None;
                }
            }
            Kind::Shell(sh) => stage.shell = sh.clone(),
            Kind::Annotation(key) => {
                eprintln!("warning: line {line}: {} is kept as an annotation only: the OCI image config has no field for it", key.to_uppercase());
                stage.annotations.insert(format!("org.gpurun.build.{key}"), step.text.clone());
            }
            Kind::From { .. } | Kind::Run { .. } | Kind::Copy { .. } => unreachable!("handled above"),
        }
        stage.history(&step.text, true);
        Ok(())
    }

    fn run_step(&mut self, stage: &mut Stage, step: &Step) -> Result<()> {
        let Kind::Run { flags, cmd, heredoc } = &step.kind else { unreachable!() };
        let line = step.line;
        let mut network_none = false;
        let mut devices = self.opts.devices.clone();
        let mut mounts: Vec<(PathBuf, String)> = Vec::new();
        let vars = stage.vars();
        for (k, v) in flags {
            let v = expand::word(v, &vars, self.escape).map_err(|m| at(line, m))?;
            match k.as_str() {
                "network" => match v.as_str() {
                    "none" => network_none = true,
                    "host" | "default" => network_none = false,
                    _ => return Err(at(line, format!("--network={v}: use none, host or default"))),
                },
                "device" => devices.push(v),
                "mount" => mounts.push(self.cache_mount(&v).map_err(|m| at(line, m))?),
                _ => return Err(at(line, format!("RUN --{k} is not supported"))),
            }
        }
        let args = match (cmd, heredoc) {
            (CmdForm::Shell(c), Some((body, _))) => {
                let c = c.trim();
                let script = if heredoc_only(c) { body.clone() } else { format!("{c}\n{body}{}\n", heredoc_delim(c)) };
                [stage.shell.clone(), vec![script]].concat()
            }
            (CmdForm::Shell(c), None) => [stage.shell.clone(), vec![c.clone()]].concat(),
            (CmdForm::Exec(v), _) => v.clone(),
        };
        let env = stage.run_env();
        let user = stage.config.config.user.clone();
        let key = sha256_hex(
            format!(
                "{}\nRUN\n{args:?}\n{env:?}\nuser={user}\ncwd={}\nnet={network_none}\ndev={devices:?}\nmounts={mounts:?}",
                stage.chain,
                stage.workdir()
            )
            .as_bytes(),
        );
        if let Some(hit) = self.cache.get(&key) {
            self.progress(&step.text, true);
            self.last_cached = true;
            stage.push(&key, hit, &step.text, false);
            return Ok(());
        }
        self.progress(&step.text, false);
        let rootfs = stage.rootfs(&self.store)?;
        let ids = resolve_user(&rootfs, &user).map_err(|m| at(line, format!("USER {user}: {m}")))?;
        let before = layer::snapshot(&rootfs)?;
        let id = self.unique("run");
        let env = crate::user::with_home(env, &rootfs, ids.uid);
        let rs = RunStep { args, env, cwd: stage.workdir().to_string(), ids, network_none, cache_mounts: mounts, devices };
        let state_root = self.store.root.join("run");
        let t = Instant::now();
        let code = run(&self.opts.runtime, &state_root, &stage.work, &id, &rs)?;
        if code != 0 {
            return Err(Error::RunFailed { line, code, cmd: step.text.clone() });
        }
        let _ = t;
        let l = layer::diff(&self.store, &rootfs, &before)?;
        self.cache.put(&key, l.as_ref())?;
        stage.push(&key, l, &step.text, true);
        Ok(())
    }

    /// `type=cache,target=/root/.cache[,id=NAME]` → a persistent dir in the store.
    fn cache_mount(&self, spec: &str) -> std::result::Result<(PathBuf, String), String> {
        let mut kind = "bind";
        let (mut target, mut id) = (None, None);
        for kv in spec.split(',') {
            match kv.split_once('=') {
                Some(("type", v)) => kind = v,
                Some(("target" | "dst" | "destination", v)) => target = Some(v.to_string()),
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("sharing" | "mode" | "uid" | "gid", _)) => {}
                _ => return Err(format!("--mount={spec}: unsupported option {kv:?}")),
            }
        }
        if kind != "cache" {
            return Err(format!("--mount=type={kind} is not supported (only type=cache)"));
        }
        let target = target.ok_or_else(|| format!("--mount={spec}: target= is required"))?;
        let name = sha256_hex(id.unwrap_or_else(|| target.clone()).as_bytes());
        Ok((self.store.root.join("mounts").join(&name[..16]), target))
    }

    fn copy_step(&mut self, stage: &mut Stage, step: &Step) -> Result<()> {
        let Kind::Copy { add, flags, srcs, dest } = &step.kind else { unreachable!() };
        let line = step.line;
        let vars = stage.vars();
        let esc = self.escape;
        let x = |s: &str| expand::word(s, &vars, esc).map_err(|m| at(line, m));
        let (mut from, mut chown, mut chmod) = (None, None, None);
        for (k, v) in flags {
            match k.as_str() {
                "from" => from = Some(x(v)?),
                "chown" => chown = Some(x(v)?),
                "chmod" => chmod = Some(u32::from_str_radix(&x(v)?, 8).map_err(|_| at(line, format!("--chmod={v}: not an octal mode")))?),
                "link" | "parents" => {}
                _ => return Err(at(line, format!("{} --{k} is not supported", if *add { "ADD" } else { "COPY" }))),
            }
        }
        let dest_s = x(dest)?;
        let drel = dest_rel(&dest_s, stage.workdir())?;
        // Source root: the context, another stage's rootfs, or an image's.
        let (src_root, src_id, ignore) = match &from {
            None => (self.opts.context.clone(), String::from("context"), true),
            Some(f) => {
                let (root, id) = self.from_root(f, line)?;
                (root, id, false)
            }
        };
        let ig = ignore.then_some(&self.ignore);
        let sroot = SourceRoot { root: &src_root, ignore: ig };
        let mut selected = Vec::new();
        let mut inline = Vec::new();
        for s in srcs {
            match s {
                Src::Path(p) => {
                    let p = x(p)?;
                    if p.contains("://") {
                        return Err(at(line, format!("{p}: URL sources are not supported (the builder does not download); fetch it in a RUN step")));
                    }
                    selected.extend(sroot.select(&p).map_err(|e| e.at_line(line))?);
                }
                Src::Inline { name, body, expand: e } => {
                    let body = if *e { expand::vars_only(body, &vars).map_err(|m| at(line, m))? } else { body.clone() };
                    inline.push((name.clone(), body));
                }
            }
        }
        let digest = if from.is_none() { sroot.digest(&selected)? } else { src_id };
        let key = sha256_hex(format!("{}\nCOPY\n{step_text}\n{dest_s}\ncwd={}\n{digest}\n{inline:?}\n{chown:?}{chmod:?}", stage.chain, stage.workdir(), step_text = step.text).as_bytes());
        if let Some(hit) = self.cache.get(&key) {
            self.progress(&step.text, true);
            self.last_cached = true;
            stage.push(&key, hit, &step.text, false);
            return Ok(());
        }
        self.progress(&step.text, false);
        let rootfs = stage.rootfs(&self.store)?;
        let ids = match &chown {
            Some(c) => Some(resolve_user(&rootfs, c).map_err(|m| at(line, format!("--chown={c}: {m}")))?),
            None => None,
        };
        let opts = CopyOpts { chown: ids, chmod, extract: *add };
        let before = layer::snapshot(&rootfs)?;
        let n = selected.len() + inline.len();
        copy_sources(&rootfs, &sroot, &selected, &dest_s, &drel, &opts).map_err(|e| e.at_line(line))?;
        for (name, body) in &inline {
            copy_inline(&rootfs, name, body, &dest_s, &drel, n, &opts)?;
        }
        let l = layer::diff(&self.store, &rootfs, &before)?;
        self.cache.put(&key, l.as_ref())?;
        stage.push(&key, l, &step.text, true);
        Ok(())
    }

    /// `--from=stage|index|image`: that rootfs (materialised) and an id for the cache key.
    fn from_root(&mut self, from: &str, line: usize) -> Result<(PathBuf, String)> {
        let idx = self.names.get(&from.to_ascii_lowercase()).copied().or_else(|| from.parse().ok());
        if let Some(i) = idx {
            let store = self.store.clone();
            let st = self.done.get_mut(i).and_then(Option::as_mut).ok_or_else(|| at(line, format!("--from={from}: stage not built before this one")))?;
            return Ok((st.rootfs(&store)?, st.chain.clone()));
        }
        let base = crate::base::load(&self.store, &self.cache, from).map_err(|e| e.at_line(line))?;
        let work = self.store.root.join("work").join(self.unique("from"));
        let mut st = Stage::new(None, base, work);
        let root = st.rootfs(&self.store)?;
        let id = st.chain.clone();
        // kept with the finished stages so it is cleaned up with them
        self.done.push(Some(st));
        Ok((root, id))
    }
}

fn heredoc_only(c: &str) -> bool {
    c.starts_with("<<") && !c.contains(char::is_whitespace)
}

fn heredoc_delim(c: &str) -> String {
    let i = c.find("<<").map_or(0, |i| i + 2);
    let rest = c[i..].trim_start_matches('-');
    let word: String = rest.chars().take_while(|ch| !ch.is_whitespace()).collect();
    word.trim_matches(|ch| ch == '"' || ch == '\'').to_string()
}

/// CMD/ENTRYPOINT: exec form as written; shell form wrapped in SHELL (Docker's rule).
fn command(c: &CmdForm, shell: &[String]) -> Vec<String> {
    match c {
        CmdForm::Exec(v) => v.clone(),
        CmdForm::Shell(s) => [shell.to_vec(), vec![s.clone()]].concat(),
    }
}
