//! COPY/ADD steps: sources from the context (with .dockerignore), another stage or an image,
//! or (ADD) a URL;
//! the cache key covers the step, its expanded arguments and the digest of what it reads.

use crate::build::Builder;
use crate::context::SourceRoot;
use crate::copy::{copy_inline, copy_sources, dest_rel, CopyOpts};
use crate::dockerfile::{Kind, Src, Step};
use crate::error::{at, Result};
use crate::expand;
use crate::fetch;
use crate::stage::Stage;
use crate::store::sha256_hex;
use crate::user::resolve_user;
use std::path::PathBuf;

impl Builder {
    pub(crate) fn copy_step(&mut self, stage: &mut Stage, step: &Step) -> Result<()> {
        let Kind::Copy {
            add,
            flags,
            srcs,
            dest,
        } = &step.kind
        else {
            unreachable!()
        };
        let line = step.line;
        let vars = stage.vars();
        let esc = self.escape;
        let x = |s: &str| expand::word(s, &vars, esc).map_err(|m| at(line, m));
        let (mut from, mut chown, mut chmod, mut checksum) = (None, None, None, None);
        for (k, v) in flags {
            match k.as_str() {
                "from" => from = Some(x(v)?),
                "chown" => chown = Some(x(v)?),
                "chmod" => {
                    chmod = Some(
                        u32::from_str_radix(&x(v)?, 8)
                            .map_err(|_| at(line, format!("--chmod={v}: not an octal mode")))?,
                    )
                }
                "checksum" if *add => checksum = Some(x(v)?),
                "link" | "parents" => {}
                _ => {
                    return Err(at(
                        line,
                        format!(
                            "{} --{k} is not supported",
                            if *add { "ADD" } else { "COPY" }
                        ),
                    ))
                }
            }
        }
        let dest_s = x(dest)?;
        let drel = dest_rel(&dest_s, stage.workdir())?;
        // Another stage's or an image's rootfs: its chain names its content, so it is only
        // materialised on a cache miss (a cached `COPY --from` extracts nothing).
        let from_src = match &from {
            Some(f) => Some(self.copy_source(f, line)?),
            None => None,
        };
        let mut paths = Vec::new();
        let mut inline = Vec::new();
        let mut urls = Vec::new();
        for s in srcs {
            match s {
                Src::Path(p) => {
                    let p = x(p)?;
                    if p.starts_with("http://") || p.starts_with("https://") {
                        if !*add {
                            return Err(at(
                                line,
                                format!("{p}: COPY does not take URLs (ADD does)"),
                            ));
                        }
                        urls.push(p);
                        continue;
                    }
                    if p.contains("://") {
                        return Err(at(
                            line,
                            format!("{p}: only http:// and https:// URLs can be fetched"),
                        ));
                    }
                    paths.push(p);
                }
                Src::Inline {
                    name,
                    body,
                    expand: e,
                } => {
                    let body = if *e {
                        expand::vars_only(body, &vars).map_err(|m| at(line, m))?
                    } else {
                        body.clone()
                    };
                    inline.push((name.clone(), body));
                }
            }
        }
        if checksum.is_some() && (urls.len() != 1 || !paths.is_empty() || !inline.is_empty()) {
            return Err(at(line, "ADD --checksum needs exactly one source, a URL"));
        }
        // Downloaded every build (as Docker does); the content decides whether the step is cached.
        let downloads = fetch::Scratch(self.store.tmp("fetch"));
        let fetched =
            fetch::fetch_all(&urls, &downloads.0, checksum.as_deref()).map_err(|m| at(line, m))?;
        let fetched_ids: Vec<&str> = fetched.iter().map(|f| f.id.as_str()).collect();
        // shared, so the builder stays free to record the step's result
        let rules = std::rc::Rc::clone(&self.ignore);
        let context = SourceRoot {
            root: &self.opts.context.clone(),
            ignore: Some(&*rules),
        };
        let select = |sroot: &SourceRoot| -> Result<Vec<_>> {
            let mut selected = Vec::new();
            for p in &paths {
                selected.extend(sroot.select(p).map_err(|e| e.at_line(line))?);
            }
            Ok(selected)
        };
        let (selected, digest) = match &from_src {
            None => {
                let selected = select(&context)?;
                let digest = context.digest(&selected)?;
                (selected, digest)
            }
            Some((_, chain)) => (Vec::new(), chain.clone()),
        };
        let key = sha256_hex(
            format!(
                "{}\nCOPY\n{step_text}\n{dest_s}\ncwd={}\n{digest}\n{inline:?}\n{fetched_ids:?}\n{chown:?}{chmod:?}",
                stage.chain,
                stage.workdir(),
                step_text = step.text
            )
            .as_bytes(),
        );
        if self.reuse_or_announce(stage, &key, step) {
            return Ok(());
        }
        let src_root = match &from_src {
            Some((i, _)) => Some(self.copy_source_root(*i)?),
            None => None,
        };
        let sroot = match &src_root {
            Some(root) => SourceRoot { root, ignore: None },
            None => context,
        };
        let selected = match &from_src {
            Some(_) => select(&sroot)?,
            None => selected,
        };
        let rootfs = stage.begin_change(&self.store)?;
        let ids = match &chown {
            Some(c) => {
                Some(resolve_user(&rootfs, c).map_err(|m| at(line, format!("--chown={c}: {m}")))?)
            }
            None => None,
        };
        let n = selected.len() + inline.len() + fetched.len();
        let mut opts = CopyOpts {
            chown: ids,
            chmod,
            extract: *add,
            sources: n,
        };
        copy_sources(&rootfs, &sroot, &selected, &dest_s, &drel, &opts)
            .map_err(|e| e.at_line(line))?;
        opts.extract = false; // Docker never extracts a download
        for f in &fetched {
            let root = SourceRoot {
                root: &f.root,
                ignore: None,
            };
            copy_sources(
                &rootfs,
                &root,
                std::slice::from_ref(&f.sel),
                &dest_s,
                &drel,
                &opts,
            )
            .map_err(|e| e.at_line(line))?;
        }
        for (name, body) in &inline {
            copy_inline(&rootfs, name, body, &dest_s, &drel, n, &opts)?;
        }
        let l = stage.finish_change(&self.store)?;
        self.record(stage, &key, l, step)
    }

    /// `--from=stage|index|image`: that stage (an image becomes one, kept with the finished
    /// stages so it is cleaned up with them) as its index in `done`, and its chain (the cache
    /// key's id of its content). Nothing is extracted.
    fn copy_source(&mut self, from: &str, line: usize) -> Result<(usize, String)> {
        let idx = self
            .names
            .get(&from.to_ascii_lowercase())
            .copied()
            .or_else(|| from.parse().ok());
        if let Some(i) = idx {
            let st = self.done.get(i).and_then(Option::as_ref).ok_or_else(|| {
                at(
                    line,
                    format!("--from={from}: stage not built before this one"),
                )
            })?;
            return Ok((i, st.chain.clone()));
        }
        let base =
            crate::base::load(&self.store, &self.cache, from).map_err(|e| e.at_line(line))?;
        let work = self.store.root.join("work").join(self.unique("from"));
        let st = Stage::new(base, work);
        let chain = st.chain.clone();
        self.done.push(Some(st));
        Ok((self.done.len() - 1, chain))
    }

    /// The rootfs of source stage `i` (from [`Self::copy_source`]), materialised.
    fn copy_source_root(&mut self, i: usize) -> Result<PathBuf> {
        let store = self.store.clone();
        let st = self.done[i]
            .as_mut()
            .expect("copy_source returned a finished stage");
        st.rootfs(&store)
    }
}
