//! CDI (Container Device Interface) spec files, versions 0.3 to 1.1: the types, strict
//! (unknown fields are an error, as the CDI reference library does), read from JSON or YAML.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    pub cdi_version: String,
    /// `vendor/class`, e.g. `nvidia.com/gpu`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "ContainerEdits::is_empty")]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Device {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

impl ContainerEdits {
    pub fn is_empty(&self) -> bool {
        *self == ContainerEdits::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceNode {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    pub hook_name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

impl Spec {
    /// Parse a spec file's bytes: JSON for `.json`, YAML (a superset) otherwise.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Spec, String> {
        let spec: Spec = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?
        } else {
            serde_yaml_ng::from_slice(bytes).map_err(|e| e.to_string())?
        };
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), String> {
        let major = self.cdi_version.split('.').next().unwrap_or_default();
        if !matches!(major, "0" | "1") {
            return Err(format!("unsupported cdiVersion {:?}", self.cdi_version));
        }
        let (vendor, class) = self
            .kind
            .split_once('/')
            .ok_or_else(|| format!("invalid kind {:?}: want vendor/class", self.kind))?;
        if vendor.is_empty() || class.is_empty() {
            return Err(format!("invalid kind {:?}: want vendor/class", self.kind));
        }
        for d in &self.devices {
            let ok = !d.name.is_empty()
                && d.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
            if !ok {
                return Err(format!("invalid device name {:?}", d.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_yaml_and_strictness() {
        let yaml = "cdiVersion: 0.6.0\nkind: vendor.com/dev\ndevices:\n- name: a\n  containerEdits:\n    env: [X=1]\n    deviceNodes: [{path: /dev/null}]\ncontainerEdits:\n  additionalGids: [44]\n";
        let s = Spec::parse(Path::new("x.yaml"), yaml.as_bytes()).unwrap();
        assert_eq!(s.devices[0].container_edits.env, ["X=1"]);
        assert_eq!(s.container_edits.additional_gids, [44]);
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(Spec::parse(Path::new("x.json"), &json).unwrap(), s);
        let e = Spec::parse(
            Path::new("x.yaml"),
            yaml.replace("env:", "envv:").as_bytes(),
        )
        .unwrap_err();
        assert!(e.contains("envv"), "{e}");
        let e = Spec::parse(
            Path::new("x.yaml"),
            yaml.replace("0.6.0", "2.0.0").as_bytes(),
        )
        .unwrap_err();
        assert!(e.contains("cdiVersion"), "{e}");
        let e = Spec::parse(
            Path::new("x.yaml"),
            yaml.replace("vendor.com/dev", "nokind").as_bytes(),
        )
        .unwrap_err();
        assert!(e.contains("invalid kind"), "{e}");
    }
}
