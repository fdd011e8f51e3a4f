//! Build secrets: `--secret id=ID,src=PATH` (Docker's syntax) and `RUN --mount=type=secret`.
//! A step's secrets are copied into a private temp dir that is bind-mounted read-only at
//! /run/secrets for that step only: the content never reaches a layer (the runtime's mount
//! point is removed before the diff) nor the cache key (only the id and file name do, so a new
//! secret value does not invalidate the step, as in Docker).

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where secrets are mounted in a RUN container.
pub const MOUNT_DIR: &str = "/run/secrets";
/// The store tmp tag of a step's secret dir; spec.rs binds such dirs read-only.
pub const TMP_TAG: &str = "run-secrets";

/// `--secret` flags by id → host file.
#[derive(Default)]
pub struct Secrets(BTreeMap<String, PathBuf>);

impl Secrets {
    /// Parse `id=ID,src=PATH[,type=file]` (`source=` too; id defaults to the file's name).
    pub fn parse(specs: &[String]) -> Result<Secrets> {
        let mut out = BTreeMap::new();
        for spec in specs {
            let usage = |m: &str| Error::Usage(format!("--secret {spec}: {m}"));
            let (mut id, mut src) = (None, None);
            for kv in spec.split(',') {
                match kv.split_once('=') {
                    Some(("id", v)) if !v.is_empty() => id = Some(v.to_string()),
                    Some(("src" | "source", v)) if !v.is_empty() => src = Some(PathBuf::from(v)),
                    Some(("type", "file")) => {}
                    Some(("type", t)) => {
                        return Err(usage(&format!("type={t} is not supported (only file)")))
                    }
                    _ => return Err(usage(&format!("unknown option {kv:?}; use id=ID,src=PATH"))),
                }
            }
            let src = src.ok_or_else(|| usage("src=PATH is required"))?;
            let id = match id {
                Some(id) => id,
                None => src
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| usage("id=ID is required"))?,
            };
            if !src.is_file() {
                return Err(usage(&format!("{}: not a readable file", src.display())));
            }
            out.insert(id, src);
        }
        Ok(Secrets(out))
    }
}

/// One `RUN --mount=type=secret,…`.
#[derive(Debug, PartialEq)]
pub struct SecretMount {
    pub id: String,
    /// File name under /run/secrets.
    pub name: String,
    pub required: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl SecretMount {
    /// `type=secret,id=ID[,target=PATH][,required=true][,mode=0400][,uid=0][,gid=0]`.
    pub fn parse(spec: &str) -> std::result::Result<SecretMount, String> {
        let (mut id, mut target, mut required) = (None, None, false);
        let (mut mode, mut uid, mut gid) = (0o400, 0, 0);
        let bad = |kv: &str| format!("--mount={spec}: bad option {kv:?}");
        for kv in spec.split(',') {
            match kv.split_once('=') {
                Some(("type", "secret")) => {}
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("target" | "dst" | "destination", v)) => target = Some(v.to_string()),
                Some(("required", v)) => required = v.parse().map_err(|_| bad(kv))?,
                Some(("mode", v)) => mode = u32::from_str_radix(v, 8).map_err(|_| bad(kv))?,
                Some(("uid", v)) => uid = v.parse().map_err(|_| bad(kv))?,
                Some(("gid", v)) => gid = v.parse().map_err(|_| bad(kv))?,
                None if kv == "required" => required = true,
                _ => return Err(bad(kv)),
            }
        }
        // BuildKit: the target defaults to /run/secrets/ID, the id to the target's file name.
        let name = match &target {
            None => None,
            Some(t) => {
                let rel = t.strip_prefix(MOUNT_DIR).map_or(t.as_str(), |r| r);
                let rel = rel.trim_start_matches('/');
                if t.starts_with('/') && !t.starts_with(&format!("{MOUNT_DIR}/")) {
                    return Err(format!(
                        "--mount={spec}: target={t}: only targets in {MOUNT_DIR} are supported"
                    ));
                }
                if rel.is_empty() || rel.contains('/') || rel == "." || rel == ".." {
                    return Err(format!(
                        "--mount={spec}: target={t}: not a file name in {MOUNT_DIR}"
                    ));
                }
                Some(rel.to_string())
            }
        };
        let id = match (id, &name) {
            (Some(id), _) if !id.is_empty() => id,
            (_, Some(n)) => n.clone(),
            _ => return Err(format!("--mount={spec}: id= is required")),
        };
        let name = name.unwrap_or_else(|| id.clone());
        if name.contains('/') || name == "." || name == ".." {
            return Err(format!("--mount={spec}: id={id}: give a target= file name"));
        }
        Ok(SecretMount {
            id,
            name,
            required,
            mode,
            uid,
            gid,
        })
    }

    /// What the cache key sees: never the content.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}:{:o}:{}:{}",
            self.id, self.name, self.required, self.mode, self.uid, self.gid
        )
    }
}

/// Copy the step's secrets into `dir` (created; the caller removes it). Ok(false): none of
/// them was given (each is optional), so nothing is to be mounted.
pub fn stage(
    mounts: &[SecretMount],
    secrets: &Secrets,
    dir: &Path,
) -> std::result::Result<bool, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut any = false;
    for m in mounts {
        let Some(src) = secrets.0.get(&m.id) else {
            if m.required {
                return Err(format!(
                    "secret {:?} is required but no --secret id={},src=PATH was given",
                    m.id, m.id
                ));
            }
            continue;
        };
        if !any {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            any = true;
        }
        let f = dir.join(&m.name);
        std::fs::copy(src, &f).map_err(|e| format!("secret {}: {}: {e}", m.id, src.display()))?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m.mode))
            .map_err(|e| format!("{}: {e}", f.display()))?;
        std::os::unix::fs::chown(&f, Some(m.uid), Some(m.gid))
            .map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        let m = SecretMount::parse("type=secret,id=tok").unwrap();
        assert_eq!((m.name.as_str(), m.required, m.mode), ("tok", false, 0o400));
        let m = SecretMount::parse("type=secret,id=a,target=/run/secrets/b,required").unwrap();
        assert_eq!(
            (m.id.as_str(), m.name.as_str(), m.required),
            ("a", "b", true)
        );
        let m = SecretMount::parse("type=secret,dst=npmrc,required=true,mode=0444").unwrap();
        assert_eq!((m.id.as_str(), m.mode), ("npmrc", 0o444));
        assert!(SecretMount::parse("type=secret,id=a,target=/root/.npmrc").is_err());
        assert!(SecretMount::parse("type=secret").is_err());
        assert!(SecretMount::parse("type=secret,id=a,required=maybe").is_err());
    }

    #[test]
    fn cli_specs() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("tok.txt");
        std::fs::write(&f, "s3cret").unwrap();
        let s = Secrets::parse(&[format!("id=t,src={}", f.display())]).unwrap();
        assert_eq!(s.0["t"], f);
        let s = Secrets::parse(&[format!("type=file,source={}", f.display())]).unwrap();
        assert!(s.0.contains_key("tok.txt"));
        assert!(Secrets::parse(&["id=t,src=/nonexistent".into()]).is_err());
        assert!(Secrets::parse(&[format!("id=t,env=X,src={}", f.display())]).is_err());
    }
}
