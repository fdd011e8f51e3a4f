//! `linux.seccomp.flags`: the `seccomp(2)` filter flags, checked against the running kernel.

use super::SeccompError;

/// The flags the runtime-spec defines, with their `SECCOMP_FILTER_FLAG_*` bit.
pub const KNOWN: [(&str, u32); 4] = [
    ("SECCOMP_FILTER_FLAG_TSYNC", 1),
    ("SECCOMP_FILTER_FLAG_LOG", 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", WAIT_KILLABLE_RECV),
];

const TSYNC: u32 = 1;
const WAIT_KILLABLE_RECV: u32 = 32;
const NEW_LISTENER: u32 = crate::sys::NEW_LISTENER;

pub struct Flags {
    /// What every filter but the notify one is installed with.
    pub bits: u32,
    /// What the notify filter is installed with (its NEW_LISTENER is added at install):
    /// WAIT_KILLABLE_RECV only acts on a listener, and the kernel refuses TSYNC with one
    /// (without TSYNC_ESRCH); gpurun installs from a single thread, where TSYNC does nothing.
    pub listener_bits: u32,
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
    let (mut bits, mut wait_killable) = (0, 0);
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
        // WAIT_KILLABLE_RECV changes how a notified process waits for the agent: only the
        // notify filter may carry it (the kernel rejects it on a filter without a listener).
        if bit == WAIT_KILLABLE_RECV {
            wait_killable = bit;
        } else {
            bits |= bit;
        }
    }
    Ok(Flags {
        bits,
        listener_bits: (bits & !TSYNC) | wait_killable,
    })
}
