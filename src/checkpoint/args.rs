//! `checkpoint` and `restore` arguments: runc's flags, so Podman, containerd and CRI-O call us
//! unchanged.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// CRIU's cgroup handling (`--manage-cgroups-mode`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CgroupMode {
    #[default]
    Soft,
    Full,
    Strict,
    Ignore,
}

/// The flags `checkpoint` and `restore` share (their meaning: options.rs).
#[derive(Args, Debug)]
pub struct CriuArgs {
    /// Directory of the checkpoint images [default: ./checkpoint]
    #[arg(long = "image-path", value_name = "DIR")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's logs and work files [default: the image path]
    #[arg(long = "work-path", value_name = "DIR")]
    pub work_path: Option<PathBuf>,
    /// Allow established TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow a shell job (a terminal from outside the container)
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// How CRIU handles cgroups
    #[arg(long = "manage-cgroups-mode", value_enum, default_value = "soft")]
    pub manage_cgroups_mode: CgroupMode,
    /// Namespace left out of the checkpoint (network), repeatable
    #[arg(long = "empty-ns", value_name = "NS")]
    pub empty_ns: Vec<String>,
    /// Deduplicate the images (against the parent's at a dump, as they are read at a restore)
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Lazy migration: memory pages served through userfaultfd (not supported)
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

// Podman passes some flags twice (`--leave-running`); runc accepts that.
#[derive(Args, Debug)]
#[command(args_override_self = true)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Images of a previous pre-dump, relative to the image path or absolute
    #[arg(long = "parent-path", value_name = "DIR")]
    pub parent_path: Option<PathBuf>,
    /// Keep the container running after the checkpoint
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// With --lazy-pages: fd to report readiness on (not supported)
    #[arg(long = "status-fd", value_name = "FD")]
    pub status_fd: Option<i32>,
    /// Send memory pages to a page server ADDRESS:PORT (not supported)
    #[arg(long = "page-server", value_name = "ADDRESS:PORT")]
    pub page_server: Option<String>,
    /// Dump memory only, keep the container running (a later dump gives --parent-path)
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    pub id: String,
}

#[derive(Args, Debug)]
#[command(args_override_self = true)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Socket to send the restored terminal's master fd to
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Bundle of the container [default: the current directory]
    #[arg(short, long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Return once the container is restored instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    /// Write the restored init's pid here
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not become a subreaper of the restored process
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Do not use pivot_root for CRIU's root (accepted; CRIU does the switch)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// LSM profile for the restored processes (TYPE:LABEL, e.g. apparmor:name)
    #[arg(long = "lsm-profile", value_name = "TYPE:LABEL")]
    pub lsm_profile: Option<String>,
    /// SELinux context for the restored mounts
    #[arg(long = "lsm-mount-context", value_name = "CONTEXT")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}
