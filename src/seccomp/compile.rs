//! Profile → stacked BPF filters. The plan and why it matches libseccomp is in [`super`].

use std::collections::BTreeMap;

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};

use super::arch;
use super::bpf::{self, Data, Insn};
use super::profile::{ArgRule, Profile};
use super::{Action, Filter, Program, SeccompError};

type Result<T> = std::result::Result<T, SeccompError>;

/// The kernel's limit on all filters of a task together (`MAX_INSNS_PER_PATH`), counting
/// 4 instructions of overhead per filter.
const MAX_INSNS_PER_PATH: usize = 32768;

/// The TRACE data seccompiler emits for [`Action::Notify`] (it has no USER_NOTIF); only the
/// notify filter holds it, and [`build`] turns its returns into SECCOMP_RET_USER_NOTIF.
pub(super) const NOTIFY_STANDIN: u32 = 0xfffe;

/// Syscalls a NOTIFY rule may not name: the process uses them to hand its listener over, and
/// a notification nobody can receive yet would block it for good (runc refuses `write`, which
/// it uses; gpurun passes the fd with `sendmsg`).
const NOT_NOTIFIABLE: [&str; 2] = ["write", "sendmsg"];

pub(super) fn action(name: &str, errno: Option<u32>, field: &str) -> Result<Action> {
    let data = |default: u32| -> Result<u32> {
        let v = errno.unwrap_or(default);
        // The kernel clamps larger values to MAX_ERRNO; refuse them instead of changing them.
        if v > 4095 {
            return Err(SeccompError::Errno(field.into(), v));
        }
        Ok(v)
    };
    let act = match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        // runc's choice: EPERM when no errnoRet is given (also for TRACE without a tracer).
        "SCMP_ACT_ERRNO" => return Ok(Action::Errno(data(libc::EPERM as u32)?)),
        "SCMP_ACT_TRACE" => return Ok(Action::Trace(data(libc::EPERM as u32)?)),
        // SCMP_ACT_KILL is libseccomp's old name for killing the thread.
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => Action::Notify,
        other => return Err(SeccompError::Action(field.into(), other.into())),
    };
    // The runtime-spec: an errnoRet on an action without one MUST fail.
    if errno.is_some() {
        return Err(SeccompError::ErrnoWithoutErrnoAction(
            field.into(),
            name.into(),
        ));
    }
    Ok(act)
}

fn condition(arg: &ArgRule, field: &str) -> Result<Option<SeccompCondition>> {
    if arg.index > 5 {
        return Err(SeccompError::ArgIndex(field.into(), arg.index));
    }
    let op = match arg.op.as_str() {
        "SCMP_CMP_EQ" => SeccompCmpOp::Eq,
        "SCMP_CMP_NE" => SeccompCmpOp::Ne,
        "SCMP_CMP_LT" => SeccompCmpOp::Lt,
        "SCMP_CMP_LE" => SeccompCmpOp::Le,
        "SCMP_CMP_GT" => SeccompCmpOp::Gt,
        "SCMP_CMP_GE" => SeccompCmpOp::Ge,
        "SCMP_CMP_MASKED_EQ" => {
            // libseccomp: (arg & value) == valueTwo. seccompiler also masks valueTwo, so a
            // valueTwo with bits outside the mask (which can never match) is handled here.
            if arg.value_two & !arg.value != 0 {
                return Ok(None);
            }
            SeccompCmpOp::MaskedEq(arg.value)
        }
        other => return Err(SeccompError::Operator(field.into(), other.into())),
    };
    let value = if arg.op == "SCMP_CMP_MASKED_EQ" {
        arg.value_two
    } else {
        arg.value
    };
    // Full 64-bit comparisons, as libseccomp does on 64-bit ABIs.
    SeccompCondition::new(arg.index as u8, SeccompCmpArgLen::Qword, op, value)
        .map(Some)
        .map_err(|e| SeccompError::Internal(e.to_string()))
}

/// The rules of one syscall in one filter: `None` = the syscall matches unconditionally.
type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add(rules: &mut Rules, nr: i64, rule: Option<&SeccompRule>) {
    let entry = rules.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (entry.as_mut(), rule) {
        (Some(list), Some(rule)) => list.push(rule.clone()),
        // An unconditional match makes every conditional one of the same syscall redundant.
        (_, None) => *entry = None,
        (None, Some(_)) => {}
    }
}

fn build(rules: Rules, mismatch: Action, on_match: Action, what: String) -> Result<Filter> {
    let rules = rules
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let target = arch::target().ok_or(SeccompError::UnsupportedArch)?;
    let filter = SeccompFilter::new(rules, mismatch.into(), on_match.into(), target)
        .map_err(|e| SeccompError::Internal(e.to_string()))?;
    let prog: seccompiler::BpfProgram =
        filter.try_into().map_err(|e: seccompiler::BackendError| {
            SeccompError::TooLarge(what.clone(), e.to_string())
        })?;
    let mut insns: Vec<Insn> = prog
        .iter()
        .map(|i| Insn {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    // seccompiler kills the process on any foreign ABI; the guard filter decides those.
    bpf::allow_foreign_arch(&mut insns).map_err(SeccompError::Internal)?;
    let notify = on_match == Action::Notify;
    if notify {
        let standin = libc::SECCOMP_RET_TRACE | NOTIFY_STANDIN;
        bpf::replace_ret(&mut insns, standin, libc::SECCOMP_RET_USER_NOTIF);
    }
    Ok(Filter {
        what,
        insns,
        notify,
    })
}

/// The spec's rules for the listener fields, and runc's for NOTIFY.
fn check_notify(profile: &Profile, default: Action) -> Result<()> {
    let path = profile.listener_path.as_deref().filter(|p| !p.is_empty());
    if path.is_none() && profile.listener_metadata.is_some() {
        return Err(SeccompError::MetadataWithoutListener);
    }
    if default == Action::Notify {
        return Err(SeccompError::NotifyDefault);
    }
    let mut any = false;
    for (i, call) in profile.syscalls.iter().enumerate() {
        if call.action != "SCMP_ACT_NOTIFY" {
            continue;
        }
        any = true;
        if let Some(name) = call
            .names
            .iter()
            .find(|n| NOT_NOTIFIABLE.contains(&n.as_str()))
        {
            return Err(SeccompError::NotifyCall(
                format!("syscalls[{i}]"),
                name.clone(),
            ));
        }
    }
    // listenerPath without NOTIFY rules is ignored (the spec).
    match (any, path) {
        (true, None) => Err(SeccompError::NotifyWithoutListener),
        _ => Ok(()),
    }
}

/// Compile a profile for this machine. Pure: the kernel is only asked which flags it knows.
pub fn compile(profile: &Profile) -> Result<Program> {
    let default = action(
        &profile.default_action,
        profile.default_errno_ret,
        "defaultAction",
    )?;
    check_notify(profile, default)?;
    let abis = arch::abis(&profile.architectures)?;
    let flags = super::flags::parse(&profile.flags)?;

    // One rule set per distinct action, in order of first appearance; plus everything any
    // rule names, for the default filter's "known" list.
    let mut per_action: Vec<(Action, Rules)> = Vec::new();
    let mut named = Rules::new();
    for (i, call) in profile.syscalls.iter().enumerate() {
        let field = format!("syscalls[{i}]");
        let act = action(&call.action, call.errno_ret, &field)?;
        let mut conds = Vec::new();
        let mut impossible = false;
        for (j, a) in call.args.iter().enumerate() {
            match condition(a, &format!("{field}.args[{j}]"))? {
                Some(c) => conds.push(c),
                None => impossible = true,
            }
        }
        // Same as runc: conditions on distinct arguments are ANDed in one rule; if one
        // argument is compared twice, each condition becomes its own rule (ORed).
        let mut indexes: Vec<u32> = call.args.iter().map(|a| a.index).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        let internal = |e: seccompiler::BackendError| SeccompError::Internal(e.to_string());
        let rules: Vec<Option<SeccompRule>> = if repeated {
            conds
                .into_iter()
                .map(|c| SeccompRule::new(vec![c]).map(Some))
                .collect::<std::result::Result<_, _>>()
                .map_err(internal)?
        } else if impossible {
            Vec::new()
        } else if conds.is_empty() {
            vec![None]
        } else {
            vec![Some(SeccompRule::new(conds).map_err(internal)?)]
        };
        // A rule with the default's action changes nothing (runc skips it too).
        if act == default || rules.is_empty() {
            continue;
        }
        for name in &call.names {
            if name.is_empty() {
                return Err(SeccompError::EmptyName(field.clone()));
            }
            // Unknown names are skipped, as libseccomp does: a profile may list syscalls this
            // kernel or architecture does not have.
            let Some(nr) = super::names::number(name) else {
                continue;
            };
            let idx = match per_action.iter().position(|(a, _)| *a == act) {
                Some(idx) => idx,
                None => {
                    per_action.push((act, Rules::new()));
                    per_action.len() - 1
                }
            };
            for rule in &rules {
                add(&mut per_action[idx].1, nr, rule.as_ref());
                add(&mut named, nr, rule.as_ref());
            }
        }
    }

    let mut filters = vec![Filter {
        what: "architecture guard".into(),
        insns: bpf::arch_guard(arch::native_audit(), &abis),
        notify: false,
    }];
    // Ties between equal actions with different data go to the filter evaluated first, i.e.
    // installed last: the action that appears first in the profile is installed last.
    for (act, rules) in per_action.into_iter().rev() {
        if act != Action::Allow {
            filters.push(build(rules, Action::Allow, act, act.to_string())?);
        }
    }
    if default != Action::Allow {
        filters.push(build(
            named,
            default,
            Action::Allow,
            "defaultAction".into(),
        )?);
    }
    let listener_call = flags.listener_bits | crate::sys::NEW_LISTENER;
    order_for_install(&mut filters, &[flags.bits, listener_call])?;
    let total: usize = filters.iter().map(|f| f.insns.len() + 4).sum();
    if total > MAX_INSNS_PER_PATH {
        return Err(SeccompError::TooLarge(
            "profile".into(),
            format!("{total} BPF instructions, the kernel allows {MAX_INSNS_PER_PATH}"),
        ));
    }
    Ok(Program {
        filters,
        flags: flags.bits,
        listener_flags: flags.listener_bits,
    })
}

/// Every filter but the last one installed must let our own `seccomp(2)` call through, or the
/// next install would be refused. A filter that blocks it is moved to the end; two cannot be.
/// The notify filter's call has other flags: a filter must let both through.
fn order_for_install(filters: &mut Vec<Filter>, flags: &[u32]) -> Result<()> {
    let call = |flags: u32| {
        Data::native(
            libc::SYS_seccomp as i32,
            [
                libc::SECCOMP_SET_MODE_FILTER as u64,
                flags as u64,
                0,
                0,
                0,
                0,
            ],
        )
    };
    let blocks = |f: &Filter| {
        flags
            .iter()
            .any(|&b| !Action::passes(bpf::run(&f.insns, &call(b))))
    };
    let blocking: Vec<usize> = (0..filters.len())
        .filter(|&i| blocks(&filters[i]))
        .collect();
    match blocking.as_slice() {
        [] => Ok(()),
        [i] => {
            let f = filters.remove(*i);
            filters.push(f);
            Ok(())
        }
        _ => Err(SeccompError::BlocksInstall),
    }
}
