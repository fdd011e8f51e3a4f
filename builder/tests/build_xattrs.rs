//! Extended attributes: a file capability set by `setcap` in a RUN step is kept in the layer
//! (PAX `SCHILY.xattr.security.capability`), through `COPY --from`, into the bundle and the OCI
//! image, and the kernel honours it when the bundle runs.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host's `setcap` with the shared libraries and loader it needs, added to a copy of the
/// busybox rootfs (busybox has no setcap).
fn base_with_setcap(env: &Env) -> Option<PathBuf> {
    let setcap = ["/usr/sbin/setcap", "/sbin/setcap"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(setcap) = setcap else {
        println!("skipped: setcap (libcap2-bin) not installed");
        return None;
    };
    let base = env.dir.join("capbase");
    let st = Command::new("cp")
        .arg("-a")
        .arg(env.rootfs())
        .arg(&base)
        .status()
        .unwrap();
    assert!(st.success());
    let ldd = Command::new("ldd").arg(setcap).output().unwrap();
    let mut files = vec![setcap.to_string()];
    for l in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libcap.so.2 => /lib/x86_64-linux-gnu/libcap.so.2 (0x…)" or "/lib64/ld-linux….so.2 (0x…)"
        let path = l.split_whitespace().find(|w| w.starts_with('/'));
        files.extend(path.map(String::from));
    }
    for f in &files {
        let dst = base.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let st = Command::new("cp")
            .arg("-L")
            .arg(f)
            .arg(&dst)
            .status()
            .unwrap();
        assert!(st.success(), "copying {f}");
    }
    let dst = base.join("usr/sbin/setcap");
    if !dst.exists() {
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(base.join(setcap.trim_start_matches('/')), &dst).unwrap();
    }
    Some(base)
}

fn getcap(p: &Path) -> String {
    let out = Command::new("getcap").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn setcap_in_run_survives_into_image_and_bundle() {
    if !require_root() || !tool_or_skip("getcap") {
        return;
    }
    let env = Env::new("build-xattr");
    let Some(capbase) = base_with_setcap(&env) else {
        return;
    };
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{capbase} AS build\n\
         RUN mkdir -p /opt/cap && cp /bin/busybox /opt/cap/busybox && \
             /usr/sbin/setcap cap_net_raw+ep /opt/cap/busybox\n\
         FROM dir:{busybox}\n\
         COPY --from=build /opt/cap /opt/cap\n\
         USER 1000:1000\n\
         CMD [\"/bin/sh\", \"-c\", \"/bin/busybox grep CapEff /proc/self/status; /opt/cap/busybox grep CapEff /proc/self/status\"]\n",
        capbase = capbase.display(),
        busybox = env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let (out, layout) = (env.dir.join("b"), env.dir.join("layout"));
    build(
        &cache,
        &[
            "-t",
            "localhost/caps:1",
            "--bundle",
            out.to_str().unwrap(),
            "--oci-layout",
            layout.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    )
    .ok();
    let capped = out.join("rootfs/opt/cap/busybox");
    assert!(
        getcap(&capped).contains("cap_net_raw=ep"),
        "bundle rootfs: {:?}",
        getcap(&capped)
    );
    // The kernel applies it: a non-root process gains CAP_NET_RAW (bit 13) only through the
    // capable copy, the plain busybox runs with no effective capability.
    let run = run_bundle(&env, &out);
    run.assert_ok();
    let eff: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("CapEff:").trim())
        .collect();
    assert_eq!(
        eff,
        ["0000000000000000", "0000000000002000"],
        "{}",
        run.stdout
    );

    // The image's top layer carries the PAX record; umoci (another reader) restores it.
    let layers = layer_entries(&layout, "1");
    assert!(
        layers
            .last()
            .unwrap()
            .contains(&"opt/cap/busybox".to_string()),
        "{layers:?}"
    );
    if tool_or_skip("umoci") {
        let ub = env.dir.join("umoci-bundle");
        let st = Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:1", layout.display())])
            .arg(&ub)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "umoci unpack: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let c = getcap(&ub.join("rootfs/opt/cap/busybox"));
        assert!(c.contains("cap_net_raw=ep"), "umoci's rootfs: {c:?}");
    }
    // A rebuild from the cache keeps it too (the bundle's rootfs is extracted again).
    std::fs::remove_dir_all(&out).unwrap();
    let b = build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    );
    b.ok();
    assert_eq!(b.executed(), 0, "{}", b.stdout);
    assert!(getcap(&capped).contains("cap_net_raw=ep"));
    assert_build_clean(&cache);
    env.assert_clean();
}
