//! `gpurun restore`: a container from CRIU images.

use super::args::RestoreArgs;
use crate::error::{Error, Result};
use std::path::Path;

pub fn restore(_root: &Path, _args: &RestoreArgs, _systemd_cgroup: bool) -> Result<i32> {
    Err(Error::Unsupported("restore: not implemented yet".into()))
}
