//! Idmapped mounts (`mounts[].uidMappings`/`gidMappings`, options `idmap`/`ridmap`, as runc
//! 1.2): the parent, still in the host's mount namespace, clones the bind source into a
//! detached mount (`open_tree`), idmaps it with a user namespace that a short-lived helper
//! process holds the mappings in (`mount_setattr(MOUNT_ATTR_IDMAP)`), and the init moves it
//! into place (`move_mount`). Through the mount, a file owned by id `k` on disk is seen as
//! owned by whatever `k` maps to (`containerID k` → `hostID`).

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxIdMapping;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::spec::{Bundle, SpecError};
use crate::sys::{self, Forked};

/// One idmapped entry of `mounts[]` (oci-spec 0.8 does not carry the mount mappings).
#[derive(Debug, Clone, PartialEq)]
pub struct MountIdmap {
    /// Index in `mounts[]`.
    pub index: usize,
    /// The mount's own mappings; `None`: the container's (`idmap` alone, runc's rule).
    pub maps: Option<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)>,
    /// `rbind`: the clone takes the submounts too.
    pub rbind: bool,
    /// `ridmap` (or `rbind` without `idmap`): the submounts are idmapped too.
    pub recursive: bool,
}

/// The idmapped mounts of a config.json, checked: both mappings or none, bind mounts only.
pub fn from_config(config: &Value) -> std::result::Result<Vec<MountIdmap>, SpecError> {
    let mut found = Vec::new();
    for (index, m) in config["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let opts: Vec<&str> = m["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let has = |o: &str| opts.contains(&o);
        let (uids, gids) = (&m["uidMappings"], &m["gidMappings"]);
        if !has("idmap") && !has("ridmap") && uids.is_null() && gids.is_null() {
            continue;
        }
        let dest = m["destination"].as_str().unwrap_or_default().to_string();
        let bad = |why: &'static str| SpecError::MountIdmap(dest.clone(), why);
        if m["type"] != "bind" && !has("bind") && !has("rbind") {
            return Err(bad("idmapped mounts are supported for bind mounts only"));
        }
        let parse = |v: &Value| serde_json::from_value::<Vec<LinuxIdMapping>>(v.clone());
        let maps = match (uids.is_null(), gids.is_null()) {
            (true, true) => None,
            (false, false) => {
                let (u, g) = (parse(uids), parse(gids));
                let (Ok(u), Ok(g)) = (u, g) else {
                    return Err(bad("uidMappings/gidMappings are not valid id mappings"));
                };
                if u.is_empty() || g.is_empty() {
                    return Err(bad("uidMappings and gidMappings must not be empty"));
                }
                Some((u, g))
            }
            _ => return Err(bad("uidMappings and gidMappings must be given together")),
        };
        found.push(MountIdmap {
            index,
            maps,
            rbind: has("rbind"),
            recursive: has("ridmap") || (has("rbind") && !has("idmap")),
        });
    }
    Ok(found)
}

/// Detached, idmapped mounts made by the parent, by index in `mounts[]`.
#[derive(Default)]
pub struct Prepared(Vec<(usize, OwnedFd)>);

impl Prepared {
    pub fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.0.iter().find(|(i, _)| *i == index).map(|(_, fd)| fd)
    }
}

/// In the parent, before clone: every idmapped mount of the bundle as a detached mount fd.
pub fn prepare(bundle: &Bundle) -> Result<Prepared> {
    let mut made = Prepared::default();
    let mounts = bundle.spec.mounts().as_deref().unwrap_or_default();
    for idm in &bundle.idmaps {
        let m = &mounts[idm.index];
        let dest = m.destination().display().to_string();
        let refuse = |why: String| Error::Unsupported(format!("mount {dest}: {why}"));
        if crate::rootless::is_rootless() {
            return Err(refuse(
                "idmapped mounts need a root caller (the filesystem belongs to the host)".into(),
            ));
        }
        let linux = bundle.spec.linux().as_ref();
        let (uids, gids) = match &idm.maps {
            Some((u, g)) => (u.as_slice(), g.as_slice()),
            None => match linux.and_then(|l| l.uid_mappings().as_deref().zip(l.gid_mappings().as_deref())) {
                Some(maps) => maps,
                None => {
                    return Err(refuse(
                        "idmap without uidMappings/gidMappings needs the container's user namespace mappings".into(),
                    ))
                }
            },
        };
        let source = bundle
            .dir
            .join(m.source().as_deref().unwrap_or(m.destination()));
        let path = CString::new(source.as_os_str().as_bytes())
            .map_err(|_| refuse("source path contains NUL".into()))?;
        let userns = userns_with(uids, gids)?;
        let tree = sys::open_tree_clone(&path, idm.rbind)
            .map_err(|e| refuse(format!("open_tree {}: {e}", source.display())))?;
        sys::mount_setattr_idmap(tree.as_fd(), userns.as_fd(), idm.recursive).map_err(|e| {
            refuse(match e {
                Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP => format!(
                    "cannot idmap {}: {e} (the kernel or this filesystem does not support idmapped mounts)",
                    source.display()
                ),
                _ => format!("mount_setattr(MOUNT_ATTR_IDMAP) {}: {e}", source.display()),
            })
        })?;
        made.0.push((idm.index, tree));
    }
    Ok(made)
}

/// A user namespace holding `uids`/`gids`: a helper process is cloned into a new one, its
/// maps written, the namespace opened, and the helper killed (the fd keeps the namespace).
fn userns_with(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd> {
    match sys::clone_fork(CloneFlags::CLONE_NEWUSER.bits(), None)
        .map_err(Error::sys("clone3(CLONE_NEWUSER)"))?
    {
        Forked::Child { .. } => {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            loop {
                nix::unistd::pause();
            }
        }
        Forked::Parent { pid, pidfd } => {
            let opened = crate::userns::write_maps(pid, uids, gids).and_then(|()| {
                let path = format!("/proc/{pid}/ns/user");
                std::fs::File::open(&path)
                    .map(OwnedFd::from)
                    .map_err(|e| Error::io("open", path, e))
            });
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            opened
        }
    }
}

/// In the init: put the detached mount `tree` on `target`.
pub fn attach(tree: &OwnedFd, target: &OwnedFd) -> std::result::Result<(), Errno> {
    sys::move_mount_fd(tree.as_fd(), target.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_entries() {
        let map = json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        let cfg = json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/a", "type": "bind", "source": "/x", "options": ["rbind", "idmap"]},
            {"destination": "/b", "source": "/y", "options": ["rbind", "ridmap"],
             "uidMappings": map, "gidMappings": map},
        ]});
        let found = from_config(&cfg).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].index, found[0].rbind, found[0].recursive),
            (1, true, false)
        );
        assert!(found[0].maps.is_none());
        assert_eq!((found[1].index, found[1].recursive), (2, true));
        assert_eq!(found[1].maps.as_ref().unwrap().0[0].host_id(), 1000);

        let only_uids = json!({"mounts": [{"destination": "/a", "type": "bind", "source": "/x",
            "uidMappings": map}]});
        assert!(matches!(from_config(&only_uids), Err(SpecError::MountIdmap(d, _)) if d == "/a"));
        let tmpfs = json!({"mounts": [{"destination": "/t", "type": "tmpfs", "source": "tmpfs",
            "options": ["idmap"]}]});
        assert!(from_config(&tmpfs).is_err());
    }
}
