//! Cancellation (a CI job cancelled, Ctrl-C): SIGINT and SIGTERM are blocked in every thread
//! and read from a signalfd by a watcher thread, so there is no signal handler (and no unsafe
//! code). The watcher only records the signal; the code waiting on a RUN container polls it and
//! stops the container through the runtime, and the build fails with `Error::Cancelled`, whose
//! normal error path removes the work trees.

use crate::error::{Error, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The first SIGINT/SIGTERM received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// A RUN container was stopped because of it (for the final message).
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Block SIGINT/SIGTERM and start the watcher. Must run before any other thread starts, so
/// that every thread inherits the mask (a signal could otherwise kill the process the default
/// way). Children get an empty mask again from std's spawn.
pub fn install() -> std::result::Result<(), String> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| format!("blocking SIGINT/SIGTERM: {e}"))?;
    let fd = SignalFd::new(&set).map_err(|e| format!("signalfd: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match fd.read_signal() {
                Ok(Some(info)) => {
                    // Keep the first: a second Ctrl-C must not change the exit status.
                    let _ = SIGNAL.compare_exchange(
                        0,
                        info.ssi_signo as i32,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                Ok(None) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        })
        .map_err(|e| format!("starting the signal thread: {e}"))?;
    Ok(())
}

/// The signal that cancelled the build, if any.
pub fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `Err(Cancelled)` once a signal arrived: called between steps and before a RUN starts.
pub fn check() -> Result<()> {
    match signal() {
        None => Ok(()),
        Some(signal) => Err(Error::Cancelled { signal, line: None }),
    }
}

pub fn note_container_stopped() {
    STOPPED.store(true, Ordering::SeqCst);
}

pub fn container_stopped() -> bool {
    STOPPED.load(Ordering::SeqCst)
}

/// SIGINT, SIGTERM … by number (for messages).
pub fn name(signal: i32) -> String {
    Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}
