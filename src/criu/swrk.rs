//! `criu swrk`: spawn, send a request, answer notifications, read the response.

use super::{CriuError, Handler, Kind, Opts, Outcome, Version};
use std::path::Path;

pub fn version(_criu: &Path) -> Result<Version, CriuError> {
    Err(CriuError::Rpc("not implemented yet".into()))
}

pub fn call(
    _criu: &Path,
    _kind: Kind,
    _opts: Opts,
    _handler: &mut dyn Handler,
) -> Result<Outcome, CriuError> {
    Err(CriuError::Rpc("not implemented yet".into()))
}
