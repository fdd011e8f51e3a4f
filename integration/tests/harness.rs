//! The harness itself: the leak check must see what a runtime leaves behind.

use gpurun_integration::*;

#[test]
fn leak_check_sees_a_live_container() {
    if !require_root() {
        return;
    }
    let env = Env::new("leak_check_sees_a_live_container");
    env.config(|s| set_args(s, &["sleep", "3600"]));
    let id = env.id();
    env.create_ok(&id);
    env.gpurun(&["start", &id]).assert_ok();
    env.wait_status(&id, "running");
    let leaks = env.leaks_now();
    assert_eq!(leaks.state_entries, [id.as_str()], "{leaks}");
    assert_eq!(leaks.pids, [env.pid(&id)], "{leaks}");
    if !is_gpurun() {
        assert!(
            !leaks.cgroups.is_empty(),
            "runc creates cgroups named after the id: {leaks}"
        );
    }
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
