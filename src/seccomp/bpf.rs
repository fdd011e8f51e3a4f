//! The little classic-BPF we write or touch ourselves: the architecture guard, the patch of
//! seccompiler's architecture check, and an interpreter for the instructions seccompiler emits
//! (to order the install and to test what a compiled profile does without loading it).

use super::arch::Abi;

/// One `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;

/// x32 syscalls run under AUDIT_ARCH_X86_64 with this bit set in the number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// `struct seccomp_data` as a filter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Data {
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl Data {
    pub fn native(nr: i32, args: [u64; 6]) -> Data {
        Data {
            nr,
            arch: super::arch::native_audit(),
            args,
        }
    }

    fn word(&self, off: u32) -> Option<u32> {
        match off {
            NR => Some(self.nr as u32),
            ARCH => Some(self.arch),
            // instruction_pointer (8..16) is never read by our filters.
            16..=63 if off.is_multiple_of(4) => {
                let arg = self.args[(off as usize - 16) / 8];
                // Little-endian: the low half comes first.
                Some(if off.is_multiple_of(8) {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                })
            }
            _ => None,
        }
    }
}

/// Run a filter on `data` and return its verdict. Anything outside the instruction subset
/// seccompiler and [`arch_guard`] produce yields SECCOMP_RET_KILL_PROCESS, the safe answer.
pub fn run(prog: &[Insn], data: &Data) -> u32 {
    let (mut acc, mut pc) = (0u32, 0usize);
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let cond = |hit: bool| if hit { i.jt as usize } else { i.jf as usize };
        match i.code {
            LD_W_ABS => match data.word(i.k) {
                Some(w) => acc = w,
                None => break,
            },
            ALU_AND_K => acc &= i.k,
            JMP_JA => pc += i.k as usize,
            JMP_JEQ_K => pc += cond(acc == i.k),
            JMP_JGT_K => pc += cond(acc > i.k),
            JMP_JGE_K => pc += cond(acc >= i.k),
            RET_K => return i.k,
            _ => break,
        }
    }
    libc::SECCOMP_RET_KILL_PROCESS
}

/// seccompiler starts every filter with `ld arch; jeq NATIVE, +1; ret KILL_PROCESS`. Turn the
/// kill into allow, so only the guard filter decides what foreign ABIs get.
pub fn allow_foreign_arch(prog: &mut [Insn]) -> Result<(), String> {
    match prog {
        [ld, jeq, ret, ..]
            if *ld == stmt(LD_W_ABS, ARCH)
                && jeq.code == JMP_JEQ_K
                && (jeq.jt, jeq.jf) == (1, 0)
                && *ret == stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS) =>
        {
            ret.k = libc::SECCOMP_RET_ALLOW;
            Ok(())
        }
        _ => Err("unexpected seccompiler filter prologue".into()),
    }
}

/// Replace every `ret FROM` by `ret TO`.
pub fn replace_ret(prog: &mut [Insn], from: u32, to: u32) {
    for i in prog.iter_mut().filter(|i| **i == stmt(RET_K, from)) {
        i.k = to;
    }
}

/// The guard: native calls pass (x32 ones get `x32`'s verdict); for another ABI the verdict
/// listed in `abis`, or SECCOMP_RET_KILL_THREAD (libseccomp's default "bad arch" action).
pub fn arch_guard(native: u32, abis: &[Abi]) -> Vec<Insn> {
    let kill = libc::SECCOMP_RET_KILL_THREAD;
    let x32 = abis.iter().find(|a| a.x32).map_or(kill, |a| a.verdict);
    let mut prog = vec![stmt(LD_W_ABS, ARCH), jump(JMP_JEQ_K, native, 0, 4)];
    if native == super::arch::AUDIT_ARCH_X86_64 {
        prog.extend([
            stmt(LD_W_ABS, NR),
            jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
            stmt(RET_K, x32),
        ]);
    } else {
        prog.extend([stmt(JMP_JA, 0), stmt(JMP_JA, 0), stmt(JMP_JA, 0)]);
    }
    prog.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    for abi in abis.iter().filter(|a| !a.x32) {
        prog.push(jump(JMP_JEQ_K, abi.audit, 0, 1));
        prog.push(stmt(RET_K, abi.verdict));
    }
    prog.push(stmt(RET_K, kill));
    prog
}
