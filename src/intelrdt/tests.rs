use super::*;
use serde_json::json;

/// `linux.intelRdt` read the way `spec::parse_config` reads it.
fn rdt(value: serde_json::Value) -> IntelRdt {
    try_rdt(value).unwrap()
}

fn try_rdt(value: serde_json::Value) -> std::result::Result<IntelRdt, String> {
    let config = json!({"ociVersion": "1.3.0", "linux": {"intelRdt": value}});
    let bytes = serde_json::to_vec(&config).unwrap();
    let parsed = crate::spec::parse_config(Path::new("config.json"), &bytes);
    let parsed = parsed.map_err(|e| e.to_string())?;
    assert!(parsed.spec.linux().as_ref().unwrap().intel_rdt().is_none());
    Ok(parsed.intel_rdt.unwrap())
}

/// A directory laid out like a resctrl mount with CAT, MBA, CMT and MBM.
fn resctrl() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let path = |p: &str| root.path().join(p);
    for d in ["info/L3", "info/MB", "info/L3_MON", "mon_groups"] {
        std::fs::create_dir_all(path(d)).unwrap();
    }
    let features = "llc_occupancy\nmbm_total_bytes\n";
    std::fs::write(path("info/L3_MON/mon_features"), features).unwrap();
    std::fs::write(path("schemata"), "    L3:0=fff;1=fff\n    MB:0=100;1=100\n").unwrap();
    root
}

/// A pre-made group `name` with the kernel's files.
fn premade(root: &Path, name: &str, schemata: &str) -> PathBuf {
    let path = root.join(name);
    std::fs::create_dir_all(path.join("mon_groups")).unwrap();
    std::fs::write(path.join("schemata"), schemata).unwrap();
    path
}

fn plan_for(root: &Path, value: serde_json::Value) -> Result<Group> {
    plan_in(root, &rdt(value), "ctr")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Empty a plain directory as the kernel does a resctrl group on rmdir.
fn kernel_files_go(dir: &Path) {
    for file in ["schemata", "tasks"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    let _ = std::fs::remove_dir(dir.join("mon_groups"));
}

#[test]
fn a_group_of_its_own_is_made_filled_in_order_and_removed() {
    let root = resctrl();
    let value = json!({
        "schemata": ["L2:0=f;1=f", "", "MB:0=30"],
        "memBwSchema": "MB:0=20;1=70",
        "l3CacheSchema": "L3:0=f0;1=f",
    });
    let mut group = plan_for(root.path(), value.clone()).unwrap();
    let path = root.path().join("ctr");
    let (owned, mon) = (true, None);
    assert_eq!(group, Group { path, owned, mon });
    make(&rdt(value), &mut group).unwrap();
    assert!(group.owned);
    // l3CacheSchema, memBwSchema, then schemata: the runtime-spec's order, in one write.
    let want = "L3:0=f0;1=f\nMB:0=20;1=70\nL2:0=f;1=f\nMB:0=30\n";
    assert_eq!(read(group.path.join("schemata")), want);
    place(&group, nix::unistd::Pid::from_raw(1234)).unwrap();
    assert_eq!(read(group.path.join("tasks")), "1234");
    kernel_files_go(&group.path);
    remove(&group);
    assert!(!group.path.exists());
    remove(&group);
}

#[test]
fn nothing_asked_writes_no_schemata() {
    let root = resctrl();
    let mut group = plan_for(root.path(), json!({"schemata": []})).unwrap();
    make(&IntelRdt::default(), &mut group).unwrap();
    assert!(group.path.is_dir() && !group.path.join("schemata").exists());
}

#[test]
fn a_clos_group_is_shared_and_never_removed() {
    let root = resctrl();
    let gold = |l3: &str| json!({"closID": "gold", "l3CacheSchema": l3});
    // Missing and nothing to make it with: refused.
    let err = plan_for(root.path(), json!({"closID": "gold"})).unwrap_err();
    assert!(err.to_string().contains("must be pre-created"), "{err}");
    // Missing with a schema: made, but still not ours to remove.
    let mut group = plan_for(root.path(), gold("L3:0=f")).unwrap();
    assert!(!group.owned);
    make(&rdt(gold("L3:0=f")), &mut group).unwrap();
    assert_eq!(read(group.path.join("schemata")), "L3:0=f\n");
    remove(&group);
    assert!(group.path.is_dir());
    // Existing: its schemata are compared, not written.
    std::fs::write(group.path.join("schemata"), "    L3:0=00f;1=fff\n").unwrap();
    let mut group = plan_for(root.path(), gold("L3:0=f")).unwrap();
    make(&rdt(gold("L3:0=f")), &mut group).unwrap();
    let err = make(&rdt(gold("L3:0=ff")), &mut group).unwrap_err();
    let want = "the existing group";
    assert!(err.to_string().contains(want), "{err}");
    assert!(err.to_string().contains("schema \"L3:0=ff\""), "{err}");
    // `schemata` lines are compared too.
    let value = json!({"closID": "gold", "schemata": ["L3:1=fff", "L2:0=f"]});
    let err = make(&rdt(value), &mut group).unwrap_err();
    assert!(err.to_string().contains("schema \"L2:0=f\""), "{err}");
    assert_eq!(read(group.path.join("schemata")), "    L3:0=00f;1=fff\n");
    // Existing and nothing asked: just joined.
    plan_for(root.path(), json!({"closID": "gold"})).unwrap();
    assert!(group.path.is_dir());
}

#[test]
fn the_slash_clos_is_the_root_compared_never_written_or_removed() {
    let root = resctrl();
    let before = read(root.path().join("schemata"));
    let mut group = plan_for(root.path(), json!({"closID": "/"})).unwrap();
    let path = root.path().to_path_buf();
    let (owned, mon) = (false, None);
    assert_eq!(group, Group { path, owned, mon });
    make(&rdt(json!({"closID": "/"})), &mut group).unwrap();
    let value = json!({"closID": "/", "memBwSchema": "MB:1=100"});
    make(&rdt(value), &mut group).unwrap();
    let value = json!({"closID": "/", "memBwSchema": "MB:1=50"});
    let err = make(&rdt(value), &mut group).unwrap_err();
    assert!(err.to_string().contains("MB:1=50"), "{err}");
    assert_eq!(read(root.path().join("schemata")), before);
    remove(&group);
    assert!(root.path().join("schemata").exists());
}

#[test]
fn a_monitoring_group_is_made_and_always_removed() {
    let root = resctrl();
    let pid = nix::unistd::Pid::from_raw(77);
    // Under a shared group, and under the root (`closID` "/"); enableCMT as the spec spells it.
    let shared = premade(root.path(), "gold", "L3:0=f\n");
    for (value, parent) in [
        (json!({"closID": "gold", "enableMonitoring": true}), shared),
        (
            json!({"closID": "/", "enableCMT": true}),
            root.path().into(),
        ),
    ] {
        let mut group = plan_for(root.path(), value.clone()).unwrap();
        let mon = parent.join("mon_groups/ctr");
        assert_eq!(group.mon.as_ref(), Some(&mon));
        make(&rdt(value), &mut group).unwrap();
        place(&group, pid).unwrap();
        // The parent first: the kernel takes a task into a MON group only from there.
        assert_eq!(read(parent.join("tasks")), "77");
        assert_eq!(read(mon.join("tasks")), "77");
        kernel_files_go(&mon);
        remove(&group);
        assert!(!mon.exists() && parent.is_dir(), "{}", mon.display());
    }
    // A MON group of that name already there is someone else's.
    std::fs::create_dir(root.path().join("gold/mon_groups/ctr")).unwrap();
    let err = plan_for(root.path(), json!({"closID": "gold", "enableMBM": true})).unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    // In a group of its own: recorded; where it cannot be made, an error, and nothing stays.
    let value = json!({"enableMonitoring": true});
    let mut group = plan_for(root.path(), value.clone()).unwrap();
    let mon = root.path().join("ctr/mon_groups/ctr");
    assert_eq!(group.mon.as_ref(), Some(&mon));
    let err = make(&rdt(value), &mut group).unwrap_err().to_string();
    assert!(err.contains("unable to make the monitoring group"), "{err}");
    assert!(!root.path().join("ctr").exists());
    // The record survives state.json.
    let saved = serde_json::to_string(&group).unwrap();
    assert_eq!(serde_json::from_str::<Group>(&saved).unwrap(), group);
}

#[test]
fn a_monitoring_group_made_meanwhile_is_not_taken() {
    let root = resctrl();
    let value = json!({"closID": "/", "enableMonitoring": true});
    let mut group = plan_for(root.path(), value.clone()).unwrap();
    let mon = root.path().join("mon_groups/ctr");
    std::fs::create_dir(&mon).unwrap();
    assert!(make(&rdt(value), &mut group).is_err());
    assert_eq!(group.mon, None);
    remove(&group);
    assert!(mon.is_dir());
}

#[test]
fn an_existing_group_named_after_the_container_is_not_taken_over() {
    let root = resctrl();
    std::fs::create_dir(root.path().join("ctr")).unwrap();
    assert!(!plan_for(root.path(), json!({})).unwrap().owned);
    // Nor one made between plan and make.
    let other = tempfile::tempdir().unwrap();
    let mut group = plan_in(other.path(), &IntelRdt::default(), "ctr").unwrap();
    assert!(group.owned);
    std::fs::create_dir(other.path().join("ctr")).unwrap();
    make(&IntelRdt::default(), &mut group).unwrap();
    assert!(!group.owned);
    let err = plan_in(root.path(), &IntelRdt::default(), "info").unwrap_err();
    assert!(err.to_string().contains("set intelRdt.closID"), "{err}");
}

#[test]
fn missing_features_are_refused() {
    let bare = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"l3CacheSchema": "L3:0=f"}),
            "intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled",
        ),
        (json!({"memBwSchema": "MB:0=20"}), "Intel RDT/MBA"),
        (
            json!({"enableCMT": true}),
            "intelRdt.enableCMT is specified",
        ),
        (json!({"enableMBM": true}), "Intel RDT/MBM is not enabled"),
        (json!({"enableMonitoring": true}), "Intel RDT/monitoring"),
    ];
    for (value, want) in cases {
        let err = plan_for(bare.path(), value).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    assert!(plan_for(bare.path(), json!({})).is_ok());
    // `schemata` lines are for the kernel to judge.
    assert!(plan_for(bare.path(), json!({"schemata": ["L2:0=f"]})).is_ok());
    // The full layout has CMT's counter and MBM's total, false asks for nothing.
    let full = resctrl();
    std::fs::write(
        full.path().join("info/L3_MON/mon_features"),
        "llc_occupancy\n",
    )
    .unwrap();
    assert!(plan_for(full.path(), json!({"enableMBM": true})).is_err());
    assert!(plan_for(full.path(), json!({"enableCMT": true})).is_ok());
    let off = json!({"enableMonitoring": false, "enableMBM": false});
    assert_eq!(plan_for(bare.path(), off).unwrap().mon, None);
}

#[test]
fn the_raw_json_is_read_as_the_spec_spells_it() {
    let value = json!({
        "closID": "gold", "l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=20",
        "schemata": ["L2:0=f"], "enableMonitoring": true, "enableCMT": true, "enableMBM": false,
        "somethingNew": 1,
    });
    let want = IntelRdt {
        clos_id: Some("gold".into()),
        l3_cache_schema: Some("L3:0=f".into()),
        mem_bw_schema: Some("MB:0=20".into()),
        schemata: Some(vec!["L2:0=f".into()]),
        enable_monitoring: Some(true),
        enable_cmt: Some(true),
        enable_mbm: Some(false),
    };
    assert_eq!(rdt(value), want);
    // Each deprecated name alone asks for monitoring; so does oci-spec's spelling.
    for key in [
        "enableCMT",
        "enableMBM",
        "enableMonitoring",
        "enableCmt",
        "enableMbm",
    ] {
        assert!(rdt(json!({ key: true })).monitoring(), "{key}");
    }
    assert!(!rdt(json!({"enableMonitoring": false})).monitoring());
    assert_eq!(rdt(json!({"closID": ""})).clos_id(), None);
    let config = json!({"ociVersion": "1.3.0", "linux": {"intelRdt": null}});
    let bytes = serde_json::to_vec(&config).unwrap();
    let parsed = crate::spec::parse_config(Path::new("config.json"), &bytes).unwrap();
    assert!(parsed.intel_rdt.is_none());
    for (bad, want) in [
        (
            json!({"schemata": "L3:0=f"}),
            "linux.intelRdt.schemata: invalid type",
        ),
        (
            json!({"schemata": ["L3:0=f", 7]}),
            "linux.intelRdt.schemata[1]: invalid type",
        ),
        (
            json!({"enableMonitoring": "yes"}),
            "linux.intelRdt.enableMonitoring: invalid",
        ),
        (json!({"closID": 1}), "linux.intelRdt.closID: invalid type"),
        (json!([]), "linux.intelRdt: invalid type"),
    ] {
        let err = try_rdt(bad).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn validation() {
    let check = |value| validate(&rdt(value));
    for good in [
        json!({"closID": "gold"}),
        json!({"closID": "/"}),
        json!({"closID": ""}),
        json!({"memBwSchema": "", "schemata": ["", "L3CODE:0=f"]}),
        json!({"l3CacheSchema": "L3DATA:0=f"}),
    ] {
        assert_eq!(check(good.clone()), Ok(()), "{good}");
    }
    for bad in ["..", ".", "a/b", "/a", "a\nb", "info", "mon_groups"] {
        let err = check(json!({"closID": bad})).unwrap_err();
        assert!(err.starts_with("invalid intelRdt.ClosID"), "{err}");
    }
    let cases = [
        (
            json!({"memBwSchema": "L3:0=f"}),
            "memBwSchema \"L3:0=f\" must start with \"MB:\"",
        ),
        (
            json!({"memBwSchema": "MB:0=1\n"}),
            "memBwSchema must not contain newlines",
        ),
        (
            json!({"l3CacheSchema": "L3:0=f\nMB:0=1"}),
            "l3CacheSchema must not",
        ),
        (
            json!({"schemata": ["L3:0=f", "MB:0=1\nL2:0=1"]}),
            "schemata[1] must not",
        ),
    ];
    for (value, want) in cases {
        let err = check(value).unwrap_err();
        assert!(
            err.contains(want) && err.starts_with("linux.intelRdt."),
            "{err}"
        );
    }
}

#[test]
fn schemata_compare_as_the_kernel_prints_them() {
    let have = "    L3:0=00f0;1=fff\n    MB:0= 20;1=100\n";
    assert!(schema_matches("L3:0=f0", have));
    assert!(schema_matches("MB:0=20;1=100", have));
    assert!(!schema_matches("MB:0=30", have));
    assert!(!schema_matches("L2:0=f", have));
    assert_eq!(
        unescape("/sys/fs/res\\040ctrl"),
        PathBuf::from("/sys/fs/res ctrl")
    );
}
