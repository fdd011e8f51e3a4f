//! Whole seccomp profiles in real containers: Podman's default profile resolved the way Podman
//! resolves it, gpurun's shipped default (`spec --seccomp-default`), and what `features` reports.

use gpurun_integration::*;

/// Podman's engine-format profile resolved the way Podman does for `caps` on x86_64.
fn podman_profile(caps: &[&str]) -> Option<Value> {
    let text = std::fs::read_to_string("/usr/share/containers/seccomp.json").ok()?;
    let p: Value = serde_json::from_str(&text).unwrap();
    let arches = ["amd64", "x32", "x86"];
    let has = |v: &Value, key: &str, set: &[&str]| {
        v[key]
            .as_array()
            .map(|a| a.iter().any(|x| set.contains(&x.as_str().unwrap())))
    };
    let all_in = |v: &Value, set: &[&str]| {
        v["caps"]
            .as_array()
            .is_none_or(|a| a.iter().all(|x| set.contains(&x.as_str().unwrap())))
    };
    let mut rules = Vec::new();
    for r in p["syscalls"].as_array().unwrap() {
        let (inc, exc) = (&r["includes"], &r["excludes"]);
        if !all_in(inc, caps)
            || has(inc, "arches", &arches) == Some(false)
            || has(exc, "caps", caps) == Some(true)
            || has(exc, "arches", &arches) == Some(true)
        {
            continue;
        }
        let mut rule = json!({"names": r["names"], "action": r["action"]});
        for k in ["errnoRet", "args"] {
            if !r[k].is_null() {
                rule[k] = r[k].clone();
            }
        }
        rules.push(rule);
    }
    Some(json!({
        "defaultAction": p["defaultAction"],
        "defaultErrnoRet": p["defaultErrnoRet"],
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    }))
}

#[test]
fn podman_default_profile_runs_a_shell() {
    if !require_root() {
        return;
    }
    let default_caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let Some(profile) = podman_profile(&default_caps) else {
        skip("/usr/share/containers/seccomp.json not installed (podman)");
        return;
    };
    let env = Env::new("seccomp_podman");
    let script =
        "echo hi | tr a-z A-Z; ls /bin | wc -l >/dev/null; grep Seccomp: /proc/self/status; \
                  unshare -m true && echo UNSHARED; mount -t tmpfs t /mnt && echo MOUNTED; \
                  hostname other && echo RENAMED; echo done";
    let out = env.sh(script, |s| s["linux"]["seccomp"] = profile.clone());
    assert!(
        out.stdout.contains("HI\nSeccomp:\t2\n"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.ends_with("done\n"), "{}", out.describe());
    for no in ["UNSHARED", "MOUNTED", "RENAMED"] {
        assert!(!out.stdout.contains(no), "{no}\n{}", out.describe());
    }
    // With CAP_SYS_ADMIN granted but the same profile, the kernel would allow sethostname:
    // only the filter (ERRNO 1 for sethostname without CAP_SYS_ADMIN) can refuse it, while
    // unshare (allowed by the profile) now works.
    let out = env.sh(script, |s| {
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
        s["linux"]["seccomp"] = profile;
    });
    assert!(out.stdout.contains("UNSHARED"), "{}", out.describe());
    assert!(!out.stdout.contains("RENAMED"), "{}", out.describe());
    assert!(
        out.stderr.contains("sethostname: Operation not permitted"),
        "{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn features_report_seccomp() {
    if !require_root() {
        return;
    }
    let env = Env::new("seccomp_features");
    let out = env.gpurun(&["features"]);
    out.assert_ok();
    let f: Value = serde_json::from_str(&out.stdout).unwrap();
    let s = &f["linux"]["seccomp"];
    assert_eq!(s["enabled"], true, "{s}");
    for (key, want) in [
        ("actions", "SCMP_ACT_KILL_PROCESS"),
        ("actions", "SCMP_ACT_ERRNO"),
        ("operators", "SCMP_CMP_MASKED_EQ"),
        ("archs", "SCMP_ARCH_X86_64"),
    ] {
        assert!(
            s[key].as_array().unwrap().contains(&json!(want)),
            "{key} {want}: {s}"
        );
    }
    env.assert_clean();
}

#[test]
fn spec_with_the_default_profile_runs() {
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("seccomp_spec");
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    let b = env.bundle.to_str().unwrap();
    env.gpurun(&["spec", "--seccomp-default", "--bundle", b])
        .assert_ok();
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(env.bundle.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(spec["linux"]["seccomp"], shipped_seccomp_profile());
    set_args(
        &mut spec,
        &[
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status; hostname x || echo denied",
        ],
    );
    spec["process"]["terminal"] = json!(false);
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("GPURUN_IT={}", env.marker)));
    env.write_config(&spec);
    let out = env.run(&env.id());
    out.assert_ok();
    assert!(
        out.stdout.contains("Seccomp:\t2\ndenied"),
        "{}",
        out.describe()
    );
    // Without the flag: runc's default spec, no seccomp.
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    env.gpurun(&["spec", "--bundle", b]).assert_ok();
    let plain: Value =
        serde_json::from_str(&std::fs::read_to_string(env.bundle.join("config.json")).unwrap())
            .unwrap();
    assert!(plain["linux"].get("seccomp").is_none());
    env.assert_clean();
}
