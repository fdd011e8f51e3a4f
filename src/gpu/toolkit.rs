//! Docker's `--gpus`, without the NVIDIA container toolkit.
//!
//! dockerd accepts `--gpus` only when `nvidia-container-runtime-hook` is on its PATH; it then
//! puts the request in `process.env` (`NVIDIA_VISIBLE_DEVICES`, `NVIDIA_DRIVER_CAPABILITIES`)
//! and adds `nvidia-container-runtime-hook prestart` as a prestart hook. gpurun answers to that
//! name (a link to the gpurun binary: argv[0] picks [`main`], which is `gpurun hook nvidia`),
//! so `docker run --gpus` works with runc as the runtime too. As the runtime, gpurun does the
//! same work built in from the env and takes the hook out of the spec ([`take_hook`]): the
//! GPUs are given once, with no extra process and no second pass.

use std::ffi::OsStr;
use std::path::Path;

use oci_spec::runtime::{Hook, Spec};

pub const HOOK_NAME: &str = "nvidia-container-runtime-hook";

fn named_hook(arg0: &OsStr) -> bool {
    Path::new(arg0).file_name() == Some(OsStr::new(HOOK_NAME))
}

/// Was this program started under the toolkit hook's name?
pub fn invoked_as_hook() -> bool {
    std::env::args_os().next().is_some_and(|a| named_hook(&a))
}

fn is_toolkit_hook(h: &Hook) -> bool {
    named_hook(h.path().as_os_str())
        || h.args()
            .as_ref()
            .and_then(|a| a.first())
            .is_some_and(|a| named_hook(OsStr::new(a)))
}

/// Remove the toolkit's prestart hook (ours through a link, or the toolkit's own binary, which
/// would mount the same files a second time). Returns whether there was one.
pub fn take_hook(spec: &mut Spec) -> bool {
    let Some(hooks) = spec.hooks_mut().as_mut() else {
        return false;
    };
    let Some(prestart) = hooks.prestart_mut().as_mut() else {
        return false;
    };
    let before = prestart.len();
    prestart.retain(|h| !is_toolkit_hook(h));
    prestart.len() != before
}

/// `nvidia-container-runtime-hook [-flags] prestart|poststart|poststop` (state JSON on stdin):
/// prestart gives the container its GPUs; the other two have nothing to do, as in the toolkit.
pub fn main() -> i32 {
    let command = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let result = match command.as_deref() {
        Some("prestart") => super::hook::nvidia_hook(),
        Some("poststart" | "poststop") => Ok(()),
        _ => {
            eprintln!("usage: {HOOK_NAME} prestart|poststart|poststop (gpurun's GPU hook; container state on stdin)");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{HOOK_NAME}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dockers_gpu_hook_is_taken_out_and_the_others_stay() {
        let mut spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "hooks": {"prestart": [
                {"path": "/usr/bin/nvidia-container-runtime-hook", "args": ["nvidia-container-runtime-hook", "prestart"]},
                {"path": "/usr/local/bin/other-hook"}
            ]}
        }))
        .unwrap();
        assert!(take_hook(&mut spec));
        let left = spec.hooks().as_ref().unwrap().prestart().clone().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].path(), Path::new("/usr/local/bin/other-hook"));
        assert!(!take_hook(&mut spec));
    }
}
