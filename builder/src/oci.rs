//! OCI image-spec types the builder reads and writes. Own structs rather than oci-spec's:
//! BTreeMaps keep the JSON (and so the config digest) byte-identical across rebuilds.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Where steps.rs keeps HEALTHCHECK / ONBUILD text (the OCI config has no field for them).
pub const ANN_HEALTHCHECK: &str = "org.gpurun.build.healthcheck";
pub const ANN_ONBUILD: &str = "org.gpurun.build.onbuild";

/// Empty JSON object, for the map-shaped fields (`ExposedPorts`, `Volumes`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Empty {}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Docker-only fields: read from a Docker base, written by `--format docker` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
}

/// Docker's `config.Healthcheck` (durations in nanoseconds; zero means Docker's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// SOURCE_DATE_EPOCH, else when the step was first built (stage.rs: a cached step keeps
    /// its date, so a no-change rebuild keeps the config digest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// GOARCH name of this machine (the predefined TARGETARCH/BUILDARCH args, the config's
/// `architecture`).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl ImageConfig {
    pub fn scratch() -> ImageConfig {
        ImageConfig {
            architecture: arch().into(),
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
            },
            ..Default::default()
        }
    }

    /// Value of `key` in the config's Env.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.config
            .env
            .iter()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .config
            .env
            .iter_mut()
            .find(|kv| kv.split('=').next() == Some(key))
        {
            Some(kv) => *kv = entry,
            None => self.config.env.push(entry),
        }
    }
}

/// `--format`: the image's manifest and config media types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OCI image-spec media types.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 (keeps HEALTHCHECK, ONBUILD, SHELL in the config).
    Docker,
}

impl ImageConfig {
    /// The config as written for `format`: OCI drops the Docker-only fields (the image-spec
    /// has none; HEALTHCHECK/ONBUILD stay manifest annotations), Docker fills them from the
    /// stage's HEALTHCHECK/ONBUILD/SHELL.
    pub fn for_format(
        &self,
        format: Format,
        annotations: &BTreeMap<String, String>,
        shell: &[String],
    ) -> Result<ImageConfig, String> {
        let mut cfg = self.clone();
        let c = &mut cfg.config;
        if format == Format::Oci {
            (c.healthcheck, c.on_build, c.shell) = (None, None, Vec::new());
            return Ok(cfg);
        }
        if let Some(text) = annotations.get(ANN_HEALTHCHECK) {
            c.healthcheck = Some(healthcheck(text)?);
        }
        // ONBUILD triggers run in the next build only: the base's are not inherited.
        c.on_build = annotations.get(ANN_ONBUILD).map(|t| {
            t.lines()
                .map(|l| strip_keyword(l, "ONBUILD").to_string())
                .collect()
        });
        if shell != ["/bin/sh", "-c"] {
            c.shell = shell.to_vec();
        }
        Ok(cfg)
    }
}

fn strip_keyword<'a>(text: &'a str, kw: &str) -> &'a str {
    let t = text.trim_start();
    match t.get(..kw.len()) {
        Some(head) if head.eq_ignore_ascii_case(kw) => t[kw.len()..].trim_start(),
        _ => t,
    }
}

/// `HEALTHCHECK [--interval=D …] CMD …|NONE` → Docker's config field.
pub fn healthcheck(text: &str) -> Result<Healthcheck, String> {
    let mut rest = strip_keyword(text, "HEALTHCHECK");
    let mut hc = Healthcheck::default();
    while let Some(flag) = rest.strip_prefix("--") {
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (kv, tail) = flag.split_at(end);
        rest = tail.trim_start();
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("HEALTHCHECK --{kv}: expected --{kv}=VALUE"))?;
        let bad = |e: String| format!("HEALTHCHECK --{k}={v}: {e}");
        match k {
            "interval" => hc.interval = duration_ns(v).map_err(bad)?,
            "timeout" => hc.timeout = duration_ns(v).map_err(bad)?,
            "start-period" => hc.start_period = duration_ns(v).map_err(bad)?,
            "start-interval" => hc.start_interval = duration_ns(v).map_err(bad)?,
            "retries" => hc.retries = v.parse().map_err(|e| bad(format!("{e}")))?,
            _ => return Err(format!("HEALTHCHECK --{k}: unknown flag")),
        }
    }
    if rest.eq_ignore_ascii_case("NONE") {
        hc.test = vec!["NONE".into()];
        return Ok(hc);
    }
    let cmd = strip_keyword(rest, "CMD");
    if cmd.len() == rest.len() {
        return Err(format!("HEALTHCHECK: expected CMD or NONE, got {rest:?}"));
    }
    hc.test = match serde_json::from_str::<Vec<String>>(cmd) {
        Ok(argv) if cmd.starts_with('[') => [vec!["CMD".to_string()], argv].concat(),
        _ => vec!["CMD-SHELL".into(), cmd.to_string()],
    };
    Ok(hc)
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds, as Docker parses HEALTHCHECK's.
fn duration_ns(s: &str) -> Result<u64, String> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("{s:?}: missing unit (ns, us, ms, s, m, h)"))?;
        let num: f64 = rest[..n]
            .parse()
            .map_err(|_| format!("{s:?}: not a duration"))?;
        let u = rest[n..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map_or(rest.len(), |i| n + i);
        let scale = match &rest[n..u] {
            "ns" => 1e0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("{s:?}: unknown unit {unit:?}")),
        };
        total += num * scale;
        rest = &rest[u..];
    }
    Ok(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthcheck_forms() {
        let hc = healthcheck(
            "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f http://x/ || exit 1",
        )
        .unwrap();
        assert_eq!(hc.test, ["CMD-SHELL", "curl -f http://x/ || exit 1"]);
        assert_eq!(
            (hc.interval, hc.timeout, hc.retries),
            (90_000_000_000, 500_000_000, 3)
        );
        let hc = healthcheck(r#"healthcheck CMD ["/bin/check", "--fast"]"#).unwrap();
        assert_eq!(hc.test, ["CMD", "/bin/check", "--fast"]);
        assert_eq!(healthcheck("HEALTHCHECK NONE").unwrap().test, ["NONE"]);
        assert!(healthcheck("HEALTHCHECK --interval=5 CMD true").is_err());
        assert!(healthcheck("HEALTHCHECK --bogus=1 CMD true").is_err());
    }
}
