//! Linux security modules: the AppArmor profile and the SELinux labels a spec asks for.
//!
//! Both LSMs confine a process from its next `execve` on: the runtime only *requests* the
//! change (writes to `/proc/thread-self/attr/…`), and the kernel switches the label when the
//! container's program starts. The init and every `exec`'d process make that request right
//! before they drop their privileges ([`ExecLabels::apply`]); runc does it at about the same
//! point (AppArmor a little earlier for the init, after the user switch for an exec), and
//! like runc's it is in place for the startContainer hooks, which the init forks.
//!
//! The parent checks first ([`check`]) that the host can honour what the spec asks: a label
//! on a host without that LSM fails `create`/`exec` before anything exists (runc fails too,
//! from its init). A profile that is not loaded fails in the init, with the profile's name.

pub mod apparmor;
mod procattr;
pub mod selinux;

use procattr::AttrDir;

use oci_spec::runtime::{Process, Spec};

/// What went wrong, naming the profile, label or file.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("apparmor profile {0:?} is set, but AppArmor is not enabled on this host")]
    AppArmorDisabled(String),
    #[error("unable to apply apparmor profile {0:?}: no such profile is loaded (apparmor_parser -r loads one)")]
    ProfileNotLoaded(String),
    /// runc's wording (its validator).
    #[error("selinux label is specified in config, but selinux is disabled or not supported")]
    SelinuxDisabled,
    #[error("linux.mountLabel is specified in config, but selinux is disabled or not supported")]
    MountLabelWithoutSelinux,
    #[error("{what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{op} {path}: {errno}")]
    Attr {
        op: &'static str,
        path: String,
        errno: nix::errno::Errno,
    },
}

/// Parent side, before anything is made: the labels `process` (and the spec's mount label)
/// ask for can be applied on this host.
pub fn check(process: Option<&Process>, mount_label: Option<&str>) -> Result<(), LsmError> {
    if let Some(profile) = process.and_then(apparmor_profile) {
        apparmor::check_name(profile)?;
        if !apparmor::is_enabled() {
            return Err(LsmError::AppArmorDisabled(profile.to_string()));
        }
    }
    if let Some(label) = process.and_then(selinux_label) {
        selinux::check_label("process.selinuxLabel", label)?;
        if !selinux::is_enabled() {
            return Err(LsmError::SelinuxDisabled);
        }
    }
    if let Some(label) = mount_label.filter(|l| !l.is_empty()) {
        selinux::check_label("linux.mountLabel", label)?;
        if !selinux::is_enabled() {
            return Err(LsmError::MountLabelWithoutSelinux);
        }
    }
    Ok(())
}

/// `check` for a whole spec (`create`).
pub fn check_spec(spec: &Spec) -> Result<(), LsmError> {
    check(spec.process().as_ref(), mount_label(spec))
}

/// Child side: the labels a process asks for, with its `attr` directory, opened while
/// `/proc` is still the runtime's (see `procattr`).
pub struct ExecLabels<'a> {
    attrs: AttrDir,
    apparmor: Option<&'a str>,
    selinux: Option<&'a str>,
}

impl<'a> ExecLabels<'a> {
    /// Before the process enters the container's mount namespace; `None` without labels.
    pub fn prepare(process: &'a Process) -> Result<Option<Self>, LsmError> {
        let (apparmor, selinux) = (apparmor_profile(process), selinux_label(process));
        if apparmor.is_none() && selinux.is_none() {
            return Ok(None);
        }
        Ok(Some(ExecLabels {
            attrs: AttrDir::open()?,
            apparmor,
            selinux,
        }))
    }

    /// Run `f` (which joins or creates the session keyring) with the SELinux label, if any,
    /// as the context of new keys.
    pub fn with_key_label<T, E: From<LsmError>>(
        labels: Option<&Self>,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        match labels.and_then(|l| l.selinux.map(|s| (&l.attrs, s))) {
            Some((attrs, label)) => selinux::with_key_label(attrs, label, f),
            None => f(),
        }
    }

    /// Right before the user switch: the profile and label the next `execve` puts this
    /// process under. Closes the `attr` directory.
    pub fn apply(self) -> Result<(), LsmError> {
        if let Some(label) = self.selinux {
            selinux::set_exec_label(&self.attrs, label)?;
        }
        if let Some(profile) = self.apparmor {
            apparmor::change_onexec(&self.attrs, profile)?;
        }
        Ok(())
    }
}

pub fn apparmor_profile(process: &Process) -> Option<&str> {
    process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
}

pub fn selinux_label(process: &Process) -> Option<&str> {
    process.selinux_label().as_deref().filter(|l| !l.is_empty())
}

pub fn mount_label(spec: &Spec) -> Option<&str> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        .filter(|l| !l.is_empty())
}
