//! `linux.intelRdt` as runtime-spec 1.3 defines it, read with gpurun's own type: oci-spec
//! 0.8.4 lacks `schemata` and `enableMonitoring` and reads `enableCMT`/`enableMBM` under
//! other names, so the object is taken out of config.json before oci-spec sees the rest.

use serde::Deserialize;

/// `linux.intelRdt`. Unknown properties are ignored, as everywhere in config.json.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntelRdt {
    #[serde(rename = "closID")]
    pub clos_id: Option<String>,
    pub l3_cache_schema: Option<String>,
    pub mem_bw_schema: Option<String>,
    /// 1.3: lines written after l3CacheSchema and memBwSchema.
    pub schemata: Option<Vec<String>>,
    /// 1.3: a MON group of the container's own.
    pub enable_monitoring: Option<bool>,
    /// `enableCMT`/`enableMBM` (1.1.0 to 1.2.1) were replaced by `enableMonitoring` in 1.3:
    /// either is taken as a request for monitoring (a MON group), after checking the counter
    /// it names is there. oci-spec writes them as `enableCmt`/`enableMbm`: accepted too.
    #[serde(rename = "enableCMT", alias = "enableCmt")]
    pub enable_cmt: Option<bool>,
    #[serde(rename = "enableMBM", alias = "enableMbm")]
    pub enable_mbm: Option<bool>,
}

/// Names the kernel keeps for itself at the root of a resctrl mount: never a group.
pub(super) const RESERVED: [&str; 3] = ["info", "mon_groups", "mon_data"];

impl IntelRdt {
    /// `closID`; an empty one means none (runc's reading).
    pub fn clos_id(&self) -> Option<&str> {
        self.clos_id.as_deref().filter(|c| !c.is_empty())
    }

    /// The schemata lines to write or compare, in the runtime-spec's order: l3CacheSchema,
    /// memBwSchema, then each of `schemata`. Empty strings ask for nothing (runc skips them).
    pub fn lines(&self) -> Vec<&str> {
        [&self.l3_cache_schema, &self.mem_bw_schema]
            .into_iter()
            .flatten()
            .chain(self.schemata.iter().flatten())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Whether the container gets a MON group of its own.
    pub fn monitoring(&self) -> bool {
        [self.enable_monitoring, self.enable_cmt, self.enable_mbm].contains(&Some(true))
    }
}

/// Take `linux.intelRdt` out of config.json's value (absent or null: none). The error names
/// the field (`linux.intelRdt.schemata[1]: invalid type: …`).
pub fn take_from_config(config: &mut serde_json::Value) -> Result<Option<IntelRdt>, String> {
    let Some(value) = config
        .get_mut("linux")
        .and_then(|l| l.as_object_mut())
        .and_then(|l| l.remove("intelRdt"))
    else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    // serde would take an array for the struct, field by field in order.
    if !value.is_object() {
        return Err(format!(
            "linux.intelRdt: invalid type: {value}, expected an object"
        ));
    }
    serde_path_to_error::deserialize(value).map(Some).map_err(
        |e: serde_path_to_error::Error<serde_json::Error>| match e.path().to_string().as_str() {
            "." => format!("linux.intelRdt: {}", e.inner()),
            path => format!("linux.intelRdt.{path}: {}", e.inner()),
        },
    )
}

/// Everything checked without touching the system; the message follows `config.json: `.
pub fn validate(rdt: &IntelRdt) -> Result<(), String> {
    if let Some(clos) = rdt.clos_id() {
        // One directory under the resctrl root, or exactly "/" for the root itself.
        let bad = clos == "."
            || clos == ".."
            || (clos != "/" && clos.contains('/'))
            || clos.contains(['\n', '\0'])
            || RESERVED.contains(&clos);
        if bad {
            return Err(format!("invalid intelRdt.ClosID {clos:?}"));
        }
    }
    let newline = |field: &str| Err(format!("linux.intelRdt.{field} must not contain newlines"));
    if rdt
        .l3_cache_schema
        .as_ref()
        .is_some_and(|s| s.contains('\n'))
    {
        return newline("l3CacheSchema");
    }
    if let Some(mb) = rdt.mem_bw_schema.as_deref().filter(|s| !s.is_empty()) {
        if mb.contains('\n') {
            return newline("memBwSchema");
        }
        if !mb.starts_with("MB:") {
            return Err(format!(
                "linux.intelRdt.memBwSchema {mb:?} must start with \"MB:\""
            ));
        }
    }
    for (i, line) in rdt.schemata.iter().flatten().enumerate() {
        if line.contains('\n') {
            return newline(&format!("schemata[{i}]"));
        }
    }
    Ok(())
}
