//! A bundle that serves: what an AI service needs from the bundle's config.json (its own
//! cgroup limits readable, loopback up in its network namespace) and the README's way of
//! serving on the host's network.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A Dockerfile whose image serves `/www/hello.txt` with busybox httpd; `cmd` starts it.
fn web_dockerfile(env: &Env, cmd: &str) -> String {
    format!(
        "FROM dir:{}\n\
         ARG PORT=8000\n\
         ENV PORT=$PORT\n\
         RUN mkdir -p /www && echo served-by-bundle > /www/hello.txt\n\
         EXPOSE $PORT\n\
         CMD {cmd}\n",
        env.rootfs().display()
    )
}

fn namespaces(cfg: &serde_json::Value) -> Vec<String> {
    cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bundle_serves_on_its_own_loopback() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-serve-lo");
    let cache = env.dir.join("cache");
    // httpd goes to the background once it listens; wget retries in case it is not there yet.
    // Both fail ("Cannot assign requested address", "Network is unreachable") with lo down.
    let cmd = "httpd -p 127.0.0.1:$PORT -h /www && for i in 1 2 3 4 5 6 7 8 9 10; do \
               wget -qO- http://127.0.0.1:$PORT/hello.txt && exit 0; sleep 0.2; done; exit 1";
    let ctx = context(&env.dir.join("ctx"), &web_dockerfile(&env, cmd), &[]);
    let out = env.dir.join("b");
    build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    )
    .ok();
    assert!(
        namespaces(&bundle_config(&out)).contains(&"network".to_string()),
        "the bundle has a network namespace of its own"
    );
    let run = run_bundle(&env, &out);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), "served-by-bundle", "{}", run.stderr);
    assert_build_clean(&cache);
    env.assert_clean();
}

/// README "Running the bundle as a service": without the network namespace the bundle's
/// server is reached from the host.
#[test]
fn bundle_serves_on_the_host_network() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-serve-host");
    let cache = env.dir.join("cache");
    // a port free now: the kernel picks it, the listener is closed before the container binds
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let df = web_dockerfile(&env, "exec httpd -f -p 127.0.0.1:$PORT -h /www");
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let port_arg = format!("PORT={port}");
    let (o, c) = (out.to_str().unwrap(), ctx.to_str().unwrap());
    build(&cache, &["--build-arg", &port_arg, "--bundle", o, c]).ok();
    // the README's jq line: '.linux.namespaces |= map(select(.type != "network"))'
    let mut cfg = bundle_config(&out);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    std::fs::write(out.join("config.json"), cfg.to_string()).unwrap();

    let id = env.id();
    env.gpurun(&["create", "--bundle", o, &id]).assert_ok();
    env.gpurun(&["start", &id]).assert_ok();
    let body = get(port, "/hello.txt", Duration::from_secs(10));
    // httpd may have exited (the port taken meanwhile): the GET's error says more than kill's
    env.gpurun(&["delete", "--force", &id]).assert_ok();
    let body = body.unwrap_or_else(|e| panic!("GET 127.0.0.1:{port}/hello.txt: {e}"));
    assert!(body.ends_with("\r\n\r\nserved-by-bundle\n"), "{body}");
    assert_build_clean(&cache);
    env.assert_clean();
}

/// HTTP/1.0 GET from the host, retried until the server listens or `limit` passes.
fn get(port: u16, path: &str, limit: Duration) -> std::io::Result<String> {
    let start = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                write!(s, "GET {path} HTTP/1.0\r\n\r\n")?;
                let mut body = String::new();
                s.read_to_string(&mut body)?;
                return Ok(body);
            }
            Err(e) if start.elapsed() > limit => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn bundle_and_run_see_sys_fs_cgroup_read_only() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-cgroupfs");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\n\
         RUN grep -q ' /sys/fs/cgroup ' /proc/self/mountinfo\n\
         CMD grep ' /sys/fs/cgroup' /proc/self/mountinfo | cut -d' ' -f5,6; \
             (cat /sys/fs/cgroup/memory.max || cat /sys/fs/cgroup/memory/memory.limit_in_bytes) \
             >/dev/null && echo readable; touch /sys/fs/cgroup/x 2>/dev/null || echo read-only\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    )
    .ok();
    let cfg = bundle_config(&out);
    let m = cfg["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys/fs/cgroup")
        .expect("the bundle mounts /sys/fs/cgroup");
    assert_eq!(m["type"], "cgroup");
    assert!(m["options"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("ro")));
    assert!(namespaces(&cfg).contains(&"cgroup".to_string()));
    let run = run_bundle(&env, &out);
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.contains(&"readable"), "{}", run.stdout);
    // runc 1.1.5 leaves the tmpfs that holds the v1 hierarchies writable (its hierarchies are
    // read-only): that part is gpurun-only on a v1/hybrid host
    let whole = gpurun_integration::cgroup2_host() || gpurun_integration::gpurun_only();
    if whole {
        assert!(lines.contains(&"read-only"), "{}", run.stdout);
    }
    let mounts: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("/sys/fs/cgroup") && (whole || l.starts_with("/sys/fs/cgroup/")))
        .collect();
    assert!(!mounts.is_empty(), "{}", run.stdout);
    for l in mounts {
        assert!(
            l.split(' ').nth(1).unwrap().split(',').any(|o| o == "ro"),
            "{l}"
        );
    }
    assert_build_clean(&cache);
    env.assert_clean();
}
