//! The overlay engine: working trees are layer snapshots stacked under an upper dir, a
//! bundle is updated in place. Each is checked against the extraction engine
//! (GPURUN_BUILD_OVERLAY=0), which applies layers the plain way.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Deletions (whiteouts), a directory removed and made again (opaque), hard links, a device
/// node, a file whose mode changes: the layers written from overlay upper dirs, applied by
/// the extraction engine, give the tree the extraction engine builds itself.
#[test]
fn overlay_layers_equal_extracted_ones() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-snap-equal");
    let df = format!(
        "FROM dir:{}\n\
         COPY app.py /srv/app/\n\
         RUN echo hi > /srv/app/x && rm /etc/group && rm -rf /tmp && mkdir /tmp && touch /tmp/new && mkdir -p /opt/a/b && echo 1 > /opt/a/b/c && mknod /dev0 c 1 3\n\
         RUN ln /srv/app/x /srv/app/y && chmod 600 /srv/app/x && rm -rf /opt/a && ln -s /srv/app/x /lnk && chmod 700 /bin\n\
         COPY app.py /srv/app/again.py\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[("app.py", "print(1)\n")]);
    let (ovl, ext) = (env.dir.join("ovl"), env.dir.join("ext"));
    let layout = env.dir.join("layout");
    build(
        &env.dir.join("c1"),
        &[
            "--oci-layout",
            layout.to_str().unwrap(),
            "--bundle",
            ovl.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(
        std::fs::read_dir(env.dir.join("c1/snapshots"))
            .unwrap()
            .count()
            >= 4,
        "the overlay engine keeps a snapshot per layer"
    );
    build_env(
        &env.dir.join("c2"),
        EXTRACT,
        &["--bundle", ext.to_str().unwrap(), ctx.to_str().unwrap()],
    )
    .ok();
    assert!(!env.dir.join("c2/snapshots").join("empty").exists());
    assert_same_tree(&ovl.join("rootfs"), &ext.join("rootfs"));
    // the overlay-made image, applied layer by layer by the extraction engine
    let re = env.dir.join("re");
    let ctx2 = context(
        &env.dir.join("ctx2"),
        &format!("FROM oci:{}\n", layout.display()),
        &[],
    );
    build_env(
        &env.dir.join("c3"),
        EXTRACT,
        &["--bundle", re.to_str().unwrap(), ctx2.to_str().unwrap()],
    )
    .ok();
    assert_same_tree(&re.join("rootfs"), &ext.join("rootfs"));
    assert!(!ovl.join("rootfs/etc/group").exists() && !ovl.join("rootfs/opt/a").exists());
    // the same layer twice in a stack (two RUNs leaving the same trace): overlayfs refuses a
    // dir stacked twice, so the lower copy is left out
    let twice = env.dir.join("twice");
    let ctx3 = context(
        &env.dir.join("ctx3"),
        &format!(
            "FROM dir:{}\nRUN true\nRUN true\nRUN true\n",
            env.rootfs().display()
        ),
        &[],
    );
    build(
        &env.dir.join("c1"),
        &["--bundle", twice.to_str().unwrap(), ctx3.to_str().unwrap()],
    )
    .ok();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(env.dir.to_str().unwrap()),
        "a builder mount is visible outside it:\n{mounts}"
    );
    for c in ["c1", "c2", "c3"] {
        assert_build_clean(&env.dir.join(c));
    }
    env.assert_clean();
}

/// An edit rebuild undoes the layers above the shared ones in the bundle (restoring what
/// they deleted) and applies the new ones; files below are not rewritten.
#[test]
fn bundle_is_updated_in_place() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-snap-bundle");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\n\
         ARG DEL=1\n\
         COPY app.py /srv/app/\n\
         RUN if [ \"$DEL\" = 1 ]; then rm /etc/group && rm -rf /tmp && mkdir -m 1777 /tmp && touch /tmp/only-del; fi && echo $DEL > /srv/app/del\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[("app.py", "print(1)\n")]);
    let out = env.dir.join("b");
    let args = |del: &'static str| -> Vec<String> {
        vec![
            "--build-arg".into(),
            format!("DEL={del}"),
            "--bundle".into(),
            out.display().to_string(),
            ctx.display().to_string(),
        ]
    };
    let run = |cache: &Path, envs: &[(&str, &str)], del: &'static str| {
        let a = args(del);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        build_env(cache, envs, &a).ok();
    };
    run(&cache, &[], "1");
    assert!(!out.join("rootfs/etc/group").exists());
    let busybox_ino = std::fs::metadata(out.join("rootfs/bin/busybox"))
        .unwrap()
        .ino();
    // DEL=0: the RUN layer changes; the base and COPY layers are shared
    run(&cache, &[], "0");
    let r = out.join("rootfs");
    assert!(r.join("etc/group").exists(), "a deleted file came back");
    assert!(
        !r.join("tmp/only-del").exists(),
        "an opaque dir's contents are gone"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("srv/app/del")).unwrap(),
        "0\n"
    );
    assert_eq!(
        std::fs::metadata(r.join("bin/busybox")).unwrap().ino(),
        busybox_ino,
        "the bundle was rewritten instead of updated"
    );
    let fresh = env.dir.join("fresh");
    let a = [
        "--build-arg",
        "DEL=0",
        "--bundle",
        fresh.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ];
    build_env(&env.dir.join("c2"), EXTRACT, &a).ok();
    assert_same_tree(&r, &fresh.join("rootfs"));
    // and back: the deletions again
    run(&cache, &[], "1");
    assert!(!r.join("etc/group").exists() && r.join("tmp/only-del").exists());
    // a bundle changed since (a container wrote to it) is written whole again
    std::fs::write(r.join("srv/app/mine"), "x").unwrap();
    run(&cache, &[], "0");
    assert!(!r.join("srv/app/mine").exists());
    assert!(r.join("etc/group").exists());
    assert_build_clean(&cache);
    env.assert_clean();
}

/// Snapshots are trusted only in the boot that wrote them (they are not synced); prune
/// removes those whose layer is gone.
#[test]
fn snapshots_after_reboot_and_prune() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-snap-boot");
    let cache = env.dir.join("cache");
    let df = format!("FROM dir:{}\nRUN echo 1 > /one\n", env.rootfs().display());
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("layout");
    let args = ["--oci-layout", out.to_str().unwrap(), ctx.to_str().unwrap()];
    build(&cache, &args).ok();
    let snaps = cache.join("snapshots");
    std::fs::write(snaps.join("boot_id"), "another boot\n").unwrap();
    std::fs::write(snaps.join("marker"), "").unwrap();
    build(&cache, &args).ok();
    assert!(
        !snaps.join("marker").exists(),
        "snapshots of another boot were kept"
    );
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(
        std::fs::read_to_string(snaps.join("boot_id")).unwrap(),
        boot
    );
    let layers = || {
        std::fs::read_dir(&snaps)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir() && e.file_name() != "empty")
            .count()
    };
    // the base layer is extracted again when a step needs it (cached steps need nothing)
    build(
        &cache,
        &[
            "--no-cache",
            "--oci-layout",
            out.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(layers() >= 1);
    prune(&cache, &["--all"]).ok();
    assert_eq!(layers(), 0, "prune --all left extracted layers");
    assert_build_clean(&cache);
    env.assert_clean();
}

/// Undoing a layer that rewrote one name of a hard-linked file: the name cannot be put back
/// as a link by copying, so the bundle is written whole, links kept.
#[test]
fn bundle_update_keeps_hard_links() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-snap-links");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\n\
         RUN mkdir /s && echo 1 > /s/t && ln /s/t /s/t2\n\
         ARG W=1\n\
         RUN if [ \"$W\" = 1 ]; then echo 2 > /s/t; fi; echo $W > /w\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    for w in ["W=1", "W=0"] {
        let a = [
            "--build-arg",
            w,
            "--bundle",
            out.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ];
        build(&cache, &a).ok();
    }
    let ino = |p: &str| std::fs::metadata(out.join("rootfs").join(p)).unwrap().ino();
    assert_eq!(ino("s/t"), ino("s/t2"), "the hard link was broken");
    assert_eq!(
        std::fs::read_to_string(out.join("rootfs/s/t")).unwrap(),
        "1\n"
    );
    assert_build_clean(&cache);
    env.assert_clean();
}
