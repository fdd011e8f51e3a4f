//! gpurun: a runc-compatible OCI container runtime.
//!
//! Parent side: [`cli`] → [`commands`] → [`container`] (state in [`state`]).
//! Child side: [`process::init`] (namespaces → [`rootfs`] → pivot_root → user/capabilities → exec),
//! talking to the parent over the protocol in [`process::sync`].
//! All `unsafe` lives in [`sys`]; the compiler holds every other module to that.

#![deny(unsafe_code)]

pub mod capabilities;
pub mod cdi;
pub mod cgroups;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod console;
pub mod container;
pub mod criu;
pub mod error;
pub mod fault;
pub mod gpu;
pub mod hooks;
pub mod intelrdt;
pub mod logging;
pub mod lsm;
pub mod namespaces;
pub mod netdev;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
#[allow(unsafe_code)]
pub mod sys;
pub mod userns;
