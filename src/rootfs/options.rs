//! `mounts[].options` → mount(2) flags, propagation changes, `mount_setattr(2)` attributes
//! (the recursive `rro`, `rnosuid`, …) and the filesystem's own data.

use nix::mount::MsFlags;

/// Mount flags, propagation flags and fs-specific data parsed from `options`.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`: the bind covers submounts too.
    pub recursive: bool,
    /// `rro`, `rnosuid`, …: attributes for the mount and every submount.
    pub rec: RecAttr,
}

/// What `mount_setattr(2)` with AT_RECURSIVE sets and clears (runtime-spec's recursive
/// options), with the options that asked for it (for messages).
#[derive(Debug, Default, PartialEq)]
pub struct RecAttr {
    pub set: u64,
    pub clr: u64,
    pub names: Vec<String>,
}

/// A recursive option: (clears rather than sets, MOUNT_ATTR_* bit or atime value).
fn rec_attr_flag(name: &str) -> Option<(bool, u64)> {
    Some(match name {
        "rro" => (false, libc::MOUNT_ATTR_RDONLY),
        "rrw" => (true, libc::MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, libc::MOUNT_ATTR_NOSUID),
        "rsuid" => (true, libc::MOUNT_ATTR_NOSUID),
        "rnodev" => (false, libc::MOUNT_ATTR_NODEV),
        "rdev" => (true, libc::MOUNT_ATTR_NODEV),
        "rnoexec" => (false, libc::MOUNT_ATTR_NOEXEC),
        "rexec" => (true, libc::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (false, libc::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, libc::MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (false, libc::MOUNT_ATTR_RELATIME),
        "rnorelatime" => (true, libc::MOUNT_ATTR_RELATIME),
        "rnoatime" => (false, libc::MOUNT_ATTR_NOATIME),
        "ratime" => (true, libc::MOUNT_ATTR_NOATIME),
        "rstrictatime" => (false, libc::MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (true, libc::MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (false, libc::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, libc::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

impl RecAttr {
    fn add(&mut self, name: &str, clear: bool, flag: u64) {
        // relatime/noatime/strictatime are the values of one field (MOUNT_ATTR__ATIME), not bits.
        let atime = flag & !libc::MOUNT_ATTR__ATIME == 0;
        if clear {
            // As runc: clearing an atime value falls back to the kernel's default (relatime).
            self.set &= !flag;
            self.clr |= flag;
        } else {
            if atime {
                self.set &= !libc::MOUNT_ATTR__ATIME;
            }
            self.set |= flag;
            self.clr &= !flag;
        }
        // The kernel takes an atime value only with the whole field in attr_clr.
        if atime {
            self.clr |= libc::MOUNT_ATTR__ATIME;
        }
        self.names.push(name.to_string());
    }
}

/// MS_NOSYMFOLLOW (Linux 5.10), which nix does not name.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

pub fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        bind: false,
        recursive: false,
        rec: RecAttr::default(),
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            // Runtime-level or engine-level options with no mount(2) meaning.
            "tmpcopyup" | "defaults" | "remount" | "idmap" | "ridmap" => continue,
            other => {
                if let Some(p) = propagation_flag(other) {
                    o.propagation.push(p);
                } else if let Some((clear, flag)) = rec_attr_flag(other) {
                    o.rec.add(other, clear, flag);
                } else if !other.starts_with("x-") {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> MountOptions {
        parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        let o = opts(&["rbind", "ro", "rw", "rprivate", "x-gvfs-hide"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(o.data.is_empty());
        assert_eq!(propagation_flag("bogus"), None);
    }

    #[test]
    fn recursive_attributes() {
        use libc::{MOUNT_ATTR_NOATIME as NOATIME, MOUNT_ATTR__ATIME as ATIME};
        let o = opts(&[
            "rbind", "ro", "rro", "rnosuid", "rnoexec", "rdev", "size=1k",
        ]);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert_eq!(o.data, vec!["size=1k"], "recursive options are no fs data");
        let (set, clr) = (o.rec.set, o.rec.clr);
        let want = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC;
        assert_eq!((set, clr), (want, libc::MOUNT_ATTR_NODEV));
        assert_eq!(o.rec.names, ["rro", "rnosuid", "rnoexec", "rdev"]);
        // The later of two opposites wins.
        let o = opts(&["rro", "rrw", "rsymfollow", "rnosymfollow"]);
        assert_eq!(o.rec.set, libc::MOUNT_ATTR_NOSYMFOLLOW);
        assert_eq!(o.rec.clr, libc::MOUNT_ATTR_RDONLY);
        // atime: one value, with the whole field cleared.
        let rec = |o: &[&str]| (opts(o).rec.set, opts(o).rec.clr);
        assert_eq!(rec(&["rnoatime"]), (NOATIME, ATIME));
        let strict = libc::MOUNT_ATTR_STRICTATIME;
        assert_eq!(rec(&["rnoatime", "rstrictatime"]), (strict, ATIME));
        assert_eq!(rec(&["rnoatime", "rrelatime"]), (0, ATIME));
        assert_eq!(rec(&["rnoatime", "ratime"]), (0, ATIME));
        assert_eq!(rec(&["rnoatime", "rnostrictatime"]), (NOATIME, ATIME));
        let nodir = libc::MOUNT_ATTR_NODIRATIME;
        assert_eq!(rec(&["rnodiratime"]), (nodir, 0), "diratime is a plain bit");
        assert_eq!(opts(&["ro", "nodev"]).rec, RecAttr::default());
    }

    #[test]
    fn symfollow() {
        let o = opts(&["nosymfollow"]);
        assert_eq!(o.flags.bits(), libc::MS_NOSYMFOLLOW);
        assert!(o.data.is_empty());
        assert!(opts(&["nosymfollow", "symfollow"]).flags.is_empty());
    }
}
