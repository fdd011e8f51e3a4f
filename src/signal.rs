//! Signal names as `kill` accepts them: `KILL`, `SIGKILL`, `kill`, `9`; and the signals a
//! foreground `run`/`restore` passes on.

use std::str::FromStr;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

/// Signals a foreground `run` (or `restore`) passes on to the container instead of dying
/// from them.
pub const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(Error::UnknownSignal(s.into()))
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name)
        .map(|sig| sig as i32)
        .map_err(|_| Error::UnknownSignal(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("term").unwrap(), 15);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("SIGUSR1").unwrap(), libc::SIGUSR1);
        for bad in ["0", "65", "FOO", "SIG", ""] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}
