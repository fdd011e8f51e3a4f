//! Running an engine script of `integration/engines/` against the runtime under test.

use crate::util::bin;
use std::path::Path;
use std::process::Command;

/// Run `integration/engines/SCRIPT` with `RUNTIME` = the runtime under test and `envs` added:
/// prints its output when it passed or skipped (exit 77), panics with all of it otherwise.
pub fn engine_script(script: &str, envs: &[(&str, &Path)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("engines")
        .join(script);
    let out = Command::new("bash")
        .arg(&path)
        .env("RUNTIME", bin())
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(77) => println!("{}", stdout.trim()),
        _ => panic!(
            "{script} failed ({:?}) with runtime {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status,
            bin().display()
        ),
    }
}
