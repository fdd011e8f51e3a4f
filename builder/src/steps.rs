//! One instruction applied to a stage: config-only instructions change the image config;
//! RUN and COPY/ADD look up the cache, else execute and record their layer.

use crate::build::Builder;

use crate::dockerfile::{CmdForm, Kind, Step};
use crate::error::{at, Error, Result};
use crate::expand;
use crate::fetch::Scratch;
use crate::heredoc::Heredoc;
use crate::layer;
use crate::run::{run, RunStep};
use crate::secret::SecretMount;
use crate::stage::Stage;
use crate::store::sha256_hex;
use crate::user::resolve_user;
use std::path::{Path, PathBuf};

impl Builder {
    pub(crate) fn progress(&self, text: &str, cached: bool) {
        crate::progress::line(self.step_no, self.step_total, text, cached);
    }

    /// RUN/COPY: on a cache hit, take the cached result (printed as CACHED) and return true;
    /// else print the step, which the caller then executes.
    pub(crate) fn reuse_or_announce(&mut self, stage: &mut Stage, key: &str, step: &Step) -> bool {
        if let Some(hit) = self.cache.get(key) {
            self.progress(&step.text, true);
            self.last_cached = true;
            stage.push(key, hit, &step.text, false);
            return true;
        }
        // tty: a status line that the RUN redraws and `done` replaces (progress.rs)
        crate::progress::start(self.step_no, self.step_total, &step.text);
        false
    }

    /// An executed step's layer (None: it changed no file): into the cache and the stage.
    pub(crate) fn record(
        &mut self,
        stage: &mut Stage,
        key: &str,
        layer: Option<layer::Layer>,
        step: &Step,
    ) -> Result<()> {
        self.cache.put(key, layer.as_ref())?;
        stage.push(key, layer, &step.text, true);
        Ok(())
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
                        let p = if p.contains('/') {
                            p.to_ascii_lowercase()
                        } else {
                            format!("{p}/tcp")
                        };
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
            Kind::Cmd(c) => {
                cfg.cmd = Some(command(c, &stage.shell));
                stage.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                cfg.entrypoint = Some(command(c, &stage.shell));
                // Docker: a new ENTRYPOINT drops a CMD inherited from the base image, not one
                // set earlier in this stage.
                if !stage.cmd_set {
                    stage.config.config.cmd = None;
                }
            }
            Kind::Shell(sh) => stage.shell = sh.clone(),
            Kind::Annotation(key) => {
                eprintln!("warning: line {line}: {} is kept as an annotation only: the OCI image config has no field for it", key.to_uppercase());
                let slot = stage
                    .annotations
                    .entry(format!("org.gpurun.build.{key}"))
                    .or_default();
                // the last HEALTHCHECK wins; every ONBUILD trigger is kept, in order
                if *key == "onbuild" && !slot.is_empty() {
                    slot.push('\n');
                } else {
                    slot.clear();
                }
                slot.push_str(&step.text);
            }
            Kind::From { .. } | Kind::Run { .. } | Kind::Copy { .. } => {
                unreachable!("handled above")
            }
        }
        stage.history(&step.text, true);
        Ok(())
    }

    fn run_step(&mut self, stage: &mut Stage, step: &Step) -> Result<()> {
        let Kind::Run {
            flags,
            cmd,
            heredocs,
        } = &step.kind
        else {
            unreachable!()
        };
        let line = step.line;
        let mut network_none = self.network_none;
        let mut devices = self.opts.devices.clone();
        let mut mounts: Vec<(PathBuf, String)> = Vec::new();
        let mut secrets: Vec<SecretMount> = Vec::new();
        let vars = stage.vars();
        for (k, v) in flags {
            let v = expand::word(v, &vars, self.escape).map_err(|m| at(line, m))?;
            match k.as_str() {
                "network" => match v.as_str() {
                    "none" => network_none = true,
                    "host" => network_none = false,
                    // the build's network (`--network`)
                    "default" => network_none = self.network_none,
                    _ => {
                        return Err(at(
                            line,
                            format!("--network={v}: use none, host or default"),
                        ))
                    }
                },
                "device" => devices.push(v),
                "mount" if v.split(',').any(|kv| kv == "type=secret") => {
                    secrets.push(SecretMount::parse(&v).map_err(|m| at(line, m))?)
                }
                "mount" => mounts.push(self.cache_mount(&v).map_err(|m| at(line, m))?),
                _ => return Err(at(line, format!("RUN --{k} is not supported"))),
            }
        }
        let (args, script) = run_args(cmd, heredocs, &stage.shell);
        let env = stage.run_env();
        let user = stage.config.config.user.clone();
        // Secrets enter the key by id and name only: a new value does not rebuild (Docker).
        let secret_keys: Vec<String> = secrets.iter().map(SecretMount::key).collect();
        let key = sha256_hex(
            format!(
                "{}\nRUN\n{args:?}\n{env:?}\nuser={user}\ncwd={}\nnet={network_none}\ndev={devices:?}\nmounts={mounts:?}\nscript={script:?}{}",
                stage.chain,
                stage.workdir(),
                if secret_keys.is_empty() { String::new() } else { format!("\nsecrets={secret_keys:?}") }
            )
            .as_bytes(),
        );
        if self.reuse_or_announce(stage, &key, step) {
            return Ok(());
        }
        // Checked before anything runs; the dir (removed on drop) is bound read-only at
        // /run/secrets (run.rs).
        let secret_dir = Scratch(self.store.tmp(crate::secret::TMP_TAG));
        let staged = crate::secret::stage(&secrets, &self.secrets, &secret_dir.0)
            .map_err(|m| at(line, m))?;
        let rootfs = stage.begin_change(&self.store)?;
        let ids =
            resolve_user(&rootfs, &user).map_err(|m| at(line, format!("USER {user}: {m}")))?;
        let id = self.unique("run");
        let env = crate::user::with_home(env, &rootfs, ids.uid);
        let pipes = match &script {
            Some((name, body)) => Some(self.pipes_dir(name, body)?),
            None => None,
        };
        let rs = RunStep {
            args,
            env,
            cwd: stage.workdir().to_string(),
            ids,
            network_none,
            cache_mounts: mounts,
            devices,
            pipes: pipes.clone(),
            secrets: staged.then(|| secret_dir.0.clone()),
        };
        let state_root = self.store.root.join("run");
        let code = run(&self.opts.runtime, &state_root, &stage.work, &id, &rs);
        if let Some(p) = &pipes {
            let _ = std::fs::remove_dir_all(p);
        }
        drop(secret_dir);
        let code = code?;
        if code != 0 {
            return Err(Error::RunFailed {
                line,
                code,
                cmd: step.text.clone(),
            });
        }
        let l = stage.finish_change(&self.store)?;
        self.record(stage, &key, l, step)
    }

    /// A dir holding a heredoc script (mode 0755), bind-mounted read-only at /dev/pipes.
    fn pipes_dir(&self, name: &str, body: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.store.tmp("pipes");
        std::fs::create_dir_all(&dir).map_err(crate::error::io(&dir))?;
        let f = dir.join(name);
        std::fs::write(&f, body).map_err(crate::error::io(&f))?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755))
            .map_err(crate::error::io(&f))?;
        Ok(dir)
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
            return Err(format!(
                "--mount=type={kind} is not supported (only type=cache and type=secret)"
            ));
        }
        let target = target.ok_or_else(|| format!("--mount={spec}: target= is required"))?;
        let name = sha256_hex(id.unwrap_or_else(|| target.clone()).as_bytes());
        Ok((self.store.root.join("mounts").join(&name[..16]), target))
    }
}

/// RUN's process args, as BuildKit builds them: a command that is one heredoc runs its body
/// in the shell, or, when the body starts with `#!`, as a script file (returned as (name,
/// body), mounted at /dev/pipes/NAME); otherwise the command and every heredoc (body and
/// terminator) go to the shell as one script.
fn run_args(
    cmd: &CmdForm,
    heredocs: &[Heredoc],
    shell: &[String],
) -> (Vec<String>, Option<(String, String)>) {
    let c = match cmd {
        CmdForm::Exec(v) => return (v.clone(), None),
        CmdForm::Shell(c) => c.trim(),
    };
    let sh = |script: String| [shell.to_vec(), vec![script]].concat();
    match heredocs {
        [] => (sh(c.to_string()), None),
        [one] if c.starts_with("<<") && !c.contains(char::is_whitespace) => {
            let body = one.content();
            if body.starts_with("#!") {
                // the delimiter names the file; one that is not a plain name gets a fixed one
                let plain = !one.name.contains('/') && one.name != "." && one.name != "..";
                let name = if plain {
                    one.name.clone()
                } else {
                    "script".into()
                };
                (vec![format!("/dev/pipes/{name}")], Some((name, body)))
            } else {
                (sh(body), None)
            }
        }
        docs => {
            let mut full = c.to_string();
            for d in docs {
                full.push('\n');
                full.push_str(&d.body);
                full.push_str(&d.name);
            }
            (sh(full), None)
        }
    }
}

/// CMD/ENTRYPOINT: exec form as written; shell form wrapped in SHELL (Docker's rule).
fn command(c: &CmdForm, shell: &[String]) -> Vec<String> {
    match c {
        CmdForm::Exec(v) => v.clone(),
        CmdForm::Shell(s) => [shell.to_vec(), vec![s.clone()]].concat(),
    }
}
