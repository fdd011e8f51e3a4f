//! `spec`, `features` and `--version`: what gpurun is and what it supports.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// The runtime-spec version gpurun implements.
pub const SPEC_VERSION: &str = "1.3.0";

pub fn version_text() -> String {
    format!(
        "gpurun version {}\ncommit: {}\nspec: {SPEC_VERSION}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("GPURUN_COMMIT").unwrap_or("unknown")
    )
}

/// The config.json `spec` writes: runc's defaults, plus the default seccomp profile if asked,
/// made rootless (runc's `ToRootless`, for the caller's ids) if asked.
pub fn default_spec(seccomp: bool, rootless: bool) -> String {
    if !seccomp && !rootless {
        return crate::spec::DEFAULT_SPEC.to_string();
    }
    let mut spec: serde_json::Value =
        serde_json::from_str(crate::spec::DEFAULT_SPEC).expect("default spec is JSON");
    if seccomp {
        spec["linux"]["seccomp"] =
            serde_json::from_str(crate::seccomp::DEFAULT_PROFILE).expect("profile is JSON");
    }
    if rootless {
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        crate::rootless::to_rootless(&mut spec, uid.as_raw(), gid.as_raw());
    }
    let mut text = serde_json::to_string_pretty(&spec).expect("spec serialises");
    text.push('\n');
    text
}

/// Write the default config.json into `bundle`, refusing to overwrite one (as runc does).
pub fn write_spec(bundle: &Path, rootless: bool, seccomp: bool) -> Result<i32> {
    let path = bundle.join("config.json");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Unsupported(format!(
                "File {} exists. Remove it first",
                path.display()
            )))
        }
        Err(e) => return Err(Error::io("create", &path, e)),
    };
    file.write_all(default_spec(seccomp, rootless).as_bytes())
        .map_err(|e| Error::io("write", &path, e))?;
    Ok(0)
}

/// Every capability the build knows, in the kernel's numbering order (the set is unordered;
/// `features` must print the same document every time).
fn capabilities() -> Vec<String> {
    let mut all: Vec<caps::Capability> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all.iter().map(|c| c.to_string()).collect()
}

/// The runtime-spec `features.md` document for this build. It claims no runc version
/// (`org.opencontainers.runc.version` is runc's own: engines gate runc bugs on it).
pub fn print_features() -> Result<i32> {
    let features = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand",
            "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime",
            "nosuid", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared",
            "rslave", "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync",
            "tmpcopyup", "unbindable", "idmap", "ridmap", "nosymfollow", "symfollow",
            "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
            "rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rnoatime", "ratime",
            "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": capabilities(),
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": false},
            "seccomp": crate::seccomp::features(),
            // Whether gpurun supports them (the spec: not whether this host has them).
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": true, "schemata": true, "monitoring": true},
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                          "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": true}
        },
        "annotations": {
            "io.github.gpurun.version": env!("CARGO_PKG_VERSION"),
            // `checkpoint`/`restore` exist (CRIU itself is probed when they run); runc's key
            // too, for engines that look only for it.
            "org.gpurun.checkpoint.enabled": "true",
            "org.opencontainers.runc.checkpoint.enabled": "true"
        }
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&features).expect("features serialise")
    );
    Ok(0)
}
