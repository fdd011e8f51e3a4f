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
