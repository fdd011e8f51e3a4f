//! One function per CLI verb: thin adapters from parsed arguments to the container layer.

mod attach;
mod cgroup_cmds;
mod gpu_cmds;
mod gpu_stats;
mod info;
pub use info::version_text;
mod run;

use std::path::Path;

use crate::cli::{Cli, Command, CreateArgs, ListFormat};
use crate::container::{self, create};
use crate::error::{Error, Result};
use crate::state;

/// Run the parsed command; returns the process exit code.
pub fn dispatch(cli: &Cli) -> Result<i32> {
    // Pinned before anything can change our user namespace.
    crate::rootless::is_rootless();
    let Some(command) = &cli.command else {
        return Err(Error::Unsupported(
            "no command given; see gpurun --help".into(),
        ));
    };
    let root_buf = match (&cli.root, command) {
        (Some(root), _) => root.clone(),
        // These never touch the state root.
        (None, Command::Spec { .. } | Command::Features | Command::Hook(_) | Command::Cdi(_)) => {
            std::path::PathBuf::new()
        }
        (None, _) => crate::rootless::default_state_root()?,
    };
    let root = root_buf.as_path();
    match command {
        Command::Create(args) => {
            create::create(root, &args.id, &create_options(args, cli.systemd_cgroup))?;
            Ok(0)
        }
        Command::Start { id } => container::start(root, id).map(|()| 0),
        Command::Run(args) => run::run(root, args, cli.systemd_cgroup),
        Command::State { id } => print_state(root, id),
        Command::Kill { all, id, signal } => {
            let sig = crate::signal::parse(signal)?;
            container::kill(root, id, sig, *all).map(|()| 0)
        }
        Command::Delete { force, id } => container::delete(root, id, *force).map(|()| 0),
        Command::List { format, quiet } => list(root, *format, *quiet),
        Command::Spec {
            bundle,
            rootless,
            seccomp_default,
        } => info::write_spec(bundle, *rootless, *seccomp_default),
        Command::Features => info::print_features(),
        Command::Exec(args) => run::exec(root, args),
        Command::Update(args) => cgroup_cmds::update(root, args),
        Command::Pause { id } => cgroup_cmds::pause(root, id),
        Command::Resume { id } => cgroup_cmds::resume(root, id),
        Command::Ps(args) => cgroup_cmds::ps(root, args),
        Command::Events {
            stats,
            interval,
            id,
        } => {
            let every = cgroup_cmds::parse_interval(interval).ok_or_else(|| {
                Error::Unsupported(format!("events: invalid --interval {interval:?}"))
            })?;
            cgroup_cmds::events(root, id, *stats, every)
        }
        Command::Checkpoint(args) => crate::checkpoint::checkpoint(root, args).map(|()| 0),
        Command::Restore(args) => crate::checkpoint::restore(root, args, cli.systemd_cgroup),
        Command::Hook(cmd) => gpu_cmds::hook(cmd),
        Command::Cdi(cmd) => gpu_cmds::cdi(cmd),
    }
}

pub(crate) fn create_options(args: &CreateArgs, systemd_cgroup: bool) -> create::CreateOptions {
    let listen_fds = socket_activation_fds();
    create::CreateOptions {
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console: args
            .console_socket
            .clone()
            .map(crate::console::ConsoleSocket::Path),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        // As runc: the activation sockets come first (from fd 3), the --preserve-fds after them.
        preserve_fds: listen_fds + args.preserve_fds,
        extra_env: match listen_fds {
            0 => Vec::new(),
            n => vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".to_string()],
        },
        systemd_cgroup,
    }
}

/// systemd socket activation (sd_listen_fds(3)): when `LISTEN_PID` names us, the `LISTEN_FDS`
/// descriptors from fd 3 on are passed to the container, which is told of them as if it were
/// the activated process (its init is pid 1 in its namespace).
fn socket_activation_fds() -> i32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| *n > 0);
    match (ours, count) {
        (true, Some(n)) => n,
        _ => 0,
    }
}

fn print_state(root: &Path, id: &str) -> Result<i32> {
    let (_dir, st, status) = container::load(root, id)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&st.oci(status)).expect("state serialises")
    );
    Ok(0)
}

fn list(root: &Path, format: ListFormat, quiet: bool) -> Result<i32> {
    let mut rows = Vec::new();
    for id in state::list_ids(root)? {
        // A container deleted while we list is simply not listed.
        if let Ok(loaded) = container::load(root, &id) {
            rows.push(loaded);
        }
    }
    if quiet {
        rows.iter().for_each(|(_, st, _)| println!("{}", st.id));
        return Ok(0);
    }
    match format {
        ListFormat::Json => {
            let states: Vec<_> = rows.iter().map(|(_, st, status)| st.oci(*status)).collect();
            println!(
                "{}",
                serde_json::to_string(&states).expect("state serialises")
            );
        }
        ListFormat::Table => {
            println!(
                "{:<12} {:<8} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for (_, st, status) in &rows {
                let oci = st.oci(*status);
                println!(
                    "{:<12} {:<8} {:<10} {:<40} {:<30} root",
                    st.id,
                    oci.pid,
                    oci.status,
                    st.bundle.display(),
                    st.created,
                );
            }
        }
    }
    Ok(0)
}
