//! Soak: many containers in a row and many at once, with the full leak check at the end
//! (cgroups, processes, mounts, state, fds, BPF programs). Slow leaks — one cgroup or fd per
//! container — only show up here.

use std::process::Command;

use gpurun_integration::*;

#[test]
fn a_thousand_create_start_delete_cycles() {
    if !require_root() {
        return;
    }
    let env = Env::new("soak_cycles");
    env.config(|s| {
        set_args(s, &["true"]);
        s["linux"]["resources"] = json!({"memory": {"limit": 32 << 20}, "pids": {"limit": 16}});
    });
    let bundle = env.bundle.to_str().unwrap().to_string();
    for i in 0..1000 {
        let id = env.id();
        env.gpurun(&["create", "--bundle", &bundle, &id])
            .assert_ok();
        env.gpurun(&["start", &id]).assert_ok();
        env.wait_status(&id, "stopped");
        env.gpurun(&["delete", &id]).assert_ok();
        if i % 250 == 249 {
            // Early and cheap: a leak seen at 250 says more than one at 1000.
            assert!(
                env.leaks_now().is_empty(),
                "after {} cycles:\n{}",
                i + 1,
                env.leaks_now()
            );
        }
    }
    env.assert_clean();
}

#[test]
fn fifty_containers_at_once() {
    if !require_root() {
        return;
    }
    let env = Env::new("soak_parallel");
    env.config(|s| {
        set_args(s, &["sleep", "1000"]);
        s["linux"]["resources"] = json!({"memory": {"limit": 32 << 20}});
    });
    let ids: Vec<String> = (0..50).map(|_| env.id()).collect();
    let all = |args: &dyn Fn(&str) -> Vec<String>| {
        let children: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut cmd = Command::new(bin());
                cmd.arg("--root").arg(&env.state).args(args(id));
                cmd.env("GPURUN_IT", &env.marker);
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null());
                cmd.spawn().expect("spawn runtime")
            })
            .collect();
        for (mut child, id) in children.into_iter().zip(&ids) {
            assert!(child.wait().unwrap().success(), "{id}: {:?}", args(id));
        }
    };
    let bundle = env.bundle.to_str().unwrap().to_string();
    all(&|id: &str| {
        vec![
            "run".into(),
            "-d".into(),
            "--bundle".into(),
            bundle.clone(),
            id.into(),
        ]
    });
    for id in &ids {
        assert_eq!(env.status(id).as_deref(), Some("running"), "{id}");
    }
    let listed = env.gpurun(&["list", "-q"]);
    listed.assert_ok();
    assert_eq!(
        listed.stdout.lines().count(),
        ids.len(),
        "{}",
        listed.stdout
    );
    all(&|id: &str| vec!["delete".into(), "--force".into(), id.into()]);
    env.assert_clean();
}
