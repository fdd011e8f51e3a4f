//! `run`: create + start, then (unless --detach) wait for the init, forwarding signals to it,
//! remove the container and return its exit status (128+N when killed by signal N).

use std::os::fd::AsFd;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cli::RunArgs;
use crate::container::{self, create};
use crate::error::{Error, Result};
use crate::sys;

/// Signals a foreground `run` passes on to the container instead of dying from them.
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

pub fn run(root: &Path, args: &RunArgs) -> Result<i32> {
    let id = &args.create.id;
    let opts = super::create_options(&args.create);
    // Block the forwarded signals before the init exists: they are then queued for our
    // signalfd instead of killing us mid-way. The init restores its own mask before exec.
    let (forwarded, previous) = block_forwarded(args.detach)?;
    let created = create::create(root, id, &opts)?;
    if let Err(e) = container::start_dir(&created.dir) {
        created.init.kill_and_reap();
        created.state.cgroup.remove();
        let _ = created.dir.remove();
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    // Release the container's lock so `state`, `kill`, … work while we wait.
    let init = created.init;
    drop(created.dir);

    let status = wait_forwarding(&init, &forwarded);
    if let Some(previous) = previous {
        let _ = previous.thread_set_mask();
    }
    let status = status?;
    if !args.keep {
        container::delete(root, id, true)?;
    }
    Ok(status)
}

/// Block the signals a foreground `run`/`exec` forwards (nothing when detaching); returns the
/// set and the mask to restore.
fn block_forwarded(detach: bool) -> Result<(SigSet, Option<SigSet>)> {
    let mut forwarded = SigSet::empty();
    FORWARDED.iter().for_each(|s| forwarded.add(*s));
    if detach {
        return Ok((forwarded, None));
    }
    let previous = forwarded
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(Error::sys("sigprocmask"))?;
    Ok((forwarded, Some(previous)))
}

/// Wait for the init's exit with its pidfd (never a SIGCHLD that could be lost), passing on
/// every forwarded signal that reaches us meanwhile.
fn wait_forwarding(init: &crate::process::parent::Init, forwarded: &SigSet) -> Result<i32> {
    let sfd = SignalFd::with_flags(forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(Error::sys("signalfd"))?;
    loop {
        let mut fds = [
            PollFd::new(init.pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll")(e)),
            Ok(_) => {}
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return init.wait_exit();
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let _ = sys::pidfd_send_signal(init.pidfd.as_fd(), info.ssi_signo as i32);
        }
    }
}

/// `exec`: start a process in the container; unless --detach, wait for it (forwarding signals)
/// and return its exit status.
pub fn exec(root: &Path, args: &crate::cli::ExecArgs) -> Result<i32> {
    let opts = container::exec::ExecOptions {
        process_file: args.process.clone(),
        args: args.command.clone(),
        cwd: args.cwd.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        additional_gids: args.additional_gids.clone(),
        caps: args.cap.clone(),
        no_new_privs: args.no_new_privs,
        tty: args.tty,
        console_socket: args.console_socket.clone(),
        pid_file: args.pid_file.clone(),
        preserve_fds: args.preserve_fds,
    };
    let (forwarded, previous) = block_forwarded(args.detach)?;
    let proc = container::exec::exec(root, &args.id, &opts)?;
    if args.detach {
        return Ok(0);
    }
    let status = wait_forwarding(&proc, &forwarded);
    if let Some(previous) = previous {
        let _ = previous.thread_set_mask();
    }
    status
}
