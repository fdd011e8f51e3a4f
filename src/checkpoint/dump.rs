//! `gpurun checkpoint`: dump (or pre-dump) a running container with CRIU, runc's semantics.
//! Everything that can be refused is checked before anything is stopped or created; a failed
//! dump leaves the container running (CRIU resumes it), a dump without --leave-running ends
//! it, and gpurun then removes it as `delete` does.

use super::args::CheckpointArgs;
use super::options::make_dir;
use super::{cuda, descriptors, mounts};
use crate::criu::{self, Handler, Kind, Opts};
use crate::error::{Error, Result};
use crate::state::{State, Status};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::unix::fs::MetadataExt;
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
    let empty_ns = args.criu.empty_ns()?;
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

    let images = args.criu.images()?;
    let work = args.criu.work()?;
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
        tcp_established: args.criu.tcp_established,
        ext_unix_sk: args.criu.ext_unix_sk,
        shell_job: args.criu.shell_job,
        file_locks: args.criu.file_locks,
        parent_img: args
            .parent_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        track_mem: pre_dump || args.parent_path.is_some(),
        auto_dedup: args.criu.auto_dedup,
        manage_cgroups: true,
        cg_mode: args.criu.cg_mode(),
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
    let flag = if args.criu.lazy_pages {
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

/// The container's freezer: cgroup v2's dir, or v1's freezer hierarchy.
fn freeze_cgroup(state: &State) -> Option<PathBuf> {
    let cg = &state.cgroup;
    if cg.unified_host {
        return cg.v2.clone();
    }
    cg.v1_dir("freezer").map(Path::to_path_buf)
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
