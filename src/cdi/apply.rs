//! Applying CDI devices to an OCI spec: the spec-wide `containerEdits` of every spec involved
//! (once each) and each device's own — env, device nodes (type and numbers stat'ed on the host
//! when the spec leaves them out; each also gets its device rule), mounts, hooks, additional gids.

use oci_spec::runtime::{Hook as OciHook, Hooks, Mount as OciMount, Spec as OciSpec};
use serde_json::json;

use super::registry::Registry;
use super::spec::{ContainerEdits, DeviceNode};
use crate::gpu::edits::{add_devices, Node};
use crate::gpu::GpuError;

fn err(msg: String) -> GpuError {
    GpuError::Cdi(format!("CDI: {msg}"))
}

/// Resolve `names` (qualified: `vendor/class=name`) in `dirs` and apply them to `spec`.
pub fn apply_names(
    spec: &mut OciSpec,
    dirs: &[std::path::PathBuf],
    names: &[String],
) -> Result<(), GpuError> {
    let reg = Registry::load(dirs).map_err(err)?;
    let mut edits: Vec<&ContainerEdits> = Vec::new();
    let mut specs_done: Vec<&std::path::Path> = Vec::new();
    for name in names {
        let (path, cdi, dev) = reg.get(name).ok_or_else(|| {
            err(format!(
                "unresolvable device {name:?} (spec dirs: {})",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if !specs_done.contains(&path) {
            specs_done.push(path);
            edits.push(&cdi.container_edits);
        }
        edits.push(&dev.container_edits);
    }
    for e in edits {
        apply_edits(spec, e)?;
    }
    Ok(())
}

pub fn apply_edits(spec: &mut OciSpec, e: &ContainerEdits) -> Result<(), GpuError> {
    if e.intel_rdt.is_some() {
        return Err(err("intelRdt edits are not supported by gpurun".into()));
    }
    let process = spec.process_mut().get_or_insert_with(Default::default);
    if !e.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for kv in &e.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|old| old.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        process.set_env(Some(env));
    }
    if !e.additional_gids.is_empty() {
        let user = process.user_mut();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(e.additional_gids.iter().filter(|g| **g != 0));
        user.set_additional_gids(Some(gids));
    }
    let nodes: Vec<Node> = e.device_nodes.iter().map(node).collect::<Result<_, _>>()?;
    add_devices(spec, &nodes)?;
    if !e.mounts.is_empty() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in &e.mounts {
            let typ = m.typ.clone().unwrap_or_else(|| "bind".into());
            let mut options = m.options.clone();
            if typ == "bind" && !options.iter().any(|o| o == "bind" || o == "rbind") {
                options.push("bind".into());
            }
            let om: OciMount = serde_json::from_value(json!({
                "destination": m.container_path, "source": m.host_path, "type": typ, "options": options,
            }))
            .map_err(|e| err(format!("mount {}: {e}", m.container_path)))?;
            mounts.retain(|old| old.destination() != om.destination());
            mounts.push(om);
        }
        spec.set_mounts(Some(mounts));
    }
    for h in &e.hooks {
        add_hook(spec, h)?;
    }
    Ok(())
}

fn node(d: &DeviceNode) -> Result<Node, GpuError> {
    let host = d.host_path.clone().unwrap_or_else(|| d.path.clone());
    let stat = std::fs::metadata(&host).ok().and_then(|_| {
        let cfg = crate::gpu::Config {
            dev_root: "/".into(),
            ..Default::default()
        };
        crate::gpu::edits::stat_node(&cfg, &host).ok().flatten()
    });
    let kind = match (d.typ.as_deref(), &stat) {
        (Some(t @ ("c" | "b" | "u" | "p")), _) => t.chars().next().unwrap_or('c'),
        (Some(t), _) => return Err(err(format!("device {}: invalid type {t:?}", d.path))),
        (None, Some(s)) => s.kind,
        (None, None) => {
            return Err(err(format!(
                "device {}: host node {host} not found and no type/major/minor given",
                d.path
            )))
        }
    };
    let number = |given: Option<i64>, from: fn(&Node) -> i64| {
        given.or(stat.as_ref().map(from)).ok_or_else(|| {
            err(format!(
                "device {}: no major/minor and host node {host} not found",
                d.path
            ))
        })
    };
    let (major, minor) = if kind == 'p' {
        (0, 0)
    } else {
        (number(d.major, |s| s.major)?, number(d.minor, |s| s.minor)?)
    };
    Ok(Node {
        path: d.path.clone(),
        kind,
        major,
        minor,
        mode: d
            .file_mode
            .or(stat.as_ref().map(|s| s.mode))
            .unwrap_or(0o666)
            & 0o7777,
        uid: d.uid.unwrap_or(0),
        gid: d.gid.unwrap_or(0),
        access: d
            .permissions
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rwm".into()),
    })
}

fn add_hook(spec: &mut OciSpec, h: &super::spec::Hook) -> Result<(), GpuError> {
    let mut v = json!({"path": h.path});
    if !h.args.is_empty() {
        v["args"] = json!(h.args);
    }
    if !h.env.is_empty() {
        v["env"] = json!(h.env);
    }
    if let Some(t) = h.timeout {
        v["timeout"] = json!(t);
    }
    let hook: OciHook =
        serde_json::from_value(v).map_err(|e| err(format!("hook {}: {e}", h.path)))?;
    let hooks = spec.hooks_mut().get_or_insert_with(Hooks::default);
    let push = |list: Option<Vec<OciHook>>| {
        let mut l = list.unwrap_or_default();
        l.push(hook.clone());
        Some(l)
    };
    #[allow(deprecated)] // prestart is deprecated in the spec but still valid in CDI
    match h.hook_name.as_str() {
        "prestart" => hooks.set_prestart(push(hooks.prestart().clone())),
        "createRuntime" => hooks.set_create_runtime(push(hooks.create_runtime().clone())),
        "createContainer" => hooks.set_create_container(push(hooks.create_container().clone())),
        "startContainer" => hooks.set_start_container(push(hooks.start_container().clone())),
        "poststart" => hooks.set_poststart(push(hooks.poststart().clone())),
        "poststop" => hooks.set_poststop(push(hooks.poststop().clone())),
        other => return Err(err(format!("hook {}: unknown hookName {other:?}", h.path))),
    };
    Ok(())
}
