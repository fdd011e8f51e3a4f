//! What the flags `checkpoint` and `restore` share mean: where the images and CRIU's work
//! files go (and those dirs opened for CRIU), the namespaces left out, the cgroup mode.

use super::args::{CgroupMode, CriuArgs};
use crate::criu::CgMode;
use crate::error::{Error, Result};
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

impl CriuArgs {
    /// `--image-path`, absolute (runc's default: `checkpoint` in the current directory).
    pub fn images(&self) -> Result<PathBuf> {
        let dir = self
            .image_path
            .as_deref()
            .unwrap_or(Path::new("checkpoint"));
        absolute(dir)
    }

    /// `--work-path`, absolute; None: CRIU works in the images dir.
    pub fn work(&self) -> Result<Option<PathBuf>> {
        self.work_path.as_deref().map(absolute).transpose()
    }

    /// `--empty-ns` as CLONE_NEW* bits: only the network namespace (runc's rule).
    pub fn empty_ns(&self) -> Result<u32> {
        self.empty_ns
            .iter()
            .try_fold(0u32, |bits, name| match name.as_str() {
                "network" => Ok(bits | libc::CLONE_NEWNET as u32),
                other => Err(Error::Unsupported(format!(
                    "--empty-ns {other}: only \"network\" is supported"
                ))),
            })
    }

    /// `--manage-cgroups-mode` as CRIU's RPC has it.
    pub fn cg_mode(&self) -> CgMode {
        match self.manage_cgroups_mode {
            CgroupMode::Soft => CgMode::Soft,
            CgroupMode::Full => CgMode::Full,
            CgroupMode::Strict => CgMode::Strict,
            CgroupMode::Ignore => CgMode::Ignore,
        }
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}

/// Create `dir` (0700, as runc; it may exist from an earlier checkpoint) and open it for
/// `criu swrk` to inherit ([`open_dir`]).
pub fn make_dir(dir: &Path) -> Result<OwnedFd> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("mkdir", dir, e)),
    }
    open_dir(dir)
}

/// A dir CRIU inherits by fd number (close-on-exec is cleared when it is handed over).
pub fn open_dir(dir: &Path) -> Result<OwnedFd> {
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::sys_path("open", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        criu: CriuArgs,
    }

    fn parse(args: &[&str]) -> CriuArgs {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .criu
    }

    #[test]
    fn empty_ns_takes_only_the_network() {
        let a = parse(&["--empty-ns", "network", "--empty-ns", "network"]);
        assert_eq!(a.empty_ns().unwrap(), libc::CLONE_NEWNET as u32);
        let e = parse(&["--empty-ns", "pid"]).empty_ns().unwrap_err();
        assert!(e.to_string().contains("--empty-ns pid"), "{e}");
    }

    #[test]
    fn paths_default_and_resolve() {
        let a = parse(&[]);
        assert!(a.images().unwrap().is_absolute());
        assert!(a.images().unwrap().ends_with("checkpoint"));
        assert!(a.work().unwrap().is_none());
        let a = parse(&["--image-path", "/x/img", "--work-path", "w"]);
        assert_eq!(a.images().unwrap(), Path::new("/x/img"));
        assert!(a.work().unwrap().unwrap().is_absolute());
        assert_eq!(
            parse(&["--manage-cgroups-mode", "ignore"]).cg_mode(),
            CgMode::Ignore
        );
    }
}
