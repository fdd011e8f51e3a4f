//! The command line: runc's surface, so containerd's shim, conmon and buildah call us unchanged.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

// The global options go before the command, as runc's do. They are not clap `global`
// args: clap would copy each of them into every subcommand at every start (most of the
// heap a short command like `state` uses).
#[derive(Parser, Debug)]
#[command(
    name = "gpurun",
    about = "A fast, runc-compatible OCI container runtime for AI/GPU workloads",
    disable_version_flag = true
)]
pub struct Cli {
    /// Directory for container state [default: /run/gpurun; for non-root callers
    /// $XDG_RUNTIME_DIR/gpurun]
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Also write errors (and, with --debug, debug messages) to this file
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Format of the --log file
    #[arg(long = "log-format", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log debug messages to the --log file
    #[arg(long)]
    pub debug: bool,
    /// Make the container's cgroup a systemd transient unit (cgroupsPath "slice:prefix:name")
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container: set it up and leave its process waiting for `start`
    Create(CreateArgs),
    /// Start the user's process in a created container
    Start { id: String },
    /// Create and start a container, wait for it and remove it (unless --detach)
    Run(RunArgs),
    /// Print a container's OCI state as JSON
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init
    Kill {
        /// Signal every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container's state (and, with --force, kill it first)
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers
    #[command(alias = "ps-all")]
    List {
        #[arg(short, long, default_value = "table")]
        format: ListFormat,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json into the bundle directory
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for a non-root caller: user namespace mapping you to root, no network
        /// namespace, /sys bound, no cgroup mount or resources (runc's --rootless)
        #[arg(long)]
        rootless: bool,
        /// Add gpurun's default seccomp profile (Docker's/Podman's default) as linux.seccomp
        #[arg(long)]
        seccomp_default: bool,
    },
    /// Run another process in a running container
    Exec(Box<ExecArgs>),
    /// Change a container's resource limits
    Update(Box<UpdateArgs>),
    /// Freeze every process of a running container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List the processes of a container
    Ps(PsArgs),
    /// Checkpoint a running container with CRIU
    Checkpoint(Box<crate::checkpoint::args::CheckpointArgs>),
    /// Restore a container from a checkpoint with CRIU
    Restore(Box<crate::checkpoint::args::RestoreArgs>),
    /// Stats (--stats: once) and OOM notifications of a container, as JSON lines
    Events {
        /// Print one stats document and exit
        #[arg(long)]
        stats: bool,
        /// Time between stats documents when streaming
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print the features this runtime supports (runtime-spec features.md) as JSON
    Features,
    /// gpurun's built-in hooks as OCI hook programs, for runc/crun (gpurun-only)
    #[command(subcommand)]
    Hook(HookCommand),
    /// CDI specs for this machine's NVIDIA GPUs (gpurun-only)
    #[command(subcommand)]
    Cdi(CdiCommand),
}

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// prestart/createRuntime hook: give the container its GPUs (state JSON on stdin)
    Nvidia,
    /// createContainer hook: developer symlinks and the ld cache in the container's root
    Ldcache {
        /// A container directory holding driver libraries
        #[arg(long = "lib-dir")]
        lib_dirs: Vec<String>,
        /// TARGET::LINK, a symlink to create in the container
        #[arg(long = "symlink")]
        symlinks: Vec<String>,
        /// ldconfig to run (`@PATH`: the host's)
        #[arg(long, default_value = "@/sbin/ldconfig")]
        ldconfig: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum CdiCommand {
    /// Write a CDI spec for this machine's GPUs (like `nvidia-ctk cdi generate`)
    Generate {
        #[arg(long, value_enum, default_value = "yaml")]
        format: CdiFormat,
        /// Write here instead of stdout
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// List the CDI devices `generate` would offer
    List,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CdiFormat {
    Yaml,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to (process.terminal)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the init's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (for ramfs roots)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3 … 3+N-1) to the container
    #[arg(long = "preserve-fds", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=65535))]
    pub preserve_fds: i32,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container has started, leaving it running
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    #[arg(short, long, default_value = "table")]
    pub format: ListFormat,
    pub id: String,
    /// Options for ps(1) (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// runc's `update` flags; `--resources` takes LinuxResources JSON instead (`-` = stdin).
#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g suffix)
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", hide = true)]
    pub kernel_memory_tcp: Option<String>,
    /// CPU shares (relative weight; runc's spelling, `--cpu-shares` accepted too)
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// process.json to run (as containerd writes it) instead of COMMAND
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process has started
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Allocate a terminal (not supported yet)
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<String>,
    /// KEY=VALUE added to the environment
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID[:GID]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Capability added to every set
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=65535))]
    pub preserve_fds: i32,
    /// SELinux label for the process (default: the container's process.selinuxLabel)
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process (default: the container's process.apparmorProfile)
    #[arg(long)]
    pub apparmor: Option<String>,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Podman repeats some flags (`--leave-running`); runc takes the last. The CRIU flags
    // shared by both commands are flattened in, and must take it too.
    #[test]
    fn checkpoint_and_restore_take_a_flag_twice() {
        let cli = Cli::try_parse_from([
            "gpurun",
            "checkpoint",
            "--leave-running",
            "--leave-running",
            "--tcp-established",
            "--tcp-established",
            "--image-path",
            "a",
            "--image-path",
            "b",
            "c1",
        ])
        .unwrap();
        let Some(Command::Checkpoint(a)) = cli.command else {
            panic!("not a checkpoint: {cli:?}");
        };
        assert!(a.leave_running && a.criu.tcp_established);
        assert_eq!(a.criu.image_path, Some(PathBuf::from("b")));
        let cli = Cli::try_parse_from([
            "gpurun",
            "restore",
            "-d",
            "-d",
            "--file-locks",
            "--file-locks",
            "--work-path",
            "w",
            "--work-path",
            "x",
            "c1",
        ])
        .unwrap();
        let Some(Command::Restore(a)) = cli.command else {
            panic!("not a restore: {cli:?}");
        };
        assert!(a.detach && a.criu.file_locks);
        assert_eq!(a.criu.work_path, Some(PathBuf::from("x")));
    }
}
