//! Per-process attributes of runtime-spec 1.2/1.3: `process.scheduler`, `process.ioPriority`,
//! `linux.personality`, `linux.memoryPolicy` (set by the init and by every exec'd process,
//! runc's setupScheduler/setupIOPriority/setupPersonality/setupMemoryPolicy) and
//! `process.execCPUAffinity` (exec'd processes only, runc's startWithCPUAffinity and
//! setFinalCPUAffinity).

use oci_spec::runtime::{
    ExecCPUAffinity, IOPriorityClass, LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality,
    LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType,
    MemoryPolicyModeType, Process, Scheduler, Spec,
};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::sys::sched::{self, Mask, SchedAttr};

/// The highest CPU or node number a list may name (runc's `MaxCPU`), against absurd masks.
pub const MAX_ID: usize = 64 * 1024;

/// Everything about these fields that can be checked without side effects.
pub fn validate(spec: &Spec) -> std::result::Result<(), String> {
    if let Some(process) = spec.process() {
        validate_process(process)?;
        // The init sets the scheduler, then spawns the startContainer hooks: a SCHED_DEADLINE
        // task without SCHED_FLAG_RESET_ON_FORK cannot fork (EAGAIN): every hook would fail,
        // obscurely. runc (whose init also runs them after setupScheduler) does not check it.
        let hooks = crate::hooks::Phase::StartContainer.of(spec.hooks().as_ref());
        let attr = process.scheduler().as_ref().map(sched_attr).transpose()?;
        if attr.is_some_and(|a| a.policy == 6 && a.flags & 0x01 == 0) && !hooks.is_empty() {
            return Err(
                "process.scheduler: SCHED_DEADLINE without SCHED_FLAG_RESET_ON_FORK \
                cannot fork, so the init cannot start hooks.startContainer"
                    .into(),
            );
        }
    }
    if let Some(linux) = spec.linux() {
        if let Some(p) = linux.personality() {
            if let Some(flag) = p.flags().iter().flatten().next() {
                // runc only warns; the spec defines no flag, so one given is a config error.
                return Err(format!(
                    "linux.personality.flags: {flag:?} is not supported (no flags are defined)"
                ));
            }
        }
        if let Some(m) = linux.memory_policy() {
            mempolicy(m)?;
        }
    }
    Ok(())
}

/// The checks of [`validate`] that concern the process alone (also run on `exec`'s process).
pub fn validate_process(process: &Process) -> std::result::Result<(), String> {
    if let Some(io) = process.io_priority() {
        ioprio(io)?;
    }
    if let Some(s) = process.scheduler() {
        sched_attr(s)?;
    }
    if let Some(a) = process.exec_cpu_affinity() {
        affinity(a)?;
    }
    Ok(())
}

/// In the init and in an exec'd process, before the user and capability switch (raising a
/// priority needs CAP_SYS_NICE). runc's order: scheduler, I/O priority, personality, NUMA.
pub fn apply(
    process: &Process,
    personality: Option<&LinuxPersonality>,
    memory_policy: Option<&LinuxMemoryPolicy>,
) -> Result<()> {
    if let Some(s) = process.scheduler() {
        set_scheduler(s)?;
    }
    if let Some(io) = process.io_priority() {
        let (class, data) = ioprio(io).map_err(Error::Unsupported)?;
        // runc's `ioprioWhoPgrp` constant is 1, which is IOPRIO_WHO_PROCESS: it sets the
        // process itself (children inherit it). So do we: a true IOPRIO_WHO_PGRP would reach
        // host processes in an exec'd process's group (the init has a session of its own).
        sched::ioprio_set_self(class, data).map_err(Error::sys("ioprio_set"))?;
    }
    if let Some(p) = personality {
        let persona: libc::c_ulong = match p.domain() {
            LinuxPersonalityDomain::PerLinux => 0x0000,   // PER_LINUX
            LinuxPersonalityDomain::PerLinux32 => 0x0008, // PER_LINUX32
        };
        sched::personality(persona).map_err(Error::sys("personality"))?;
    }
    if let Some(m) = memory_policy {
        let (mode, nodes) = mempolicy(m).map_err(Error::Unsupported)?;
        sched::set_mempolicy(mode, &nodes).map_err(Error::sys("set_mempolicy"))?;
    }
    Ok(())
}

/// oci-spec 0.8.4 spells two scheduler flags its own way (`SCHED_RESET_ON_FORK`,
/// `SCHED_FLAG_D_L_OVERRUN`): rewrite the spec's names in a `process` JSON value before it
/// is deserialized.
pub fn fix_scheduler_flags(process: &mut Value) {
    let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for flag in flags {
        let ours = match flag.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *flag = Value::from(ours);
    }
}

fn set_scheduler(s: &Scheduler) -> Result<()> {
    let attr = sched_attr(s).map_err(Error::Unsupported)?;
    match sched::sched_setattr_self(&attr) {
        Ok(()) => Ok(()),
        // SCHED_DEADLINE needs an affinity spanning the whole root domain: with a cpuset (or
        // a pinned runtime) it cannot be had. runc's wording.
        Err(nix::errno::Errno::EPERM) if attr.policy == 6 && restricted_affinity() => Err(
            Error::Unsupported("process scheduler can't be used together with AllowedCPUs".into()),
        ),
        Err(errno) => Err(Error::Sys {
            syscall: "sched_setattr",
            errno,
        }),
    }
}

/// Whether we may run on fewer CPUs than are online.
fn restricted_affinity() -> bool {
    let online = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN);
    match (online, sched::sched_getaffinity(0, MAX_ID)) {
        (Ok(Some(n)), Ok(mine)) => (mine.count() as i64) < n,
        _ => false,
    }
}

fn ioprio(io: &LinuxIOPriority) -> std::result::Result<(u32, u32), String> {
    let priority = io.priority();
    if !(0..=7).contains(&priority) {
        return Err(format!(
            "process.ioPriority.priority {priority} out of range 0-7"
        ));
    }
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    Ok((class, priority as u32))
}

fn sched_attr(s: &Scheduler) -> std::result::Result<SchedAttr, String> {
    use LinuxSchedulerPolicy as P;
    let policy = *s.policy();
    let (number, name) = match policy {
        P::SchedOther => (0, "SCHED_OTHER"),
        P::SchedFifo => (1, "SCHED_FIFO"),
        P::SchedRr => (2, "SCHED_RR"),
        P::SchedBatch => (3, "SCHED_BATCH"),
        P::SchedIso => (4, "SCHED_ISO"),
        P::SchedIdle => (5, "SCHED_IDLE"),
        P::SchedDeadline => (6, "SCHED_DEADLINE"),
    };
    let nice = s.nice().unwrap_or(0);
    if matches!(policy, P::SchedOther | P::SchedBatch) && !(-20..=19).contains(&nice) {
        return Err(format!(
            "process.scheduler.nice {nice} out of range -20..19 (policy {name})"
        ));
    }
    let priority = s.priority().unwrap_or(0);
    if matches!(policy, P::SchedFifo | P::SchedRr) {
        // The kernel's range for the real-time policies (0 is EINVAL there).
        if !(1..=99).contains(&priority) {
            return Err(format!(
                "process.scheduler.priority {priority} out of range 1-99 (policy {name})"
            ));
        }
    } else if priority != 0 {
        return Err(format!(
            "process.scheduler.priority can only be specified for SCHED_FIFO or SCHED_RR, not {name}"
        ));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy != P::SchedDeadline && (runtime, deadline, period) != (0, 0, 0) {
        return Err(format!(
            "process.scheduler runtime/deadline/period can only be specified for SCHED_DEADLINE, not {name}"
        ));
    }
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    Ok(SchedAttr {
        policy: number,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
        ..SchedAttr::default()
    })
}

fn mempolicy(m: &LinuxMemoryPolicy) -> std::result::Result<(i32, Mask), String> {
    use MemoryPolicyModeType as M;
    let (mode, name) = match m.mode() {
        M::MpolDefault => (0, "MPOL_DEFAULT"),
        M::MpolPreferred => (1, "MPOL_PREFERRED"),
        M::MpolBind => (2, "MPOL_BIND"),
        M::MpolInterleave => (3, "MPOL_INTERLEAVE"),
        M::MpolLocal => (4, "MPOL_LOCAL"),
        M::MpolPreferredMany => (5, "MPOL_PREFERRED_MANY"),
        M::MpolWeightedInterleave => (6, "MPOL_WEIGHTED_INTERLEAVE"),
    };
    let nodes = match m.nodes().as_deref() {
        None => Mask::default(),
        Some(list) => parse_list(list)
            .map_err(|e| format!("linux.memoryPolicy.nodes {list:?}: {e}"))?
            .unwrap_or_default(),
    };
    let n = nodes.count();
    match m.mode() {
        M::MpolDefault | M::MpolLocal if n != 0 => {
            return Err(format!(
                "linux.memoryPolicy: mode {name} requires 0 nodes but got {n}"
            ))
        }
        M::MpolBind | M::MpolInterleave | M::MpolPreferredMany | M::MpolWeightedInterleave
            if n == 0 =>
        {
            return Err(format!(
                "linux.memoryPolicy: mode {name} requires at least one node but got 0"
            ))
        }
        _ => {}
    }
    let mut flags = 0;
    for f in m.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    if flags & (3 << 14) == 3 << 14 {
        return Err(
            "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES \
                    are mutually exclusive"
                .into(),
        );
    }
    if flags & (1 << 13) != 0 && !matches!(m.mode(), M::MpolBind | M::MpolPreferredMany) {
        return Err(format!(
            "linux.memoryPolicy.flags: MPOL_F_NUMA_BALANCING needs mode MPOL_BIND or \
             MPOL_PREFERRED_MANY, not {name}"
        ));
    }
    Ok((mode | flags, nodes))
}

/// `initial` and `final` as masks (an empty list is no list, as in runc).
pub fn affinity(a: &ExecCPUAffinity) -> std::result::Result<(Option<Mask>, Option<Mask>), String> {
    let parse = |field: &str, list: Option<&String>| match list {
        None => Ok(None),
        Some(list) => {
            parse_list(list).map_err(|e| format!("process.execCPUAffinity.{field} {list:?}: {e}"))
        }
    };
    Ok((
        parse("initial", a.initial().as_ref())?,
        parse("final", a.cpu_affinity_final().as_ref())?,
    ))
}

/// A CPU or node list, "0-3,7" (runc's ToCPUSet: spaces and empty elements allowed).
fn parse_list(list: &str) -> std::result::Result<Option<Mask>, String> {
    if list.is_empty() {
        return Ok(None);
    }
    let id = |s: &str| match s.trim().parse::<usize>() {
        Ok(n) if n <= MAX_ID => Ok(n),
        Ok(_) => Err(format!("values larger than {MAX_ID} are not supported")),
        Err(_) => Err(format!("{s:?} is not a number")),
    };
    let mut mask = Mask::default();
    for r in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let (start, end) = match r.split_once('-') {
            Some((a, b)) => (id(a)?, id(b)?),
            None => (id(r)?, id(r)?),
        };
        if start > end {
            return Err(format!("invalid range {r}"));
        }
        (start..=end).for_each(|i| mask.set(i));
    }
    if mask.count() == 0 {
        return Err("no members found".into());
    }
    Ok(Some(mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// "process fields | other top-level fields | empty or a part of the error".
    const CASES: &[&str] = &[
        r#"{"ioPriority":{"class":"IOPRIO_CLASS_RT","priority":7}} | {} | "#,
        r#"{"ioPriority":{"class":"IOPRIO_CLASS_BE","priority":9}} | {} | process.ioPriority.priority 9 out of range 0-7"#,
        r#"{"scheduler":{"policy":"SCHED_OTHER","nice":5}} | {} | "#,
        r#"{"scheduler":{"policy":"SCHED_FIFO","priority":10,"flags":["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN","SCHED_FLAG_KEEP_POLICY"]}} | {} | "#,
        r#"{"scheduler":{"policy":"SCHED_DEADLINE","runtime":1,"deadline":2}} | {} | "#,
        r#"{"scheduler":{"policy":"SCHED_DEADLINE","runtime":1}} | {"hooks":{"startContainer":[{"path":"/x"}]}} | SCHED_DEADLINE without SCHED_FLAG_RESET_ON_FORK cannot fork, so the init cannot start hooks.startContainer"#,
        r#"{"scheduler":{"policy":"SCHED_DEADLINE","flags":["SCHED_FLAG_RECLAIM"]}} | {"hooks":{"startContainer":[{"path":"/x"}]}} | SCHED_FLAG_RESET_ON_FORK"#,
        r#"{"scheduler":{"policy":"SCHED_DEADLINE","flags":["SCHED_FLAG_RESET_ON_FORK"]}} | {"hooks":{"startContainer":[{"path":"/x"}]}} | "#,
        r#"{"scheduler":{"policy":"SCHED_DEADLINE"}} | {"hooks":{"startContainer":[],"poststart":[{"path":"/x"}]}} | "#,
        r#"{"scheduler":{"policy":"SCHED_FIFO","priority":1}} | {"hooks":{"startContainer":[{"path":"/x"}]}} | "#,
        r#"{"scheduler":{"policy":"SCHED_BATCH","nice":20}} | {} | nice 20 out of range"#,
        r#"{"scheduler":{"policy":"SCHED_OTHER","priority":3}} | {} | only be specified for SCHED_FIFO"#,
        r#"{"scheduler":{"policy":"SCHED_RR"}} | {} | priority 0 out of range 1-99"#,
        r#"{"scheduler":{"policy":"SCHED_IDLE","period":5}} | {} | only be specified for SCHED_DEADLINE"#,
        r#"{"scheduler":{"policy":"SCHED_NOPE"}} | {} | unknown variant"#,
        r#"{"execCPUAffinity":{"initial":"0","final":"0-1"}} | {} | "#,
        r#"{"execCPUAffinity":{"final":"3-1"}} | {} | process.execCPUAffinity.final "3-1": invalid range 3-1"#,
        r#"{} | {"linux":{"personality":{"domain":"LINUX32"}}} | "#,
        r#"{} | {"linux":{"personality":{"domain":"LINUX","flags":["X"]}}} | linux.personality.flags"#,
        r#"{} | {"linux":{"memoryPolicy":{"mode":"MPOL_BIND","nodes":"0-1","flags":["MPOL_F_STATIC_NODES"]}}} | "#,
        r#"{} | {"linux":{"memoryPolicy":{"mode":"MPOL_PREFERRED"}}} | "#,
        r#"{} | {"linux":{"memoryPolicy":{"mode":"MPOL_DEFAULT"}}} | "#,
        r#"{} | {"linux":{"memoryPolicy":{"mode":"MPOL_DEFAULT","nodes":"0-7"}}} | MPOL_DEFAULT requires 0 nodes but got 8"#,
        r#"{} | {"linux":{"memoryPolicy":{"mode":"MPOL_INTERLEAVE"}}} | requires at least one node"#,
        r#"{} | {"linux":{"memoryPolicy":{"mode":"MPOL_BIND","nodes":"0-9876543210"}}} | linux.memoryPolicy.nodes"#,
        r#"{} | {"linux":{"memoryPolicy":{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}}} | mutually exclusive"#,
        r#"{} | {"linux":{"memoryPolicy":{"mode":"MPOL_INTERLEAVE","nodes":"0","flags":["MPOL_F_NUMA_BALANCING"]}}} | MPOL_F_NUMA_BALANCING needs"#,
        r#"{} | {"linux":{"memoryPolicy":{"nodes":"0"}}} | mode"#,
    ];

    #[test]
    fn validation() {
        for case in CASES {
            let [process, other, want] = [0, 1, 2].map(|i| case.split(" | ").nth(i).unwrap());
            let mut p: Value = serde_json::from_str(process).unwrap();
            (p["cwd"], p["args"]) = (json!("/"), json!(["sh"]));
            p["user"] = json!({"uid": 0, "gid": 0});
            fix_scheduler_flags(&mut p);
            let mut s: Value = serde_json::from_str(other).unwrap();
            (s["ociVersion"], s["process"]) = (json!("1.3.0"), p);
            let got = serde_json::from_value(s)
                .map_err(|e| e.to_string())
                .and_then(|s| validate(&s));
            match (want.is_empty(), got) {
                (true, Ok(())) => {}
                (false, Err(e)) if e.contains(want) => {}
                (_, got) => panic!("{process} {other}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn conversions() {
        let m = parse_list(" 0-2, ,7,").unwrap().unwrap();
        assert!(m.count() == 4 && m.is_set(7) && !m.is_set(3));
        assert_eq!(parse_list("").unwrap(), None);
        assert!(parse_list(",").unwrap_err().contains("no members"));
        let s: Scheduler = serde_json::from_value(json!({"policy": "SCHED_DEADLINE",
            "runtime": 1, "deadline": 2, "period": 3, "flags": ["SCHED_FLAG_RECLAIM"]}))
        .unwrap();
        let a = sched_attr(&s).unwrap();
        assert_eq!(
            (a.policy, a.flags, a.runtime, a.deadline, a.period),
            (6, 2, 1, 2, 3)
        );
        let m: LinuxMemoryPolicy = serde_json::from_value(
            json!({"mode": "MPOL_BIND", "nodes": "0,2", "flags": ["MPOL_F_STATIC_NODES"]}),
        )
        .unwrap();
        let (mode, nodes) = mempolicy(&m).unwrap();
        assert_eq!((mode, nodes.count()), (2 | 1 << 15, 2));
    }
}
