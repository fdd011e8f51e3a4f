//! `linux.intelRdt`: where the host has no resctrl filesystem, a container that asks for it
//! is refused before anything exists (the runtime-spec: "MUST generate an error"); where it
//! has one, the container gets a group of its own with its schemata, removed by `delete`.

use gpurun_integration::*;

/// The resctrl mount point, if the host has one.
fn resctrl() -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    parse_mountinfo(&info)
        .into_iter()
        .find(|m| m.fstype == "resctrl")
        .map(|m| m.point)
}

#[test]
fn a_cache_schema_without_resctrl_is_refused() {
    if !require_root() {
        return;
    }
    if resctrl().is_some() {
        skip("the host has resctrl");
        return;
    }
    let env = Env::new("rdt_no_resctrl_l3");
    env.config(|s| s["linux"]["intelRdt"] = json!({"l3CacheSchema": "L3:0=f"}));
    let out = env.create(&env.id());
    // runc 1.1.5 names the feature ("…but Intel RDT/CAT is not enabled"), gpurun the whole
    // of Intel RDT as runc 1.2 does ("…but Intel RDT is not enabled").
    out.assert_err("is specified in config, but Intel RDT");
    assert!(out.stderr.contains("is not enabled"), "{}", out.stderr);
    env.assert_clean();
}

#[test]
fn intel_rdt_without_resctrl_is_refused() {
    // gpurun-only: runc 1.1.5 ignores an intelRdt without schemata where there is no resctrl
    if !require_root() || !gpurun_only() {
        return;
    }
    if resctrl().is_some() {
        skip("the host has resctrl");
        return;
    }
    let env = Env::new("rdt_no_resctrl");
    // The 1.3 fields alone ask for resctrl just the same.
    for rdt in [
        json!({}),
        json!({"closID": "gpurun-it"}),
        json!({"schemata": ["L3:0=f"]}),
        json!({"enableMonitoring": true}),
    ] {
        env.config(|s| s["linux"]["intelRdt"] = rdt);
        env.create(&env.id())
            .assert_err("intelRdt is specified in config, but Intel RDT is not enabled");
    }
    env.assert_clean();
}

#[test]
fn a_bad_clos_id_is_refused() {
    if !require_root() {
        return;
    }
    let env = Env::new("rdt_bad_closid");
    env.config(|s| s["linux"]["intelRdt"] = json!({"closID": "../x"}));
    // runc's log escapes the quotes around the value.
    let out = env.create(&env.id());
    out.assert_err("invalid intelRdt.ClosID");
    assert!(out.stderr.contains("../x"), "{}", out.stderr);
    env.assert_clean();
}

#[test]
fn bad_schemata_are_refused_before_anything_exists() {
    // gpurun-only: runc 1.1.5 predates schemata and checks no memBwSchema prefix
    if !require_root() || !gpurun_only() {
        return;
    }
    let env = Env::new("rdt_bad_schemata");
    let cases = [
        (
            json!({"schemata": ["L3:0=f\nMB:0=20"]}),
            "config.json: linux.intelRdt.schemata[0] must not contain newlines",
        ),
        (
            json!({"memBwSchema": "L3:0=f"}),
            "config.json: linux.intelRdt.memBwSchema \"L3:0=f\" must start with \"MB:\"",
        ),
        (
            json!({"schemata": "L3:0=f"}),
            "linux.intelRdt.schemata: invalid type: string",
        ),
        (
            json!({"enableMonitoring": "yes"}),
            "linux.intelRdt.enableMonitoring: invalid type",
        ),
    ];
    for (rdt, want) in cases {
        env.config(|s| s["linux"]["intelRdt"] = rdt);
        env.create(&env.id()).assert_err(want);
    }
    env.assert_clean();
}

#[test]
fn the_container_gets_a_group_of_its_own() {
    if !require_root() {
        return;
    }
    let Some(root) = resctrl() else {
        skip("no resctrl on this host");
        return;
    };
    let root = std::path::PathBuf::from(root);
    // The root group's own L3 line is a schema the hardware takes.
    let schemata = std::fs::read_to_string(root.join("schemata")).unwrap();
    let l3 = schemata
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("L3:"));
    let env = Env::new("rdt_group");
    let id = env.running(|s| {
        s["linux"]["intelRdt"] = match l3 {
            Some(l3) => json!({"l3CacheSchema": l3}),
            None => json!({}),
        }
    });
    let group = root.join(&id);
    let tasks = std::fs::read_to_string(group.join("tasks")).unwrap();
    let pid = env.pid(&id).to_string();
    assert!(tasks.lines().any(|t| t == pid), "{tasks}");
    if let Some(l3) = l3 {
        let got = std::fs::read_to_string(group.join("schemata")).unwrap();
        assert!(got.contains(l3), "{got}");
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    assert!(
        !group.exists(),
        "{} outlived the container",
        group.display()
    );
    env.assert_clean();
}

#[test]
fn a_monitoring_group_is_made_and_removed() {
    // gpurun-only: runc 1.1.5 predates enableMonitoring
    if !require_root() || !gpurun_only() {
        return;
    }
    let Some(root) = resctrl() else {
        skip("no resctrl on this host");
        return;
    };
    let root = std::path::PathBuf::from(root);
    if !root.join("info/L3_MON").is_dir() {
        skip("resctrl without monitoring on this host");
        return;
    }
    let env = Env::new("rdt_mon");
    // In the default group ("/"), shared: it stays, the MON group goes.
    let id =
        env.running(|s| s["linux"]["intelRdt"] = json!({"closID": "/", "enableMonitoring": true}));
    let mon = root.join("mon_groups").join(&id);
    let tasks = std::fs::read_to_string(mon.join("tasks")).unwrap();
    let pid = env.pid(&id).to_string();
    assert!(tasks.lines().any(|t| t == pid), "{tasks}");
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    assert!(!mon.exists(), "{} outlived the container", mon.display());
    assert!(root.join("schemata").exists());
    env.assert_clean();
}
