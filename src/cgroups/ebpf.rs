//! cgroup v2 device rules as a `BPF_PROG_TYPE_CGROUP_DEVICE` program, generated here (no C
//! toolchain, no libbpf) and attached with bpf(2).
//!
//! The program checks the rules from last to first and returns the verdict of the first that
//! matches — "the last matching rule wins", the same meaning the rules have on cgroup v1.

use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use super::devices::Rule;
use super::{CgroupError, Result};

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
// struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction: opcode, dst/src registers, offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Insn(u8, u8, u8, i16, i32);

impl Insn {
    fn encode(self) -> [u8; 8] {
        let Insn(code, dst, src, off, imm) = self;
        let mut b = [0u8; 8];
        b[0] = code;
        b[1] = (src << 4) | dst;
        b[2..4].copy_from_slice(&off.to_le_bytes());
        b[4..8].copy_from_slice(&imm.to_le_bytes());
        b
    }
}

fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    Insn(0x61, dst, src, off, 0)
}
fn and32(dst: u8, imm: i32) -> Insn {
    Insn(0x54, dst, 0, 0, imm)
}
fn rsh32(dst: u8, imm: i32) -> Insn {
    Insn(0x74, dst, 0, 0, imm)
}
fn mov32_reg(dst: u8, src: u8) -> Insn {
    Insn(0xbc, dst, src, 0, 0)
}
fn mov64(dst: u8, imm: i32) -> Insn {
    Insn(0xb7, dst, 0, 0, imm)
}
fn jne(dst: u8, imm: i32, off: i16) -> Insn {
    Insn(0x55, dst, 0, off, imm)
}
fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    Insn(0x5d, dst, src, off, 0)
}
fn jeq(dst: u8, imm: i32, off: i16) -> Insn {
    Insn(0x15, dst, 0, off, imm)
}
fn exit() -> Insn {
    Insn(0x95, 0, 0, 0, 0)
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => 0,
        }
    })
}

/// The program for `rules` (the full ordered list from [`super::devices::rules`]).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // r2 = device type, r3 = requested access, r4 = major, r5 = minor
    let mut prog = vec![
        ldx_w(2, 1, 0),
        and32(2, 0xffff),
        ldx_w(3, 1, 0),
        rsh32(3, 16),
        ldx_w(4, 1, 4),
        ldx_w(5, 1, 8),
    ];
    const NEXT: i16 = i16::MAX; // placeholder: patched to "the first instruction after this block"
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        match rule.kind {
            'c' => block.push(jne(2, DEV_CHAR, NEXT)),
            'b' => block.push(jne(2, DEV_BLOCK, NEXT)),
            _ => {}
        }
        let bits = access_bits(&rule.access);
        if bits != ACC_MKNOD | ACC_READ | ACC_WRITE {
            block.extend([mov32_reg(1, 3), and32(1, bits)]);
            if rule.allow {
                // an allow matches only if it grants every requested access bit
                block.push(jne_reg(1, 3, NEXT));
            } else {
                // a deny matches if it covers any requested bit (v1 semantics)
                block.push(jeq(1, 0, NEXT));
            }
        }
        if let Some(major) = rule.major {
            block.push(jne(4, major as i32, NEXT));
        }
        if let Some(minor) = rule.minor {
            block.push(jne(5, minor as i32, NEXT));
        }
        block.extend([mov64(0, i32::from(rule.allow)), exit()]);
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.3 == NEXT {
                insn.3 = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
        // A rule without conditions (`a *:* rwm`) matches everything: the verifier rejects
        // the unreachable code any further rule would be.
        if len == 2 {
            return prog;
        }
    }
    // No rule matched: deny (runc starts every container from deny-all, whatever the spec).
    prog.extend([mov64(0, 0), exit()]);
    prog
}

/// The end of the verifier's log (where it says what it rejected), kept short: the error
/// goes to engines that read our stderr only after we exit.
fn verifier_tail(log: &[u8]) -> String {
    let len = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..len]);
    let text = text.trim();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("; ");
    match tail.len() {
        0 => String::new(),
        n if n > 1000 => format!(": …{}", &tail[tail.ceil_char_boundary(n - 1000)..]),
        _ => format!(": {tail}"),
    }
}

/// Load (verify) the program for `rules`.
fn load_filter(rules: &[Rule]) -> Result<std::os::fd::OwnedFd> {
    let insns: Vec<[u8; 8]> = program(rules).into_iter().map(Insn::encode).collect();
    let load = |log: &mut [u8]| {
        crate::sys::bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, &insns, c"Apache", log)
    };
    // Without a log first: a verifier log longer than its buffer fails the load (ENOSPC) even
    // for a good program, and a container with every host device (`--privileged`) makes a
    // long one. Only a failed load is repeated, to say why.
    match load(&mut []) {
        Ok(fd) => Ok(fd),
        Err(errno) => {
            let mut log = vec![0u8; 256 * 1024];
            let _ = load(&mut log);
            Err(CgroupError::Bpf {
                op: "load device filter",
                errno,
                log: verifier_tail(&log),
            })
        }
    }
}

/// Load the program for `rules` and attach it to the cgroup directory `dir`.
pub fn attach_device_filter(dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = load_filter(rules)?;
    let cgroup = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| CgroupError::Bpf {
        op: "open cgroup",
        errno,
        log: format!(" ({})", dir.display()),
    })?;
    use std::os::fd::AsFd;
    crate::sys::bpf_prog_attach(
        cgroup.as_fd(),
        prog.as_fd(),
        BPF_CGROUP_DEVICE,
        BPF_F_ALLOW_MULTI,
    )
    .map_err(|errno| CgroupError::Bpf {
        op: "attach device filter",
        errno,
        log: format!(" ({})", dir.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the generated program on one request, as the kernel would.
    fn eval(prog: &[Insn], kind: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | kind) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let Insn(code, dst, src, off, imm) = prog[pc];
            let (d, s) = (dst as usize, src as usize);
            pc += 1;
            match code {
                0x61 => r[d] = ctx[off as usize / 4] as i64,
                0x54 => r[d] = ((r[d] as u32) & (imm as u32)) as i64,
                0x74 => r[d] = ((r[d] as u32) >> imm) as i64,
                0xbc => r[d] = (r[s] as u32) as i64,
                0xb7 => r[d] = imm as i64,
                0x55 => {
                    if r[d] != imm as i64 {
                        pc += off as usize
                    }
                }
                0x15 => {
                    if r[d] == imm as i64 {
                        pc += off as usize
                    }
                }
                0x5d => {
                    if r[d] != r[s] {
                        pc += off as usize
                    }
                }
                0x95 => return r[0],
                _ => panic!("unknown opcode {code:#x}"),
            }
        }
    }

    #[test]
    fn last_matching_rule_wins() {
        let spec: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_value(serde_json::json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"},
                {"allow": false, "type": "c", "major": 1, "minor": 9, "access": "rwm"}
            ]))
            .unwrap();
        let prog = program(&super::super::devices::rules(&spec, &[]));
        let (r, w, m) = (ACC_READ, ACC_WRITE, ACC_MKNOD);
        assert_eq!(eval(&prog, DEV_CHAR, r | w, 1, 3), 1, "/dev/null allowed");
        assert_eq!(
            eval(&prog, DEV_CHAR, r, 1, 9),
            1,
            "urandom: the always-allowed list comes last"
        );
        assert_eq!(eval(&prog, DEV_BLOCK, r, 8, 0), 1, "sda read allowed");
        assert_eq!(eval(&prog, DEV_BLOCK, w, 8, 0), 0, "sda write denied");
        assert_eq!(
            eval(&prog, DEV_BLOCK, m, 8, 0),
            1,
            "mknod of anything allowed"
        );
        assert_eq!(
            eval(&prog, DEV_CHAR, r, 10, 237),
            0,
            "everything else denied"
        );
        assert_eq!(eval(&prog, DEV_CHAR, r | w, 136, 4), 1, "ptys allowed");
        // A partial deny covers requests with more bits; no rules at all means deny.
        let partial: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_value(serde_json::json!([
                {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rw"},
                {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "w"}
            ]))
            .unwrap();
        let p2 = program(&super::super::devices::rules(&partial, &[]));
        assert_eq!(
            eval(&p2, DEV_BLOCK, r | w, 8, 0),
            0,
            "O_RDWR hits the write deny"
        );
        assert_eq!(eval(&p2, DEV_BLOCK, r, 8, 0), 1, "read still allowed");
        assert_eq!(eval(&p2, DEV_CHAR, r, 10, 237), 0, "default deny");
        // The deny-all rule is the last block: nothing unreachable follows it.
        assert_eq!(prog[prog.len() - 1], exit());
        assert_eq!(prog[prog.len() - 2], mov64(0, 0));
    }

    /// `--privileged` on a machine with hundreds of devices: one rule per device must still
    /// give a program the kernel accepts.
    #[test]
    fn a_filter_for_hundreds_of_devices_loads() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: loading a BPF program needs root");
            return;
        }
        let spec: Vec<oci_spec::runtime::LinuxDeviceCgroup> = (0..700)
            .map(|i| {
                serde_json::from_value(serde_json::json!(
                    {"allow": true, "type": if i % 3 == 0 { "b" } else { "c" },
                     "major": i / 50, "minor": i % 50, "access": "rwm"}
                ))
                .unwrap()
            })
            .collect();
        let rules = super::super::devices::rules(&spec, &[]);
        let loaded = load_filter(&rules);
        assert!(loaded.is_ok(), "{} rules: {loaded:?}", rules.len());
    }
}
