//! The harness's only `unsafe`: thin wrappers around the few libc calls the tests need.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Block until this process holds an exclusive flock on `file` (released when it is closed).
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock only reads the fd number; `file` keeps the fd open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The filesystem type (`f_type`) of the mount holding `path`.
pub fn fs_type(path: &std::ffi::CStr) -> io::Result<i64> {
    // SAFETY: statfs is plain old data; all-zero is a valid value for it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid, writable statfs.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Send `signal` to `pid` (0 only checks that it exists); true when the kernel accepted it.
pub fn kill(pid: i32, signal: i32) -> bool {
    // SAFETY: kill takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// (soft, hard) RLIMIT_NOFILE of this process.
pub fn nofile_limit() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    (lim.rlim_cur, lim.rlim_max)
}

/// Make `r3` and `r4` the spawned program's fds 3 and 4 (without close-on-exec).
pub fn pass_fds_3_and_4(cmd: &mut Command, r3: RawFd, r4: RawFd) {
    // SAFETY: the closure runs between fork and exec and only calls fcntl and dup2, which
    // are async-signal-safe and touch nothing but the child's own fd table.
    unsafe {
        cmd.pre_exec(move || {
            // Via high fds first: dup2 onto itself would keep O_CLOEXEC set.
            let (h3, h4) = (
                libc::fcntl(r3, libc::F_DUPFD, 100),
                libc::fcntl(r4, libc::F_DUPFD, 100),
            );
            if h3 < 0 || h4 < 0 || libc::dup2(h3, 3) < 0 || libc::dup2(h4, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Take ownership of an fd the kernel just installed in this process (SCM_RIGHTS): no one
/// else holds it, so it is closed when the result is dropped.
pub fn own_received_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the fd is open and owned by nobody else (fresh from recvmsg).
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// `BPF_PROG_TYPE_CGROUP_DEVICE`, the program type of cgroup v2 device rules.
pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, the attach type of cgroup v2 device rules.
pub const BPF_CGROUP_DEVICE: u32 = 6;

/// `bpf(cmd, attr)`.
///
/// # Safety
/// `attr` must be a `#[repr(C)]` valid prefix of `union bpf_attr` for `cmd` (the kernel
/// zero-extends shorter attrs) whose pointer fields, if any, reference buffers that are alive,
/// writable and sized as stated.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: the caller vouches for `attr` (see above); the syscall only uses it during the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Ids of every BPF program loaded in the kernel (`BPF_PROG_GET_NEXT_ID`), ascending.
/// Needs CAP_SYS_ADMIN.
pub fn bpf_prog_ids() -> io::Result<Vec<u32>> {
    #[repr(C)]
    struct GetNextId {
        start_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
    let mut ids = Vec::new();
    let mut attr = GetNextId {
        start_id: 0,
        next_id: 0,
        open_flags: 0,
    };
    loop {
        // SAFETY: GetNextId is the `union bpf_attr` prefix of this command, integers only.
        match unsafe { bpf(BPF_PROG_GET_NEXT_ID, &mut attr) } {
            Ok(_) => {
                ids.push(attr.next_id);
                attr.start_id = attr.next_id;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(ids),
            Err(e) => return Err(e),
        }
    }
}

/// The type (`BPF_PROG_TYPE_*`) of loaded program `id`: `Ok(None)` once it is gone (ENOENT).
pub fn bpf_prog_type(id: u32) -> io::Result<Option<u32>> {
    #[repr(C)]
    struct GetFdById {
        prog_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    let mut attr = GetFdById {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: GetFdById is the `union bpf_attr` prefix of this command, integers only.
    let fd = match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) } {
        Ok(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: a fresh fd from the kernel, owned by nobody else.
            unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    // The head of `struct bpf_prog_info`: the kernel copies no more than `info_len` bytes.
    #[repr(C)]
    #[derive(Default)]
    struct ProgInfo {
        prog_type: u32,
        id: u32,
    }
    #[repr(C)]
    struct GetInfo {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = ProgInfo::default();
    let mut attr = GetInfo {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    // SAFETY: GetInfo is the `union bpf_attr` prefix of this command; `info` points at `info`,
    // alive and `info_len` bytes long.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(Some(info.prog_type))
}

/// Ids of the programs attached to the cgroup (v2) directory `cgroup` with `attach_type`
/// (`BPF_PROG_QUERY`).
pub fn bpf_prog_query(cgroup: &File, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 256];
    #[repr(C)]
    struct Query {
        target_fd: u32,
        attach_type: u32,
        query_flags: u32,
        attach_flags: u32,
        prog_ids: u64,
        prog_cnt: u32,
    }
    let mut attr = Query {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
    };
    const BPF_PROG_QUERY: libc::c_long = 16;
    // SAFETY: Query is the `union bpf_attr` prefix of this command; `prog_ids` points at `ids`,
    // alive and `prog_cnt` u32s long.
    unsafe { bpf(BPF_PROG_QUERY, &mut attr) }?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

// seccomp notify (the test agent, `crate::seccomp_agent`).

/// `poll` one fd for POLLIN for `ms` milliseconds: its `revents` (0 on timeout).
pub fn poll_in(fd: &OwnedFd, ms: i32) -> std::io::Result<i16> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid, writable pollfd; the kernel only writes its `revents`.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        _ => Ok(pfd.revents),
    }
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: the next notification of `listener`.
pub fn notif_recv(listener: &OwnedFd) -> std::io::Result<libc::seccomp_notif> {
    // SAFETY: seccomp_notif is plain old data; the kernel wants it zeroed for RECV.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `req` is a valid, writable seccomp_notif for the kernel to fill in.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut req,
        )
    };
    match rc {
        0 => Ok(req),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answer a notification.
pub fn notif_send(listener: &OwnedFd, resp: &libc::seccomp_notif_resp) -> std::io::Result<()> {
    // SAFETY: `resp` is a valid seccomp_notif_resp; the kernel only reads it.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            resp as *const libc::seccomp_notif_resp,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
