//! Linux security modules: the AppArmor profile and the SELinux labels a spec asks for.
//!
//! Both LSMs confine a process from its next `execve` on: the runtime only *requests* the
//! change (writes to `/proc/thread-self/attr/…`), and the kernel switches the label when the
//! container's program starts. The init and every `exec`'d process make that request right
//! before they drop their privileges ([`set_exec_labels`]); runc does it at about the same
//! point (AppArmor a little earlier for the init, after the user switch for an exec), and
//! like runc's it is in place for the startContainer hooks, which the init forks.
//!
//! The parent checks first ([`check`]) that the host can honour what the spec asks: a label
//! on a host without that LSM fails `create`/`exec` before anything exists (runc fails too,
//! from its init). A profile that is not loaded fails in the init, with the profile's name.

pub mod apparmor;
mod procattr;
pub mod selinux;

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

/// Child side, right before the user switch: the profile and the label the next `execve`
/// puts this process under.
pub fn set_exec_labels(process: &Process) -> Result<(), LsmError> {
    if let Some(label) = selinux_label(process) {
        selinux::set_exec_label(label)?;
    }
    if let Some(profile) = apparmor_profile(process) {
        apparmor::change_onexec(profile)?;
    }
    Ok(())
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
