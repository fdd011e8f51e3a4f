//! `ADD <URL>`: the file is downloaded (never extracted), named after the URL's last path
//! segment, mode 0600 unless `--chmod`, mtime from the `Last-Modified` header, as Docker does.
//! Uses the HTTP client the registry feature already links (reqwest); errors name the URL.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A downloaded file: where it is (named as it will be in the image) and its mtime.
#[cfg_attr(not(feature = "registry"), allow(dead_code))]
pub struct Fetched {
    pub path: PathBuf,
    pub modified: Option<SystemTime>,
}

/// The file name ADD gives a download: the URL path's last segment (BuildKit's rule).
#[cfg_attr(not(feature = "registry"), allow(dead_code))]
pub fn file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split_once('/')
        .map_or("", |(_, p)| p);
    match path.rsplit('/').find(|s| !s.is_empty()) {
        Some(s) if s != "." && s != ".." => s.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

/// An HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`, the form RFC 9110 requires) → time.
#[cfg_attr(not(feature = "registry"), allow(dead_code))]
pub fn http_date(s: &str) -> Option<SystemTime> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != 6 || f[5] != "GMT" {
        return None;
    }
    let day: i64 = f[1].parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == f[2])? as i64 + 1;
    let year: i64 = f[3].parse().ok()?;
    let hms: Vec<i64> = f[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // days from 1970-01-01 to the civil date (Howard Hinnant's algorithm)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// A temp dir removed when dropped (downloads never outlive their step).
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One URL source, downloaded: the dir it is in, the file, and an id for the cache key
/// (name, content digest, mtime).
pub struct Source {
    pub root: PathBuf,
    pub sel: crate::context::Selected,
    pub id: String,
}

/// Download every URL into its own subdir of `dir` (two URLs may share a file name), verify
/// `--checksum`, and give each file Docker's mode (0600) and the server's mtime.
pub fn fetch_all(
    urls: &[String],
    dir: &Path,
    checksum: Option<&str>,
) -> Result<Vec<Source>, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let sub = dir.join(i.to_string());
        std::fs::create_dir_all(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
        let f = download(url, &sub)?;
        let data = std::fs::read(&f.path).map_err(|e| format!("{}: {e}", f.path.display()))?;
        let digest = format!("sha256:{}", crate::store::sha256_hex(&data));
        if let Some(want) = checksum {
            if want != digest {
                return Err(format!(
                    "{url}: checksum mismatch: --checksum={want}, downloaded {digest}"
                ));
            }
        }
        let file = std::fs::File::options()
            .write(true)
            .open(&f.path)
            .map_err(|e| format!("{}: {e}", f.path.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", f.path.display()))?;
        if let Some(t) = f.modified {
            file.set_modified(t)
                .map_err(|e| format!("{}: {e}", f.path.display()))?;
        }
        let name = f.path.file_name().unwrap_or_default().to_owned();
        out.push(Source {
            id: format!("{url} {name:?} {digest} {:?}", f.modified),
            sel: crate::context::Selected {
                host: f.path,
                rel: PathBuf::from(name),
            },
            root: sub,
        });
    }
    Ok(out)
}

#[cfg(not(feature = "registry"))]
pub fn download(url: &str, _dir: &Path) -> Result<Fetched, String> {
    Err(format!(
        "cannot fetch {url}: this build has no HTTP client (built without the `registry` feature)"
    ))
}

/// Download `url` into `dir/<file_name(url)>`. The error text names the URL and the cause.
#[cfg(feature = "registry")]
pub fn download(url: &str, dir: &Path) -> Result<Fetched, String> {
    use std::io::Write;
    let fail = |what: String| format!("cannot fetch {url}: {what}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("starting the async runtime: {e}")))?;
    let path = dir.join(file_name(url));
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(explain(&e, url_host(url))))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(http_date);
        let mut f = std::fs::File::create(&path).map_err(|e| fail(format!("{e}")))?;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fail(explain(&e, url_host(url))))?
        {
            f.write_all(&chunk)
                .map_err(|e| fail(format!("writing {}: {e}", path.display())))?;
        }
        Ok(Fetched { path, modified })
    })
}

/// The host[:port] of a URL, for messages.
#[cfg(feature = "registry")]
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// A network error → its cause first ("cannot resolve HOST", "connection refused by HOST",
/// "TLS error with HOST", "timed out …"), found by walking the `source()` chain of
/// reqwest/hyper/native-tls/io errors, then the whole chain for details.
#[cfg(feature = "registry")]
pub fn explain(e: &(dyn std::error::Error + 'static), host: &str) -> String {
    use std::io::ErrorKind;
    let chain = error_chain(e);
    let low = chain.to_ascii_lowercase();
    let mut kind = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            kind = Some(io.kind());
        }
        cur = c.source();
    }
    let has = |words: &[&str]| words.iter().any(|w| low.contains(w));
    let cause = if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
    ]) {
        format!("cannot resolve {}", host_only(host))
    } else if kind == Some(ErrorKind::ConnectionRefused) || has(&["connection refused"]) {
        format!("connection refused by {host}")
    } else if kind == Some(ErrorKind::TimedOut) || has(&["timed out", "deadline has elapsed"]) {
        format!("timed out connecting to {host}")
    } else if has(&["certificate", "tls", "ssl", "handshake"]) {
        format!("TLS error with {host}")
    } else if kind == Some(ErrorKind::ConnectionReset) || has(&["connection reset"]) {
        format!("connection reset by {host}")
    } else if has(&["network is unreachable", "no route to host"]) {
        format!("{host} is unreachable")
    } else {
        return chain;
    };
    format!("{cause} ({chain})")
}

/// `host:port` → host (a bracketed IPv6 address keeps its brackets).
#[cfg(feature = "registry")]
fn host_only(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// reqwest's message and its causes ("error sending request: … Connection refused").
#[cfg(feature = "registry")]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "registry")]
    #[test]
    fn causes_are_named() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        use std::io::{Error as E, ErrorKind as K};
        let refused = Outer(E::from(K::ConnectionRefused));
        assert!(explain(&refused, "localhost:1").starts_with("connection refused by localhost:1"));
        let dns = Outer(E::other(
            "failed to lookup address information: Name or service not known",
        ));
        assert!(explain(&dns, "nx.invalid:5000").starts_with("cannot resolve nx.invalid ("));
        let tls = Outer(E::other("certificate verify failed"));
        assert!(explain(&tls, "h").starts_with("TLS error with h"));
        assert_eq!(
            explain(&Outer(E::other("odd")), "h"),
            "error sending request: odd"
        );
        assert_eq!(url_host("https://h:8/x?y"), "h:8");
    }

    #[test]
    fn names_and_dates() {
        assert_eq!(file_name("http://h:8/models/w.tar.gz?x=1#f"), "w.tar.gz");
        assert_eq!(file_name("https://h/a/b/"), "b");
        assert_eq!(file_name("https://h"), "__unnamed__");
        assert_eq!(file_name("https://h/"), "__unnamed__");
        let t = http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 784111777);
        let leap = http_date("Thu, 29 Feb 2024 00:00:00 GMT").unwrap();
        let secs = leap
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1709164800);
        assert!(http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert!(http_date("Sun, 06 Nov 1994 08:49:37 PST").is_none());
    }
}
