//! AppArmor: `process.apparmorProfile` becomes the profile of the process' next `execve`
//! (libapparmor's `aa_change_onexec`, as runc does it).

use nix::errno::Errno;

use super::procattr::AttrDir;
use super::LsmError;

/// runc's test: securityfs shows AppArmor and the module says it is enabled.
pub fn is_enabled() -> bool {
    std::path::Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.first() == Some(&b'Y'))
}

/// A name the kernel's `exec NAME` command can carry.
pub fn check_name(profile: &str) -> Result<(), LsmError> {
    if profile.contains(['\0', '\n']) {
        return Err(LsmError::Invalid {
            what: "apparmor profile",
            value: profile.to_string(),
            why: "contains a NUL or newline",
        });
    }
    Ok(())
}

/// Ask for `profile` at the next `execve`: `/proc/thread-self/attr/apparmor/exec` (5.8+,
/// where several LSMs may be stacked), else the older shared `attr/exec`.
pub fn change_onexec(attrs: &AttrDir, profile: &str) -> Result<(), LsmError> {
    let attr = match attrs.has("apparmor/exec") {
        true => "apparmor/exec",
        false => "exec",
    };
    match attrs.write(attr, format!("exec {profile}").as_bytes()) {
        Err(LsmError::Attr {
            op: "write",
            errno: Errno::ENOENT,
            ..
        }) => Err(LsmError::ProfileNotLoaded(profile.to_string())),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("docker-default").is_ok());
        assert!(check_name("unconfined").is_ok());
        let err = check_name("a\nchangeprofile b").unwrap_err().to_string();
        assert!(err.contains("newline"), "{err}");
    }
}
