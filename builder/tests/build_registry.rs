//! FROM a registry reference, pulled from Debian's `docker-registry` on loopback (a private
//! instance on a free port, storage in the test's dir), pushed to with skopeo.

mod common;
use common::*;
use std::process::{Child, Command, Stdio};

struct Registry {
    child: Child,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(dir: &std::path::Path) -> Option<Registry> {
    if !has_tool("docker-registry") {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "docker-registry"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
    }
    if !tool_or_skip("docker-registry") {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = dir.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("registry-data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reg = Registry { child, addr };
    for _ in 0..100 {
        if std::net::TcpStream::connect(&reg.addr).is_ok() {
            return Some(reg);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("docker-registry did not listen on {}", reg.addr);
}

#[test]
fn from_a_loopback_registry() {
    if !require_root() || !tool_or_skip("skopeo") {
        return;
    }
    let env = Env::new("build-registry");
    let Some(reg) = start_registry(&env.dir) else {
        return;
    };
    let cache = env.dir.join("cache");
    let layout = env.dir.join("layout");
    let base_df = format!(
        "FROM dir:{}\nENV FROM_REGISTRY=yes\n",
        env.rootfs().display()
    );
    let base_ctx = context(&env.dir.join("base"), &base_df, &[]);
    build(
        &cache,
        &[
            "-t",
            "ml/busybox:1",
            "--oci-layout",
            layout.to_str().unwrap(),
            base_ctx.to_str().unwrap(),
        ],
    )
    .ok();
    let dest = format!("docker://{}/ml/busybox:1", reg.addr);
    let push = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:1", layout.display()),
            &dest,
        ])
        .output()
        .unwrap();
    assert!(
        push.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&push.stderr)
    );

    // A fresh cache: the base really comes from the registry.
    let cache2 = env.dir.join("cache2");
    let df = format!("FROM {}/ml/busybox:1 AS base\nRUN echo \"pulled: $FROM_REGISTRY\" > /msg\nCMD [\"cat\", \"/msg\"]\n", reg.addr);
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    build(
        &cache2,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    )
    .ok();
    let run = run_bundle(&env, &out);
    run.assert_ok();
    assert_eq!(run.stdout, "pulled: yes\n");
    // A rebuild reuses the pulled layers and every step.
    let again = build(
        &cache2,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    );
    again.ok();
    assert_eq!(again.executed(), 0, "{}", again.stdout);

    let missing = context(
        &env.dir.join("missing"),
        &format!("FROM {}/ml/nothere:1\nRUN true\n", reg.addr),
        &[],
    );
    build(
        &cache2,
        &["--bundle", out.to_str().unwrap(), missing.to_str().unwrap()],
    )
    .fails_with(
        1,
        &format!(
            "Dockerfile line 1: image {}/ml/nothere:1: pulling the manifest",
            reg.addr
        ),
    );
    drop(reg);
    assert_build_clean(&cache);
    assert_build_clean(&cache2);
    env.assert_clean();
}

#[test]
fn unreachable_registry_names_the_cause() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-registry-down");
    let cache = env.dir.join("cache");
    // Port 1 on loopback: nothing listens, so the connection is refused at once.
    let ctx = context(
        &env.dir.join("ctx"),
        "FROM localhost:1/ml/app:1\nRUN true\n",
        &[],
    );
    let out = env.dir.join("b");
    build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    )
    .fails_with(
        1,
        "image localhost:1/ml/app:1: pulling the manifest from localhost:1: connection refused by localhost:1",
    );
    assert_build_clean(&cache);
    env.assert_clean();
}
