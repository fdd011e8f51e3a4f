//! `USER` / `--chown` values (`name`, `uid`, `name:group`, `uid:gid`) resolved against the
//! image's own /etc/passwd and /etc/group, as the image-spec's conversion document asks.

use crate::unpack::resolve;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

fn read(root: &Path, rel: &str) -> String {
    resolve(root, Path::new(rel))
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// Resolve `spec` in the rootfs at `root`. Unknown names are errors; numeric ids need no entry.
pub fn resolve_user(root: &Path, spec: &str) -> Result<Ids, String> {
    if spec.is_empty() {
        return Ok(Ids {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        });
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read(root, "etc/passwd");
    let groups = read(root, "etc/group");
    let pw = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user)));
    let (uid, mut gid, name) = match (user.parse::<u32>(), &pw) {
        (Ok(uid), pw) => (
            uid,
            pw.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
            pw.as_ref().map(|f| f[0].to_string()),
        ),
        (Err(_), Some(f)) => (
            f[2].parse()
                .map_err(|_| format!("bad uid for {user} in /etc/passwd"))?,
            f[3].parse()
                .map_err(|_| format!("bad gid for {user} in /etc/passwd"))?,
            Some(user.to_string()),
        ),
        (Err(_), None) => {
            return Err(format!(
                "unknown user {user:?}: not in the image's /etc/passwd"
            ))
        }
    };
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("unknown group {g:?}: not in the image's /etc/group"))?,
        };
    }
    // Supplementary groups only when the group was not forced (Docker's behaviour).
    let mut additional_gids = Vec::new();
    if let (None, Some(name)) = (group, name) {
        for f in groups.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(Ids {
        uid,
        gid,
        additional_gids,
    })
}

/// HOME for a uid, as Docker sets it when the image's Env has none: the passwd entry's home
/// dir, else `/`.
pub fn home_dir(root: &Path, uid: u32) -> String {
    read(root, "etc/passwd")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map_or_else(|| "/".to_string(), |f| f[5].to_string())
}

/// Add `HOME=` to `env` unless it is set.
pub fn with_home(mut env: Vec<String>, root: &Path, uid: u32) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_dir(root, uid)));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_groups() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nvideo:x:44:app,other\n",
        )
        .unwrap();
        let r = t.path();
        assert_eq!(
            resolve_user(r, "app").unwrap(),
            Ids {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![44]
            }
        );
        assert_eq!(
            resolve_user(r, "app:video").unwrap(),
            Ids {
                uid: 1000,
                gid: 44,
                additional_gids: vec![]
            }
        );
        assert_eq!(resolve_user(r, "1000").unwrap().gid, 1000);
        assert_eq!(
            resolve_user(r, "4242:7").unwrap(),
            Ids {
                uid: 4242,
                gid: 7,
                additional_gids: vec![]
            }
        );
        assert!(resolve_user(r, "ghost").unwrap_err().contains("ghost"));
        assert!(resolve_user(r, "app:nogroup")
            .unwrap_err()
            .contains("nogroup"));
        assert_eq!(home_dir(r, 1000), "/home/app");
        assert_eq!(home_dir(r, 4242), "/");
        assert_eq!(with_home(vec!["HOME=/x".into()], r, 0), ["HOME=/x"]);
    }
}
