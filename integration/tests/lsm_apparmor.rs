//! AppArmor: `process.apparmorProfile` confines the init and every exec'd process,
//! `exec --apparmor` overrides it, an unknown profile fails `create` cleanly, and Docker's
//! `--security-opt apparmor=` reaches the runtime.
//!
//! Where AppArmor is not enabled (our hosts) only the refusals run; the rest needs a kernel with
//! AppArmor and securityfs mounted: `VM_LSM=apparmor integration/vm/run-suite.sh`, which sets
//! `GPURUN_REQUIRE_LSM=apparmor` so that a guest without it fails instead of skipping.

use gpurun_integration::*;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Loaded once per test binary (by `apparmor_parser -r`) and left loaded.
const PROFILE: &str = "gpurun-test-deny-tmp";
const PROFILE_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/testdata/lsm/apparmor-deny-tmp.profile"
);
/// What a process sees in /proc/self/attr/current, then whether it may write under /tmp.
const PROBE: &str =
    "cat /proc/self/attr/current; touch /tmp/x 2>/dev/null && echo wrote || echo denied";

/// runc's test (and gpurun's): securityfs shows AppArmor and the module is enabled.
fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.first() == Some(&b'Y'))
}

/// True with the test profile loaded; false after a counted skip where there is no AppArmor
/// (a failure where the run asked for it).
fn profile_loaded() -> bool {
    if !apparmor_enabled() {
        assert_ne!(
            std::env::var("GPURUN_REQUIRE_LSM").as_deref(),
            Ok("apparmor"),
            "GPURUN_REQUIRE_LSM=apparmor, but AppArmor is not enabled (securityfs not mounted?)"
        );
        skip("AppArmor is not enabled on this host");
        return false;
    }
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        let out = Command::new("apparmor_parser")
            .args(["-r", "--skip-cache", PROFILE_FILE])
            .output()
            .map_err(|e| format!("apparmor_parser (Debian package apparmor): {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "apparmor_parser -r {PROFILE_FILE}: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    });
    if let Err(e) = loaded {
        panic!("{e}");
    }
    true
}

/// A tmpfs at /tmp (the root is read-only), and the profile when given.
fn with_profile(spec: &mut Value, profile: Option<&str>) {
    spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777"]
    }));
    if let Some(p) = profile {
        spec["process"]["apparmorProfile"] = json!(p);
    }
}

fn confined() -> String {
    format!("{PROFILE} (enforce)\ndenied\n")
}

#[test]
fn features_report_apparmor() {
    if !require_root() {
        return;
    }
    let env = Env::new("aa_features");
    let out = env.gpurun(&["features"]);
    out.assert_ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("features JSON");
    assert_eq!(v["linux"]["apparmor"]["enabled"], json!(true), "{v}");
    env.assert_clean();
}

/// No AppArmor here: a profile in the spec, or `exec --apparmor`, fails and leaves nothing.
#[test]
fn profile_refused_without_apparmor() {
    if !require_root() {
        return;
    }
    if apparmor_enabled() {
        skip("AppArmor is enabled here (the refusal needs a host without it)");
        return;
    }
    let env = Env::new("aa_refused");
    env.config(|s| with_profile(s, Some(PROFILE)));
    let id = env.id();
    let out = env.create(&id);
    // runc fails in its init (writing attr/exec), with another message.
    out.assert_fail();
    if is_gpurun() {
        out.assert_err("AppArmor is not enabled on this host");
        assert!(out.stderr.contains(PROFILE), "{}", out.describe());
    }
    assert_eq!(env.status(&id), None, "a failed create left a container");

    let id = env.running(|s| with_profile(s, None));
    env.gpurun(&["exec", "--apparmor", PROFILE, &id, "true"])
        .assert_fail();
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn profile_confines_init() {
    if !require_root() || !profile_loaded() {
        return;
    }
    let env = Env::new("aa_init");
    let out = env.sh(PROBE, |s| with_profile(s, Some(PROFILE)));
    assert_eq!(out.stdout, confined(), "{}", out.describe());
    // noNewPrivileges (hello.json's) does not stand in the way; nor does its absence
    let out = env.sh(PROBE, |s| {
        with_profile(s, Some(PROFILE));
        s["process"]["noNewPrivileges"] = json!(false);
    });
    assert_eq!(out.stdout, confined(), "{}", out.describe());
    env.assert_clean();
}

/// The control: the same container without a profile is unconfined and may write.
#[test]
fn no_profile_is_unconfined() {
    if !require_root() || !profile_loaded() {
        return;
    }
    let env = Env::new("aa_none");
    let out = env.sh(PROBE, |s| with_profile(s, None));
    assert_eq!(out.stdout, "unconfined\nwrote\n", "{}", out.describe());
    env.assert_clean();
}

#[test]
fn exec_inherits_and_overrides_the_profile() {
    if !require_root() || !profile_loaded() {
        return;
    }
    let env = Env::new("aa_exec");
    let id = env.running(|s| with_profile(s, Some(PROFILE)));
    let init = env.pid(&id);
    let attr = std::fs::read_to_string(format!("/proc/{init}/attr/current")).unwrap();
    assert_eq!(attr.trim_end(), format!("{PROFILE} (enforce)"), "init");

    let out = env.gpurun(&["exec", &id, "sh", "-c", PROBE]);
    out.assert_ok();
    assert_eq!(out.stdout, confined(), "{}", out.describe());
    let out = env.gpurun(&["exec", "--apparmor", "unconfined", &id, "sh", "-c", PROBE]);
    out.assert_ok();
    assert_eq!(out.stdout, "unconfined\nwrote\n", "{}", out.describe());
    env.gpurun(&["delete", "--force", &id]).assert_ok();

    // and the other way round: exec --apparmor confines a process of an unconfined container
    let id = env.running(|s| with_profile(s, None));
    let out = env.gpurun(&["exec", "--apparmor", PROFILE, &id, "sh", "-c", PROBE]);
    out.assert_ok();
    assert_eq!(out.stdout, confined(), "{}", out.describe());
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

/// CVE-2019-16884: a container that may mount puts a tmpfs with look-alike attr files over its
/// /proc; an `exec` with a profile must still run confined (gpurun writes the profile through
/// its own procfs, opened before it enters the container) or not at all.
#[test]
fn fake_proc_cannot_unconfine_an_exec() {
    if !require_root() || !profile_loaded() {
        return;
    }
    let env = Env::new("aa_fakeproc");
    let fake = "mount -t tmpfs tmpfs /proc && mkdir -p /proc/thread-self/attr/apparmor && \
        touch /proc/thread-self/attr/apparmor/exec /proc/thread-self/attr/exec /proc/ready; \
        exec sleep 3600";
    let id = env.running(|s| {
        with_profile(s, None);
        set_args(s, &["sh", "-c", fake]);
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set] = json!(["CAP_SYS_ADMIN"]);
        }
    });
    let root = format!("/proc/{}/root", env.pid(&id));
    poll(Duration::from_secs(10), || {
        Path::new(&format!("{root}/proc/ready"))
            .exists()
            .then_some(())
    })
    .expect("the container's fake /proc never appeared");
    let write = "touch /tmp/ran 2>/dev/null || echo denied";
    let out = env.gpurun(&["exec", "--apparmor", PROFILE, &id, "sh", "-c", write]);
    if is_gpurun() {
        // gpurun-only: runc 1.1.5 refuses the exec instead (it closes fds via /proc/self/fd)
        out.assert_ok();
        assert_eq!(out.stdout, "denied\n", "{}", out.describe());
    } else {
        out.assert_fail();
    }
    assert!(
        !Path::new(&format!("{root}/tmp/ran")).exists(),
        "ran unconfined"
    );
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn unknown_profile_fails_create_cleanly() {
    if !require_root() || !profile_loaded() {
        return;
    }
    let env = Env::new("aa_unknown");
    let missing = "gpurun-test-no-such-profile";
    env.config(|s| with_profile(s, Some(missing)));
    let id = env.id();
    let out = env.create(&id);
    // runc: "apparmor failed to apply profile: write …/attr/apparmor/exec: no such file …"
    out.assert_err("profile");
    if is_gpurun() {
        out.assert_err(&format!("{missing:?}: no such profile is loaded"));
    }
    assert_eq!(env.status(&id), None, "a failed create left a container");
    env.assert_clean();
}

/// dockerd → containerd → shim → the runtime: `--security-opt apparmor=PROFILE`, and Docker's
/// own `docker-default` for a plain `docker run` (integration/engines/docker.sh with
/// DOCKER_ONLY: only the checks of testdata/lsm/docker-apparmor.sh).
#[test]
fn docker_security_opt_apparmor() {
    if !require_root() || !profile_loaded() {
        return;
    }
    if !Path::new("/usr/sbin/dockerd").exists() {
        skip("docker.io not installed");
        return;
    }
    let checks =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/lsm/docker-apparmor.sh");
    engine_script("docker.sh", &[("DOCKER_ONLY", &checks)]);
}
