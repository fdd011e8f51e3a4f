//! `gpurun checkpoint`: dump (or pre-dump) a running container with CRIU, runc's semantics.
//! Everything that can be refused is checked before anything is stopped or created; a failed
//! dump leaves the container running (CRIU resumes it), a dump without --leave-running ends
//! it, and gpurun then removes it as `delete` does.

use super::args::{CgroupMode, CheckpointArgs};
use super::{cuda, descriptors, mounts};
use crate::criu::{self, CgMode, Handler, Kind, Opts};
use crate::error::{Error, Result};
use crate::state::{State, Status};
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Notifications at dump need nothing from gpurun (runc only marks its state "checkpointed").
struct Dumper;
impl Handler for Dumper {}

pub fn checkpoint(root: &Path, args: &CheckpointArgs) -> Result<()> {
    refuse_unsupported(args)?;
    let (dir, state, status) = crate::container::load(root, &args.id)?;
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(Error::NotRunning);
    }
    let empty_ns = empty_ns(&args.empty_ns)?;
    let config = state.bundle.join("config.json");
    let bytes = std::fs::read(&config).map_err(|e| Error::io("read", &config, e))?;
    let (mut spec, _) = crate::spec::parse(&config, &bytes)?;
    // The container's mounts as create made them: the GPU driver's binds are external too.
    crate::gpu::toolkit::take_hook(&mut spec);
    crate::gpu::prepare(&mut spec)?;
    let external = external_namespaces(&spec)?;
    let criu_bin = criu::binary();
    criu::check_version(&criu_bin)?;
    // Before anything is stopped: a GPU container without a usable cuda-checkpoint fails here.
    let mut cuda = cuda::plan(&state)?;
    if cuda.is_some() && status == Status::Paused {
        // cuda-checkpoint's lock waits for in-flight CUDA calls, which a frozen process
        // never finishes
        return Err(Error::Unsupported(
            "checkpoint of a paused GPU container: resume it first (cuda-checkpoint cannot lock a frozen process)".into(),
        ));
    }

    let images = args
        .image_path
        .clone()
        .unwrap_or_else(|| PathBuf::from("checkpoint"));
    let images = std::path::absolute(&images).map_err(|e| Error::io("resolve", &images, e))?;
    let work = match &args.work_path {
        Some(w) => Some(std::path::absolute(w).map_err(|e| Error::io("resolve", w, e))?),
        None => None,
    };
    if let Some(parent) = &args.parent_path {
        // CRIU resolves it against the images dir, which may not exist yet: then lexically.
        let p = match images.is_dir() {
            true => images.join(parent),
            false => lexical(&images.join(parent)),
        };
        if !p.is_dir() {
            return Err(Error::io(
                "parent-path",
                p,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
    }
    let images_fd = make_dir(&images)?;
    let work_fd = work.as_deref().map(make_dir).transpose()?;

    let pre_dump = args.pre_dump;
    let leave_running = args.leave_running || pre_dump;
    let mut opts = Opts {
        images_dir: Some(images_fd),
        work_dir: work_fd,
        log_file: if pre_dump { "pre-dump.log" } else { "dump.log" }.into(),
        pid: Some(state.pid),
        root: Some(state.rootfs.clone()),
        leave_running,
        tcp_established: args.tcp_established,
        ext_unix_sk: args.ext_unix_sk,
        shell_job: args.shell_job,
        file_locks: args.file_locks,
        parent_img: args
            .parent_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        track_mem: pre_dump || args.parent_path.is_some(),
        auto_dedup: args.auto_dedup,
        manage_cgroups: true,
        cg_mode: cg_mode(args.manage_cgroups_mode),
        external,
        empty_ns,
        notify_scripts: true,
        orphan_pts_master: true,
        freeze_cgroup: freeze_cgroup(&state),
        ..Opts::default()
    };
    // A pre-dump copies memory only: mounts and stdio are the final dump's business.
    if !pre_dump {
        opts.ext_mounts = mounts::external(&spec)
            .iter()
            .map(mounts::External::dump_pair)
            .collect();
        descriptors::save(&images, state.pid)?;
    }

    if let Some(c) = cuda.as_mut() {
        c.suspend()?;
    }
    let kind = if pre_dump { Kind::PreDump } else { Kind::Dump };
    let result = criu::call(&criu_bin, kind, opts, &mut Dumper);
    if let Some(c) = &cuda {
        if result.is_err() || leave_running {
            if let Err(e) = c.resume() {
                // The dump's own error says more; a resume failure after success is ours.
                if result.is_ok() {
                    return Err(e);
                }
                crate::logging::warn(&format!("resuming cuda processes: {e}"));
            }
        }
    }
    result?;
    if leave_running {
        return Ok(());
    }
    // CRIU has killed the tasks: the container is gone, remove it as `delete` does.
    drop(dir);
    crate::container::delete(root, &args.id, true)
}

fn refuse_unsupported(args: &CheckpointArgs) -> Result<()> {
    let flag = if args.lazy_pages {
        "--lazy-pages"
    } else if args.page_server.is_some() {
        "--page-server"
    } else if args.status_fd.is_some() {
        "--status-fd"
    } else {
        return Ok(());
    };
    Err(Error::Unsupported(format!(
        "checkpoint: {flag} is not supported"
    )))
}

/// `--empty-ns`: only the network namespace can be left out (runc's rule).
pub(super) fn empty_ns(list: &[String]) -> Result<u32> {
    let mut flags = 0;
    for ns in list {
        match ns.as_str() {
            "network" => flags |= libc::CLONE_NEWNET as u32,
            other => {
                return Err(Error::Unsupported(format!(
                    "namespace {other:?} is not supported with --empty-ns (only network)"
                )))
            }
        }
    }
    Ok(flags)
}

/// Network and pid namespaces the container joined by path are not its own: CRIU records
/// them as external (`net[INODE]:extRootNetNS`) and a restore joins them again.
fn external_namespaces(spec: &Spec) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let list = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    for ns in list.into_iter().flatten() {
        let (name, key) = match ns.typ() {
            LinuxNamespaceType::Network => ("net", "extRootNetNS"),
            LinuxNamespaceType::Pid => ("pid", "extRootPidNS"),
            _ => continue,
        };
        if let Some(path) = ns.path() {
            let meta = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?;
            out.push(format!("{name}[{}]:{key}", meta.ino()));
        }
    }
    Ok(out)
}

fn cg_mode(m: CgroupMode) -> CgMode {
    match m {
        CgroupMode::Soft => CgMode::Soft,
        CgroupMode::Full => CgMode::Full,
        CgroupMode::Strict => CgMode::Strict,
        CgroupMode::Ignore => CgMode::Ignore,
    }
}

/// The container's freezer: cgroup v2's dir, or v1's freezer hierarchy.
fn freeze_cgroup(state: &State) -> Option<PathBuf> {
    let cg = &state.cgroup;
    if cg.unified_host {
        return cg.v2.clone();
    }
    cg.v1_dir("freezer").map(Path::to_path_buf)
}

/// Create `dir` (0700, as runc; it may exist from an earlier checkpoint) and open it without
/// close-on-exec, so `criu swrk` inherits it.
fn make_dir(dir: &Path) -> Result<OwnedFd> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("mkdir", dir, e)),
    }
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::sys_path("open", dir))
}

/// `a/b/../c` → `a/c`, without the filesystem.
fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
