//! Whether CRIU works here: the checkpoint tests need `criu check` to pass, which it does on
//! the QEMU VM's stock kernel and not on our hosts' (Debian's CRIU 3.17 on a 6.13+ kernel).

use std::sync::OnceLock;

/// Root, and `criu check` passing (`$GPURUN_CRIU`, else `criu`; probed once); otherwise a
/// skip with the reason, and false.
pub fn criu_usable() -> bool {
    if !crate::require_root() {
        return false;
    }
    static WHY_NOT: OnceLock<Option<String>> = OnceLock::new();
    let why = WHY_NOT.get_or_init(|| {
        let criu = std::env::var("GPURUN_CRIU").unwrap_or_else(|_| "criu".into());
        match std::process::Command::new(&criu).arg("check").output() {
            Err(e) => Some(format!("{criu} not runnable: {e}")),
            Ok(o) if !o.status.success() => Some(format!(
                "`{criu} check` fails on this kernel: {} (run in the QEMU VM, integration/vm)",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )),
            Ok(_) => None,
        }
    });
    match why {
        Some(reason) => {
            crate::skip(reason);
            false
        }
        None => true,
    }
}
