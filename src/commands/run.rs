//! `run`: create + start, then (unless --detach) wait for the init, forwarding signals to it,
//! remove the container and return its exit status (128+N when killed by signal N).

use std::os::fd::AsFd;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::attach::{self, TtyProxy};
use crate::cli::RunArgs;
use crate::console::ConsoleSocket;
use crate::container::{self, create};
use crate::error::{Error, Result};
use crate::sys;

use crate::signal::FORWARDED;

pub fn run(root: &Path, args: &RunArgs, systemd_cgroup: bool) -> Result<i32> {
    let id = &args.create.id;
    let mut opts = super::create_options(&args.create, systemd_cgroup);
    let attach = attach_unless(args.detach, &mut opts.console)?;
    // Block the forwarded signals before the init exists: they are then queued for our
    // signalfd instead of killing us mid-way. The init restores its own mask before exec.
    let (forwarded, previous) = block_forwarded(args.detach)?;
    let created = create::create(root, id, &opts)?;
    let init = created.init;
    let released = receive_tty(attach)
        .and_then(|tty| container::release(&created.dir).map(|released| (tty, released)));
    // Release the container's lock so `state`, `kill`, … work from here on.
    drop(created.dir);
    let mut tty = match released.and_then(|(tty, released)| released.finish().map(|()| tty)) {
        Ok(tty) => tty,
        Err(e) => {
            // As `delete --force` would: everything create made goes, poststop hooks run.
            init.kill_and_reap();
            let _ = container::delete(root, id, true);
            return Err(e);
        }
    };
    crate::fault::point("started");
    if args.detach {
        return Ok(0);
    }

    let status = wait_forwarding(&init, &forwarded, tty.as_mut());
    drop(tty); // the caller's terminal mode is restored before anything else is printed
    if let Some(previous) = previous {
        let _ = previous.thread_set_mask();
    }
    let status = status?;
    if !args.keep {
        container::delete(root, id, true)?;
    }
    Ok(status)
}

/// A foreground process with no --console-socket gets the caller's terminal, if it asks for
/// one: hand the container our own socket (see [`attach`]).
fn attach_unless(
    detach: bool,
    console: &mut Option<ConsoleSocket>,
) -> Result<Option<attach::Attach>> {
    if detach || console.is_some() {
        return Ok(None);
    }
    let (ours, theirs) = attach::socket_pair()?;
    *console = Some(theirs);
    Ok(Some(ours))
}

fn receive_tty(attach: Option<attach::Attach>) -> Result<Option<TtyProxy>> {
    Ok(match attach {
        Some(attach) => attach.receive()?,
        None => None,
    })
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
/// every forwarded signal that reaches us meanwhile, and copying between the caller's stdio
/// and the pty when attached to one (where SIGWINCH resizes the pty instead).
fn wait_forwarding(
    init: &crate::process::parent::Init,
    forwarded: &SigSet,
    mut tty: Option<&mut TtyProxy>,
) -> Result<i32> {
    let sfd = SignalFd::with_flags(forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(Error::sys("signalfd"))?;
    loop {
        let (stdin, master) = tty.as_deref().map_or((None, None), TtyProxy::fds);
        let mut fds = vec![
            PollFd::new(init.pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(stdin.map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
        let master_at = fds.len();
        fds.extend(master.map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
        let (has_stdin, has_master) = (stdin.is_some(), master.is_some());
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll")(e)),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if let Some(tty) = tty.as_deref_mut() {
            if has_stdin && ready[2] {
                tty.copy_stdin();
            }
            if has_master && ready[master_at] {
                tty.copy_master();
            }
        }
        if ready[0] {
            if let Some(tty) = tty.as_deref_mut() {
                tty.drain();
            }
            return init.wait_exit();
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            match tty.as_deref() {
                Some(tty) if info.ssi_signo == Signal::SIGWINCH as u32 => tty.resize(),
                _ => {
                    let _ = sys::pidfd_send_signal(init.pidfd.as_fd(), info.ssi_signo as i32);
                }
            }
        }
    }
}

/// `exec`: start a process in the container; unless --detach, wait for it (forwarding signals)
/// and return its exit status.
pub fn exec(root: &Path, args: &crate::cli::ExecArgs) -> Result<i32> {
    let mut opts = container::exec::ExecOptions {
        process_file: args.process.clone(),
        args: args.command.clone(),
        cwd: args.cwd.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        additional_gids: args.additional_gids.clone(),
        caps: args.cap.clone(),
        no_new_privs: args.no_new_privs,
        tty: args.tty,
        console: args.console_socket.clone().map(ConsoleSocket::Path),
        pid_file: args.pid_file.clone(),
        preserve_fds: args.preserve_fds,
        apparmor: args.apparmor.clone(),
        process_label: args.process_label.clone(),
    };
    let attach = attach_unless(args.detach, &mut opts.console)?;
    let (forwarded, previous) = block_forwarded(args.detach)?;
    let proc = container::exec::exec(root, &args.id, &opts)?;
    if args.detach {
        return Ok(0);
    }
    let mut tty = match receive_tty(attach) {
        Ok(tty) => tty,
        Err(e) => {
            proc.kill_and_reap();
            return Err(e);
        }
    };
    let status = wait_forwarding(&proc, &forwarded, tty.as_mut());
    drop(tty);
    if let Some(previous) = previous {
        let _ = previous.thread_set_mask();
    }
    status
}
