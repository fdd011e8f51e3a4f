//! The few systemd Manager calls the driver makes, over D-Bus.
//!
//! rustbus is a synchronous client in pure Rust: no helper thread (zbus's blocking API runs an
//! executor thread, and gpurun may start no thread before it clones the init), no libdbus or
//! libsystemd (gpurun is a static binary). A [`Bus`] lives for one command step and is dropped
//! before anything is spawned, so its socket never reaches a hook or a container.

use std::time::Duration;

use rustbus::connection::Timeout;
use rustbus::message_builder::{MarshalledMessage, MessageType};
use rustbus::wire::ObjectPath;
use rustbus::{MessageBuilder, RpcConn};

use super::super::CgroupError;

/// systemd has no timeout of its own for our jobs; runc waits 30 s.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

rustbus::dbus_variant_sig!(Value, Str => String; Bool => bool; U64 => u64; Pids => Vec<u32>; Bytes => Vec<u8>; Devices => DeviceList);

/// `DeviceAllow`'s a(ss): (node or pattern, access).
pub type DeviceList = Vec<(String, String)>;

/// One unit property: name and value.
pub type Property = (String, Value);

/// A D-Bus error reply from systemd (or the bus), with its name and text.
#[derive(Debug)]
pub struct CallError {
    pub name: String,
    pub text: String,
}

pub enum Target {
    /// The system manager, on the system bus (root).
    System,
    /// The calling user's manager, on its session bus (rootless, as runc).
    User,
}

pub struct Bus {
    conn: RpcConn,
    /// Calls sent but not yet answered ([`Bus::subscribe`]'s): their replies are collected
    /// after the next call is sent, so they cost no round trip of their own.
    pending: Vec<(u32, &'static str)>,
}

fn bus_error(what: &str, e: impl std::fmt::Display) -> CgroupError {
    CgroupError::Systemd(format!("{what}: {e}"))
}

/// systemd runs as PID 1 (what sd_booted() checks), or an error that says so.
pub fn system_manager_running() -> Result<(), CgroupError> {
    match std::path::Path::new("/run/systemd/system").is_dir() {
        true => Ok(()),
        false => Err(CgroupError::Systemd(
            "systemd is not running on this host (no /run/systemd/system): --systemd-cgroup needs it as PID 1".into(),
        )),
    }
}

impl Bus {
    pub fn connect(target: &Target) -> Result<Bus, CgroupError> {
        if let Target::System = target {
            system_manager_running()?;
        }
        let timeout = Timeout::Duration(CALL_TIMEOUT);
        let conn = match target {
            Target::System => RpcConn::system_conn(timeout).map_err(|e| {
                bus_error(
                    "cannot reach systemd over D-Bus (is systemd PID 1 with dbus running? /run/dbus/system_bus_socket)",
                    e,
                )
            })?,
            Target::User => {
                let addr = user_bus_address()?;
                RpcConn::session_conn(timeout).map_err(|e| {
                    bus_error(
                        &format!("cannot reach the user's systemd over D-Bus at {addr} (is `systemd --user` running?)"),
                        e,
                    )
                })?
            }
        };
        Ok(Bus {
            conn,
            pending: Vec::new(),
        })
    }

    /// Call a Manager method and return its reply (a D-Bus error reply as `Err(Ok(..))`).
    fn call(
        &mut self,
        member: &str,
        build: impl FnOnce(&mut MarshalledMessage) -> Result<(), rustbus::wire::errors::MarshalError>,
    ) -> Result<Result<MarshalledMessage, CallError>, CgroupError> {
        let mut msg = MessageBuilder::new()
            .call(member)
            .with_interface(MANAGER)
            .on(PATH)
            .at(DEST)
            .build();
        build(&mut msg).map_err(|e| bus_error(&format!("marshal {member}"), e))?;
        self.send_and_wait(msg, member)
    }

    fn send(&mut self, mut msg: MarshalledMessage, member: &str) -> Result<u32, CgroupError> {
        self.conn
            .send_message(&mut msg)
            .map_err(|e| bus_error(&format!("send {member}"), e))?
            .write(Timeout::Duration(CALL_TIMEOUT))
            .map_err(|(_, e)| bus_error(&format!("send {member}"), e))
    }

    fn wait(
        &mut self,
        serial: u32,
        member: &str,
    ) -> Result<Result<MarshalledMessage, CallError>, CgroupError> {
        let reply = self
            .conn
            .wait_response(serial, Timeout::Duration(CALL_TIMEOUT))
            .map_err(|e| bus_error(&format!("{member}: no reply from systemd"), e))?;
        if reply.typ == MessageType::Error {
            let name = reply.dynheader.error_name.clone().unwrap_or_default();
            let text = reply.body.parser().get::<String>().unwrap_or_default();
            return Ok(Err(CallError { name, text }));
        }
        Ok(Ok(reply))
    }

    fn send_and_wait(
        &mut self,
        msg: MarshalledMessage,
        member: &str,
    ) -> Result<Result<MarshalledMessage, CallError>, CgroupError> {
        let serial = self.send(msg, member)?;
        // The bus and systemd handle one connection's messages in order: what was pending is
        // done before this call is, so its replies are collected now, in the same round trip.
        for (pending, name) in std::mem::take(&mut self.pending) {
            self.wait(pending, name)?
                .map_err(|e| bus_error(name, format!("{}: {}", e.name, e.text)))?;
        }
        self.wait(serial, member)
    }

    /// Ask systemd to send us job signals (and the bus to route them): before the first job.
    /// Sent now, answered with the next call.
    pub fn subscribe(&mut self) -> Result<(), CgroupError> {
        let mut m = MessageBuilder::new()
            .call("AddMatch")
            .with_interface("org.freedesktop.DBus")
            .on("/org/freedesktop/DBus")
            .at("org.freedesktop.DBus")
            .build();
        m.body
            .push_param(format!(
                "type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
            ))
            .map_err(|e| bus_error("marshal AddMatch", e))?;
        let add_match = self.send(m, "AddMatch")?;
        self.pending.push((add_match, "AddMatch"));
        let m = MessageBuilder::new()
            .call("Subscribe")
            .with_interface(MANAGER)
            .on(PATH)
            .at(DEST)
            .build();
        let subscribe = self.send(m, "Subscribe")?;
        self.pending.push((subscribe, "Subscribe"));
        Ok(())
    }

    /// StartTransientUnit(name, "replace", properties, no aux units) → the job's path.
    pub fn start_transient_unit(
        &mut self,
        name: &str,
        props: &[Property],
    ) -> Result<Result<String, CallError>, CgroupError> {
        let aux: Vec<(String, Vec<Property>)> = Vec::new();
        let reply = self.call("StartTransientUnit", |m| {
            m.body.push_param2(name, "replace")?;
            m.body.push_param(props)?;
            m.body.push_param(&aux)
        })?;
        Ok(reply.map(|r| job_path(&r)))
    }

    /// SetUnitProperties(name, runtime=true, properties).
    pub fn set_unit_properties(
        &mut self,
        name: &str,
        props: &[Property],
    ) -> Result<Result<(), CallError>, CgroupError> {
        let reply = self.call("SetUnitProperties", |m| {
            m.body.push_param2(name, true)?;
            m.body.push_param(props)
        })?;
        Ok(reply.map(|_| ()))
    }

    /// StopUnit(name, "replace") → the job's path.
    pub fn stop_unit(&mut self, name: &str) -> Result<Result<String, CallError>, CgroupError> {
        let reply = self.call("StopUnit", |m| m.body.push_param2(name, "replace"))?;
        Ok(reply.map(|r| job_path(&r)))
    }

    /// Whether systemd has the unit loaded (GetUnit; a failed unit stays loaded until reset).
    pub fn has_unit(&mut self, name: &str) -> Result<bool, CgroupError> {
        match self.call("GetUnit", |m| m.body.push_param(name))? {
            Ok(_) => Ok(true),
            Err(e) if e.name == "org.freedesktop.systemd1.NoSuchUnit" => Ok(false),
            Err(e) => Err(bus_error("GetUnit", format!("{}: {}", e.name, e.text))),
        }
    }

    pub fn reset_failed_unit(&mut self, name: &str) -> Result<Result<(), CallError>, CgroupError> {
        Ok(self
            .call("ResetFailedUnit", |m| m.body.push_param(name))?
            .map(|_| ()))
    }

    /// The Manager's own `ControlGroup` (for the user's manager: its service's cgroup, under
    /// which its units live).
    pub fn manager_control_group(&mut self) -> Result<String, CgroupError> {
        let mut m = MessageBuilder::new()
            .call("Get")
            .with_interface("org.freedesktop.DBus.Properties")
            .on(PATH)
            .at(DEST)
            .build();
        m.body
            .push_param2(MANAGER, "ControlGroup")
            .map_err(|e| bus_error("marshal Get", e))?;
        let reply = self
            .send_and_wait(m, "Get ControlGroup")?
            .map_err(|e| bus_error("Get ControlGroup", format!("{}: {}", e.name, e.text)))?;
        match reply.body.parser().get::<Value>() {
            Ok(Value::Str(s)) => Ok(s),
            other => Err(bus_error(
                "Get ControlGroup",
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Wait for systemd's JobRemoved signal for `job`; its result (`done`, `failed`,
    /// `canceled`, `timeout`, `dependency`, `skipped`).
    pub fn wait_job(&mut self, job: &str) -> Result<String, CgroupError> {
        let deadline = std::time::Instant::now() + JOB_TIMEOUT;
        loop {
            while let Some(sig) = self.conn.try_get_signal() {
                if sig.dynheader.member.as_deref() != Some("JobRemoved") {
                    continue;
                }
                let parsed = sig
                    .body
                    .parser()
                    .get4::<u32, ObjectPath<String>, String, String>();
                if let Ok((_, path, _unit, result)) = parsed {
                    if path.as_ref() == job {
                        return Ok(result);
                    }
                }
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(bus_error(
                    &format!("job {job}"),
                    format!("not finished after {}s", JOB_TIMEOUT.as_secs()),
                ));
            }
            self.conn
                .refill_once(Timeout::Duration(left))
                .map_err(|e| bus_error(&format!("wait for job {job}"), e))?;
        }
    }
}

fn job_path(reply: &MarshalledMessage) -> String {
    reply
        .body
        .parser()
        .get::<ObjectPath<String>>()
        .map(|p| p.as_ref().to_string())
        .unwrap_or_default()
}

/// `$DBUS_SESSION_BUS_ADDRESS`, else the user's bus socket under `$XDG_RUNTIME_DIR`, which is
/// then put in our environment for rustbus (which reads only the variable). The container's
/// and the hooks' environments come from the spec, not from ours.
fn user_bus_address() -> Result<String, CgroupError> {
    const VAR: &str = "DBUS_SESSION_BUS_ADDRESS";
    if let Some(addr) = std::env::var(VAR).ok().filter(|a| !a.is_empty()) {
        return Ok(addr);
    }
    let runtime_dir = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("/run/user/{}", nix::unistd::geteuid()));
    let path = format!("{runtime_dir}/bus");
    if !std::path::Path::new(&path).exists() {
        return Err(CgroupError::Systemd(format!(
            "no user D-Bus: {VAR} is unset and {path} does not exist"
        )));
    }
    let addr = format!("unix:path={path}");
    // gpurun is single-threaded here (no thread ever reads the environment concurrently).
    std::env::set_var(VAR, &addr);
    Ok(addr)
}
