//! SELinux: `process.selinuxLabel` is the context of the init and of exec'd processes
//! (`exec --process-label` overrides it), `linux.mountLabel` the `context=` of the
//! filesystems the runtime mounts (and the label of the mqueue root).
//!
//! Where SELinux is off (our hosts) only the refusals run. The rest needs a kernel booted with
//! SELinux (`security=selinux`) and selinuxfs mounted, with no policy loaded yet:
//! `VM_LSM=selinux integration/vm/run-suite.sh` (it sets `GPURUN_REQUIRE_LSM=selinux`, so that a
//! guest without SELinux fails instead of skipping). The tests then load a tiny policy of their
//! own (testdata/lsm/selinux-policy.conf, compiled by `checkpolicy`) and leave it permissive:
//! nothing is denied, but every label is real.

use gpurun_integration::*;
use std::process::Command;
use std::sync::OnceLock;

/// Types of testdata/lsm/selinux-policy.conf (not MLS: no level).
const LABEL: &str = "system_u:system_r:container_t";
const EXEC_LABEL: &str = "system_u:system_r:container_exec_t";
const MOUNT_LABEL: &str = "system_u:object_r:container_file_t";
/// The context of every process once the policy is loaded (its `kernel` initial SID).
const KERNEL_LABEL: &str = "system_u:system_r:kernel_t";
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/testdata/lsm/selinux-policy.conf"
);
const SELINUXFS: &str = "/sys/fs/selinux";

fn selinuxfs_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| parse_mountinfo(&m).iter().any(|m| m.fstype == "selinuxfs"))
}

/// A process's SELinux context (the attribute ends in a NUL).
fn context_of(attr: &str) -> String {
    attr.trim_end_matches(['\0', '\n']).to_string()
}

/// True with the test policy loaded (by the first caller); false after a counted skip where
/// there is no SELinux (a failure where the run asked for it) or another policy is loaded.
fn policy_loaded() -> bool {
    if !selinuxfs_mounted() {
        assert_ne!(
            std::env::var("GPURUN_REQUIRE_LSM").as_deref(),
            Ok("selinux"),
            "GPURUN_REQUIRE_LSM=selinux, but selinuxfs is not mounted (booted with security=selinux?)"
        );
        skip("SELinux is not enabled on this host (no selinuxfs)");
        return false;
    }
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        let current = context_of(&std::fs::read_to_string("/proc/self/attr/current").unwrap());
        if current == KERNEL_LABEL {
            return Ok(()); // (ours, loaded by an earlier run in this boot)
        }
        if current != "kernel" {
            // A real SELinux host: never replace its policy.
            return Err(format!("a policy is loaded already (we are {current:?})"));
        }
        let vers = std::fs::read_to_string(format!("{SELINUXFS}/policyvers")).unwrap();
        let bin = std::env::temp_dir().join(format!("gpurun-test-policy.{}", std::process::id()));
        let out = Command::new("checkpolicy")
            .args(["-U", "allow", "-c", vers.trim(), "-o"])
            .arg(&bin)
            .arg(POLICY)
            .output()
            .unwrap_or_else(|e| panic!("checkpolicy (Debian package checkpolicy): {e}"));
        assert!(
            out.status.success(),
            "checkpolicy {POLICY}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let policy = std::fs::read(&bin).unwrap();
        let _ = std::fs::remove_file(&bin);
        // One write: the kernel takes the whole policy or nothing.
        std::fs::write(format!("{SELINUXFS}/load"), policy)
            .unwrap_or_else(|e| panic!("loading the policy ({SELINUXFS}/load): {e}"));
        let enforce = std::fs::read_to_string(format!("{SELINUXFS}/enforce")).unwrap();
        assert_eq!(enforce.trim(), "0", "the guest must stay permissive");
        Ok(())
    });
    match loaded {
        Ok(()) => true,
        Err(why) => {
            skip(&format!(
                "SELinux: {why}; these tests load their own policy"
            ));
            false
        }
    }
}

/// A tmpfs at /tmp too (a mount of the spec's own, besides hello.json's /dev and /dev/shm).
fn with_tmp(spec: &mut Value) {
    spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777"]
    }));
}

/// SELinux is off: a label in the spec, or `exec --process-label`, fails and leaves nothing.
#[test]
fn process_label_refused_without_selinux() {
    if !require_root() {
        return;
    }
    if selinuxfs_mounted() {
        skip("SELinux is enabled here (the refusal needs a host without it)");
        return;
    }
    let env = Env::new("se_refused");
    env.config(|s| s["process"]["selinuxLabel"] = json!(LABEL));
    let id = env.id();
    // runc's validator has the same words
    env.create(&id).assert_err(
        "selinux label is specified in config, but selinux is disabled or not supported",
    );
    assert_eq!(env.status(&id), None, "a failed create left a container");

    let id = env.running(|_| {});
    env.gpurun(&["exec", "--process-label", LABEL, &id, "true"])
        .assert_fail();
    assert_eq!(env.status(&id).as_deref(), Some("running"));
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn mount_label_refused_without_selinux() {
    if !require_root() {
        return;
    }
    if selinuxfs_mounted() {
        skip("SELinux is enabled here (the refusal needs a host without it)");
        return;
    }
    let env = Env::new("se_mount_refused");
    env.config(|s| s["linux"]["mountLabel"] = json!(MOUNT_LABEL));
    let id = env.id();
    let out = env.create(&id);
    // runc fails in its init, where the kernel refuses the context= option (EINVAL)
    out.assert_fail();
    if is_gpurun() {
        out.assert_err("linux.mountLabel is specified in config, but selinux is disabled");
    }
    assert_eq!(env.status(&id), None, "a failed create left a container");
    env.assert_clean();
}

#[test]
fn process_label_on_init() {
    if !require_root() || !policy_loaded() {
        return;
    }
    let env = Env::new("se_init");
    // noNewPrivileges: the policy's nnp_nosuid_transition capability lets the label through
    for nnp in [true, false] {
        let out = env.sh("cat /proc/self/attr/current", |s| {
            s["process"]["selinuxLabel"] = json!(LABEL);
            s["process"]["noNewPrivileges"] = json!(nnp);
        });
        assert_eq!(
            context_of(&out.stdout),
            LABEL,
            "nnp {nnp}\n{}",
            out.describe()
        );
    }
    // the control: without a label the container keeps the runtime's
    let out = env.sh("cat /proc/self/attr/current", |_| {});
    assert_eq!(context_of(&out.stdout), KERNEL_LABEL, "{}", out.describe());
    env.assert_clean();
}

#[test]
fn process_label_on_exec() {
    if !require_root() || !policy_loaded() {
        return;
    }
    let env = Env::new("se_exec");
    let id = env.running(|s| s["process"]["selinuxLabel"] = json!(LABEL));
    let init = env.pid(&id);
    let attr = std::fs::read_to_string(format!("/proc/{init}/attr/current")).unwrap();
    assert_eq!(context_of(&attr), LABEL, "init");
    let out = env.gpurun(&["exec", &id, "cat", "/proc/self/attr/current"]);
    out.assert_ok();
    assert_eq!(context_of(&out.stdout), LABEL, "{}", out.describe());
    let out = env.gpurun(&[
        "exec",
        "--process-label",
        EXEC_LABEL,
        &id,
        "cat",
        "/proc/self/attr/current",
    ]);
    out.assert_ok();
    assert_eq!(context_of(&out.stdout), EXEC_LABEL, "{}", out.describe());
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}

#[test]
fn mount_label_on_mounts() {
    if !require_root() || !policy_loaded() {
        return;
    }
    let env = Env::new("se_mounts");
    let context = format!("context={MOUNT_LABEL}");
    let labelled = |out: &Out, point: &str| {
        let m = find_mount(&out.stdout, point)
            .unwrap_or_else(|| panic!("no {point} mount\n{}", out.describe()));
        m.super_opts.contains(&context)
    };
    let out = env.sh("cat /proc/self/mountinfo", |s| {
        with_tmp(s);
        s["linux"]["mountLabel"] = json!(MOUNT_LABEL);
    });
    for point in ["/dev", "/dev/shm", "/tmp"] {
        assert!(
            labelled(&out, point),
            "{point} lacks {context}\n{}",
            out.stdout
        );
    }
    // the control: no mount label, no context=
    let out = env.sh("cat /proc/self/mountinfo", with_tmp);
    for point in ["/dev", "/tmp"] {
        assert!(
            !labelled(&out, point),
            "{point} has {context}\n{}",
            out.stdout
        );
    }

    // mqueue takes no context=: the runtimes label its root (security.selinux)
    let python = std::path::Path::new("/usr/bin/python3");
    if !python.exists() {
        skip("part: the mqueue root's label (no /usr/bin/python3 to read the xattr)");
        env.assert_clean();
        return;
    }
    let id = env.running(|s| s["linux"]["mountLabel"] = json!(MOUNT_LABEL));
    let mq = format!("/proc/{}/root/dev/mqueue", env.pid(&id));
    let out = env.command_out({
        let mut c = Command::new(python);
        c.args([
            "-c",
            "import os,sys; print(os.getxattr(sys.argv[1], 'security.selinux').decode())",
        ]);
        c.arg(&mq);
        c
    });
    out.assert_ok();
    assert_eq!(context_of(&out.stdout), MOUNT_LABEL, "{}", out.describe());
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    env.assert_clean();
}
