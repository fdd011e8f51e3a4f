//! SCMP_ACT_NOTIFY: one listener filter, its place in the stack, the profiles refused, and the
//! container process state sent to the agent.

use super::super::*;
use super::{err, nr, profile, prog, ALLOW, ERRNO};
use serde_json::json;

const NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;

fn notify_profile(extra: serde_json::Value) -> serde_json::Value {
    let mut p = json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "listenerPath": "/run/agent.sock",
        "syscalls": [
            {"names": ["read", "seccomp", "sendto"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["chmod"], "action": "SCMP_ACT_NOTIFY",
             "args": [{"index": 1, "value": 0o777, "op": "SCMP_CMP_EQ"}]},
            {"names": ["unlink"], "action": "SCMP_ACT_TRACE"}
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

#[test]
fn notify_rules_share_one_listener_filter() {
    let p = prog(notify_profile(json!({})));
    assert!(p.has_notify());
    let notify: Vec<&Filter> = p.filters.iter().filter(|f| f.notify).collect();
    assert_eq!(notify.len(), 1, "{:?}", p.filter_names());
    assert_eq!(notify[0].what, "SCMP_ACT_NOTIFY");
    assert_eq!(p.verdict(nr("mkdir"), [0; 6]), NOTIFY);
    assert_eq!(p.verdict(nr("mkdirat"), [0; 6]), NOTIFY);
    assert_eq!(p.verdict(nr("chmod"), [0, 0o777, 0, 0, 0, 0]), NOTIFY);
    assert_eq!(p.verdict(nr("chmod"), [0, 0o755, 0, 0, 0, 0]), ERRNO | 38);
    // USER_NOTIF is weaker than ERRNO, stronger than TRACE.
    assert_eq!(p.verdict(nr("rmdir"), [0; 6]), ERRNO | 5);
    assert_eq!(p.verdict(nr("unlink"), [0; 6]), libc::SECCOMP_RET_TRACE | 1);
    assert_eq!(p.verdict(nr("read"), [0; 6]), ALLOW);
    // No stand-in TRACE left anywhere.
    let standin = libc::SECCOMP_RET_TRACE | compile::NOTIFY_STANDIN;
    for f in &p.filters {
        assert!(
            f.insns.iter().all(|i| i.k != standin || i.code != 0x06),
            "{}",
            f.what
        );
    }
    // The listener flag is the notify filter's alone; TSYNC is dropped there.
    let t = prog(notify_profile(
        json!({"flags": ["SECCOMP_FILTER_FLAG_TSYNC"]}),
    ));
    assert_eq!((t.flags, t.listener_flags), (1, 0));
    let plain = prog(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    assert!(
        !plain.has_notify(),
        "listenerPath without NOTIFY rules is ignored"
    );
}

#[test]
fn notify_filter_that_blocks_seccomp_goes_last() {
    let p = prog(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
        "syscalls": [{"names": ["seccomp", "mkdir"], "action": "SCMP_ACT_NOTIFY"},
                     {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    assert_eq!(p.filter_names().last(), Some(&"SCMP_ACT_NOTIFY"));
}

#[test]
fn bad_notify_profiles() {
    let e = err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a"}));
    assert!(e.contains("cannot be used as default action"), "{e}");
    for call in ["write", "sendmsg"] {
        let e = err(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
            "syscalls": [{"names": ["mkdir", call], "action": "SCMP_ACT_NOTIFY"}]}),
        );
        assert_eq!(
            e,
            format!(
                "linux.seccomp.syscalls[0]: SCMP_ACT_NOTIFY cannot be used for the {call} syscall"
            )
        );
    }
    let e = err(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(e.contains("needs linux.seccomp.listenerPath"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}));
    assert!(
        e.contains("listenerMetadata: must not be set without"),
        "{e}"
    );
    let e = err(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY", "errnoRet": 1}]}),
    );
    assert!(e.contains("errnoRet is only valid"), "{e}");
}

#[test]
fn container_process_state() {
    let state = br#"{"ociVersion":"1.2.0","id":"c1","pid":42,"status":"creating","bundle":"/b"}"#;
    let msg: serde_json::Value =
        serde_json::from_slice(&listener::process_state(43, Some("meta"), state)).unwrap();
    assert_eq!(
        msg,
        json!({"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 43, "metadata": "meta",
               "state": {"ociVersion": "1.2.0", "id": "c1", "pid": 42, "status": "creating",
                         "bundle": "/b"}})
    );
    let msg: serde_json::Value =
        serde_json::from_slice(&listener::process_state(43, None, state)).unwrap();
    assert!(msg.get("metadata").is_none(), "{msg}");
}

#[test]
fn missing_agent_is_a_clear_error() {
    let profile = profile(notify_profile(
        json!({"listenerPath": "/nonexistent/agent.sock"}),
    ));
    let e = listener::connect(&profile, &compile(&profile).unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to connect with seccomp agent specified in the seccomp profile: \
         connect /nonexistent/agent.sock: no such file or directory"
    );
}
