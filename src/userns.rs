//! User namespaces: the init is cloned into a new one, and the runtime writes its uid/gid maps
//! before the init does anything that needs an identity (step 0 of the protocol in
//! `process/sync.rs`). Root writes them directly; a rootless caller may write only the map of
//! its own id (and, for gids, only after denying setgroups), so anything wider goes through the
//! setuid helpers `newuidmap`/`newgidmap`, which check it against /etc/subuid and /etc/subgid.

use std::process::Command;

use nix::unistd::{Gid, Pid, Uid};
use oci_spec::runtime::{Linux, LinuxIdMapping};

use crate::error::{Error, Result};

/// Write `linux.uidMappings` / `gidMappings` for `pid`.
pub fn write_mappings(pid: Pid, linux: &Linux) -> Result<()> {
    write_maps(
        pid,
        linux.uid_mappings().as_deref().unwrap_or_default(),
        linux.gid_mappings().as_deref().unwrap_or_default(),
    )
}

/// Write the uid and gid maps of `pid`, which is in a new user namespace.
pub fn write_maps(pid: Pid, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    if !crate::rootless::is_rootless() {
        write_map(pid, "uid_map", uids)?;
        return write_map(pid, "gid_map", gids);
    }
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    if only_own_id(uids, uid.as_raw()) {
        write_map(pid, "uid_map", uids)?;
    } else {
        run_helper("newuidmap", pid, uids)?;
    }
    if only_own_id(gids, gid.as_raw()) {
        // The kernel takes an unprivileged gid map only once setgroups is denied (else the
        // container could drop a group that denies the user access: CVE-2014-8989).
        let path = format!("/proc/{pid}/setgroups");
        std::fs::write(&path, "deny").map_err(|e| Error::io("write", path, e))?;
        write_map(pid, "gid_map", gids)
    } else {
        run_helper("newgidmap", pid, gids)
    }
}

/// False in a user namespace whose gid map was written unprivileged (setgroups "deny").
pub fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

/// The one map an unprivileged process may write itself: its own id, once.
fn only_own_id(ranges: &[LinuxIdMapping], own: u32) -> bool {
    matches!(ranges, [m] if m.host_id() == own && m.size() == 1)
}

/// `newuidmap PID inside outside count…` (or newgidmap): the helper's own message on failure.
fn run_helper(helper: &'static str, pid: Pid, ranges: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for m in ranges {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        Error::Unsupported(format!(
            "rootless: mapping more than your own id needs {helper} (Debian package uidmap): {e}"
        ))
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "rootless: {helper} refused the mapping {} (ranges must be yours in /etc/sub{}id): {}",
        format_map(ranges).trim_end().replace('\n', ", "),
        if helper == "newuidmap" { "u" } else { "g" },
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

fn write_map(pid: Pid, file: &str, ranges: &[LinuxIdMapping]) -> Result<()> {
    let text = format_map(ranges);
    let path = format!("/proc/{pid}/{file}");
    // One write: the kernel accepts a map only once and only whole.
    std::fs::write(&path, text).map_err(|e| Error::io("write", path, e))
}

/// The map file's format: `inside outside count` per line.
fn format_map(ranges: &[LinuxIdMapping]) -> String {
    ranges
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// In a new user namespace: wait for the parent to write our maps (step 0 of sync.rs), then
/// take uid/gid 0 of the namespace — until then our ids are unmapped and we could not even
/// create a file.
pub fn become_root(chan: &crate::process::sync::Channel) -> Result<()> {
    chan.expect(crate::process::sync::Msg::Mapped)?;
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(
        Error::sys("setresgid(0) in the user namespace (is container gid 0 mapped?)"),
    )?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(
        Error::sys("setresuid(0) in the user namespace (is container uid 0 mapped?)"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    #[test]
    fn map_lines() {
        let m = |c: u32, h: u32, s: u32| {
            LinuxIdMappingBuilder::default()
                .container_id(c)
                .host_id(h)
                .size(s)
                .build()
                .unwrap()
        };
        assert_eq!(
            format_map(&[m(0, 100000, 65536), m(65536, 5000, 1)]),
            "0 100000 65536\n65536 5000 1\n"
        );
        assert!(only_own_id(&[m(0, 1000, 1)], 1000));
        assert!(!only_own_id(&[m(0, 1000, 2)], 1000));
        assert!(!only_own_id(&[m(0, 1000, 1), m(1, 100000, 10)], 1000));
    }
}
