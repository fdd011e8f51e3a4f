//! CDI (Container Device Interface, spec 1.1): devices requested through `cdi.k8s.io/<key>`
//! annotations are resolved in the spec directories and applied to the OCI spec at create
//! ([`apply`]); `gpurun cdi generate|list` writes this machine's NVIDIA spec ([`generate`]).

pub mod apply;
pub mod generate;
pub mod registry;
pub mod spec;

use oci_spec::runtime::Spec as OciSpec;

pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// The qualified device names the spec's CDI annotations ask for, in annotation-key order.
pub fn requested(spec: &OciSpec) -> Vec<String> {
    let Some(annotations) = spec.annotations() else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with(ANNOTATION_PREFIX))
        .collect();
    keys.sort();
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        for name in annotations[k]
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_annotations() {
        let spec: OciSpec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "annotations": {
                "cdi.k8s.io/b": "nvidia.com/gpu=1, nvidia.com/gpu=0",
                "cdi.k8s.io/a": "nvidia.com/gpu=0",
                "other.io/x": "vendor.com/dev=x",
            }
        }))
        .unwrap();
        assert_eq!(requested(&spec), ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        let none: OciSpec =
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2"})).unwrap();
        assert!(requested(&none).is_empty());
    }
}
