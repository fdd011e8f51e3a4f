//! A reader for glibc's `ld.so.cache` (the "glibc-ld.so.cache1.1" format, alone or after the
//! old "ld.so-1.7.0" table), enough to find a driver's libraries by soname the way the dynamic
//! loader would. (No maintained crate reads it; the format is small and stable since glibc 2.32.)

pub(super) const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
pub(super) const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Old header: magic[11] + nlibs (u32, aligned) = 16 bytes; old entries are 12 bytes.
const OLD_HEADER: usize = 16;
const OLD_ENTRY: usize = 12;
/// New header: magic+version[20], nlibs, len_strings, flags+pad[4], extension offset, unused[3].
pub(super) const NEW_HEADER: usize = 48;
pub(super) const NEW_ENTRY: usize = 24;

/// Entry flags: the ELF class/ABI bits.
const FLAG_TYPE_MASK: i32 = 0x00ff;
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_REQUIRED_MASK: i32 = 0xff00;
const FLAG_X8664_LIB64: i32 = 0x0300;
const FLAG_AARCH64_LIB64: i32 = 0x0a00;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The soname (`libcuda.so.1`) or link name.
    pub name: String,
    /// Where the loader finds it (`/usr/lib/x86_64-linux-gnu/libcuda.so.1`).
    pub path: String,
    /// A 64-bit library (else a 32-bit one, for `compat32`).
    pub lib64: bool,
    /// The raw flags, OS version and hwcap fields (kept for rewriting the cache).
    pub flags: i32,
    pub osversion: u32,
    pub hwcap: u64,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn cstr_at(b: &[u8], off: usize) -> Option<String> {
    let tail = b.get(off..)?;
    let end = tail.iter().position(|&c| c == 0)?;
    String::from_utf8(tail[..end].to_vec()).ok()
}

/// All glibc (libc6) entries of a cache file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut start = 0;
    if bytes.starts_with(OLD_MAGIC) {
        let n = u32_at(bytes, 12).ok_or("truncated old header")? as usize;
        // The new table follows the old one, 8-byte aligned.
        start = (OLD_HEADER + n * OLD_ENTRY + 7) & !7;
    }
    let b = bytes.get(start..).unwrap_or_default();
    if !b.starts_with(NEW_MAGIC) {
        return Err("not a glibc ld.so.cache (no glibc-ld.so.cache1.1 header)".into());
    }
    let n = u32_at(b, 20).ok_or("truncated header")? as usize;
    if b.len() < NEW_HEADER + n.saturating_mul(NEW_ENTRY) {
        return Err(format!("truncated: {n} entries announced"));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let e = NEW_HEADER + i * NEW_ENTRY;
        let flags = u32_at(b, e).ok_or("truncated entry")? as i32;
        // String offsets count from the start of the new-format table.
        let key = u32_at(b, e + 4).ok_or("truncated entry")? as usize;
        let value = u32_at(b, e + 8).ok_or("truncated entry")? as usize;
        if flags & FLAG_TYPE_MASK != FLAG_ELF_LIBC6 {
            continue;
        }
        let (Some(name), Some(path)) = (cstr_at(b, key), cstr_at(b, value)) else {
            return Err(format!("entry {i}: string offset out of range"));
        };
        let arch = flags & FLAG_REQUIRED_MASK;
        let osversion = u32_at(b, e + 12).ok_or("truncated entry")?;
        let hwcap = b
            .get(e + 16..e + 24)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_ne_bytes)
            .ok_or("truncated entry")?;
        out.push(Entry {
            name,
            path,
            lib64: arch == FLAG_X8664_LIB64 || arch == FLAG_AARCH64_LIB64,
            flags,
            osversion,
            hwcap,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's own cache is a real sample of the format: libc must be in it.
    #[test]
    fn reads_the_host_cache() {
        let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("skipped: no /etc/ld.so.cache on this machine");
            return;
        };
        let entries = parse(&bytes).unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e.name == "libc.so.6" && e.lib64 && e.path.ends_with("/libc.so.6")),
            "{entries:?}"
        );
    }

    #[test]
    fn built_cache_and_garbage() {
        // A one-entry cache built by hand, as glibc lays it out.
        let mut b = NEW_MAGIC.to_vec();
        b.extend(1u32.to_ne_bytes()); // nlibs
        b.extend(0u32.to_ne_bytes()); // len_strings
        b.extend([0u8; 20]); // flags, pad, extension offset, unused
        let strings = NEW_HEADER + NEW_ENTRY;
        b.extend((FLAG_ELF_LIBC6 | FLAG_X8664_LIB64).to_ne_bytes());
        b.extend((strings as u32).to_ne_bytes());
        b.extend((strings as u32 + 13).to_ne_bytes());
        b.extend([0u8; 12]); // osversion, hwcap
        b.extend(b"libcuda.so.1\0/lib/libcuda.so.1\0");
        assert_eq!(
            parse(&b).unwrap(),
            [Entry {
                name: "libcuda.so.1".into(),
                path: "/lib/libcuda.so.1".into(),
                lib64: true,
                flags: FLAG_ELF_LIBC6 | FLAG_X8664_LIB64,
                osversion: 0,
                hwcap: 0,
            }]
        );
        assert!(parse(b"hello").is_err());
        assert!(parse(&b[..60]).unwrap_err().contains("truncated"));
    }
}
