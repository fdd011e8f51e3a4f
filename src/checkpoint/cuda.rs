//! CUDA processes and checkpoints: `cuda-checkpoint` moves a process's device state to host
//! memory (lock, checkpoint) before CRIU dumps it, and back (restore, unlock) after.

use crate::error::Result;
use crate::state::State;

/// The CUDA processes of a container and the `cuda-checkpoint` that handles them.
#[derive(Debug, Default)]
pub struct Cuda {}

/// Before anything is stopped: None for a container without a GPU; an error when it has one
/// and no usable `cuda-checkpoint` (or the driver is too old).
pub fn plan(_state: &State) -> Result<Option<Cuda>> {
    Ok(None)
}

impl Cuda {
    /// Lock and checkpoint every CUDA process of the container.
    pub fn suspend(&mut self) -> Result<()> {
        Ok(())
    }

    /// Undo `suspend` (a failed dump, or --leave-running): restore and unlock.
    pub fn resume(&self) -> Result<()> {
        Ok(())
    }
}

/// After a restore: restore and unlock the restored container's checkpointed CUDA processes.
pub fn resume_restored(_state: &State) -> Result<()> {
    Ok(())
}
