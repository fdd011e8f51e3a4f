//! ADD as Docker has it: local tar archives extracted whatever their compression (found by
//! magic bytes, not by name); URLs downloaded from a loopback `python3 -m http.server` (not
//! extracted, file name from the URL, mode 0600, Last-Modified as mtime, --chmod/--chown,
//! --checksum), and clear errors naming the URL and the line when a download fails.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `python3 -m http.server` on a free loopback port, serving `dir`; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Option<Server> {
    if !tool_or_skip("python3") {
        return None;
    }
    let mut child = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port = first
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("http.server said {first:?}"));
    Some(Server { child, port })
}

/// A tar of `files`, written by Python's tarfile with `mode` ("w", "w:gz", "w:bz2", "w:xz").
fn python_tar(out: &Path, mode: &str, files: &[(&str, &str)]) {
    let script = format!(
        "import io, sys, tarfile\n\
         with tarfile.open(sys.argv[1], {mode:?}) as t:\n\
         \x20   for name, body in {files:?}:\n\
         \x20       data = body.encode()\n\
         \x20       info = tarfile.TarInfo(name)\n\
         \x20       info.size = len(data)\n\
         \x20       t.addfile(info, io.BytesIO(data))\n"
    );
    let st = Command::new("python3")
        .args(["-c", &script])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "python tarfile {mode}");
}

#[test]
fn add_extracts_every_compression_by_content() {
    if !require_root() || !tool_or_skip("python3") {
        return;
    }
    let env = Env::new("build-add-formats");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\n\
         ADD plain.bin gz.data bz2.weights xz.model /models/\n\
         ADD notes.tar.gz /docs/\n",
        env.rootfs().display()
    );
    let ctx = context(
        &env.dir.join("ctx"),
        &df,
        &[("notes.tar.gz", "not an archive, whatever the name says")],
    );
    for (file, mode, inner) in [
        ("plain.bin", "w", "plain"),
        ("gz.data", "w:gz", "gzip"),
        ("bz2.weights", "w:bz2", "bzip2"),
        ("xz.model", "w:xz", "xz"),
    ] {
        let name = format!("{inner}/layer.txt");
        python_tar(&ctx.join(file), mode, &[(&name, inner)]);
    }
    let out = env.dir.join("b");
    build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    )
    .ok();
    let r = out.join("rootfs");
    for inner in ["plain", "gzip", "bzip2", "xz"] {
        let p = r.join(format!("models/{inner}/layer.txt"));
        assert_eq!(
            std::fs::read_to_string(&p).ok().as_deref(),
            Some(inner),
            "{inner} archive extracted"
        );
    }
    for archive in ["plain.bin", "gz.data", "bz2.weights", "xz.model"] {
        assert!(!r.join("models").join(archive).exists(), "{archive} copied");
    }
    assert_eq!(
        std::fs::read_to_string(r.join("docs/notes.tar.gz")).unwrap(),
        "not an archive, whatever the name says",
        "a file that is no archive is copied as it is"
    );
    assert_build_clean(&cache);
    env.assert_clean();
}

#[test]
fn add_url_downloads_with_docker_rules() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-add-url");
    let www = env.dir.join("www");
    std::fs::create_dir_all(www.join("models")).unwrap();
    python_tar(
        &www.join("models/weights.tar.gz"),
        "w:gz",
        &[("w.bin", "w")],
    );
    std::fs::write(www.join("models/config.json"), "{\"layers\": 2}").unwrap();
    // a fixed mtime the server sends as Last-Modified (2021-01-01T00:00:00Z)
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_609_459_200);
    for f in ["weights.tar.gz", "config.json"] {
        let h = std::fs::File::options()
            .write(true)
            .open(www.join("models").join(f))
            .unwrap();
        h.set_modified(when).unwrap();
    }
    let Some(srv) = serve(&www) else {
        return;
    };
    let base = format!("http://127.0.0.1:{}", srv.port);
    let cache = env.dir.join("cache");
    let sum = {
        use std::fmt::Write;
        let out = Command::new("sha256sum")
            .arg(www.join("models/config.json"))
            .output()
            .unwrap();
        let mut s = String::from("sha256:");
        write!(
            s,
            "{}",
            String::from_utf8_lossy(&out.stdout)
                .split(' ')
                .next()
                .unwrap()
        )
        .unwrap();
        s
    };
    let df = format!(
        "FROM dir:{}\n\
         ADD {base}/models/weights.tar.gz /models/\n\
         ADD --chmod=644 --chown=1000:1000 --checksum={sum} {base}/models/config.json /etc/app/model.json\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let args = ["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()];
    build(&cache, &args).ok();
    let r = out.join("rootfs");
    let w = std::fs::symlink_metadata(r.join("models/weights.tar.gz")).unwrap();
    assert!(w.is_file(), "a downloaded archive is not extracted");
    assert!(!r.join("models/w.bin").exists());
    assert_eq!(w.mode() & 0o7777, 0o600, "Docker's mode for downloads");
    assert_eq!((w.uid(), w.gid()), (0, 0));
    assert_eq!(w.mtime(), 1_609_459_200, "mtime from Last-Modified");
    let c = std::fs::symlink_metadata(r.join("etc/app/model.json")).unwrap();
    assert_eq!(
        (c.mode() & 0o7777, c.uid(), c.gid()),
        (0o644, 1000, 1000),
        "--chmod, --chown; dest without / is the file's name"
    );
    // Unchanged on the server: downloaded again, the step is cached.
    let again = build(&cache, &args);
    again.ok();
    assert_eq!(
        (again.cached(), again.executed()),
        (2, 0),
        "{}",
        again.stdout
    );
    std::fs::write(www.join("models/weights.tar.gz"), "v2").unwrap();
    let changed = build(&cache, &args);
    changed.ok();
    assert_eq!(
        (changed.cached(), changed.executed()),
        (0, 2),
        "the changed download and the step after it:\n{}",
        changed.stdout
    );

    let o = env.dir.join("never");
    let fail = |name: &str, line: &str| {
        let df = format!("FROM dir:{}\n{line}\n", env.rootfs().display());
        let c = context(&env.dir.join(name), &df, &[]);
        build(
            &cache,
            &["--bundle", o.to_str().unwrap(), c.to_str().unwrap()],
        )
    };
    fail("404", &format!("ADD {base}/missing.bin /m/")).fails_with(
        1,
        &format!("Dockerfile line 2: cannot fetch {base}/missing.bin: HTTP 404"),
    );
    // nothing listens on port 1: no network to reach
    fail("refused", "ADD http://127.0.0.1:1/model.bin /m/").fails_with(
        1,
        "Dockerfile line 2: cannot fetch http://127.0.0.1:1/model.bin: ",
    );
    fail(
        "sum",
        &format!(
            "ADD --checksum=sha256:{} {base}/models/config.json /m",
            "0".repeat(64)
        ),
    )
    .fails_with(1, "Dockerfile line 2: http://127.0.0.1");
    fail("copy", &format!("COPY {base}/models/config.json /m"))
        .fails_with(1, "Dockerfile line 2: http://127.0.0.1");
    fail("copy", &format!("COPY {base}/models/config.json /m"))
        .fails_with(1, "COPY does not take URLs");
    assert!(!o.exists());
    drop(srv);
    assert_build_clean(&cache);
    env.assert_clean();
}
