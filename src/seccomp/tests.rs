//! Compiler tests: rule → filter mapping, precedence plan, errors; proptests at the bottom.
//! Verdicts come from running the compiled BPF in `bpf::run` with the kernel's combination
//! rule (`Program::verdict`), so they test the very instructions that would be loaded.

use super::*;
use serde_json::json;

const ERRNO: u32 = libc::SECCOMP_RET_ERRNO;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

fn profile(v: serde_json::Value) -> Profile {
    serde_json::from_value(v).unwrap()
}

fn prog(v: serde_json::Value) -> Program {
    compile(&profile(v)).unwrap()
}

fn err(v: serde_json::Value) -> String {
    compile(&profile(v)).unwrap_err().to_string()
}

fn nr(name: &str) -> i64 {
    names::number(name).unwrap()
}

#[test]
fn errno_rules_and_default() {
    let p = prog(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["not_a_syscall"], "action": "SCMP_ACT_KILL"}
        ]
    }));
    assert_eq!(p.verdict(nr("read"), [0; 6]), ALLOW);
    assert_eq!(
        p.verdict(nr("mkdir"), [0; 6]),
        ERRNO | 1,
        "EPERM by default"
    );
    assert_eq!(p.verdict(nr("rmdir"), [0; 6]), ERRNO | 5);
    assert_eq!(p.verdict(nr("open"), [0; 6]), ERRNO | 38, "defaultErrnoRet");
    // guard + ERRNO(5) + ERRNO(1) + default; ALLOW needs no filter of its own.
    assert_eq!(
        p.filter_names(),
        [
            "architecture guard",
            "SCMP_ACT_ERRNO(5)",
            "SCMP_ACT_ERRNO(1)",
            "defaultAction"
        ]
    );
}

#[test]
fn argument_filters() {
    let p = prog(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                      {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mmap"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 2, "value": 0x6, "valueTwo": 0x6, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 1, "value": 100, "op": "SCMP_CMP_GT"},
                      {"index": 1, "value": 3, "op": "SCMP_CMP_LT"}]},
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }));
    let personality = nr("personality");
    assert_eq!(p.verdict(personality, [8, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(p.verdict(personality, [0, 0, 0, 0, 0, 0]), ERRNO | 1);
    assert_eq!(
        p.verdict(personality, [8 | 1 << 32, 0, 0, 0, 0, 0]),
        ERRNO | 1,
        "64-bit compare"
    );
    let socket = nr("socket");
    assert_eq!(
        p.verdict(socket, [16, 3, 9, 0, 0, 0]),
        ERRNO | 22,
        "both ANDed"
    );
    assert_eq!(p.verdict(socket, [16, 3, 0, 0, 0, 0]), ALLOW);
    assert_eq!(p.verdict(socket, [2, 3, 9, 0, 0, 0]), ALLOW);
    let mmap = nr("mmap");
    assert_eq!(
        p.verdict(mmap, [0, 0, 7, 0, 0, 0]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(p.verdict(mmap, [0, 0, 3, 0, 0, 0]), ALLOW);
    // One argument compared twice: ORed, as runc does.
    let kill = nr("kill");
    assert_eq!(
        p.verdict(kill, [1, 200, 0, 0, 0, 0]),
        libc::SECCOMP_RET_TRAP
    );
    assert_eq!(p.verdict(kill, [1, 2, 0, 0, 0, 0]), libc::SECCOMP_RET_TRAP);
    assert_eq!(p.verdict(kill, [1, 15, 0, 0, 0, 0]), ALLOW);
    // MASKED_EQ whose valueTwo has bits outside the mask can never match (libseccomp).
    assert_eq!(p.verdict(nr("dup"), [3, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(p.verdict(nr("dup"), [2, 0, 0, 0, 0, 0]), ALLOW);
}

#[test]
fn precedence_and_ties() {
    let p = prog(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
            {"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3},
            {"names": ["mkdir", "chdir"], "action": "SCMP_ACT_KILL"},
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getppid"], "action": "SCMP_ACT_TRACE"}
        ]
    }));
    assert_eq!(
        p.verdict(nr("mkdir"), [0; 6]),
        libc::SECCOMP_RET_KILL_THREAD
    );
    assert_eq!(p.verdict(nr("rmdir"), [0; 6]), ERRNO | 3);
    assert_eq!(p.verdict(nr("getpid"), [0; 6]), libc::SECCOMP_RET_LOG);
    assert_eq!(
        p.verdict(nr("getppid"), [0; 6]),
        libc::SECCOMP_RET_TRACE | 1
    );
    // Same action, different errno: the first in the profile wins.
    let p = prog(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3}
        ]
    }));
    assert_eq!(p.verdict(nr("mkdir"), [0; 6]), ERRNO | 2);
}

#[test]
fn rules_with_the_default_action_are_dropped() {
    let p = prog(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
        ]
    }));
    assert_eq!(p.filter_names(), ["architecture guard", "defaultAction"]);
    assert_eq!(p.verdict(nr("mkdir"), [0; 6]), ERRNO | 1);
}

#[test]
fn foreign_abis() {
    let i386 = bpf::Data {
        nr: 5,
        arch: 3 | 0x4000_0000,
        args: [0; 6],
    };
    let x32 = bpf::Data::native(bpf::X32_SYSCALL_BIT as i32 | 2, [0; 6]);
    let listed = prog(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["open"], "action": "SCMP_ACT_KILL_PROCESS"}]
    }));
    let enosys = ERRNO | libc::ENOSYS as u32;
    assert_eq!(listed.verdict_for(&i386), enosys);
    assert_eq!(listed.verdict_for(&x32), enosys);
    let unlisted = prog(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert_eq!(unlisted.verdict_for(&i386), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(unlisted.verdict_for(&x32), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(unlisted.verdict(nr("open"), [0; 6]), ALLOW);
}

#[test]
fn install_order_keeps_seccomp_callable() {
    // The default filter denies seccomp(2) (not listed): it must be the last one installed.
    let p = prog(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_KILL"}
        ]
    }));
    assert_eq!(p.filter_names().last(), Some(&"defaultAction"));
    // A rule that denies seccomp(2) moves its filter to the end.
    let p = prog(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["seccomp"], "action": "SCMP_ACT_ERRNO"}
        ]
    }));
    assert_eq!(p.filter_names().last(), Some(&"SCMP_ACT_ERRNO(1)"));
    // Two filters denying it cannot both be installed.
    let e = err(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["seccomp"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["seccomp"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    assert!(e.contains("more than one"), "{e}");
}

#[test]
fn bad_profiles() {
    let with_rule = |rule: serde_json::Value| {
        err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}))
    };
    let e = err(json!({"defaultAction": "SCMP_ACT_FOO"}));
    assert!(
        e.contains("defaultAction: unknown action \"SCMP_ACT_FOO\""),
        "{e}"
    );
    let e = with_rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}));
    assert_eq!(
        e,
        "linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"
    );
    let e = with_rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}));
    assert!(e.contains("syscalls[0].args[0]: argument index 6"), "{e}");
    let e = with_rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}));
    assert!(e.contains("unknown operator \"SCMP_CMP_ABOUT\""), "{e}");
    let e = with_rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}));
    assert!(e.contains("errnoRet is only valid"), "{e}");
    let e = with_rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}));
    assert!(e.contains("out of range"), "{e}");
    let e = with_rule(json!({"names": [""], "action": "SCMP_ACT_ERRNO"}));
    assert!(e.contains("empty syscall name"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}));
    assert!(e.contains("unknown architecture"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}));
    assert!(e.contains("unknown"), "{e}");
}

#[test]
fn flags_are_passed_when_the_kernel_has_them() {
    let p = prog(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
    ]}));
    assert_eq!(p.flags, 1 | 2 | 4);
}

#[test]
fn shipped_default_profile() {
    let text = DEFAULT_PROFILE;
    let p = compile(&serde_json::from_str(text).unwrap()).unwrap();
    assert_eq!(p.verdict(nr("read"), [0; 6]), ALLOW);
    assert_eq!(p.verdict(nr("seccomp"), [1, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(p.verdict(nr("sethostname"), [0; 6]), ERRNO | 1);
    assert_eq!(p.verdict(nr("init_module"), [0; 6]), ERRNO | 1);
    assert_eq!(
        p.verdict(nr("add_key"), [0; 6]),
        ERRNO | 38,
        "not listed: ENOSYS"
    );
    assert_eq!(p.verdict(nr("personality"), [8, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(p.verdict(nr("personality"), [1, 0, 0, 0, 0, 0]), ERRNO | 38);
    assert!(p.instructions() > 300, "{}", p.instructions());
}

mod notify;
mod prop;
