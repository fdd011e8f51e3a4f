//! `linux.netDevices`: move host network interfaces, named in the runtime's network
//! namespace, into the container's network namespace, optionally renamed, keeping their
//! permanent global addresses, and set them up (runtime-spec "Network Devices").
//!
//! Nothing moves them back once the container is created: the runtime-spec forbids it. When
//! the container's network namespace dies the kernel returns physical devices to the initial
//! namespace and destroys virtual ones (veth, macvlan, …). A failed create moves back those
//! it moved, as they were.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::sys::netlink::{
    Addr, Link, Socket, AF_INET6, IFA_F_PERMANENT, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE,
};

/// IFNAMSIZ less the terminating NUL.
const MAX_NAME: usize = 15;

/// Host name → name in the container, in a stable order.
fn devices(spec: &Spec) -> BTreeMap<&str, &str> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .into_iter()
        .flatten()
        .map(|(host, d)| (host.as_str(), d.name().as_deref().unwrap_or(host)))
        .collect()
}

/// runc's `devValidName`, with the kernel's length limit.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && !name.contains(['/', ':', ' ', '\0'])
        && !name.chars().any(char::is_whitespace)
}

pub fn validate(spec: &Spec) -> std::result::Result<(), String> {
    let devices = devices(spec);
    if devices.is_empty() {
        return Ok(());
    }
    let net_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|list| list.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    if !net_ns {
        return Err("unable to move network devices without a NET namespace".into());
    }
    if crate::rootless::is_rootless() {
        return Err("network devices are not supported for rootless containers".into());
    }
    for (host, inside) in &devices {
        if !inside.contains('%') && devices.values().filter(|n| *n == inside).count() > 1 {
            return Err(format!("network device name {inside:?} given twice"));
        }
        for name in [*host, *inside] {
            if !valid_name(name) {
                return Err(format!("invalid network device name {name:?}"));
            }
        }
        // Only the new name may be a template, with one `%d` the kernel fills in.
        if host.contains('%') {
            return Err(format!("invalid network device name {host:?}"));
        }
        if inside.contains('%') && (inside.matches('%').count() > 1 || !inside.contains("%d")) {
            return Err(format!("invalid network device name {inside:?}"));
        }
    }
    Ok(())
}

/// The container's network namespace: the one the spec joins by path, else the init's new
/// one (the init may not have joined a given path yet, so it is not read from /proc).
fn netns_path(spec: &Spec, init: nix::unistd::Pid) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .and_then(|n| n.path().clone())
        .unwrap_or_else(|| PathBuf::from(format!("/proc/{init}/ns/net")))
}

/// In the parent, once the init exists and before it is told to go on. Every device is
/// checked (there, its name free in the container) before the first one moves.
pub fn move_into(spec: &Spec, init: nix::unistd::Pid) -> Result<Option<MovedDevices>> {
    let devices = devices(spec);
    if devices.is_empty() {
        return Ok(None);
    }
    let path = netns_path(spec, init);
    let netns = open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(Error::sys_path("open network namespace", &path))?;
    let own = open(OWN_NETNS, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(Error::sys_path("open", OWN_NETNS))?;
    let mut host = Socket::open().map_err(Error::sys("netlink socket"))?;
    let mut inside =
        Socket::open_in(netns.as_fd()).map_err(Error::sys_path("netlink socket in", &path))?;
    let on_host = host.links().map_err(|e| fail("", "list devices", e))?;
    let in_container = inside
        .links()
        .map_err(|e| fail("", "list the container's devices", e))?;
    let mut moves = Vec::new();
    for (name, new_name) in devices {
        let Some(link) = on_host.iter().find(|l| l.name == name) else {
            return Err(Error::Unsupported(format!(
                "linux.netDevices: network device {name:?} not found in the runtime's network namespace"
            )));
        };
        if !new_name.contains('%') && in_container.iter().any(|l| l.name == new_name) {
            return Err(Error::Unsupported(format!(
                "linux.netDevices: {name:?}: a network device named {new_name:?} already exists in the container's network namespace"
            )));
        }
        moves.push((link, new_name));
    }
    let mut moved = Vec::new();
    let ns = netns.as_fd();
    let all = moves
        .into_iter()
        .try_for_each(|(link, to)| move_one(&mut host, &mut inside, ns, link, to, &mut moved));
    // Undo a failed create: the container has never run, so the runtime-spec's "MUST NOT move
    // the interface out before deletion" is not at stake. Left there, a device would stay for
    // good in a namespace joined by path, and in a new one come back (if physical) only when
    // it dies, under the container's name.
    let mut done = MovedDevices {
        host,
        inside,
        own,
        moved,
    };
    match all {
        Ok(()) => Ok(Some(done)),
        Err(e) => Err(also(e, done.undo_all())),
    }
}

/// The devices [`move_into`] moved, kept by `create` until it has succeeded: a later failure
/// (a hook, the init dying before `Ready`) moves them back with [`MovedDevices::undo`], while
/// the container's namespace is still there (so: before the init is killed).
pub struct MovedDevices {
    host: Socket,
    inside: Socket,
    own: std::os::fd::OwnedFd,
    moved: Vec<Moved>,
}

impl MovedDevices {
    /// Move every device back, last first; what fails is reported, the rest still go back.
    pub fn undo(mut self) -> Result<()> {
        self.undo_all()
    }

    fn undo_all(&mut self) -> Result<()> {
        let mut result = Ok(());
        for m in self.moved.iter().rev() {
            if let Err(e) = move_back(&mut self.host, &mut self.inside, self.own.as_fd(), m) {
                result = Err(match result {
                    Ok(()) => e,
                    Err(first) => also(first, Err(e)),
                });
            }
        }
        self.moved.clear();
        result
    }
}

const OWN_NETNS: &str = "/proc/thread-self/ns/net";

fn fail(name: &str, what: &str, errno: Errno) -> Error {
    let name = match name {
        "" => String::new(),
        name => format!(" {name:?}:"),
    };
    Error::Unsupported(format!("linux.netDevices:{name} {what}: {errno}"))
}

/// `err`, with what went wrong undoing the change it interrupted.
fn also(err: Error, undo: Result<()>) -> Error {
    match undo {
        Ok(()) => err,
        Err(more) => Error::Unsupported(format!("{err}; {more}")),
    }
}

/// A device now in the container, with what it takes to put it back as it was.
struct Moved {
    /// As it was on the host.
    link: Link,
    /// Its index in the container.
    index: i32,
    saved: Vec<Addr>,
}

/// The addresses a device gets back on the host: its permanent ones but the IPv6 link-local
/// ones, which the kernel makes again when the device comes up.
fn restorable(addrs: Vec<Addr>) -> Vec<Addr> {
    addrs
        .into_iter()
        .filter(|a| a.flags & IFA_F_PERMANENT != 0)
        .filter(|a| a.family != AF_INET6 || a.scope != RT_SCOPE_LINK)
        .collect()
}

/// Those of them the container gets: the runtime-spec's permanent global ones.
fn carried(saved: &[Addr]) -> impl Iterator<Item = &Addr> {
    saved.iter().filter(|a| a.scope == RT_SCOPE_UNIVERSE)
}

/// Move one host device. Once it is in the container, it is in `moved`, even when a later
/// step fails.
fn move_one(
    host: &mut Socket,
    inside: &mut Socket,
    netns: BorrowedFd,
    link: &Link,
    new_name: &str,
    moved: &mut Vec<Moved>,
) -> Result<()> {
    let name = link.name.as_str();
    // Read before the device goes down: setting a device down drops its IPv6 addresses.
    let saved = restorable(
        host.addresses(link.index)
            .map_err(|e| fail(name, "get addresses", e))?,
    );
    let list_inside = |inside: &mut Socket| {
        inside
            .links()
            .map_err(|e| fail(name, "list the container's devices", e))
    };
    let before = list_inside(inside)?;
    // Down while it changes namespace and name, so nothing on the host uses it half-way.
    if link.is_up() {
        host.set_up(link.index, false)
            .map_err(|e| fail(name, "set down", e))?;
    }
    let sent = host.move_to(link.index, netns, new_name);
    // The kernel keeps the index unless the namespace has it already: find the newcomer.
    // A failed request may have moved it all the same: the kernel moves a device under
    // its own name when that is free there, and renames it after.
    let after = list_inside(inside)?;
    let arrived = after
        .into_iter()
        .find(|l| !before.iter().any(|b| b.index == l.index));
    let failed = |e| fail(name, "move into the container's network namespace", e);
    let dev = match (arrived, sent) {
        (Some(dev), sent) => {
            moved.push(Moved {
                link: link.clone(),
                index: dev.index,
                saved: saved.clone(),
            });
            sent.map_err(failed)?;
            dev
        }
        // Still on the host: as it was, with the IPv6 addresses the set-down dropped.
        (None, Err(e)) => {
            return Err(also(failed(e), restore(host, link, link.index, &saved)));
        }
        (None, Ok(())) => return Err(fail(name, "find it in the container", Errno::ENODEV)),
    };
    for addr in carried(&saved) {
        inside
            .add_address(dev.index, addr)
            .map_err(|e| fail(name, &format!("add address {addr}"), e))?;
    }
    inside
        .set_up(dev.index, true)
        .map_err(|e| fail(&dev.name, "set up", e))
}

/// Back to the runtime's namespace `own`, under its own name, as it was.
fn move_back(host: &mut Socket, inside: &mut Socket, own: BorrowedFd, m: &Moved) -> Result<()> {
    let name = m.link.name.as_str();
    inside
        .move_to(m.index, own, name)
        .map_err(|e| fail(name, "move back to the runtime's network namespace", e))?;
    let back = host
        .links()
        .map_err(|e| fail(name, "list devices", e))?
        .into_iter()
        .find(|l| l.name == name)
        .ok_or_else(|| fail(name, "find it back", Errno::ENODEV))?;
    restore(host, &m.link, back.index, &m.saved)
}

/// Set a device of the runtime's namespace up again if `link` was, and give it back the
/// `saved` addresses it lost (those it kept, IPv4 ones on a set-down, are there already).
fn restore(host: &mut Socket, link: &Link, index: i32, saved: &[Addr]) -> Result<()> {
    let name = link.name.as_str();
    // Up first: the kernel's own addresses (IPv6 link-local) come back before ours.
    if link.is_up() {
        host.set_up(index, true)
            .map_err(|e| fail(name, "set up again", e))?;
    }
    for addr in saved {
        match host.add_address(index, addr) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(fail(name, &format!("add address {addr} again"), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
