//! `create`: validate the bundle, then make the container, recording each thing in state.json
//! before making it (the cgroup, then the init), so that `delete --force` can undo a create
//! killed at any moment. The init is cloned into its namespaces and parked on the exec fifo.
//! A failure at any step removes everything made so far: the init is killed and reaped, the
//! cgroup and the state dir are removed (the init's mounts live only in its own mount
//! namespace and vanish with it).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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

/// The compiled `linux.seccomp` and, with NOTIFY rules, the connection to its agent.
type Seccomp<'a> = (
    Option<&'a crate::seccomp::Program>,
    Option<crate::seccomp::listener::Agent>,
);

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
    // MPS sharing: checked (shares, memory) and its limits put in the env; nothing made yet.
    let mps = crate::gpu::mps::plan(&mut bundle.spec)?;
    if gpu.is_some() {
        crate::spec::check_shared_mounts(&bundle.spec)?;
    }
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
    crate::lsm::check_spec(&bundle.spec)?;
    // The seccomp agent of NOTIFY rules, last of the checks: one that is not there fails
    // `create` before anything exists.
    let agent = match (&bundle.seccomp, &seccomp) {
        (Some(profile), Some(program)) => crate::seccomp::listener::connect(profile, program)?,
        _ => None,
    };

    let dir = ContainerDir::create(root, id)?;
    crate::fault::point("dir-made");
    match create_in(
        &dir,
        &bundle,
        namespaces,
        (seccomp.as_ref(), agent),
        opts,
        gpu.as_ref(),
        &mps,
    ) {
        Ok((state, init)) => Ok(Created { dir, state, init }),
        Err(e) => {
            let _ = dir.remove();
            Err(e)
        }
    }
}

/// Everything `create` makes, each recorded in state.json before it is made, so that
/// `delete --force` can undo a create killed at any moment: the cgroup (named, then made),
/// then the init (cloned, then its pid and start time recorded before it is told anything).
/// Until `Persisted` the init dies with us (PR_SET_PDEATHSIG); the exec fifo and the state
/// dir go with `delete`.
fn create_in(
    dir: &ContainerDir,
    bundle: &Bundle,
    namespaces: Namespaces,
    seccomp: Seccomp<'_>,
    opts: &CreateOptions,
    gpu: Option<&crate::gpu::RootEdits>,
    mps: &[crate::gpu::mps::Lease],
) -> Result<(State, parent::Init)> {
    let linux = bundle.spec.linux().as_ref();
    let resources = linux.and_then(|l| l.resources().as_ref());
    let devices = linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    let rootless = crate::rootless::is_rootless();
    let manager = match opts.systemd_cgroup {
        true => crate::cgroups::Manager::Systemd { rootless },
        false => crate::cgroups::Manager::Cgroupfs,
    };
    let planned = Cgroup::plan(
        linux.and_then(|l| l.cgroups_path().as_deref()),
        &dir.id,
        resources,
        manager,
    );
    let mut cgroup = match (planned, rootless) {
        (Ok(cg), _) => cg,
        (Err(e), true) => crate::rootless::without_cgroup(e, resources)?,
        (Err(e), false) => return Err(e.into()),
    };
    let mut state = State {
        resctrl: crate::intelrdt::plan(bundle.intel_rdt.as_ref(), &dir.id)?,
        no_new_keyring: opts.no_new_keyring,
        ..initial_state(bundle, &dir.id, &namespaces, &cgroup)
    };
    dir.save(&state)?;
    crate::fault::point("recorded");
    // Recorded in the state dir first: its removal (delete, a failed create) releases it.
    crate::gpu::mps::acquire(mps, &dir.path)?;
    match (cgroup.make(resources, devices), rootless) {
        (Ok(()), _) => {}
        (Err(e), true) => cgroup = crate::rootless::without_cgroup(e, resources)?,
        (Err(e), false) => return Err(e.into()),
    }
    if cgroup.created != state.cgroup.created || cgroup.v2 != state.cgroup.v2 {
        state.cgroup = cgroup.clone();
        dir.save(&state)?;
    }
    let mut resctrl = state.resctrl.clone();
    let made = match (&bundle.intel_rdt, &mut resctrl) {
        (Some(rdt), Some(group)) => crate::intelrdt::make(rdt, group),
        _ => Ok(()),
    };
    // `make` drops from the record what someone else made meanwhile: not ours to remove.
    let recorded = match resctrl != state.resctrl {
        true => {
            state.resctrl = resctrl.clone();
            dir.save(&state)
        }
        false => Ok(()),
    };
    let undo = |_: &Error| {
        cgroup.remove();
        if let Some(group) = &resctrl {
            crate::intelrdt::remove(group);
        }
    };
    made.and(recorded).inspect_err(undo)?;
    crate::fault::point("cgroup-made");
    run_init(dir, bundle, namespaces, &cgroup, seccomp, opts, gpu, state).inspect_err(undo)
}

#[allow(clippy::too_many_arguments)]
fn run_init(
    dir: &ContainerDir,
    bundle: &Bundle,
    namespaces: Namespaces,
    cgroup: &Cgroup,
    (seccomp, agent): Seccomp<'_>,
    opts: &CreateOptions,
    gpu: Option<&crate::gpu::RootEdits>,
    mut state: State,
) -> Result<(State, parent::Init)> {
    let hooks = bundle.spec.hooks().as_ref();
    let creating_hooks = [
        Phase::Prestart,
        Phase::CreateRuntime,
        Phase::CreateContainer,
        Phase::StartContainer,
    ];
    let plan = CreatePlan {
        bundle,
        namespaces,
        exec_fifo: make_exec_fifo(&dir.fifo_path())?,
        lock_fd: dir.lock_fd().as_raw_fd(),
        agent_fd: agent.as_ref().map(|a| a.raw_fd()),
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
    crate::fault::point("cloned");
    // Recorded before the init is told anything: `delete` can find it from here on.
    let recorded = pidinfo::start_time(init.pid.as_raw())
        .ok_or_else(|| Error::Init("init exited unexpectedly".into()))
        .and_then(|start_time| {
            state.pid = init.pid.as_raw();
            state.pid_start_time = start_time;
            dir.save(&state)
        });
    if let Err(e) = recorded {
        init.kill_and_reap();
        return Err(e);
    }
    crate::fault::point("pid-recorded");
    init.place(&plan)?;
    let placed = match &state.resctrl {
        Some(group) => crate::intelrdt::place(group, init.pid),
        None => Ok(()),
    };
    let moved = match placed.and_then(|()| crate::netdev::move_into(&bundle.spec, init.pid)) {
        Ok(moved) => moved,
        Err(e) => {
            init.kill_and_reap();
            return Err(e);
        }
    };
    crate::fault::point("init-placed");
    // A create that fails from here on gives the net devices back (netdev.rs says why); our
    // netlink socket in the container's namespace keeps it alive after the init is gone.
    let undo_moves = |e: Error| match moved.map(crate::netdev::MovedDevices::undo) {
        Some(Err(undo)) => Error::Unsupported(format!("{e}; {undo}")),
        _ => e,
    };
    // prestart + createRuntime run here, in the runtime's namespaces, while the init waits
    // before pivot_root; the state JSON goes back for the hooks the init runs itself.
    let run_hooks = |pid: nix::unistd::Pid| {
        // `created`: the spec's lifecycle runs these hooks after the create step (2).
        let json = state.oci_json(Status::Created);
        for phase in [Phase::Prestart, Phase::CreateRuntime] {
            hooks::run_spec_hooks(phase, hooks, &json)?;
        }
        debug_assert_eq!(pid, init.pid);
        crate::fault::point("hooks-done");
        Ok(String::from_utf8(json).expect("JSON is UTF-8"))
    };
    // The listener of NOTIFY rules goes to the agent with the process state: `creating`, as
    // runc sends it.
    let to_agent = |fd: OwnedFd| match &agent {
        Some(agent) => Ok(agent.send(state.pid, &state.oci_json(Status::Creating), fd.as_fd())?),
        None => Err(Error::Init("seccomp listener without an agent".into())),
    };
    let waited = init.wait_ready(run_hooks, to_agent);
    // One message per connection (the spec): closed now.
    drop(agent);
    if let Err(e) = waited {
        return Err(undo_moves(explain_init_death(e, bundle, cgroup)));
    }
    crate::fault::point("ready");
    // From here on the init is parked on the fifo; failures must still kill it.
    let finish = || -> Result<()> {
        if let Some(pid_file) = &opts.pid_file {
            state::write_pid_file(pid_file, state.pid)?;
        }
        crate::fault::point("saved");
        init.detach()
    };
    match finish() {
        Ok(()) => {
            crate::fault::point("detached");
            Ok((state, init))
        }
        Err(e) => {
            init.kill_and_reap();
            Err(undo_moves(e))
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

/// What state.json first records of a container made from `bundle` (by `create`, or by a
/// `restore`): no init yet (pid 0), the cgroup as planned.
pub fn initial_state(
    bundle: &Bundle,
    id: &str,
    namespaces: &Namespaces,
    cgroup: &crate::cgroups::Cgroup,
) -> State {
    let linux = bundle.spec.linux().as_ref();
    State {
        oci_version: bundle.spec.version().clone(),
        id: id.to_string(),
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
        hooks: bundle.spec.hooks().clone(),
        seccomp: bundle.seccomp.clone(),
        process: bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| serde_json::to_value(p).ok()),
        personality: linux.and_then(|l| l.personality().clone()),
        memory_policy: linux.and_then(|l| l.memory_policy().clone()),
        resctrl: None,
        no_new_keyring: false,
    }
}
