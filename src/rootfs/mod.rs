//! The container's filesystem, set up by the init inside its new mount namespace.
//!
//! [`prepare`] runs before pivot_root (host paths still visible: bind sources, the rootfs),
//! [`finish`] right after it, on the container's own `/`.

pub mod cgroupfs;
pub mod devices;
pub mod idmap;
pub mod mounts;
pub mod options;
pub mod paths;
pub mod pivot;
pub mod propagation;
pub mod resolve;

use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::spec::Bundle;

/// Everything up to (not including) pivot_root.
/// `own_cgroup`: the container's cgroup when it has no cgroup namespace of its own (its
/// directories are then bind-mounted for `cgroup` mounts, see cgroupfs.rs).
/// `userns`: the init is in a new user namespace (devices are then bound, not made).
/// `idmapped`: the detached idmapped mounts the parent made, put in place of their entries.
pub fn prepare(
    bundle: &Bundle,
    own_cgroup: Option<&Cgroup>,
    userns: bool,
    idmapped: &idmap::Prepared,
) -> Result<()> {
    let spec = &bundle.spec;
    let rootfs = bundle.rootfs.as_path();
    propagation::prepare(spec, rootfs)?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(Error::sys_path("bind rootfs", rootfs))?;
    let rootfd = open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::sys_path("open", rootfs))?;

    let spec_mounts = spec.mounts().as_deref().unwrap_or_default();
    let label = crate::lsm::mount_label(spec);
    for (i, m) in spec_mounts.iter().enumerate() {
        let idmapped = idmapped.get(i);
        mounts::mount_entry(rootfs, &rootfd, &bundle.dir, m, own_cgroup, idmapped, label)?;
    }

    // A bind of the host's /dev means the user manages devices themselves: then nothing is
    // created there (not even linux.devices, which would land in the host's /dev).
    let dev_is_bound = spec_mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || mounts::parse_options(m.options().as_deref().unwrap_or_default()).bind)
    });
    let linux = spec.linux().as_ref();
    if !dev_is_bound {
        let make = if userns {
            devices::bind_node
        } else {
            devices::create_node
        };
        for node in devices::default_nodes() {
            make(rootfs, rootfd.as_fd(), &node)?;
        }
        devices::create_symlinks(rootfs, rootfd.as_fd())?;
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            make(rootfs, rootfd.as_fd(), &devices::spec_node(d))?;
        }
    }

    // The working directory may not exist in the image yet (runc creates it too).
    let cwd = spec
        .process()
        .as_ref()
        .map(|p| p.cwd().to_string_lossy().into_owned())
        .unwrap_or_default();
    let rel = resolve::resolve(rootfs, &cwd)?;
    resolve::mkdir_all_in_root(&rootfd, &rel, 0o755)?;
    Ok(())
}

/// A container that shares the runtime's mount namespace gets no mounts, devices or path
/// masking (`spec::check_shared_mounts` refused them): only its sysctls, written while the
/// host's /proc is still reachable, then a chroot into the rootfs.
pub fn enter_shared(bundle: &Bundle) -> Result<()> {
    set_sysctls(&bundle.spec)?;
    pivot::chroot_into(&bundle.rootfs)
}

fn set_sysctls(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    for (key, value) in sysctls.into_iter().flatten() {
        paths::set_sysctl(key, value)?;
    }
    Ok(())
}

/// The steps after the root switch: masked and read-only paths, sysctls, a read-only `/`,
/// and the requested propagation of `/`.
pub fn finish(bundle: &Bundle) -> Result<()> {
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref();
    set_sysctls(spec)?;
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        paths::mask(p, crate::lsm::mount_label(spec))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        paths::make_readonly(p)?;
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly().unwrap_or(false))
    {
        paths::remount_readonly(Path::new("/"))
            .map_err(Error::sys_path("remount read-only", "/"))?;
    }
    propagation::finish(spec)
}

use std::os::fd::AsFd;
