//! Loading and validating a bundle's `config.json`.
//!
//! Unknown properties are ignored, as the runtime-spec requires; everything gpurun cannot honour
//! is refused here, before any side effect, so a bad bundle leaves nothing behind.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("JSON specification file config.json not found in {0}")]
    NotFound(PathBuf),
    #[error("cannot read {path}: {}", crate::sys::errno_text(source))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("unsupported ociVersion {0:?}: gpurun implements runtime-spec 1.x")]
    Version(String),
    #[error("config.json: args must not be empty")]
    NoArgs,
    #[error("config.json: process property must not be empty")]
    NoProcess,
    #[error("config.json: root.path is missing")]
    NoRoot,
    #[error("invalid rootfs {0}: {1}")]
    Rootfs(PathBuf, &'static str),
    #[error("config.json: {0} needs a mount namespace: without one it would be made in the runtime's (the host's); add {{\"type\": \"mount\"}} to linux.namespaces or drop it")]
    NeedsMountNamespace(String),
    #[error("config.json: namespace {0} given twice")]
    DuplicateNamespace(String),
    #[error("config.json: {0}")]
    Mappings(&'static str),
    #[error("config.json: process.cwd {0:?} must be an absolute path")]
    RelativeCwd(String),
    #[error("config.json: setting the hostname needs a new or joined uts namespace")]
    HostnameWithoutUts,
    #[error("config.json: invalid rootfsPropagation {0:?}")]
    Propagation(String),
    #[error("config.json: mount {0}: {1}")]
    MountIdmap(String, &'static str),
    #[error("config.json: {0}")]
    Field(String),
    #[error("config.json: invalid sysctl key {0:?}")]
    Sysctl(String),
    #[error("config.json: sysctl {0:?} is not in a separate kernel namespace ({1}): it would change the host")]
    SysctlNamespace(String, &'static str),
}

pub type Result<T> = std::result::Result<T, SpecError>;

/// A sysctl may only be set if it belongs to a namespace the container has of its own:
/// anything else would change the host kernel (runc's rule).
fn check_sysctl_namespace(key: &str, namespaces: &[LinuxNamespaceType]) -> Result<()> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needed = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(SpecError::SysctlNamespace(key.to_string(), "no namespace"));
    };
    if namespaces.contains(&needed) {
        Ok(())
    } else {
        Err(SpecError::SysctlNamespace(
            key.to_string(),
            "the container shares that namespace with the host",
        ))
    }
}

/// A container without a `mount` namespace entry shares the runtime's mount namespace (the
/// spec's rule). runc then makes its mounts there, in the host's namespace, and leaves them
/// behind; gpurun refuses everything that would mount or create something outside the
/// rootfs's own files, naming the field. Checked again after GPU requests became mounts.
pub fn check_shared_mounts(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let own = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Mount);
    if own {
        return Ok(());
    }
    let refuse = |what: String| Err(SpecError::NeedsMountNamespace(what));
    if let Some((i, m)) = spec.mounts().iter().flatten().enumerate().next() {
        return refuse(format!("mounts[{i}] ({})", m.destination().display()));
    }
    let non_empty = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    if non_empty(linux.and_then(|l| l.masked_paths().as_ref())) {
        return refuse("linux.maskedPaths".into());
    }
    if non_empty(linux.and_then(|l| l.readonly_paths().as_ref())) {
        return refuse("linux.readonlyPaths".into());
    }
    if linux.is_some_and(|l| l.devices().as_ref().is_some_and(|d| !d.is_empty())) {
        return refuse("linux.devices".into());
    }
    if linux.is_some_and(|l| l.rootfs_propagation().is_some()) {
        return refuse("linux.rootfsPropagation".into());
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return refuse("root.readonly".into());
    }
    if spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
        // The pty comes from the container's own devpts.
        return refuse("process.terminal".into());
    }
    Ok(())
}

/// `linux.timeOffsets` only for a time namespace the container makes (a joined one has its
/// offsets already), and only for the two clocks a time namespace offsets.
fn check_time_offsets(
    linux: Option<&oci_spec::runtime::Linux>,
    namespaces: &[oci_spec::runtime::LinuxNamespace],
) -> Result<()> {
    let Some(offsets) = linux.and_then(|l| l.time_offsets().as_ref()) else {
        return Ok(());
    };
    let new_time = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
    if !offsets.is_empty() && !new_time {
        return Err(SpecError::Field(
            "linux.timeOffsets needs a new time namespace (a {\"type\": \"time\"} entry without path)".into(),
        ));
    }
    for (clock, o) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(SpecError::Field(format!(
                "linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)"
            )));
        }
        if o.nanosecs().unwrap_or(0) >= 1_000_000_000 {
            return Err(SpecError::Field(format!(
                "linux.timeOffsets.{clock}.nanosecs must be below 1000000000"
            )));
        }
    }
    Ok(())
}

/// A validated bundle: the spec plus the absolute bundle and rootfs paths.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    /// Everything but `linux.seccomp`, which is in `seccomp`.
    pub spec: Spec,
    pub seccomp: Option<crate::seccomp::Profile>,
    /// `linux.intelRdt` (not in `spec`: oci-spec 0.8.4 lacks its 1.3 fields).
    pub intel_rdt: Option<crate::intelrdt::IntelRdt>,
    /// The idmapped entries of `mounts[]` (their mappings are not in `spec`).
    pub idmaps: Vec<crate::rootfs::idmap::MountIdmap>,
}

/// config.json, parsed: the parts oci-spec cannot read are taken out of `spec`.
pub struct Parsed {
    pub spec: Spec,
    pub seccomp: Option<crate::seccomp::Profile>,
    pub intel_rdt: Option<crate::intelrdt::IntelRdt>,
}

/// Parse config.json's bytes: `linux.seccomp` and `linux.intelRdt` with gpurun's own types
/// (see `seccomp::profile`, `intelrdt::config`), the rest with oci-spec. Errors name the
/// offending field; `path` is only for messages.
pub fn parse_config(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let parse_err = |msg: String| SpecError::Parse {
        path: path.to_path_buf(),
        msg,
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| parse_err(e.to_string()))?;
    let seccomp = crate::seccomp::take_from_config(&mut value).map_err(parse_err)?;
    let intel_rdt = crate::intelrdt::take_from_config(&mut value).map_err(parse_err)?;
    if let Some(process) = value.get_mut("process") {
        crate::process::attrs::fix_scheduler_flags(process);
    }
    // serde_path_to_error names the offending field (`linux.resources.pids.limit: …`).
    let spec: Spec =
        serde_path_to_error::deserialize(value).map_err(|e| parse_err(e.to_string()))?;
    Ok(Parsed {
        spec,
        seccomp,
        intel_rdt,
    })
}

/// [`parse_config`] for callers that need only the spec and the seccomp profile.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Spec, Option<crate::seccomp::Profile>)> {
    parse_config(path, bytes).map(|p| (p.spec, p.seccomp))
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir).map_err(|e| SpecError::Read {
            path: dir.into(),
            source: e,
        })?;
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SpecError::NotFound(dir.clone()),
            _ => SpecError::Read {
                path: path.clone(),
                source: e,
            },
        })?;
        let Parsed {
            spec,
            seccomp,
            intel_rdt,
        } = parse_config(&path, &bytes)?;
        let rootfs = rootfs_path(&dir, &spec)?;
        validate(&spec)?;
        if let Some(rdt) = &intel_rdt {
            crate::intelrdt::validate(rdt).map_err(SpecError::Field)?;
        }
        // Parsed again only when the config can hold an idmapped mount.
        let idmaps = match bytes.windows(8).any(|w| w == b"Mappings")
            || bytes.windows(5).any(|w| w == b"idmap")
        {
            true => {
                let value = serde_json::from_slice(&bytes).map_err(|e| SpecError::Parse {
                    path: path.clone(),
                    msg: e.to_string(),
                })?;
                crate::rootfs::idmap::from_config(&value)?
            }
            false => Vec::new(),
        };
        Ok(Bundle {
            dir,
            rootfs,
            spec,
            seccomp,
            intel_rdt,
            idmaps,
        })
    }
}

fn rootfs_path(dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec.root().as_ref().ok_or(SpecError::NoRoot)?;
    let joined = dir.join(root.path());
    match joined.canonicalize() {
        Ok(p) if p.is_dir() => Ok(p),
        Ok(_) => Err(SpecError::Rootfs(joined, "not a directory")),
        Err(_) => Err(SpecError::Rootfs(joined, "no such file or directory")),
    }
}

/// Everything checked without touching the system.
pub fn validate(spec: &Spec) -> Result<()> {
    let version = spec.version();
    if version.split('.').next() != Some("1") {
        return Err(SpecError::Version(version.clone()));
    }
    let process = spec.process().as_ref().ok_or(SpecError::NoProcess)?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(SpecError::NoArgs);
    }
    if !process.cwd().is_absolute() {
        return Err(SpecError::RelativeCwd(process.cwd().display().to_string()));
    }
    let linux = spec.linux().as_ref();
    let namespaces = linux
        .and_then(|l| l.namespaces().as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut seen = Vec::new();
    for ns in namespaces {
        let kind = ns.typ();
        if seen.contains(&kind) {
            return Err(SpecError::DuplicateNamespace(kind.to_string()));
        }
        seen.push(kind);
    }
    check_time_offsets(linux, namespaces)?;
    let mapped =
        |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| m.is_some_and(|m| !m.is_empty());
    let (uids, gids) = (
        mapped(linux.and_then(|l| l.uid_mappings().as_ref())),
        mapped(linux.and_then(|l| l.gid_mappings().as_ref())),
    );
    let joins_user = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
    if joins_user {
        // runc's rule: the joined namespace has its maps already.
        if uids || gids {
            return Err(SpecError::Mappings(
                "uid/gid mappings given, but the user namespace is joined by path (it has its own maps)",
            ));
        }
    } else if seen.contains(&LinuxNamespaceType::User) {
        if !uids {
            return Err(SpecError::Mappings(
                "user namespaces enabled, but no uid mappings found",
            ));
        }
        if !gids {
            return Err(SpecError::Mappings(
                "user namespaces enabled, but no gid mappings found",
            ));
        }
    } else if uids || gids {
        return Err(SpecError::Mappings(
            "uid/gid mappings given, but user namespaces not enabled in config",
        ));
    }
    check_shared_mounts(spec)?;
    let sets_hostname = spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        || spec.domainname().as_ref().is_some_and(|h| !h.is_empty());
    if sets_hostname && !seen.contains(&LinuxNamespaceType::Uts) {
        return Err(SpecError::HostnameWithoutUts);
    }
    if let Some(linux) = linux {
        if let Some(p) = linux.rootfs_propagation() {
            crate::rootfs::mounts::propagation_flag(p)
                .ok_or_else(|| SpecError::Propagation(p.clone()))?;
        }
        for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
            if key.is_empty()
                || key.contains('/')
                || key.split('.').any(|p| p.is_empty() || p == "..")
            {
                return Err(SpecError::Sysctl(key.clone()));
            }
            check_sysctl_namespace(key, &seen)?;
        }
    }
    crate::process::attrs::validate(spec).map_err(SpecError::Field)?;
    crate::netdev::validate(spec).map_err(SpecError::Field)?;
    Ok(())
}

/// The default `config.json` written by `gpurun spec`: runc's defaults.
pub const DEFAULT_SPEC: &str = include_str!("default_spec.json");

#[cfg(test)]
mod tests;
