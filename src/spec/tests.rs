use super::*;

fn spec_with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
    let mut v: serde_json::Value = serde_json::from_str(DEFAULT_SPEC).unwrap();
    edit(&mut v);
    let spec: Spec = serde_json::from_value(v).map_err(|e| SpecError::Parse {
        path: "x".into(),
        msg: e.to_string(),
    })?;
    validate(&spec)
}

#[test]
fn default_spec_is_valid() {
    spec_with(|_| {}).unwrap();
}

#[test]
fn unknown_properties_are_ignored() {
    spec_with(|v| v["somethingNew"] = serde_json::json!({"x": 1})).unwrap();
}

#[test]
fn rejects_bad_input() {
    assert!(matches!(
        spec_with(|v| v["ociVersion"] = "2.0.0".into()),
        Err(SpecError::Version(_))
    ));
    assert!(matches!(
        spec_with(|v| v["process"]["args"] = serde_json::json!([])),
        Err(SpecError::NoArgs)
    ));
    assert!(matches!(
        spec_with(|v| v["process"]["cwd"] = "tmp".into()),
        Err(SpecError::RelativeCwd(_))
    ));
    assert!(
        spec_with(|v| v["linux"]["resources"]["pids"] = serde_json::json!({"limit": "many"}))
            .is_err()
    );
    assert!(matches!(
        spec_with(|v| v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}])),
        Err(SpecError::NeedsMountNamespace(m)) if m == "mounts[0] (/proc)"
    ));
    spec_with(|v| {
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
        v["mounts"] = serde_json::json!([]);
        v["linux"]["maskedPaths"] = serde_json::json!([]);
        v["linux"]["readonlyPaths"] = serde_json::json!([]);
        v["hostname"] = "".into();
        v["process"]["terminal"] = false.into();
        v["root"]["readonly"] = false.into();
    })
    .unwrap();
    assert!(matches!(
        spec_with(|v| {
            v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
            v["mounts"] = serde_json::json!([]);
        }),
        Err(SpecError::NeedsMountNamespace(m)) if m == "linux.maskedPaths"
    ));
    assert!(matches!(
        spec_with(|v| v["linux"]["timeOffsets"] = serde_json::json!({"monotonic": {"secs": 1}})),
        Err(SpecError::Field(m)) if m.contains("new time namespace")
    ));
    assert!(matches!(
        spec_with(|v| v["linux"]["sysctl"] = serde_json::json!({"../x": "1"})),
        Err(SpecError::Sysctl(_))
    ));
    assert!(matches!(
        spec_with(|v| v["linux"]["sysctl"] = serde_json::json!({"kernel.core_pattern": "|/x"})),
        Err(SpecError::SysctlNamespace(..))
    ));
    spec_with(|v| {
        v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"})
    })
    .unwrap();
    assert!(spec_with(
        |v| v["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_FOO"])
    )
    .is_err());
}

#[test]
fn a_joined_user_namespace_takes_no_mappings() {
    let join = |v: &mut serde_json::Value| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user", "path": "/proc/1/ns/user"}));
    };
    spec_with(join).unwrap();
    let r = spec_with(|v| {
        join(v);
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    });
    assert!(matches!(r, Err(SpecError::Mappings(m)) if m.contains("joined by path")));
}

#[test]
fn hostname_needs_uts() {
    let r = spec_with(|v| {
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
    });
    assert!(matches!(r, Err(SpecError::HostnameWithoutUts)));
}
