//! ADD's local archives: what Docker extracts (a tar, plain or compressed with gzip, bzip2 or
//! xz), recognised by magic bytes and by a valid tar header inside, never by the file name.
//! Anything else is copied as a file.

use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

fn compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// A reader of the decompressed stream.
pub fn decompress<'a>(r: impl Read + 'a, c: Compression) -> Box<dyn Read + 'a> {
    match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(r, true)),
    }
}

/// A tar header block: "ustar" magic (POSIX/GNU), else a v7 header whose checksum adds up.
fn is_tar_header(b: &[u8]) -> bool {
    if b.len() < 512 {
        return false;
    }
    if &b[257..262] == b"ustar" {
        return true;
    }
    let field = String::from_utf8_lossy(&b[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    header_checksum(b) == want && b[0] != 0
}

/// The tar header checksum: the byte sum of the 512-byte header, its own field counted as spaces.
fn header_checksum(b: &[u8]) -> u32 {
    b[..512]
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                x as u32
            }
        })
        .sum()
}

/// The compression of `p` if it is a tar archive ADD must extract; None for any other file.
pub fn tar_archive(p: &Path) -> Option<Compression> {
    let mut head = Vec::new();
    std::fs::File::open(p)
        .ok()?
        .take(6)
        .read_to_end(&mut head)
        .ok()?;
    let c = compression(&head);
    let f = std::fs::File::open(p).ok()?;
    let mut block = Vec::with_capacity(512);
    decompress(f, c).take(512).read_to_end(&mut block).ok()?;
    is_tar_header(&block).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn formats_by_magic_not_name() {
        let t = tempfile::tempdir().unwrap();
        let tar = tar_bytes();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        let bz = {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        let cases: [(&str, &[u8], Option<Compression>); 5] = [
            ("a.bin", &tar, Some(Compression::None)),
            ("b.dat", &gz, Some(Compression::Gzip)),
            ("c", &bz, Some(Compression::Bzip2)),
            ("d.tar.gz", b"not an archive at all", None),
            ("e.gz", &gz[..10], None), // truncated: no header inside
        ];
        for (name, data, want) in cases {
            let p = t.path().join(name);
            std::fs::write(&p, data).unwrap();
            assert_eq!(tar_archive(&p), want, "{name}");
        }
        // a gzip'd file that is not a tar is copied, not extracted
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&[b'x'; 600]).unwrap();
        let p = t.path().join("x.gz");
        std::fs::write(&p, e.finish().unwrap()).unwrap();
        assert_eq!(tar_archive(&p), None);
        // a v7 (pre-POSIX) header: no magic, checksum only
        let mut v7 = tar.clone();
        v7[257..265].fill(0);
        let sum = header_checksum(&v7);
        v7[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(is_tar_header(&v7));
        v7[0] ^= 1;
        assert!(!is_tar_header(&v7));
    }
}
