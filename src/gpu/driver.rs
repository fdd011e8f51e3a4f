//! The driver's files a container needs for its capabilities: libraries found through the
//! driver root's `etc/ld.so.cache` (only those built for this driver version), binaries on the
//! standard PATH, firmware and the daemons' sockets. All paths are given as on a standard
//! install (`/usr/lib/...`): the host file is that path under the driver root, the container
//! gets it at the path itself (as `nvidia-ctk cdi generate --driver-root` does).

use std::path::{Component, Path, PathBuf};

use super::config::Config;
use super::ldsocache;
use super::select::Caps;
use super::GpuError;

/// Libraries per capability (the NVIDIA container toolkit's lists, sonames without version).
const LIBS: [(&str, &[&str]); 6] = [
    (
        "utility",
        &["libnvidia-ml.so", "libnvidia-cfg.so", "libnvidia-nscq.so"],
    ),
    (
        "compute",
        &[
            "libcuda.so",
            "libcudadebugger.so",
            "libnvidia-opencl.so",
            "libnvidia-gpucomp.so",
            "libnvidia-ptxjitcompiler.so",
            "libnvidia-fatbinaryloader.so",
            "libnvidia-allocator.so",
            "libnvidia-compiler.so",
            "libnvidia-pkcs11.so",
            "libnvidia-pkcs11-openssl3.so",
            "libnvidia-nvvm.so",
        ],
    ),
    (
        "video",
        &[
            "libvdpau_nvidia.so",
            "libnvidia-encode.so",
            "libnvidia-opticalflow.so",
            "libnvcuvid.so",
        ],
    ),
    (
        "graphics",
        &[
            "libnvidia-eglcore.so",
            "libnvidia-glcore.so",
            "libnvidia-tls.so",
            "libnvidia-glsi.so",
            "libnvidia-fbc.so",
            "libnvidia-ifr.so",
            "libnvidia-rtcore.so",
            "libnvoptix.so",
            "libGLX_nvidia.so",
            "libEGL_nvidia.so",
            "libGLESv2_nvidia.so",
            "libGLESv1_CM_nvidia.so",
            "libnvidia-glvkspirv.so",
            "libnvidia-cbl.so",
            "libnvidia-gpucomp.so",
        ],
    ),
    ("ngx", &["libnvidia-ngx.so"]),
    ("display", &[]),
];

const BINS: [(&str, &[&str]); 2] = [
    (
        "utility",
        &["nvidia-smi", "nvidia-debugdump", "nvidia-persistenced"],
    ),
    (
        "compute",
        &["nvidia-cuda-mps-control", "nvidia-cuda-mps-server"],
    ),
];

const PATH_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Sockets and pipes of the driver's daemons, mounted when present.
const IPC: [&str; 3] = [
    "/run/nvidia-persistenced/socket",
    "/run/nvidia-fabricmanager/socket",
    "/tmp/nvidia-mps",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriverFiles {
    /// Paths as on a standard install; the host file is under the driver root.
    pub libs: Vec<String>,
    pub bins: Vec<String>,
    /// Firmware directory and daemon sockets.
    pub other: Vec<String>,
    /// The driver root's cache entries for `libs`, re-pointed at the container's paths: the
    /// soname links to make and the entries for the container's ld cache.
    /// Each with the file name of the library it names.
    pub sonames: Vec<(ldsocache::Entry, String)>,
}

impl DriverFiles {
    /// Every file to bind, as (path in the container, path under the driver root). Programs go
    /// to `/usr/bin`, on the container's PATH wherever the driver keeps them (as
    /// libnvidia-container does); libraries keep their directory, which the ld cache lists.
    pub fn binds(&self) -> impl Iterator<Item = (String, &String)> {
        let bins = self.bins.iter().map(|p| {
            let name = Path::new(p).file_name().unwrap_or_default();
            (format!("/usr/bin/{}", name.to_string_lossy()), p)
        });
        let rest = self.libs.iter().chain(&self.other).map(|p| (p.clone(), p));
        rest.chain(bins)
    }

    /// The directories holding the libraries (for the container's ld cache).
    pub fn lib_dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = Vec::new();
        for l in &self.libs {
            let d = Path::new(l)
                .parent()
                .unwrap_or(Path::new("/"))
                .display()
                .to_string();
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        dirs
    }
}

/// Lexically normalise an absolute path (`..` cannot climb above `/`).
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Follow symlinks of `path` inside the driver root (absolute targets stay under it).
pub fn resolve_in_driver_root(cfg: &Config, path: &str) -> Option<String> {
    let mut p = normalise(Path::new(path));
    for _ in 0..40 {
        match std::fs::read_link(cfg.driver_path(&p.to_string_lossy())) {
            Ok(target) => {
                let base = p.parent().unwrap_or(Path::new("/")).to_path_buf();
                p = normalise(&base.join(target));
            }
            Err(_) => {
                return cfg
                    .driver_path(&p.to_string_lossy())
                    .exists()
                    .then(|| p.display().to_string())
            }
        }
    }
    None
}

/// The driver files `caps` needs, for driver `version`.
pub fn discover(cfg: &Config, caps: Caps, version: &str) -> Result<DriverFiles, GpuError> {
    let cache_path = cfg.driver_path("/etc/ld.so.cache");
    let bytes = std::fs::read(&cache_path)
        .map_err(|e| GpuError::Driver(format!("{}: {e}", cache_path.display())))?;
    let cache = ldsocache::parse(&bytes)
        .map_err(|e| GpuError::Driver(format!("{}: {e}", cache_path.display())))?;
    let mut files = DriverFiles::default();
    let push = |v: &mut Vec<String>, p: String| {
        if !v.contains(&p) {
            v.push(p)
        }
    };
    for (cap, names) in LIBS {
        if !caps.has(cap) {
            continue;
        }
        for name in names {
            for e in &cache {
                let wanted_arch = e.lib64 || caps.has("compat32");
                let matches = e.name == *name
                    || e.name
                        .strip_prefix(name)
                        .is_some_and(|r| r.starts_with('.'));
                if !matches || !wanted_arch {
                    continue;
                }
                // Only the files of this driver version: a stale libcuda from an older install
                // must never shadow the running driver's.
                if let Some(real) = resolve_in_driver_root(cfg, &e.path) {
                    if real.ends_with(&format!("{name}.{version}")) {
                        let dir = Path::new(&real).parent().unwrap_or(Path::new("/"));
                        let link = dir.join(&e.name).display().to_string();
                        let file = Path::new(&real).file_name().unwrap_or_default();
                        let file = file.to_string_lossy().into_owned();
                        // The file itself is no link to make (a soname like glcore's).
                        if file != e.name
                            && !files
                                .sonames
                                .iter()
                                .any(|(s, _)| s.path == link && s.flags == e.flags)
                        {
                            files.sonames.push((
                                ldsocache::Entry {
                                    path: link,
                                    ..e.clone()
                                },
                                file,
                            ));
                        }
                        push(&mut files.libs, real);
                    }
                }
            }
        }
    }
    files.bins = find_bins(cfg, caps, &files.lib_dirs());
    if caps.has("compute") || caps.has("utility") {
        let fw = format!("/lib/firmware/nvidia/{version}");
        for p in std::iter::once(fw.as_str()).chain(IPC) {
            if cfg.driver_path(p).exists() {
                push(&mut files.other, p.to_string());
            }
        }
    }
    Ok(files)
}

/// The driver's programs for `caps`: first in a `bin` beside a library directory (layouts like
/// `/usr/local/nvidia/{bin,lib64}` keep them there), then in the standard PATH. An ELF file wins
/// over a script found earlier: a distribution's wrapper (`exec /usr/local/nvidia/bin/nvidia-smi`)
/// would find nothing to run in the container.
fn find_bins(cfg: &Config, caps: Caps, lib_dirs: &[String]) -> Vec<String> {
    let beside_libs = lib_dirs.iter().filter_map(|d| {
        let bin = Path::new(d).parent()?.join("bin").display().to_string();
        (!PATH_DIRS.contains(&bin.as_str())).then_some(bin)
    });
    let dirs: Vec<String> = beside_libs
        .chain(PATH_DIRS.iter().map(|d| d.to_string()))
        .collect();
    let mut bins = Vec::new();
    for (cap, names) in BINS {
        if !caps.has(cap) {
            continue;
        }
        for name in names {
            // The first ELF on the list, else the first file of any kind.
            let mut found: Option<String> = None;
            for p in dirs.iter().map(|d| format!("{d}/{name}")) {
                let host = cfg.driver_path(&p);
                if is_elf(&host) {
                    found = Some(p);
                    break;
                }
                if found.is_none() && host.is_file() {
                    found = Some(p);
                }
            }
            if let Some(p) = found.filter(|p| !bins.contains(p)) {
                bins.push(p);
            }
        }
    }
    bins
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// Developer symlinks the loader does not make (`libcuda.so` → `libcuda.so.1`): (link, target).
pub fn dev_symlinks(files: &DriverFiles) -> Vec<(String, String)> {
    const LINKS: [(&str, &str, &str); 3] = [
        ("libcuda.so.", "libcuda.so", "libcuda.so.1"),
        (
            "libnvidia-opticalflow.so.",
            "libnvidia-opticalflow.so",
            "libnvidia-opticalflow.so.1",
        ),
        (
            "libGLX_nvidia.so.",
            "libGLX_indirect.so.0",
            "libGLX_nvidia.so.0",
        ),
    ];
    let mut out = Vec::new();
    for lib in &files.libs {
        let p = Path::new(lib);
        let file = p.file_name().unwrap_or_default().to_string_lossy();
        let dir = p.parent().unwrap_or(Path::new("/")).display().to_string();
        for (prefix, link, target) in LINKS {
            if file.starts_with(prefix) {
                out.push((
                    format!("{}/{link}", dir.trim_end_matches('/')),
                    target.to_string(),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
