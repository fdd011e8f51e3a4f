//! gpurun-build: Dockerfile + context → OCI bundle and/or OCI image, every RUN step executed by
//! gpurun (or any runc-compatible runtime). See README.md, "Building images".
#![forbid(unsafe_code)]

mod archive;
mod base;
mod build;
mod bundle_tree;
mod cache;
mod cancel;
mod clone;
mod context;
mod context_cache;
mod copy;
mod copy_step;
mod dockerfile;
mod error;
mod expand;
mod fetch;
mod heredoc;
mod ignore;
mod layer;
mod oci;
mod output;
mod overlay;
mod progress;
mod prune;
mod registry;
mod run;
mod secret;
mod snapshots;
mod spec;
mod stage;
mod steps;
mod store;
mod tree;
mod unpack;
mod user;
mod xattrs;

use clap::Parser;
use error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "gpurun-build",
    version,
    about = "Build an OCI bundle / OCI image from a Dockerfile; RUN steps run in gpurun"
)]
struct Cli {
    /// Dockerfile (default: CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Image name for the OCI outputs
    #[arg(short = 't', long = "tag", default_value = "gpurun-build:latest")]
    tag: String,
    /// Build argument K=V (repeatable)
    #[arg(long = "build-arg", value_name = "K=V")]
    build_args: Vec<String>,
    /// Build up to this stage
    #[arg(long)]
    target: Option<String>,
    /// Write a runnable OCI bundle (config.json + rootfs/) here
    #[arg(long, value_name = "OUT_DIR")]
    bundle: Option<PathBuf>,
    /// Write an OCI image layout here (added to an existing one)
    #[arg(
        long = "oci-layout",
        value_name = "DIR",
        conflicts_with = "oci_archive"
    )]
    oci_layout: Option<PathBuf>,
    /// Write an OCI archive (tar of an image layout)
    #[arg(long = "oci-archive", value_name = "FILE.tar")]
    oci_archive: Option<PathBuf>,
    /// Run every step, ignoring cached results
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// runc-compatible runtime for RUN steps (default: gpurun next to this binary, else PATH)
    #[arg(long)]
    runtime: Option<PathBuf>,
    /// CDI device for every RUN step, e.g. nvidia.com/gpu=all (repeatable)
    #[arg(long = "device", value_name = "CDI_NAME")]
    devices: Vec<String>,
    /// Layer store, cache and cache mounts (default: $GPURUN_BUILD_CACHE, /var/lib/gpurun-build
    /// as root, else ~/.cache/gpurun-build)
    #[arg(long = "cache-dir", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Image format of --oci-layout/--oci-archive: oci, or docker (Docker's manifest and
    /// config media types; keeps HEALTHCHECK where Docker and Podman read it)
    #[arg(long, value_enum, default_value = "oci")]
    format: oci::Format,
    /// Network of RUN steps: host (default) or none (RUN --network overrides it)
    #[arg(long, value_name = "host|none")]
    network: Option<String>,
    /// Secret for RUN --mount=type=secret: id=ID,src=PATH (repeatable)
    #[arg(long = "secret", value_name = "id=ID,src=PATH")]
    secrets: Vec<String>,
    /// Target platform; only this host's (linux/ARCH) can be built
    #[arg(long, value_name = "linux/ARCH")]
    platform: Option<String>,
    /// Output of the steps: plain, tty or auto (tty on a terminal)
    #[arg(long, default_value = "auto", value_name = "plain|tty|auto")]
    progress: String,
    /// Print only the result (image digest or output paths), not the steps
    #[arg(short, long)]
    quiet: bool,
    /// Build context directory
    context: PathBuf,
}

/// `gpurun-build prune`: a separate parser, so the build's positional CONTEXT stays as it is
/// (a context dir named `prune` is still built as `gpurun-build ./prune`).
#[derive(Parser, Debug)]
#[command(
    name = "gpurun-build prune",
    about = "Remove what interrupted builds left, unused layers and cache entries"
)]
struct PruneCli {
    /// Remove every cache entry, layer and cache mount, not only unused ones
    #[arg(long)]
    all: bool,
    /// Then evict least recently used cache entries until the layers take at most SIZE
    /// (bytes, or 512M, 10GB …)
    #[arg(long = "keep-storage", value_name = "SIZE", value_parser = prune::parse_size)]
    keep_storage: Option<u64>,
    /// The builder's cache dir (default: as for a build)
    #[arg(long = "cache-dir", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Runtime that stops RUN containers a killed build left (default: as for a build)
    #[arg(long)]
    runtime: Option<PathBuf>,
}

fn main() {
    // Before any thread exists (unsharing the mount namespace needs that): overlay mounts of
    // working trees stay private to this process. GPURUN_BUILD_OVERLAY=0 extracts instead.
    if std::env::var_os("GPURUN_BUILD_OVERLAY").is_none_or(|v| v != "0")
        && overlay::private_mounts()
    {
        tree::enable_overlay();
    }
    // Then, still before any thread: every later thread inherits the blocked mask.
    if let Err(e) = cancel::install() {
        eprintln!("gpurun-build: warning: {e}; SIGINT/SIGTERM will not stop RUN containers");
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let res = if args.get(1).is_some_and(|a| a == "prune") {
        prune_main(PruneCli::parse_from(&args[1..]))
    } else {
        real_main(Cli::parse_from(&args))
    };
    match res {
        Err(e @ Error::Cancelled { .. }) => {
            progress::end_line();
            let what = if cancel::container_stopped() {
                "RUN container stopped, work tree removed"
            } else {
                "work tree removed"
            };
            eprintln!("gpurun-build: {e}: {what}");
            std::process::exit(e.exit_code());
        }
        Err(e) => {
            progress::end_line();
            eprintln!("gpurun-build: error: {e}");
            std::process::exit(e.exit_code());
        }
        Ok(()) => {}
    }
}

fn prune_main(cli: PruneCli) -> Result<()> {
    let root = absolute(&cli.cache_dir.unwrap_or_else(default_cache))?;
    let freed = prune::prune(&prune::Opts {
        root: root.clone(),
        runtime: cli
            .runtime
            .map_or_else(default_runtime, |r| absolute(&r).unwrap_or(r)),
        all: cli.all,
        keep_storage: cli.keep_storage,
    })?;
    println!("gpurun-build prune: {}: {freed}", root.display());
    if freed.busy {
        println!(
            "a build is running on {}: cache entries and layers kept",
            root.display()
        );
    }
    Ok(())
}

fn default_runtime() -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        if dir.join("gpurun").is_file() {
            return dir.join("gpurun");
        }
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("gpurun"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("gpurun"))
}

fn default_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("GPURUN_BUILD_CACHE") {
        return PathBuf::from(d);
    }
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        return PathBuf::from("/var/lib/gpurun-build");
    }
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    home.unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("gpurun-build")
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(error::io(p))
}

fn real_main(cli: Cli) -> Result<()> {
    if cli.bundle.is_none() && cli.oci_layout.is_none() && cli.oci_archive.is_none() {
        return Err(Error::Usage(
            "no output: give --bundle DIR, --oci-layout DIR or --oci-archive FILE".into(),
        ));
    }
    let context = absolute(&cli.context)?;
    if !context.is_dir() {
        return Err(Error::Usage(format!(
            "context {}: not a directory",
            context.display()
        )));
    }
    let dockerfile = cli
        .file
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    let mut build_args = BTreeMap::new();
    for kv in &cli.build_args {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => build_args.insert(k.to_string(), v.to_string()),
            // Docker: `--build-arg K` takes K from the environment
            _ => build_args.insert(kv.clone(), std::env::var(kv).unwrap_or_default()),
        };
    }
    if let Some(b) = &cli.bundle {
        let nonempty = std::fs::read_dir(b).is_ok_and(|mut d| d.next().is_some());
        if nonempty && !b.join("config.json").exists() {
            return Err(Error::Usage(format!(
                "--bundle {}: exists and is not a bundle; refusing to overwrite",
                b.display()
            )));
        }
    }
    let df = dockerfile::parse_file(&dockerfile)?;
    let opts = build::Opts {
        context,
        dockerfile: absolute(&dockerfile)?,
        build_args,
        target: cli.target.clone(),
        no_cache: cli.no_cache,
        runtime: cli
            .runtime
            .clone()
            .map_or_else(default_runtime, |r| absolute(&r).unwrap_or(r)),
        devices: cli.devices.clone(),
        store_root: absolute(&cli.cache_dir.clone().unwrap_or_else(default_cache))?,
        network: cli.network.clone(),
        secrets: cli.secrets.clone(),
        platform: cli.platform.clone(),
        progress: cli.progress.clone(),
        quiet: cli.quiet,
    };
    let t = Instant::now();
    let root = opts.store_root.clone();
    let runtime = opts.runtime.clone();
    snapshots::forget_if_rebooted(&root);
    // Held until exit: `prune` then keeps the layers this build is writing.
    let _lock = prune::build_lock(&root);
    // What builds killed with SIGKILL left (their pid is gone): cheap, names only.
    prune::remove_leftovers(&root, &runtime, |pid| {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    let res = build_and_write(&cli, opts, &df);
    if res.is_err() && cancel::signal().is_some() {
        // A cancelled step may have left a partial layer or work tree behind its error path.
        let own = std::process::id();
        prune::remove_leftovers(&root, &runtime, |pid| pid == own);
    }
    res?;
    if !cli.quiet {
        println!("built in {:.3}s", t.elapsed().as_secs_f64());
    }
    Ok(())
}

fn build_and_write(cli: &Cli, opts: build::Opts, df: &dockerfile::Dockerfile) -> Result<()> {
    let mut b = build::Builder::new(opts)?;
    let mut built = b.build(df)?;
    let res = write_outputs(cli, &b.store, &mut built.stage);
    built.stage.cleanup();
    res?;
    // A signal during the outputs: the build did not finish as asked.
    cancel::check()
}

fn write_outputs(cli: &Cli, store: &store::Store, stage: &mut stage::Stage) -> Result<()> {
    if let Some(dir) = &cli.bundle {
        output::write_bundle(store, stage, dir)?;
        println!("bundle: {}", dir.display());
    }
    if let Some(dir) = &cli.oci_layout {
        let d = output::write_layout(store, stage, dir, &cli.tag, cli.format)?;
        println!("oci layout: {} ({})", dir.display(), d.digest);
    }
    if let Some(file) = &cli.oci_archive {
        let d = output::write_archive(store, stage, file, &cli.tag, cli.format)?;
        println!("oci archive: {} ({})", file.display(), d.digest);
    }
    Ok(())
}
