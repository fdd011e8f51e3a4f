//! The build context's stat cache (`<cache>/context/`): a no-change rebuild takes file digests
//! from it, and a file edited without changing its size or mtime is still seen as changed.

mod common;
use common::*;
use std::process::Command;

#[test]
fn edit_keeping_size_and_mtime_rebuilds_copy() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-context");
    let cache = env.dir.join("cache");
    let ctx = context(
        &env.dir.join("ctx"),
        "FROM scratch\nCOPY weights.bin /models/weights.bin\n",
        &[("weights.bin", "weights v1")],
    );
    // Recorded digests are trusted only for files last changed before the second they were
    // hashed in; without this wait the edit below would be caught by that guard alone.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let bundle = env.dir.join("bundle");
    let args = ["--bundle", bundle.to_str().unwrap(), ctx.to_str().unwrap()];
    let first = build(&cache, &args);
    first.ok();
    assert_eq!(first.executed(), 1, "{}", first.stdout);
    let recorded: Vec<_> = std::fs::read_dir(cache.join("context"))
        .expect("a stat cache for the context")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].contains("\"weights.bin\""), "{}", recorded[0]);
    let again = build(&cache, &args);
    again.ok();
    assert_eq!(
        (again.executed(), again.cached()),
        (0, 1),
        "{}",
        again.stdout
    );

    // same size, mtime put back: only the ctime tells
    let f = ctx.join("weights.bin");
    let reference = env.dir.join("mtime-ref");
    std::fs::write(&reference, "").unwrap();
    let touch = |from: &std::path::Path, to: &std::path::Path| {
        let st = Command::new("touch").arg("-r").arg(from).arg(to).status();
        assert!(st.is_ok_and(|s| s.success()), "touch -r");
    };
    touch(&f, &reference);
    let before = std::fs::metadata(&f).unwrap();
    std::fs::write(&f, "weights v2").unwrap();
    touch(&reference, &f);
    let after = std::fs::metadata(&f).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap())
    );
    let edited = build(&cache, &args);
    edited.ok();
    assert_eq!(
        (edited.executed(), edited.cached()),
        (1, 0),
        "{}",
        edited.stdout
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/models/weights.bin")).unwrap(),
        "weights v2"
    );
    assert_build_clean(&cache);
    env.assert_clean();
}
