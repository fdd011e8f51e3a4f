//! `linux.intelRdt`: put the container into a resctrl group (Intel RDT / AMD PQoS), made for
//! it or shared (`closID`), with the schemata it asks for, and into a MON group of its own
//! when it asks for monitoring.
//!
//! The CTRL_MON group is named by `closID`, else by the container id (runtime-spec
//! "IntelRdt"); `closID` "/" is the default group, the resctrl root itself. A group named by
//! `closID` is never removed: other containers may share it (the runtime-spec's rule, and
//! runc's). A group named after the container is removed by `delete` when gpurun made it.
//! The MON group (`mon_groups/<container-id>`) is the container's alone: `delete` always
//! removes it. All of it is recorded in state.json ([`Group`]) before it is made.

mod config;
#[cfg(test)]
mod tests;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

pub use config::{take_from_config, validate, IntelRdt};

use crate::error::{Error, Result};

/// The resctrl groups of a container, as recorded in state.json.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// The CTRL_MON group (the resctrl root for `closID` "/").
    pub path: PathBuf,
    /// Made by gpurun for this container (no `closID`): `delete` removes it.
    #[serde(default)]
    pub owned: bool,
    /// The container's MON group under `path`, for monitoring: `delete` always removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mon: Option<PathBuf>,
}

/// The mount point of the resctrl filesystem, from /proc/self/mountinfo.
fn resctrl_root() -> Option<PathBuf> {
    let info = crate::cgroups::read_proc("/proc/self/mountinfo");
    info.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        (post.split(' ').next() == Some("resctrl"))
            .then(|| pre.split(' ').nth(4).map(unescape))
            .flatten()
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\NNN` octal escapes.
fn unescape(field: &str) -> PathBuf {
    let text = field.replace("\\040", " ").replace("\\011", "\t");
    PathBuf::from(text.replace("\\012", "\n").replace("\\134", "\\"))
}

/// The resctrl groups the container will get, if any (recorded in state.json before `make`).
/// Everything that can be refused is refused here, before anything exists.
pub fn plan(rdt: Option<&IntelRdt>, id: &str) -> Result<Option<Group>> {
    let Some(rdt) = rdt else { return Ok(None) };
    let root = resctrl_root().ok_or_else(|| {
        Error::Unsupported("intelRdt is specified in config, but Intel RDT is not enabled".into())
    })?;
    plan_in(&root, rdt, id).map(Some)
}

/// [`plan`] under the resctrl mount `root`.
fn plan_in(root: &Path, rdt: &IntelRdt, id: &str) -> Result<Group> {
    let refuse = |field: &str, feature: &str| {
        Err(Error::Unsupported(format!(
            "intelRdt.{field} is specified in config, but Intel RDT/{feature} is not enabled"
        )))
    };
    let info = root.join("info");
    let asks = |s: &Option<String>| s.as_ref().is_some_and(|s| !s.is_empty());
    if asks(&rdt.l3_cache_schema) && !info.join("L3").is_dir() {
        return refuse("l3CacheSchema", "CAT");
    }
    if asks(&rdt.mem_bw_schema) && !info.join("MB").is_dir() {
        return refuse("memBwSchema", "MBA");
    }
    // `schemata` lines name any resource (L2, L3CODE, SMBA…): the kernel judges them.
    let features = std::fs::read_to_string(info.join("L3_MON/mon_features")).unwrap_or_default();
    let has = |feature: &str| features.lines().any(|l| l.trim() == feature);
    if rdt.enable_monitoring == Some(true) && features.trim().is_empty() {
        return refuse("enableMonitoring", "monitoring");
    }
    if rdt.enable_cmt == Some(true) && !has("llc_occupancy") {
        return refuse("enableCMT", "CMT");
    }
    if rdt.enable_mbm == Some(true) && !has("mbm_total_bytes") && !has("mbm_local_bytes") {
        return refuse("enableMBM", "MBM");
    }
    let mut group = match rdt.clos_id() {
        // The default group: the root itself, there always.
        Some("/") => Group {
            path: root.to_path_buf(),
            owned: false,
            mon: None,
        },
        Some(clos) => {
            let path = root.join(clos);
            // Without schemata to make it with, the group must be there already.
            if rdt.lines().is_empty() && !path.is_dir() {
                return Err(Error::Unsupported(format!(
                    "intelRdt: clos dir {} not accessible (must be pre-created when schemata, l3CacheSchema and memBwSchema are empty)",
                    path.display()
                )));
            }
            Group {
                path,
                owned: false,
                mon: None,
            }
        }
        None if config::RESERVED.contains(&id) => {
            return Err(Error::Unsupported(format!(
                "intelRdt: the container id {id:?} names a resctrl directory: set intelRdt.closID"
            )))
        }
        // One left from elsewhere is used, not taken over: it stays when we go.
        None => Group {
            owned: !root.join(id).exists(),
            path: root.join(id),
            mon: None,
        },
    };
    if rdt.monitoring() {
        let mon = group.path.join("mon_groups").join(id);
        // Someone else's (a container of the same id under another --root): not ours to take.
        if mon.exists() {
            return Err(Error::Unsupported(format!(
                "intelRdt: the monitoring group {} exists already",
                mon.display()
            )));
        }
        group.mon = Some(mon);
    }
    Ok(group)
}

/// Make the groups planned and write the schemata. An existing `closID` group (the root
/// for "/") is shared: its schemata are compared, not changed (the runtime-spec's rule;
/// runc writes them, which for "/" would change the host's default group). What turns
/// out to have been made meanwhile by someone else is dropped from `group`, not taken over:
/// the caller records the change.
pub fn make(rdt: &IntelRdt, group: &mut Group) -> Result<()> {
    let existed = group.path.is_dir();
    let made = !existed
        && match std::fs::create_dir(&group.path) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) => return Err(with_status(&group.path, Error::io("mkdir", &group.path, e))),
        };
    group.owned &= made;
    // A group made just now for something the kernel refuses goes again, shared or not.
    let fail = |dir: &Path, e: Error| {
        if made {
            let _ = std::fs::remove_dir(&group.path);
        }
        with_status(dir, e)
    };
    let lines = rdt.lines();
    let file = group.path.join("schemata");
    if lines.is_empty() {
        // Nothing to write: the runtime-spec forbids touching any schemata file.
    } else if !made && rdt.clos_id().is_some() {
        let current = std::fs::read_to_string(&file).map_err(|e| Error::io("read", &file, e))?;
        if let Some(line) = lines.iter().find(|l| !schema_matches(l, &current)) {
            return Err(Error::Unsupported(format!(
                "intelRdt: the existing group {} does not have the schema {line:?} (it has {:?})",
                group.path.display(),
                current.trim()
            )));
        }
    } else if let Err(e) = write_schemata(&file, &lines) {
        return Err(fail(&group.path, e));
    }
    let Some(mon) = &group.mon else { return Ok(()) };
    let Err(e) = std::fs::create_dir(mon) else {
        return Ok(());
    };
    let taken = e.kind() == ErrorKind::AlreadyExists;
    let msg = format!(
        "intelrdt: unable to make the monitoring group {}: {}",
        mon.display(),
        crate::sys::errno_text(&e)
    );
    let e = fail(mon, Error::Unsupported(msg));
    if taken {
        // Someone else's, made since `plan`: not ours to remove.
        group.mon = None;
    }
    Err(e)
}

/// One write: the kernel applies all the lines or none, in their order.
fn write_schemata(file: &Path, lines: &[&str]) -> Result<()> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(file, &text).map_err(|e| {
        Error::Unsupported(format!(
            "intelrdt: unable to write {text:?} to {}: {}",
            file.display(),
            crate::sys::errno_text(&e)
        ))
    })
}

/// Whether every `id=value` of the schema `line` (`L3:0=7f0;1=1f`) is in `schemata` as the
/// kernel prints it (padded, with leading zeros, every cache id listed).
fn schema_matches(line: &str, schemata: &str) -> bool {
    let parse = |l: &str| -> Option<(String, Vec<(String, String)>)> {
        let (resource, entries) = l.trim().split_once(':')?;
        let entries = entries
            .split(';')
            .filter_map(|e| e.split_once('='))
            .map(|(id, v)| {
                let v = v.trim().to_ascii_lowercase();
                (id.trim().to_string(), v.trim_start_matches('0').to_string())
            })
            .collect();
        Some((resource.trim().to_string(), entries))
    };
    let Some((resource, wanted)) = parse(line) else {
        return false;
    };
    let have = schemata
        .lines()
        .filter_map(parse)
        .find(|(r, _)| *r == resource);
    have.is_some_and(|(_, have)| wanted.iter().all(|w| have.contains(w)))
}

/// Put `pid` (the init, before it runs anything of the user's) into the CTRL_MON group, then
/// into its MON group: the kernel takes a task into a MON group only from its parent.
pub fn place(group: &Group, pid: nix::unistd::Pid) -> Result<()> {
    for dir in std::iter::once(&group.path).chain(&group.mon) {
        let tasks = dir.join("tasks");
        std::fs::write(&tasks, pid.to_string()).map_err(|e| {
            with_status(
                dir,
                Error::Unsupported(format!(
                    "intelrdt: unable to add pid {pid} to {}: {}",
                    tasks.display(),
                    crate::sys::errno_text(&e)
                )),
            )
        })?;
    }
    Ok(())
}

/// Remove what gpurun made (`delete`, or a failed `create`): the MON group always, the
/// CTRL_MON group when it was made for this container; absent is fine. Their tasks go back
/// to the parent group.
pub fn remove(group: &Group) {
    let owned = group.owned.then_some(&group.path);
    for dir in group.mon.iter().chain(owned) {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => crate::logging::warn(&format!(
                "intelrdt: remove {}: {}",
                dir.display(),
                crate::sys::errno_text(&e)
            )),
            _ => {}
        }
    }
}

/// The kernel explains a refused resctrl write in `info/last_cmd_status` at the root, at
/// most three levels up (`<root>/<group>/mon_groups/<id>`).
fn with_status(dir: &Path, e: Error) -> Error {
    let status = dir
        .ancestors()
        .take(4)
        .find_map(|dir| std::fs::read_to_string(dir.join("info/last_cmd_status")).ok());
    match status
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "ok")
    {
        Some(s) => Error::Unsupported(format!("{e}, last_cmd_status: {s}")),
        None => e,
    }
}
