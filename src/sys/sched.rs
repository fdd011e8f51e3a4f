//! Scheduling, I/O priority, NUMA policy and personality syscalls (part of the syscall
//! wrappers: see `sys.rs`). nix has none of them but the affinity calls, and those only with
//! glibc's fixed 1024-CPU `cpu_set_t`: [`Mask`] has any size, as runc's `CPUSetDynamic`.

use nix::errno::Errno;

type Word = libc::c_ulong;
const WORD_BITS: usize = Word::BITS as usize;

/// A CPU or NUMA node bitmap in the kernel's layout (an array of `unsigned long`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mask(Vec<Word>);

impl Mask {
    /// Room for bits `0..bits`, none set.
    pub fn with_bits(bits: usize) -> Mask {
        Mask(vec![0; bits.div_ceil(WORD_BITS).max(1)])
    }

    /// Bits `0..bits` all set (the largest affinity: the kernel clamps it to what exists).
    pub fn full(bits: usize) -> Mask {
        let mut m = Mask::with_bits(bits);
        m.0.fill(Word::MAX);
        m
    }

    pub fn set(&mut self, bit: usize) {
        let word = bit / WORD_BITS;
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (bit % WORD_BITS);
    }

    pub fn is_set(&self, bit: usize) -> bool {
        self.0
            .get(bit / WORD_BITS)
            .is_some_and(|w| w & (1 << (bit % WORD_BITS)) != 0)
    }

    /// How many bits are set.
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn bits(&self) -> usize {
        self.0.len() * WORD_BITS
    }

    fn bytes(&self) -> usize {
        self.0.len() * std::mem::size_of::<Word>()
    }
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | data)`: the I/O priority of the calling
/// process (inherited by its children).
pub fn ioprio_set_self(class: u32, data: u32) -> Result<(), Errno> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    // SAFETY: integer arguments only; `who` 0 is the calling process.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            ((class << IOPRIO_CLASS_SHIFT) | data) as libc::c_int,
        )
    };
    Errno::result(ret).map(drop)
}

/// `struct sched_attr` of `<linux/sched/types.h>` (SCHED_ATTR_SIZE_VER1, 56 bytes; runc
/// passes the same, with zero utilization clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// `sched_setattr(0, attr, 0)`: scheduling policy and parameters of the calling thread (the
/// whole process: gpurun starts no threads).
pub fn sched_setattr_self(attr: &SchedAttr) -> Result<(), Errno> {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        ..attr.clone()
    };
    // SAFETY: `attr` is a valid sched_attr whose `size` field says how many bytes the kernel
    // may read; it outlives the call and the kernel keeps no reference to it.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    Errno::result(ret).map(drop)
}

/// `set_mempolicy(mode | flags, nodes)`: the NUMA policy of the calling thread, kept over
/// fork and execve. An empty mask is passed as NULL (MPOL_DEFAULT and MPOL_LOCAL want none).
pub fn set_mempolicy(mode: i32, nodes: &Mask) -> Result<(), Errno> {
    let (ptr, maxnode) = match nodes.count() {
        0 => (std::ptr::null(), 0),
        // The kernel reads `maxnode - 1` bits (libnuma passes size + 1 as well).
        _ => (nodes.0.as_ptr(), nodes.bits() + 1),
    };
    // SAFETY: `ptr` is NULL or points at `nodes`' words, which hold at least `maxnode - 1`
    // bits and outlive the call; the kernel copies the mask.
    let ret =
        unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode as libc::c_ulong) };
    Errno::result(ret).map(drop)
}

/// `personality(persona)`: the execution domain, kept over execve.
pub fn personality(persona: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: an integer argument only; the return value is the previous persona or -1.
    let ret = unsafe { libc::syscall(libc::SYS_personality, persona) };
    Errno::result(ret).map(drop)
}

/// `sched_setaffinity(pid, mask)`; pid 0 is the calling thread.
pub fn sched_setaffinity(pid: i32, mask: &Mask) -> Result<(), Errno> {
    // SAFETY: the pointer and byte length describe `mask`'s words, alive for the call; the
    // kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            mask.bytes(),
            mask.0.as_ptr(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `sched_getaffinity(pid)`, with room for `bits` CPUs (EINVAL if the kernel has more).
pub fn sched_getaffinity(pid: i32, bits: usize) -> Result<Mask, Errno> {
    let mut mask = Mask::with_bits(bits);
    // SAFETY: the pointer and byte length describe `mask`'s words, which the kernel fills
    // (up to that length) and which outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            pid,
            mask.bytes(),
            mask.0.as_mut_ptr(),
        )
    };
    Errno::result(ret).map(|_| mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_bits() {
        let mut m = Mask::with_bits(3);
        assert_eq!(m.bits(), WORD_BITS);
        m.set(1);
        m.set(200);
        assert!(m.is_set(1) && m.is_set(200) && !m.is_set(0) && !m.is_set(9999));
        assert_eq!(m.count(), 2);
        assert_eq!(m.bits(), 256);
        assert_eq!(Mask::full(128).count(), 128);
    }

    #[test]
    fn own_affinity_roundtrip() {
        let mine = sched_getaffinity(0, 1 << 16).unwrap();
        assert!(mine.count() >= 1);
        sched_setaffinity(0, &mine).unwrap();
    }
}
