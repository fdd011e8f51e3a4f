//! Creating the container's init process: the parent side ([`parent`]), the child side
//! ([`init`]), the steps it shares with an `exec`'d process ([`setup`], [`tenant`]) and the
//! protocol between them ([`sync`]).

pub mod attrs;
pub mod init;
pub mod parent;
pub mod pidinfo;
pub mod setup;
pub mod sync;
pub mod tenant;

use std::os::fd::{OwnedFd, RawFd};

use crate::cgroups::Cgroup;
use crate::namespaces::Namespaces;
use crate::spec::Bundle;

/// Everything the init needs, built once by the parent before clone and only borrowed after.
pub struct CreatePlan<'a> {
    pub bundle: &'a Bundle,
    pub namespaces: Namespaces,
    /// The exec fifo, opened O_RDWR: the init blocks reading it until `start` writes a byte.
    pub exec_fifo: OwnedFd,
    /// The container dir's lock fd, which the init must close (see `state::ContainerDir`).
    pub lock_fd: RawFd,
    /// The seccomp agent's connection (NOTIFY rules), which the init must close too: the
    /// parent sends on it and closes it, and the agent waits for that end.
    pub agent_fd: Option<RawFd>,
    pub no_pivot: bool,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    pub id: &'a str,
    pub preserve_fds: i32,
    /// Appended to process.env (systemd socket activation: `LISTEN_FDS`, `LISTEN_PID`).
    pub extra_env: &'a [String],
    /// `--console-socket`, connected: the init sends its pty master there (process.terminal).
    pub console: Option<OwnedFd>,
    /// The container's cgroup, made by the parent; the init joins it first thing.
    pub cgroup: &'a Cgroup,
    /// The spec has prestart/createRuntime hooks: stop before pivot_root and let the parent run them.
    pub pre_pivot_hooks: bool,
    /// `linux.seccomp`, compiled; installed right before execve.
    pub seccomp: Option<&'a crate::seccomp::Program>,
    /// GPU work in the container's root before pivot_root (symlinks, ld cache): the built-in hook.
    pub gpu: Option<&'a crate::gpu::RootEdits>,
    /// Idmapped mounts, detached and idmapped by the parent; the init moves them into place.
    pub idmapped: crate::rootfs::idmap::Prepared,
}
