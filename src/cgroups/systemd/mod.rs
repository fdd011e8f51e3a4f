//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient scope
//! unit that systemd makes and owns (`Delegate=yes`), as runc's systemd driver does.
//!
//! The order, at `create`: the cgroup's directories are known before the clone
//! ([`name::UnitName::cgroup`]), the init is cloned outside them, then the parent asks systemd
//! for the scope with the init's pid and the limits as unit properties ([`properties`],
//! [`devices`]), waits for the job, and writes into the delegated cgroup whatever systemd has
//! no property for (the cgroupfs writers do that part, as on every host). Only then does the
//! init go on (sync step 0). `update` sets the properties and the files; `delete` stops the
//! unit and resets it if it failed.

pub mod bus;
mod cgroup;
pub mod devices;
pub mod name;
pub mod properties;

use std::path::PathBuf;

use oci_spec::runtime::{LinuxDevice, LinuxResources};
use serde::{Deserialize, Serialize};

use super::CgroupError;
use bus::{Bus, CallError, Property, Target, Value};

pub use name::UnitName;

/// The unit recorded in state.json: enough for `update` and `delete` to find it again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unit {
    pub name: String,
    pub slice: String,
    /// Made through the user's manager (rootless), not the system's.
    #[serde(default)]
    pub user: bool,
}

impl Unit {
    fn target(&self) -> Target {
        if self.user {
            Target::User
        } else {
            Target::System
        }
    }
}

fn failed(what: &str, unit: &str, e: CallError) -> CgroupError {
    CgroupError::Systemd(format!("{what} {unit}: {}: {}", e.name, e.text))
}

/// Where the unit's cgroup will be, relative to the hierarchy roots. For the user's manager
/// that is below its own cgroup, which only it can tell.
pub fn plan(
    cgroups_path: Option<&str>,
    id: &str,
    rootless: bool,
) -> Result<(Unit, PathBuf), CgroupError> {
    let name = UnitName::parse(cgroups_path, id, rootless)?;
    let mut base = PathBuf::from("/");
    if !rootless {
        // Before anything is made: a host without systemd fails here.
        bus::system_manager_running()?;
    }
    if rootless {
        let mut bus = Bus::connect(&Target::User)?;
        base = PathBuf::from(bus.manager_control_group()?);
    }
    let rel = base.join(name.cgroup().strip_prefix("/").expect("absolute"));
    let unit = Unit {
        name: name.unit.clone(),
        slice: name.slice.clone(),
        user: rootless,
    };
    Ok((unit, rel))
}

/// Start the unit with `pid` in it and `r` (effective, validated) as its properties, and wait
/// until systemd has made it. A unit of that name left from an earlier container (failed, or
/// not yet collected) is reset and the start tried once more, as runc does.
pub fn start(
    unit: &Unit,
    pid: i32,
    id: &str,
    r: &LinuxResources,
    rules: &[super::devices::Rule],
    devices: &[LinuxDevice],
    v2: bool,
) -> Result<(), CgroupError> {
    let mut props: Vec<Property> = vec![
        (
            "Description".into(),
            Value::Str(format!("gpurun container {id}")),
        ),
        ("DefaultDependencies".into(), Value::Bool(false)),
    ];
    if unit.name.ends_with(".slice") {
        // A slice holds no processes itself (the init joins its cgroup directly) and has no
        // Slice= of its own: its name places it; Wants= starts the parent first.
        props.push(("Wants".into(), Value::Str(unit.slice.clone())));
    } else {
        props.push(("Slice".into(), Value::Str(unit.slice.clone())));
        props.push(("Delegate".into(), Value::Bool(true)));
        props.push(("PIDs".into(), Value::Pids(vec![pid as u32])));
    }
    props.extend(properties::accounting(v2));
    props.extend(properties::resources(r, v2, || None)?);
    if !unit.user {
        props.extend(devices::properties(rules, devices));
    }

    let mut bus = Bus::connect(&unit.target())?;
    bus.subscribe()?;
    let job = match bus.start_transient_unit(&unit.name, &props)? {
        Ok(job) => job,
        Err(e) if e.name == "org.freedesktop.systemd1.UnitExists" => {
            let _ = bus.reset_failed_unit(&unit.name)?;
            bus.start_transient_unit(&unit.name, &props)?
                .map_err(|e| failed("start", &unit.name, e))?
        }
        Err(e) => return Err(failed("start", &unit.name, e)),
    };
    match bus.wait_job(&job)?.as_str() {
        "done" => Ok(()),
        result => {
            let _ = bus.reset_failed_unit(&unit.name);
            Err(CgroupError::Systemd(format!(
                "start {}: job {job} finished with result {result:?} (see `journalctl -u {}`)",
                unit.name, unit.name
            )))
        }
    }
}

/// `update`: the new limits as unit properties, so that systemd keeps them.
pub fn set_properties(
    unit: &Unit,
    r: &LinuxResources,
    v2: bool,
    current_limit: impl FnOnce() -> Option<i64>,
) -> Result<(), CgroupError> {
    let props = properties::resources(r, v2, current_limit)?;
    if props.is_empty() {
        return Ok(());
    }
    let mut bus = Bus::connect(&unit.target())?;
    bus.set_unit_properties(&unit.name, &props)?
        .map_err(|e| failed("set properties of", &unit.name, e))
}

/// Stop the unit (if systemd still has it) and forget a failed state, so no unit is left.
pub fn stop(unit: &Unit) -> Result<(), CgroupError> {
    let mut bus = Bus::connect(&unit.target())?;
    // The usual case: the container's processes are gone, so systemd stopped and collected
    // the scope already; one call says so.
    if !bus.has_unit(&unit.name)? {
        return Ok(());
    }
    bus.subscribe()?;
    match bus.stop_unit(&unit.name)? {
        Ok(job) => {
            bus.wait_job(&job)?;
        }
        Err(e) if e.name == "org.freedesktop.systemd1.NoSuchUnit" => {}
        Err(e) => return Err(failed("stop", &unit.name, e)),
    }
    match bus.reset_failed_unit(&unit.name)? {
        Ok(()) => Ok(()),
        Err(e)
            if e.name == "org.freedesktop.systemd1.NoSuchUnit" || e.name.ends_with("NotFailed") =>
        {
            Ok(())
        }
        Err(e) if e.text.contains("not loaded") || e.text.contains("not failed") => Ok(()),
        Err(e) => Err(failed("reset", &unit.name, e)),
    }
}
