//! `create`: validate the bundle, clone the init into its namespaces, wait until it is set up
//! and parked on the exec fifo, then record the state. A failure at any step removes
//! everything made so far: the init is killed and reaped, the state dir is removed (the init's
//! mounts live only in its own mount namespace and vanish with it).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;

use crate::cgroups::Cgroup;
use crate::console::ConsoleSocket;
use crate::error::{Error, Result};
use crate::hooks::{self, Phase};
use crate::namespaces::Namespaces;
use crate::process::{parent, pidinfo, CreatePlan};
use crate::spec::Bundle;
use crate::state::{self, ContainerDir, State, Status};

#[derive(Debug, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console: Option<ConsoleSocket>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Descriptors from 3 on passed to the container (`--preserve-fds` plus socket activation).
    pub preserve_fds: i32,
    /// Appended to process.env.
    pub extra_env: Vec<String>,
    /// `--systemd-cgroup`: systemd makes the cgroup, as a transient unit.
    pub systemd_cgroup: bool,
}

/// A container whose init waits for `start`.
pub struct Created {
    pub dir: ContainerDir,
    pub state: State,
    /// The init, still our child (`run` waits for it; `create` just exits and orphans it).
    pub init: parent::Init,
}

pub fn create(root: &Path, id: &str, opts: &CreateOptions) -> Result<Created> {
    // Everything that can be checked without side effects comes first.
    state::validate_id(id)?;
    let mut bundle = Bundle::load(&opts.bundle)?;
    // GPU and CDI requests become spec edits here, before the cgroup (and its device rules)
    // exists; a container that asks for none costs a scan of its env. Docker's `--gpus` hook
    // would do the same work again: the env carries the request, the hook goes.
    crate::gpu::toolkit::take_hook(&mut bundle.spec);
    let gpu = crate::gpu::prepare(&mut bundle.spec)?;
    let process = bundle
        .spec
        .process()
        .as_ref()
        .expect("validated: process present");
    if process.terminal() == Some(true) && opts.console.is_none() {
        return Err(Error::Unsupported(
            "process.terminal is true: a --console-socket is needed to receive the pty (or set \"terminal\": false)".into(),
        ));
    }
    // Compiled here, in the parent: a bad profile fails before anything exists.
    let seccomp = bundle
        .seccomp
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()?;
    let namespaces = Namespaces::from_spec(&bundle.spec)?;

    let dir = ContainerDir::create(root, id)?;
    let linux = bundle.spec.linux().as_ref();
    let cgroup = Cgroup::create(
        linux.and_then(|l| l.cgroups_path().as_deref()),
        id,
        linux.and_then(|l| l.resources().as_ref()),
        linux
            .and_then(|l| l.devices().as_deref())
            .unwrap_or_default(),
        match opts.systemd_cgroup {
            true => crate::cgroups::Manager::Systemd {
                rootless: crate::rootless::is_rootless(),
            },
            false => crate::cgroups::Manager::Cgroupfs,
        },
    );
    let cgroup = match crate::rootless::is_rootless() {
        true => crate::rootless::cgroup_or_none(cgroup, linux.and_then(|l| l.resources().as_ref())),
        false => cgroup.map_err(Error::from),
    };
    let result = cgroup.and_then(|cgroup| {
        create_in(
            &dir,
            &bundle,
            namespaces,
            &cgroup,
            seccomp.as_ref(),
            opts,
            gpu.as_ref(),
        )
        .inspect_err(|_| cgroup.remove())
    });
    match result {
        Ok((state, init)) => Ok(Created { dir, state, init }),
        Err(e) => {
            let _ = dir.remove();
            Err(e)
        }
    }
}

fn create_in(
    dir: &ContainerDir,
    bundle: &Bundle,
    namespaces: Namespaces,
    cgroup: &Cgroup,
    seccomp: Option<&crate::seccomp::Program>,
    opts: &CreateOptions,
    gpu: Option<&crate::gpu::RootEdits>,
) -> Result<(State, parent::Init)> {
    let hooks = bundle.spec.hooks().as_ref();
    let creating_hooks = [
        Phase::Prestart,
        Phase::CreateRuntime,
        Phase::CreateContainer,
        Phase::StartContainer,
    ];
    let mut state = State {
        oci_version: bundle.spec.version().clone(),
        id: dir.id.clone(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        own_pid_ns: namespaces
            .new
            .contains(nix::sched::CloneFlags::CLONE_NEWPID),
        cgroup: cgroup.clone(),
        hooks: hooks.cloned(),
        seccomp: bundle.seccomp.clone(),
    };
    let plan = CreatePlan {
        bundle,
        namespaces,
        exec_fifo: make_exec_fifo(&dir.fifo_path())?,
        lock_fd: dir.lock_fd().as_raw_fd(),
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        id: &dir.id,
        preserve_fds: opts.preserve_fds,
        extra_env: &opts.extra_env,
        pre_pivot_hooks: creating_hooks.iter().any(|p| !p.of(hooks).is_empty()),
        cgroup,
        seccomp,
        gpu,
        idmapped: crate::rootfs::idmap::prepare(bundle)?,
        console: match (&opts.console, process_terminal(bundle)) {
            (Some(socket), true) => Some(socket.connect()?),
            _ => None,
        },
    };
    let init = parent::spawn(&plan)?;
    // prestart + createRuntime run here, in the runtime's namespaces, while the init waits
    // before pivot_root; the state JSON goes back for the hooks the init runs itself.
    let run_hooks = |pid: nix::unistd::Pid| {
        let mut creating = state.clone();
        creating.pid = pid.as_raw();
        let json = creating.oci_json(Status::Creating);
        for phase in [Phase::Prestart, Phase::CreateRuntime] {
            hooks::run_spec_hooks(phase, hooks, &json)?;
        }
        Ok(String::from_utf8(json).expect("JSON is UTF-8"))
    };
    init.wait_ready(run_hooks)
        .map_err(|e| explain_init_death(e, bundle, cgroup))?;
    // From here on the init is parked on the fifo; failures must still kill it.
    let mut finish = || -> Result<()> {
        state.pid = init.pid.as_raw();
        state.pid_start_time = pidinfo::start_time(state.pid)
            .ok_or_else(|| Error::Init("init exited unexpectedly".into()))?;
        dir.save(&state)?;
        if let Some(pid_file) = &opts.pid_file {
            state::write_pid_file(pid_file, state.pid)?;
        }
        init.detach()
    };
    match finish() {
        Ok(()) => Ok((state, init)),
        Err(e) => {
            init.kill_and_reap();
            Err(e)
        }
    }
}

fn process_terminal(bundle: &Bundle) -> bool {
    bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// An init that died without a word during setup was most likely OOM-killed by a memory
/// limit too low to even start: say so, naming the limit.
fn explain_init_death(e: Error, bundle: &Bundle, cgroup: &Cgroup) -> Error {
    let limit = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit());
    match (&e, limit) {
        (Error::Init(msg), Some(limit))
            if msg.contains("unexpectedly") && crate::cgroups::stats::oom_kills(cgroup) > 0 =>
        {
            Error::Init(format!(
                "init was OOM-killed during setup: linux.resources.memory.limit {limit} is too low"
            ))
        }
        _ => e,
    }
}

/// The fifo `start` writes to. Opened O_RDWR here so the open never blocks; the init inherits
/// this descriptor and, after setup, blocks reading it.
fn make_exec_fifo(path: &Path) -> Result<OwnedFd> {
    mkfifo(path, Mode::from_bits_truncate(0o600)).map_err(Error::sys_path("mkfifo", path))?;
    open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(Error::sys_path("open", path))
}
