//! Compile + load time of a seccomp profile (criterion-free; `bench/seccomp.sh` runs it).
//!
//! `seccomp_timing PROFILE.json [N]`: compiles the profile N times (default 1000) and prints
//! the mean, then re-runs itself N/10 times with `--load` to time one install into a fresh
//! process (with no_new_privs, so no privilege is needed).

use std::time::Instant;

use gpurun::seccomp::{compile, Profile};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let load = args.get(1).is_some_and(|a| a == "--load");
    let path = &args[if load { 2 } else { 1 }];
    let profile: Profile =
        serde_json::from_slice(&std::fs::read(path).expect("read profile")).expect("profile JSON");
    if load {
        let program = compile(&profile).expect("compile");
        nix::sys::prctl::set_no_new_privs().expect("no_new_privs");
        let t = Instant::now();
        program.install().expect("install");
        println!("{}", t.elapsed().as_nanos());
        return;
    }
    let n: u32 = args.get(2).map_or(1000, |s| s.parse().expect("N"));
    let rules: usize = profile.syscalls.iter().map(|r| r.names.len()).sum();
    let t = Instant::now();
    let mut program = compile(&profile).expect("compile");
    for _ in 1..n {
        program = compile(&profile).expect("compile");
    }
    let compile_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let loads = (n / 10).max(1);
    let mut load_ns: Vec<u64> = (0..loads)
        .map(|_| {
            let out = std::process::Command::new(&args[0])
                .args(["--load", path])
                .output()
                .expect("re-run");
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("ns")
        })
        .collect();
    load_ns.sort_unstable();
    println!(
        "{path}: {rules} syscall names, {} filters, {} BPF instructions",
        program.filter_names().len(),
        program.instructions()
    );
    println!("compile: {compile_us:.1} µs mean over {n}");
    println!(
        "load:    {:.1} µs median over {loads} fresh processes",
        load_ns[load_ns.len() / 2] as f64 / 1e3
    );
}
