//! `NVIDIA_REQUIRE_*` constraints (`cuda>=12.2 driver>=535 arch=9.0 brand=tesla`): in one
//! variable a space separates alternatives (OR) and a comma joins conditions (AND); every
//! variable must hold. `NVIDIA_DISABLE_REQUIRE` turns the check off. A legacy image requires
//! `cuda>=` its `CUDA_VERSION` (major.minor), as the toolkit does.

use super::nvml::Machine;
use super::select::{env_get, is_legacy};
use super::GpuError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Le,
    Gt,
    Lt,
    Eq,
    Ne,
}

/// The facts a condition is checked against: the driver's, and one selected GPU's (if any).
pub struct Facts<'a> {
    pub cuda: &'a str,
    pub driver: &'a str,
    /// (compute capability "9.0", brand "tesla") of one GPU; `None`: no GPU selected.
    pub gpu: Option<(String, String)>,
}

/// Will [`check`] evaluate anything (so that it needs NVML's facts)?
pub fn needed(env: &[String]) -> bool {
    let disabled =
        env_get(env, "NVIDIA_DISABLE_REQUIRE").is_some_and(|v| !v.is_empty() && v != "false");
    !disabled
        && (is_legacy(env)
            || env
                .iter()
                .filter_map(|kv| kv.strip_prefix("NVIDIA_REQUIRE_"))
                .any(|kv| {
                    kv.split_once('=')
                        .is_some_and(|(_, v)| !v.trim().is_empty())
                }))
}

/// Every requirement in `env`, checked for each selected GPU of `machine`.
pub fn check(env: &[String], machine: &Machine, selected: &[usize]) -> Result<(), GpuError> {
    if env_get(env, "NVIDIA_DISABLE_REQUIRE").is_some_and(|v| !v.is_empty() && v != "false") {
        return Ok(());
    }
    let mut exprs: Vec<String> = env
        .iter()
        .filter(|kv| kv.starts_with("NVIDIA_REQUIRE_"))
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.to_string()))
        .collect();
    if is_legacy(env) {
        let v = env_get(env, "CUDA_VERSION").unwrap_or_default();
        let mm: Vec<&str> = v.split('.').take(2).collect();
        exprs.push(format!("cuda>={}", mm.join(".")));
    }
    let cuda = machine.cuda_version_string();
    let facts_for = |gpu: Option<usize>| Facts {
        cuda: &cuda,
        driver: &machine.driver_version,
        gpu: gpu.map(|i| {
            let g = &machine.gpus[i];
            (format!("{}.{}", g.cc.0, g.cc.1), g.brand.clone())
        }),
    };
    let mut contexts: Vec<Facts> = selected.iter().map(|&i| facts_for(Some(i))).collect();
    if contexts.is_empty() {
        contexts.push(facts_for(None));
    }
    for expr in exprs.iter().filter(|e| !e.trim().is_empty()) {
        for facts in &contexts {
            holds(expr, facts)?;
        }
    }
    Ok(())
}

/// One variable's expression: Ok if any alternative holds, else an error naming the first
/// alternative's failing condition.
pub fn holds(expr: &str, facts: &Facts) -> Result<(), GpuError> {
    let mut first_failure = None;
    for alt in expr.split_whitespace() {
        let mut failed = None;
        for cond in alt.split(',').filter(|c| !c.is_empty()) {
            if !condition(cond, facts)? {
                failed = Some(cond);
                break;
            }
        }
        match failed {
            None => return Ok(()),
            Some(c) => {
                first_failure.get_or_insert(c);
            }
        }
    }
    match first_failure {
        None => Ok(()),
        Some(cond) => Err(GpuError::Requirement(format!(
            "unsatisfied condition: {cond} (driver {}, CUDA {}{})",
            facts.driver,
            facts.cuda,
            facts
                .gpu
                .as_ref()
                .map(|(arch, brand)| format!(", GPU arch {arch}, brand {brand}"))
                .unwrap_or_default()
        ))),
    }
}

fn condition(cond: &str, facts: &Facts) -> Result<bool, GpuError> {
    let bad = || GpuError::Requirement(format!("invalid requirement {cond:?}"));
    let pos = cond.find(['<', '>', '=', '!']).ok_or_else(bad)?;
    let (key, rest) = cond.split_at(pos);
    let (op, value) = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
    ]
    .iter()
    .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (*op, v)))
    .ok_or_else(bad)?;
    let (actual, is_version) = match key {
        "cuda" => (facts.cuda.to_string(), true),
        "driver" => (facts.driver.to_string(), true),
        "arch" => match &facts.gpu {
            Some((arch, _)) => (arch.clone(), true),
            None => return Ok(true),
        },
        "brand" => match &facts.gpu {
            Some((_, brand)) => (brand.clone(), false),
            None => return Ok(true),
        },
        _ => return Err(bad()),
    };
    if !is_version {
        let eq = actual.eq_ignore_ascii_case(value);
        return match op {
            Op::Eq => Ok(eq),
            Op::Ne => Ok(!eq),
            _ => Err(bad()),
        };
    }
    let ord = compare_versions(&actual, value).ok_or_else(bad)?;
    use std::cmp::Ordering::*;
    Ok(match op {
        Op::Ge => ord != Less,
        Op::Le => ord != Greater,
        Op::Gt => ord == Greater,
        Op::Lt => ord == Less,
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
    })
}

/// Dotted numeric versions, missing parts are 0 (`12.2` == `12.2.0`).
fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parse = |s: &str| -> Option<Vec<u64>> { s.split('.').map(|p| p.parse().ok()).collect() };
    let (mut a, mut b) = (parse(a)?, parse(b)?);
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    Some(a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            cuda: "12.4",
            driver: "550.54.15",
            gpu: Some(("8.0".into(), "tesla".into())),
        }
    }

    #[test]
    fn when_requirements_apply() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!needed(&e(&[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_REQUIRE_CUDA="
        ])));
        assert!(needed(&e(&["NVIDIA_REQUIRE_ARCH=arch=9.0"])));
        assert!(!needed(&e(&[
            "NVIDIA_REQUIRE_CUDA=cuda>=12",
            "NVIDIA_DISABLE_REQUIRE=1"
        ])));
        // A legacy image (CUDA_VERSION, no NVIDIA_REQUIRE_CUDA) implies cuda>=CUDA_VERSION.
        assert!(needed(&e(&["CUDA_VERSION=11.0"])));
    }

    #[test]
    fn conditions() {
        let f = facts();
        for ok in [
            "cuda>=12.2",
            "cuda>=12.4.0",
            "driver>=535",
            "driver<551",
            "arch=8.0",
            "brand=Tesla",
            "brand!=geforce",
            "cuda>=13.0 driver>=550",
            "brand=geforce,driver>=400 brand=tesla,driver>=535",
        ] {
            holds(ok, &f).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, named) in [
            ("cuda>=12.5", "cuda>=12.5"),
            ("arch=9.0", "arch=9.0"),
            ("driver>=535,cuda>12.4", "cuda>12.4"),
            ("brand=nvidia cuda<12", "brand=nvidia"),
        ] {
            let e = holds(bad, &f).unwrap_err().to_string();
            assert!(
                e.contains(&format!("unsatisfied condition: {named} ")),
                "{bad}: {e}"
            );
        }
        for invalid in ["cuda", "cuda~12", "gpu>=1", "brand>=tesla", "cuda>=x"] {
            let e = holds(invalid, &f).unwrap_err().to_string();
            assert!(e.contains("invalid requirement"), "{invalid}: {e}");
        }
        // Without a GPU only the driver-wide keys count.
        let none = Facts {
            gpu: None,
            ..facts()
        };
        holds("arch=9.0,cuda>=12", &none).unwrap();
    }
}
