//! `linux.seccomp.flags`: the `seccomp(2)` filter flags, checked against the running kernel.

use super::SeccompError;

/// The flags the runtime-spec defines, with their `SECCOMP_FILTER_FLAG_*` bit.
pub const KNOWN: [(&str, u32); 4] = [
    ("SECCOMP_FILTER_FLAG_TSYNC", 1),
    ("SECCOMP_FILTER_FLAG_LOG", 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", WAIT_KILLABLE_RECV),
];

const WAIT_KILLABLE_RECV: u32 = 32;
const NEW_LISTENER: u32 = 8;

pub struct Flags {
    /// What every filter is installed with.
    pub bits: u32,
}

/// Whether this kernel knows `bit`. WAIT_KILLABLE_RECV is only valid with a listener.
pub fn supported(bit: u32) -> bool {
    let probe = if bit == WAIT_KILLABLE_RECV {
        bit | NEW_LISTENER
    } else {
        bit
    };
    crate::sys::seccomp_filter_flags_known(probe)
}

pub fn parse(names: &[String]) -> Result<Flags, SeccompError> {
    let mut bits = 0;
    for name in names {
        let bit = KNOWN
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| *b)
            .ok_or_else(|| SeccompError::Flag(name.clone(), "unknown"))?;
        if !supported(bit) {
            return Err(SeccompError::Flag(
                name.clone(),
                "not supported by this kernel",
            ));
        }
        // WAIT_KILLABLE_RECV only changes how a notify listener waits; gpurun refuses
        // SCMP_ACT_NOTIFY, so there is no listener and the flag has nothing to act on (the
        // kernel would reject it without one).
        if bit != WAIT_KILLABLE_RECV {
            bits |= bit;
        }
    }
    Ok(Flags { bits })
}
