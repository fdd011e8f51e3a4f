//! Property tests: the compiler against a direct model of the profile's meaning, and the
//! config.json reader on arbitrary input (never a panic: a Program or a clear error).

use proptest::prelude::*;
use serde_json::Value;

use super::super::*;

const ACTIONS: [&str; 8] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
    "SCMP_ACT_ERRNO",
];
const OPS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_GT",
    "SCMP_CMP_GE",
    "SCMP_CMP_MASKED_EQ",
];
/// seccomp(2) is left out: a rule on it reorders the install (tested separately).
const NAMES: [&str; 7] = [
    "read",
    "mkdir",
    "personality",
    "socket",
    "kill",
    "dup",
    "nope",
];
const VALUES: [u64; 8] = [0, 1, 2, 3, 8, 16, 8 | 1 << 32, u64::MAX];

fn arg_rule(ops: &'static [&'static str]) -> impl Strategy<Value = ArgRule> {
    (0u32..3, 0..VALUES.len(), 0..VALUES.len(), 0..ops.len()).prop_map(move |(i, v, w, o)| {
        ArgRule {
            index: i,
            value: VALUES[v],
            value_two: VALUES[w],
            op: ops[o].to_string(),
        }
    })
}

fn errno() -> impl Strategy<Value = Option<u32>> {
    prop::option::weighted(0.3, 0u32..40)
}

fn valid_profile() -> impl Strategy<Value = Profile> {
    let rule = (
        prop::collection::vec(0..NAMES.len(), 1..3),
        0..ACTIONS.len(),
        prop::collection::vec(arg_rule(&OPS), 0..3),
    )
        .prop_map(|(names, a, args)| {
            let action = ACTIONS[a].to_string();
            let errno_ret = match action.as_str() {
                "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE" => Some(names.len() as u32 * 7 % 5),
                _ => None,
            };
            SyscallRule {
                names: names.iter().map(|&i| NAMES[i].to_string()).collect(),
                action,
                errno_ret,
                args,
            }
        });
    (0..ACTIONS.len(), prop::collection::vec(rule, 0..8)).prop_map(|(a, syscalls)| Profile {
        default_action: ACTIONS[a].to_string(),
        default_errno_ret: (ACTIONS[a] == "SCMP_ACT_ERRNO").then_some(38),
        syscalls,
        ..Profile::default()
    })
}

fn cond_holds(a: &ArgRule, args: &[u64; 6]) -> bool {
    let x = args[a.index as usize];
    match a.op.as_str() {
        "SCMP_CMP_EQ" => x == a.value,
        "SCMP_CMP_NE" => x != a.value,
        "SCMP_CMP_LT" => x < a.value,
        "SCMP_CMP_LE" => x <= a.value,
        "SCMP_CMP_GT" => x > a.value,
        "SCMP_CMP_GE" => x >= a.value,
        "SCMP_CMP_MASKED_EQ" => x & a.value == a.value_two,
        _ => unreachable!(),
    }
}

/// The filter's return value for an action of the profile, written from seccomp(2) (the
/// kernel's SECCOMP_RET_* values, spelled out here rather than taken from libc or the code
/// under test) and runc's choices: ERRNO and TRACE without `errnoRet` give EPERM (1), the
/// low 16 bits carry the data, SCMP_ACT_KILL is the old name of KILL_THREAD.
fn model_ret(name: &str, errno: Option<u32>) -> u32 {
    let data = errno.unwrap_or(1) & 0xffff;
    match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => 0x0000_0000,
        "SCMP_ACT_KILL_PROCESS" => 0x8000_0000,
        "SCMP_ACT_TRAP" => 0x0003_0000,
        "SCMP_ACT_ERRNO" => 0x0005_0000 | data,
        "SCMP_ACT_TRACE" => 0x7ff0_0000 | data,
        "SCMP_ACT_LOG" => 0x7ffc_0000,
        "SCMP_ACT_ALLOW" => 0x7fff_0000,
        other => unreachable!("the generator made {other}"),
    }
}

/// What the profile means for a native call, written straight from the runtime-spec plus the
/// documented choices (runc's OR for repeated arguments, most restrictive action wins, ties go
/// to the action appearing first). Actions are their filter return values ([`model_ret`]).
fn model(p: &Profile, nr: i64, args: &[u64; 6]) -> u32 {
    let default = model_ret(&p.default_action, p.default_errno_ret);
    let mut order: Vec<u32> = Vec::new();
    let mut hits: Vec<u32> = Vec::new();
    for r in &p.syscalls {
        let act = model_ret(&r.action, r.errno_ret);
        let mut idx: Vec<u32> = r.args.iter().map(|a| a.index).collect();
        idx.sort_unstable();
        let repeated = idx.windows(2).any(|w| w[0] == w[1]);
        let possible = |a: &&ArgRule| a.op != "SCMP_CMP_MASKED_EQ" || a.value_two & !a.value == 0;
        let can_match = if repeated {
            r.args.iter().any(|a| possible(&a))
        } else {
            r.args.iter().all(|a| possible(&a))
        };
        let known = r.names.iter().any(|n| names::number(n).is_some());
        if act == default || !can_match || !known {
            continue;
        }
        if !order.contains(&act) {
            order.push(act);
        }
        let named = r.names.iter().any(|n| names::number(n) == Some(nr));
        let matches = if r.args.is_empty() {
            true
        } else if repeated {
            r.args.iter().any(|a| cond_holds(a, args))
        } else {
            r.args.iter().all(|a| cond_holds(a, args))
        };
        if named && matches {
            hits.push(act);
        }
    }
    // The action class (SECCOMP_RET_ACTION_FULL); as a signed number, smaller is more
    // restrictive (KILL_PROCESS is negative).
    let class = |a: u32| (a & 0xffff_0000) as i32;
    if hits.is_empty() {
        return default;
    }
    let strongest = hits.iter().map(|&a| class(a)).min().unwrap();
    let winner = order
        .iter()
        .find(|&&a| class(a) == strongest && hits.contains(&a))
        .unwrap();
    *winner
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn compiled_filters_match_the_model(
        p in valid_profile(),
        probes in prop::collection::vec((0..NAMES.len(), prop::array::uniform6(0..VALUES.len())), 1..12),
    ) {
        let prog = compile(&p).unwrap();
        for (n, a) in probes {
            let Some(nr) = names::number(NAMES[n]) else { continue };
            let args = a.map(|i| VALUES[i]);
            prop_assert_eq!(prog.verdict(nr, args), model(&p, nr, &args), "{} {:?}", NAMES[n], args);
        }
    }

    #[test]
    fn any_profile_compiles_or_fails_clearly(
        default in "SCMP_ACT_[A-Z_]{0,12}",
        default_errno in errno(),
        rules in prop::collection::vec((
            prop::collection::vec("[a-z_0-9]{0,10}", 0..4),
            "SCMP_ACT_[A-Z_]{0,12}",
            errno(),
            prop::collection::vec((0u32..9, any::<u64>(), any::<u64>(), "SCMP_CMP_[A-Z_]{0,10}"), 0..4),
        ), 0..6),
        archs in prop::collection::vec("SCMP_ARCH_[A-Z0-9_]{0,8}", 0..3),
    ) {
        let p = Profile {
            default_action: default,
            default_errno_ret: default_errno,
            architectures: archs,
            syscalls: rules.into_iter().map(|(names, action, errno_ret, args)| SyscallRule {
                names, action, errno_ret,
                args: args.into_iter().map(|(index, value, value_two, op)| ArgRule { index, value, value_two, op }).collect(),
            }).collect(),
            ..Profile::default()
        };
        match compile(&p) {
            Ok(prog) => prop_assert!(prog.instructions() > 0),
            Err(e) => prop_assert!(e.to_string().starts_with("linux.seccomp"), "{}", e),
        }
    }

    #[test]
    fn config_parsing_never_panics(v in arb_json()) {
        check_config(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn edited_default_spec_never_panics(
        path in prop::collection::vec(prop::sample::select(KEYS.to_vec()), 1..4),
        v in arb_json(),
    ) {
        let mut spec: Value = serde_json::from_str(crate::spec::DEFAULT_SPEC).unwrap();
        spec["linux"]["seccomp"] = serde_json::from_str(DEFAULT_PROFILE).unwrap();
        let mut at = &mut spec;
        for k in &path {
            if !at.is_object() { break; }
            at = &mut at[*k];
        }
        *at = v;
        check_config(&serde_json::to_vec(&spec).unwrap());
    }

    #[test]
    fn config_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_config(&bytes);
    }
}

/// Parse, validate and compile like `create` does; any failure must be an error with text.
fn check_config(bytes: &[u8]) {
    let path = std::path::Path::new("config.json");
    match crate::spec::parse(path, bytes) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok((spec, seccomp)) => {
            if let Err(e) = crate::spec::validate(&spec) {
                assert!(!e.to_string().is_empty());
            }
            if let Some(Err(e)) = seccomp.as_ref().map(compile) {
                assert!(e.to_string().starts_with("linux.seccomp"), "{e}");
            }
        }
    }
}

const KEYS: [&str; 16] = [
    "ociVersion",
    "process",
    "args",
    "linux",
    "seccomp",
    "syscalls",
    "defaultAction",
    "architectures",
    "flags",
    "namespaces",
    "mounts",
    "root",
    "capabilities",
    "user",
    "0",
    "resources",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        prop::sample::select(ACTIONS.to_vec()).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS.to_vec()).prop_map(String::from),
                        "[a-z]{0,5}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}
