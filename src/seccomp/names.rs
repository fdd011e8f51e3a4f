//! Syscall names → numbers for the native ABI.

#[cfg(target_arch = "x86_64")]
#[path = "names_x86_64.rs"]
mod table;

#[cfg(not(target_arch = "x86_64"))]
mod table {
    /// No table for this architecture yet: seccomp profiles are refused (see `arch::target`).
    pub const X86_64: &[(&str, i64)] = &[];
}

/// The number of `name` on this machine, or None when this ABI has no such syscall.
pub fn number(name: &str) -> Option<i64> {
    let t = table::X86_64;
    t.binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| t[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn table_is_sorted_and_matches_libc() {
        assert!(table::X86_64.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(number("read"), Some(libc::SYS_read));
        assert_eq!(number("mkdir"), Some(libc::SYS_mkdir));
        assert_eq!(number("personality"), Some(libc::SYS_personality));
        assert_eq!(number("clone3"), Some(libc::SYS_clone3));
        assert_eq!(number("close_range"), Some(libc::SYS_close_range));
        assert_eq!(number("socketcall"), None, "an i386-only call");
        assert_eq!(number("no_such_call"), None);
    }
}
