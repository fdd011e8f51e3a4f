//! Link-time layout of the `gpurun` binary: the functions its common commands execute are
//! placed together at the start of .text (lld's --symbol-ordering-file; the list is
//! link/hot-symbols.txt, made by link/gen-order.sh), so that a container start maps a few
//! hundred KiB of code instead of most of the binary. See link/README.md.

use std::path::Path;
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = Path::new(&dir).join("link/hot-symbols.txt");
    // The directory, not the file: a path that does not exist would make cargo rerun this
    // (and relink gpurun) every time, and a file that appears later must still be seen.
    println!("cargo:rerun-if-changed=build.rs");
    println!(
        "cargo:rerun-if-changed={}",
        order.parent().expect("in link/").display()
    );
    println!("cargo:rerun-if-env-changed=GPURUN_NO_ORDER");
    if order.is_file() && std::env::var_os("GPURUN_NO_ORDER").is_none() && links_with_lld() {
        let arg = |a: &str| println!("cargo:rustc-link-arg-bin=gpurun=-Wl,{a}");
        arg(&format!("--symbol-ordering-file={}", order.display()));
        // Names the current code no longer has are simply skipped.
        arg("--no-warn-symbol-ordering");
    }
}

/// rustc ≥ 1.90 links x86_64-unknown-linux-gnu with its bundled lld unless the linker is
/// overridden; other linkers (GNU ld) do not know the option, so it is only given here.
fn links_with_lld() -> bool {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    if env("TARGET") != "x86_64-unknown-linux-gnu"
        || !env("RUSTC_LINKER").is_empty()
        || env("CARGO_ENCODED_RUSTFLAGS").contains("link")
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "rustc 1.95.0 (…)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
