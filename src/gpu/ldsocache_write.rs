//! Writing a glibc `ld.so.cache` (new format) in-process: the container's cache plus the
//! driver's libraries, without spawning ldconfig (the `ldconfig = "builtin"` setting). Entries
//! are ordered as glibc's ldconfig orders them — the loader binary-searches them with
//! `_dl_cache_libcmp` — and glibc-hwcaps entries (which need the extension section) are dropped:
//! the plain entries for the same libraries stay.

use std::cmp::Ordering;

use super::ldsocache::{Entry, NEW_ENTRY, NEW_HEADER, NEW_MAGIC};

/// `hwcap` bit marking an entry that refers to the glibc-hwcaps extension.
const HWCAP_EXTENSION: u64 = 1 << 62;
/// Header flag: little-endian cache (glibc's cache_file_new_flags_endian_little / _big).
const ENDIAN_FLAG: u8 = if cfg!(target_endian = "little") { 2 } else { 3 };

/// glibc's `_dl_cache_libcmp`: runs of digits compare numerically, a digit sorts after any
/// other character.
pub fn libcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        if a[i].is_ascii_digit() {
            if j >= b.len() || !b[j].is_ascii_digit() {
                return Ordering::Greater;
            }
            let num = |s: &[u8], k: &mut usize| {
                let mut v: u64 = 0;
                while *k < s.len() && s[*k].is_ascii_digit() {
                    v = v.saturating_mul(10).saturating_add(u64::from(s[*k] - b'0'));
                    *k += 1;
                }
                v
            };
            let (x, y) = (num(a, &mut i), num(b, &mut j));
            if x != y {
                return x.cmp(&y);
            }
        } else if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        } else if j >= b.len() || a[i] != b[j] {
            return a[i].cmp(b.get(j).unwrap_or(&0));
        } else {
            i += 1;
            j += 1;
        }
    }
    0u8.cmp(b.get(j).unwrap_or(&0))
}

/// ldconfig's order: names descending by `libcmp`, then flags descending, then hwcap descending.
fn order(e1: &Entry, e2: &Entry) -> Ordering {
    libcmp(&e2.name, &e1.name)
        .then(e2.flags.cmp(&e1.flags))
        .then(e2.hwcap.cmp(&e1.hwcap))
}

/// `existing` with `added` merged in (an added entry replaces one with the same name and
/// flags), as the bytes of a new-format cache.
pub fn write(existing: &[Entry], added: &[Entry]) -> Vec<u8> {
    let mut entries: Vec<&Entry> = existing
        .iter()
        .filter(|e| e.hwcap & HWCAP_EXTENSION == 0)
        .filter(|e| !added.iter().any(|a| a.name == e.name && a.flags == e.flags))
        .chain(added)
        .collect();
    entries.sort_by(|a, b| order(a, b));
    let strings_at = NEW_HEADER + entries.len() * NEW_ENTRY;
    let mut strings: Vec<u8> = Vec::new();
    let mut table: Vec<u8> = Vec::with_capacity(entries.len() * NEW_ENTRY);
    for e in &entries {
        // String offsets count from the start of the header.
        let key = (strings_at + strings.len()) as u32;
        strings.extend(e.name.as_bytes());
        strings.push(0);
        let value = (strings_at + strings.len()) as u32;
        strings.extend(e.path.as_bytes());
        strings.push(0);
        table.extend(e.flags.to_ne_bytes());
        table.extend(key.to_ne_bytes());
        table.extend(value.to_ne_bytes());
        table.extend(e.osversion.to_ne_bytes());
        table.extend(e.hwcap.to_ne_bytes());
    }
    let mut out = Vec::with_capacity(strings_at + strings.len());
    out.extend(NEW_MAGIC);
    out.extend((entries.len() as u32).to_ne_bytes());
    out.extend((strings.len() as u32).to_ne_bytes());
    out.push(ENDIAN_FLAG);
    out.extend([0u8; 3]); // padding
    out.extend(0u32.to_ne_bytes()); // no extension section
    out.extend([0u8; 12]); // unused
    out.extend(table);
    out.extend(strings);
    out
}

#[cfg(test)]
mod tests {
    use super::super::ldsocache::parse;
    use super::*;

    #[test]
    fn libcmp_is_glibcs() {
        assert_eq!(libcmp("libc.so.6", "libc.so.6"), Ordering::Equal);
        assert_eq!(libcmp("libfoo.so.10", "libfoo.so.9"), Ordering::Greater);
        assert_eq!(libcmp("libfoo.so.1", "libfoo.so"), Ordering::Greater);
        assert_eq!(libcmp("lib1", "liba"), Ordering::Greater);
        assert_eq!(libcmp("liba", "libb"), Ordering::Less);
    }

    /// The host's cache rewritten lists the same libraries (`ldconfig -p`), and a dynamic
    /// binary in a chroot finds its libc only through a cache we wrote.
    #[test]
    fn rewritten_caches_work_for_ldconfig_and_the_loader() {
        let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("skipped: no /etc/ld.so.cache");
            return;
        };
        let t = tempfile::tempdir().unwrap();
        let host = parse(&bytes).unwrap();
        let ours = t.path().join("ld.so.cache");
        std::fs::write(&ours, write(&host, &[])).unwrap();
        let list = |cache: &std::path::Path| {
            let out = std::process::Command::new("/sbin/ldconfig")
                .arg("-p")
                .arg("-C")
                .arg(cache)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut lines: Vec<String> = text.lines().skip(1).map(String::from).collect();
            lines.sort();
            lines
        };
        let plain: Vec<String> = list(std::path::Path::new("/etc/ld.so.cache"))
            .into_iter()
            .filter(|l| !l.contains("hwcap") && !l.starts_with("Cache generated by"))
            .collect();
        let rewritten = list(&ours);
        let differ: Vec<_> = rewritten
            .iter()
            .filter(|l| !plain.contains(l))
            .chain(plain.iter().filter(|l| !rewritten.contains(l)))
            .collect();
        assert!(differ.is_empty() && !plain.is_empty(), "{differ:?}");

        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: the chroot check needs root");
            return;
        }
        let libc = host
            .iter()
            .find(|e| e.name == "libc.so.6" && e.lib64)
            .expect("libc in cache");
        let interp = "/lib64/ld-linux-x86-64.so.2";
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("lib64")).unwrap();
        std::fs::create_dir_all(root.join("opt/odd")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        if std::fs::copy(interp, root.join(&interp[1..])).is_err() {
            eprintln!("skipped: no {interp} on this machine");
            return;
        }
        std::fs::copy(&libc.path, root.join("opt/odd/libc.so.6")).unwrap();
        std::fs::copy("/bin/true", root.join("true")).unwrap();
        let run = || {
            std::process::Command::new("chroot")
                .arg(&root)
                .arg("/true")
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        assert!(
            !run(),
            "libc found without a cache: the check proves nothing"
        );
        let entry = Entry {
            path: "/opt/odd/libc.so.6".into(),
            ..libc.clone()
        };
        std::fs::write(root.join("etc/ld.so.cache"), write(&[], &[entry])).unwrap();
        assert!(run(), "the loader did not find libc through our cache");
    }
}
