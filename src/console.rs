//! `process.terminal`: the container gets a pty from its own devpts, and the master end goes
//! to whoever listens on `--console-socket` (runc's docs/terminals.md protocol: one message
//! whose payload is the master's file name, `/dev/ptmx`, and whose SCM_RIGHTS carries its fd).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::pty::{posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// Where a container's pty master goes.
#[derive(Debug)]
pub enum ConsoleSocket {
    /// An engine's `--console-socket` listener.
    Path(PathBuf),
    /// One end of a socketpair whose other end a foreground `run`/`exec` holds, to attach the
    /// caller's terminal itself (see [`crate::commands`]' tty proxy).
    Connected(OwnedFd),
}

impl ConsoleSocket {
    /// The socket the init or exec'd process sends the master on, connected here in the
    /// runtime (before the child exists: a listener's path is a host path the child can no
    /// longer see after pivot_root).
    pub fn connect(&self) -> Result<OwnedFd> {
        match self {
            ConsoleSocket::Path(path) => {
                let stream = std::os::unix::net::UnixStream::connect(path)
                    .map_err(|e| Error::io("connect console socket", path, e))?;
                Ok(OwnedFd::from(stream))
            }
            ConsoleSocket::Connected(fd) => nix::unistd::dup(fd).map_err(Error::sys("dup")),
        }
    }
}

/// Hand a pty master to the engine's console socket (runc's message: the name "/dev/ptmx"
/// and the fd).
pub fn send_master(socket: &OwnedFd, master: &impl AsRawFd) -> Result<()> {
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(b"/dev/ptmx")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(Error::sys("send pty master to console socket"))?;
    Ok(())
}

/// In the init, after pivot_root: make the pty, hand the master to the socket, and make the
/// slave our controlling terminal and stdio (and /dev/console).
pub fn setup(socket: &OwnedFd, is_init: bool) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(Error::sys_path("open", "/dev/ptmx"))?;
    unlockpt(&master).map_err(Error::sys("unlockpt"))?;
    let name = ptsname_r(&master).map_err(Error::sys("ptsname"))?;
    let slave = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::sys_path("open", &name))?;
    if is_init {
        bind_console(&name)?;
    }
    send_master(socket, &master)?;
    drop(master);
    nix::unistd::setsid().map_err(Error::sys("setsid"))?;
    crate::sys::set_controlling_tty(slave.as_fd()).map_err(Error::sys("ioctl(TIOCSCTTY)"))?;
    nix::unistd::dup2_stdin(&slave).map_err(Error::sys("dup2"))?;
    nix::unistd::dup2_stdout(&slave).map_err(Error::sys("dup2"))?;
    nix::unistd::dup2_stderr(&slave).map_err(Error::sys("dup2"))?;
    Ok(())
}

/// stdio that is /dev/null opened read-only (containerd's `--null-io`) becomes a fresh read-write
/// /dev/null, as runc does, so the container can write to it.
pub fn reopen_dev_null() -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(null) = std::fs::metadata("/dev/null") else {
        return Ok(());
    };
    for fd in 0..3 {
        let Ok(st) = std::fs::metadata(format!("/proc/self/fd/{fd}")) else {
            continue;
        };
        if st.file_type().is_char_device() && st.rdev() == null.rdev() {
            let f = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(Error::sys_path("open", "/dev/null"))?;
            match fd {
                0 => nix::unistd::dup2_stdin(&f),
                1 => nix::unistd::dup2_stdout(&f),
                _ => nix::unistd::dup2_stderr(&f),
            }
            .map_err(Error::sys("dup2"))?;
        }
    }
    Ok(())
}

/// /dev/console is the pty too (bind-mounted over an empty file, as runc does).
fn bind_console(pty: &str) -> Result<()> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() {
        std::fs::File::create(console).map_err(|e| Error::io("create", console, e))?;
    }
    mount(
        Some(pty),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(Error::sys_path("bind pty to", console))
}
