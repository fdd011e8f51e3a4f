//! The runtime config.json for RUN steps and for `--bundle`: the image config converted as the
//! image-spec's conversion document says (Entrypoint+Cmd → args, Env, WorkingDir, User →
//! uid/gid/additionalGids, labels → annotations) on top of gpurun's defaults.

use crate::user::Ids;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Docker's default capability set for containers (and so for RUN steps).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub struct Bind {
    pub src: String,
    pub dst: String,
    pub readonly: bool,
}

pub struct SpecInput<'a> {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub ids: Ids,
    /// false: share the host's network namespace (RUN's default).
    pub own_network: bool,
    pub binds: Vec<Bind>,
    pub annotations: BTreeMap<String, String>,
    pub cgroups_path: Option<String>,
    pub hostname: &'a str,
}

/// `/dev`, `/proc`, `/sys` … as runc's `spec` writes them.
fn default_mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        // With its own cgroup namespace a container sees its own cgroup as the root here, so
        // a framework reads its memory/CPU limits (runc's spec and BuildKit's RUN do the same).
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ]
}

pub fn config_json(inp: &SpecInput<'_>) -> Value {
    let mut mounts = default_mounts();
    for b in &inp.binds {
        let mut opts = vec!["rbind", "nosuid", "nodev"];
        if b.readonly {
            opts.push("ro");
        }
        mounts
            .push(json!({"destination": b.dst, "type": "bind", "source": b.src, "options": opts}));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if inp.own_network {
        namespaces.push(json!({"type": "network"}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": {"devices": [{"allow": false, "access": "rwm"}]},
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    });
    if let Some(cg) = &inp.cgroups_path {
        linux["cgroupsPath"] = json!(cg);
    }
    let mut user = json!({"uid": inp.ids.uid, "gid": inp.ids.gid});
    if !inp.ids.additional_gids.is_empty() {
        user["additionalGids"] = json!(inp.ids.additional_gids);
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": user,
            "args": inp.args,
            "env": inp.env,
            "cwd": if inp.cwd.is_empty() { "/" } else { inp.cwd.as_str() },
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024u64, "soft": 1024u64}],
            "noNewPrivileges": false
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": inp.hostname,
        "mounts": mounts,
        "linux": linux,
    });
    if !inp.annotations.is_empty() {
        spec["annotations"] = json!(inp.annotations);
    }
    spec
}

/// Entrypoint + Cmd → process args, as the conversion document and Docker combine them.
pub fn process_args(entrypoint: Option<&[String]>, cmd: Option<&[String]>) -> Vec<String> {
    let mut args: Vec<String> = entrypoint.unwrap_or_default().to_vec();
    args.extend(cmd.unwrap_or_default().iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_and_user() {
        let ids = Ids {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![44],
        };
        let mut inp = SpecInput {
            args: vec!["sh".into()],
            env: vec!["A=1".into()],
            cwd: String::new(),
            ids,
            own_network: false,
            binds: vec![Bind {
                src: "/c".into(),
                dst: "/root/.cache".into(),
                readonly: false,
            }],
            annotations: BTreeMap::new(),
            cgroups_path: Some("gpurun-build-x".into()),
            hostname: "h",
        };
        let s = config_json(&inp);
        assert_eq!(s["process"]["cwd"], "/");
        assert_eq!(s["process"]["user"]["additionalGids"], json!([44]));
        assert!(!s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
        assert!(s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/root/.cache"));
        let cg = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys/fs/cgroup")
            .expect("a /sys/fs/cgroup mount");
        assert_eq!(cg["type"], "cgroup");
        assert!(cg["options"].as_array().unwrap().contains(&json!("ro")));
        assert!(s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "cgroup"})));
        inp.own_network = true;
        inp.binds.push(Bind {
            src: "/c/tmp/run-secrets-1-1".into(),
            dst: "/run/secrets".into(),
            readonly: true,
        });
        let s = config_json(&inp);
        let sec = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/run/secrets")
            .unwrap();
        assert!(sec["options"].as_array().unwrap().contains(&json!("ro")));
        assert!(s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
        let ep = ["/bin/app".to_string()];
        let cmd = ["--x".to_string()];
        assert_eq!(process_args(Some(&ep), Some(&cmd)), ["/bin/app", "--x"]);
        assert_eq!(process_args(None, Some(&cmd)), ["--x"]);
    }
}
