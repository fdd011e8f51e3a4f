//! `linux.seccomp.architectures`: which ABIs the profile covers, and what a call from an ABI
//! other than the native one gets.
//!
//! Rules are compiled for the native ABI only (seccompiler knows one syscall table per
//! target, and gpurun ships the x86_64 one). A profile listing a compat ABI of this machine —
//! `SCMP_ARCH_X86` and `SCMP_ARCH_X32` on x86_64, as Docker's and Podman's profiles do — gets
//! every call of that ABI answered with ENOSYS: a 32-bit program sees a kernel without that
//! ABI instead of an unfiltered one, which would let it around every rule. A compat ABI the
//! profile does not list kills the thread, libseccomp's default for a foreign architecture.
//! Architectures that cannot occur on this machine (`SCMP_ARCH_PPC64LE` on x86_64) are
//! accepted and have no effect, as with libseccomp.

use super::SeccompError;

/// `AUDIT_ARCH_*` values from `<linux/audit.h>`.
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;

/// Every architecture name libseccomp knows (what `features` reports).
pub const KNOWN: [&str; 22] = [
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
];

/// A compat ABI of this machine that the profile lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abi {
    pub audit: u32,
    /// x32 shares x86_64's audit arch and is told apart by the syscall number.
    pub x32: bool,
    pub verdict: u32,
}

/// The seccompiler target for this build, if gpurun has a syscall table for it.
pub fn target() -> Option<seccompiler::TargetArch> {
    cfg!(target_arch = "x86_64").then_some(seccompiler::TargetArch::x86_64)
}

pub fn native_audit() -> u32 {
    if cfg!(target_arch = "aarch64") {
        AUDIT_ARCH_AARCH64
    } else {
        AUDIT_ARCH_X86_64
    }
}

/// The compat ABIs the profile lists; an unknown name is an error.
pub fn abis(names: &[String]) -> Result<Vec<Abi>, SeccompError> {
    let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let mut out = Vec::new();
    for name in names {
        if !KNOWN.contains(&name.as_str()) {
            return Err(SeccompError::Arch(name.clone()));
        }
        let abi = match (name.as_str(), native_audit()) {
            ("SCMP_ARCH_X86", AUDIT_ARCH_X86_64) => Abi {
                audit: AUDIT_ARCH_I386,
                x32: false,
                verdict: enosys,
            },
            ("SCMP_ARCH_X32", AUDIT_ARCH_X86_64) => Abi {
                audit: AUDIT_ARCH_X86_64,
                x32: true,
                verdict: enosys,
            },
            ("SCMP_ARCH_ARM", AUDIT_ARCH_AARCH64) => Abi {
                audit: AUDIT_ARCH_ARM,
                x32: false,
                verdict: enosys,
            },
            _ => continue,
        };
        if !out.contains(&abi) {
            out.push(abi);
        }
    }
    Ok(out)
}
