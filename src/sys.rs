//! Thin wrappers over the few syscalls that nix does not cover.
//!
//! This is the only module of the runtime that contains `unsafe`: every block below is a
//! direct syscall with plain integer/pointer arguments, documented with a `// SAFETY:` comment.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

pub mod fd;
mod keyring;
mod mount_api;
mod net;
pub mod netlink;
pub mod sched;
mod seccomp;
mod xattr;
pub use keyring::{join_session_keyring, keyring_perm, set_keyring_perm};
pub use mount_api::{mount_setattr, mount_setattr_idmap, move_mount_fd, open_tree_clone};
pub use net::loopback_up;
pub use seccomp::{
    seccomp_filter_flags_known, seccomp_set_mode_filter, seccomp_set_mode_filter_listener,
    NEW_LISTENER,
};
pub use xattr::set_xattr;

/// `struct clone_args` from `<linux/sched.h>` (the first, stable 88 bytes: up to `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The outcome of a fork-like clone, seen from either side.
pub enum Forked {
    /// We are the parent: the child's pid and a pidfd for it.
    Parent { pid: Pid, pidfd: OwnedFd },
    /// We are the new child process; `in_cgroup` tells whether the kernel already placed us
    /// into the requested cgroup2 directory (CLONE_INTO_CGROUP).
    Child { in_cgroup: bool },
}

/// Fork-like `clone3(2)`: the child continues on a copy-on-write copy of our stack, exactly as
/// with `fork(2)`, but may start in new namespaces and hands us a pidfd atomically.
///
/// With `cgroup` (a cgroup2 directory fd) the child is born in that cgroup
/// (CLONE_INTO_CGROUP), so even its first page is accounted there.
///
/// Falls back to the legacy `clone(2)` on kernels without clone3 (and without
/// CLONE_INTO_CGROUP). The caller must be single-threaded (gpurun never starts a thread
/// before this point).
pub fn clone_fork(
    namespace_flags: libc::c_int,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<Forked, Errno> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: (namespace_flags | libc::CLONE_PIDFD) as u64
            | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
        pidfd: &mut pidfd as *mut RawFd as u64,
        // With CLONE_PARENT the kernel takes the exit signal from our parent (and refuses one).
        exit_signal: match namespace_flags & libc::CLONE_PARENT {
            0 => libc::SIGCHLD as u64,
            _ => 0,
        },
        cgroup: cgroup.map_or(0, |fd| fd.as_raw_fd() as u64),
        ..Default::default()
    };
    let mut in_cgroup = cgroup.is_some();
    // SAFETY: clone3 with stack == 0 behaves like fork(2): the child gets a private copy of
    // the address space. `args` and `pidfd` outlive the call; the size passed matches the
    // struct. The process is single-threaded, so no lock can be held by a vanished thread.
    let mut ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == -1 && Errno::last() == Errno::ENOSYS {
        in_cgroup = false;
        // SAFETY: legacy clone(2) with a NULL stack is also fork-like on x86_64 and aarch64;
        // with CLONE_PIDFD the kernel writes the pidfd into `parent_tid` (our `pidfd`).
        ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (namespace_flags | libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong,
                std::ptr::null_mut::<libc::c_void>(),
                &mut pidfd as *mut RawFd,
                std::ptr::null_mut::<libc::c_int>(),
                0 as libc::c_ulong,
            )
        };
    }
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child { in_cgroup }),
        pid => Ok(Forked::Parent {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: the kernel just created this fd for us (CLONE_PIDFD) and nothing else owns it.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// `pidfd_open(2)`: a handle that keeps referring to this process even if its pid is reused.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: plain integer arguments; on success the return value is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    Errno::result(fd).map(|fd| {
        // SAFETY: a fresh fd returned by the kernel, owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
    })
}

/// `pidfd_send_signal(2)`: signal exactly the process the pidfd refers to.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> Result<(), Errno> {
    // SAFETY: integer arguments; a NULL siginfo means "as kill(2) would send it".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// Mark every fd from `first` upwards close-on-exec (`close_range(2)` with CLOSE_RANGE_CLOEXEC),
/// so nothing of the runtime leaks into the container (CVE-2024-21626).
pub fn cloexec_from(first: RawFd) -> Result<(), Errno> {
    // SAFETY: integer arguments only; the flag makes the kernel set FD_CLOEXEC, closing nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(ret).map(drop)
}

/// `umask(2)`, which nix exposes only through its `Mode` type with lossy conversions.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask(2) cannot fail and touches only the process' file creation mask.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Apply one rlimit pair with `setrlimit(2)` (nix's enum has no variant for every resource
/// number an OCI config may carry).
pub fn set_rlimit(resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid, initialised rlimit struct that outlives the call.
    let ret = unsafe { libc::setrlimit(resource as _, &limit) };
    Errno::result(ret).map(drop)
}

/// Set one rlimit of another process (`prlimit(2)`): limits for a helper we spawn (ldconfig)
/// without a pre-exec closure in the child.
pub fn set_rlimit_of(pid: i32, resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid rlimit that outlives the call; a null old-limit pointer is allowed.
    let ret = unsafe { libc::prlimit(pid, resource as _, &limit, std::ptr::null_mut()) };
    Errno::result(ret).map(drop)
}

/// Close an fd inherited from the parent by fork whose owner object lives in the parent's
/// memory image (the child never drops it: it execs or `_exit`s).
pub fn close_inherited(fd: RawFd) {
    // SAFETY: closes only our copy of the descriptor; nothing in this process uses it afterwards.
    unsafe { libc::close(fd) };
}

/// An OS error the way runc (Go) words it, lowercase and without the number: engines match
/// on "permission denied", "no such file or directory" and the like.
pub fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Make a child spawned by `cmd` die (SIGKILL) when this process does: a hook must not
/// outlive a runtime killed while waiting for it.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes the
    // async-signal-safe calls prctl, getppid and _exit; it allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the line above: no signal will come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// `setdomainname(2)` (not wrapped by nix).
pub fn set_domainname(name: &str) -> Result<(), Errno> {
    // SAFETY: pointer and length describe `name`'s bytes, valid for the duration of the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// `_exit(2)`: leave the forked child without running the parent's atexit handlers or flushing
/// stdio buffers copied from it.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust-managed state.
    unsafe { libc::_exit(code) }
}

/// `bpf(BPF_PROG_LOAD)` for a program of `prog_type` made of 8-byte instructions. The
/// verifier's log (if any) is written into `log`.
pub fn bpf_prog_load(
    prog_type: u32,
    insns: &[[u8; 8]],
    license: &std::ffi::CStr,
    log: &mut [u8],
) -> Result<OwnedFd, Errno> {
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
    }
    let attr = ProgLoad {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        // The kernel refuses a buffer without a log level: no log, no pointer.
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
    };
    const BPF_PROG_LOAD: libc::c_long = 5;
    // The verifier gives up with EAGAIN when a signal arrives while it works (Linux 4.20+):
    // that says "interrupted", not "rejected", so load again. Bounded, like libbpf, in case
    // signals keep coming.
    let mut attempts = 5;
    let fd = loop {
        // SAFETY: `attr` is a valid prefix of `union bpf_attr` (the kernel zero-extends shorter
        // attrs); the pointers in it reference `insns`, `license` and `log`, all alive and sized
        // as stated for the duration of the call. On success the kernel returns a new fd we own.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &attr as *const ProgLoad,
                std::mem::size_of::<ProgLoad>(),
            )
        };
        attempts -= 1;
        if fd != -1 || Errno::last() != Errno::EAGAIN || attempts == 0 {
            break fd;
        }
    };
    Errno::result(fd).map(|fd| {
        // SAFETY: fresh fd from the kernel, owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
    })
}

/// `bpf(BPF_PROG_ATTACH)`: attach `prog` to the cgroup directory `target`.
pub fn bpf_prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> Result<(), Errno> {
    #[repr(C)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
    }
    let attr = ProgAttach {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
    };
    const BPF_PROG_ATTACH: libc::c_long = 8;
    // SAFETY: `attr` is a valid prefix of `union bpf_attr` holding only integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttach,
            std::mem::size_of::<ProgAttach>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal `fd` our controlling terminal.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument; `fd` is a valid open descriptor.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// `ioctl(fd, TIOCGWINSZ)`: the terminal's window size.
pub fn get_winsize(fd: BorrowedFd<'_>) -> Result<libc::winsize, Errno> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer, which points to a
    // live, properly sized local.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(ret).map(|_| ws)
}

/// `ioctl(fd, TIOCSWINSZ)`: set the terminal's window size (the kernel sends SIGWINCH to its
/// foreground process group).
pub fn set_winsize(fd: BorrowedFd<'_>, ws: &libc::winsize) -> Result<(), Errno> {
    // SAFETY: TIOCSWINSZ only reads one `struct winsize` through the pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
    Errno::result(ret).map(drop)
}

/// Take ownership of a descriptor the kernel just gave us in an SCM_RIGHTS message.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: SCM_RIGHTS installs a new descriptor in our table for each fd sent; nothing else
    // in this process knows of it, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The GPU instance and compute instance ids of MIG device `dev` (nvml-wrapper has no safe
/// getter for them). `None` when this NVML lacks the calls (drivers before R450) or they fail.
pub fn nvml_mig_instance_ids(
    lib: &nvml_wrapper_sys::bindings::NvmlLib,
    dev: &nvml_wrapper::Device<'_>,
) -> Option<(u32, u32)> {
    if lib.nvmlDeviceGetGpuInstanceId.is_err() || lib.nvmlDeviceGetComputeInstanceId.is_err() {
        return None;
    }
    let (mut gi, mut ci) = (0u32, 0u32);
    // SAFETY: both symbols were checked present (the calls would panic otherwise); the handle
    // comes from a live `Device` of the same library, and the out-pointers are valid u32s.
    let rc = unsafe {
        let h = dev.handle();
        (
            lib.nvmlDeviceGetGpuInstanceId(h, &mut gi),
            lib.nvmlDeviceGetComputeInstanceId(h, &mut ci),
        )
    };
    (rc == (0, 0)).then_some((gi, ci))
}
