//! `gpurun checkpoint`: dump (or pre-dump) a running container with CRIU.

use super::args::CheckpointArgs;
use crate::error::{Error, Result};
use std::path::Path;

pub fn checkpoint(_root: &Path, _args: &CheckpointArgs) -> Result<()> {
    Err(Error::Unsupported("checkpoint: not implemented yet".into()))
}
