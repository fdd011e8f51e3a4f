//! Extended attributes kept in layers as PAX `SCHILY.xattr.NAME` records (the form Docker,
//! containerd and GNU tar use) and restored on unpack and COPY, so a file capability set by
//! `setcap` in a RUN step survives into the image and the bundle.

use crate::error::{io, Result};
use std::path::Path;

/// Attributes an image carries: file capabilities and user data. `security.selinux` is the
/// host's label and `trusted.*`/`system.*` belong to the host's filesystems, so they stay out.
fn kept(name: &str) -> bool {
    name == "security.capability" || name.starts_with("user.")
}

pub type Xattrs = Vec<(String, Vec<u8>)>;

/// The kept attributes of `p` (not following a symlink), sorted by name.
pub fn read(p: &Path) -> Result<Xattrs> {
    let names = match xattr::list(p) {
        Ok(n) => n,
        // a filesystem without xattr support has none to keep
        Err(e) if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(io(p)(e)),
    };
    let mut out = Vec::new();
    for n in names {
        let Some(name) = n.to_str().filter(|n| kept(n)) else {
            continue;
        };
        if let Some(v) = xattr::get(p, name).map_err(io(p))? {
            out.push((name.to_string(), v));
        }
    }
    out.sort();
    Ok(out)
}

/// Set attributes on `p`. Call after chown: changing the owner clears `security.capability`.
pub fn write(p: &Path, attrs: &[(String, Vec<u8>)]) -> Result<()> {
    for (name, value) in attrs.iter().filter(|(n, _)| kept(n)) {
        xattr::set(p, name, value).map_err(|e| {
            io(p)(std::io::Error::new(
                e.kind(),
                format!("setting extended attribute {name}: {e}"),
            ))
        })?;
    }
    Ok(())
}

/// Give `to` exactly the kept attributes of `from` (those `to` has and `from` lacks go).
pub fn replace(from: &Path, to: &Path) -> Result<()> {
    let want = read(from)?;
    for (name, _) in read(to)? {
        if !want.iter().any(|(n, _)| *n == name) {
            xattr::remove(to, &name).map_err(io(to))?;
        }
    }
    write(to, &want)
}

/// Copy the kept attributes of `from` onto `to`.
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    write(to, &read(from)?)
}

/// The body of a PAX extended header (`LEN SCHILY.xattr.NAME=VALUE\n` records; LEN counts
/// the whole record, its own digits included).
pub fn pax_records(attrs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in attrs {
        let body_len = format!(" SCHILY.xattr.{name}=").len() + value.len() + 1;
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        out.extend_from_slice(format!("{len} SCHILY.xattr.{name}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// The `SCHILY.xattr.*` records of an entry's PAX header.
pub fn from_entry<R: std::io::Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<Xattrs> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let short = pax_records(&[("user.a".into(), b"1".to_vec())]);
        assert_eq!(short, b"25 SCHILY.xattr.user.a=1\n");
        // 98 + 2 digits = 100 needs three digits: the length must settle at 101
        let v = vec![b'x'; 98 - " SCHILY.xattr.user.a=\n".len()];
        let rec = pax_records(&[("user.a".into(), v)]);
        assert_eq!(rec.len(), 101);
        assert!(rec.starts_with(b"101 "));
        // and the tar crate reads them back
        let mut b = tar::Builder::new(Vec::new());
        let mut x = tar::Header::new_ustar();
        let body = pax_records(&[
            (
                "security.capability".into(),
                vec![1, 0, 0, 2, 0, 0x20, 0, 0],
            ),
            ("user.k".into(), b"v".to_vec()),
        ]);
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_size(body.len() as u64);
        b.append_data(&mut x, "PaxHeaders/f", &body[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        b.append_data(&mut h, "f", std::io::empty()).unwrap();
        let data = b.into_inner().unwrap();
        let mut ar = tar::Archive::new(&data[..]);
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("f"));
        let got = from_entry(&mut e).unwrap();
        assert_eq!(got[0].0, "security.capability");
        assert_eq!(got[1], ("user.k".into(), b"v".to_vec()));
    }
}
