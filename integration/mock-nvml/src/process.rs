//! The usage calls: running compute/graphics processes, process utilisation samples,
//! temperature, power and utilisation rates. Processes come from the machine's
//! `processes_file`, re-read at every call so that a test can write its containers' host
//! pids after they start:
//!
//! ```json
//! [{"gpu": 0, "pid": 4242, "used_memory": 1073741824, "type": "compute", "sm": 30, "mem": 5}]
//! ```
//!
//! `gpu` is the device's index in the description; `type` is `compute` (the default) or
//! `graphics`; a process with `sm`/`mem` has a utilisation sample (at `timestamp`, µs,
//! default 1), one without has none. No sample on a GPU answers NOT_FOUND, as NVML does.
//! A file holding `{"error": N}` instead makes every process call answer NVML error N (a
//! transient failure such as 999, UNKNOWN).

use std::ffi::{c_int, c_uint, c_ulonglong, c_void};

use serde::Deserialize;

use super::{decode, machine, put, ret, Handle, INSUFFICIENT_SIZE, INVALID_ARGUMENT};
use super::{NOT_FOUND, NOT_SUPPORTED};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Proc {
    gpu: usize,
    pid: u32,
    #[serde(default)]
    used_memory: u64,
    #[serde(default, rename = "type")]
    kind: Kind,
    sm: Option<u32>,
    mem: Option<u32>,
    timestamp: Option<u64>,
}

#[derive(Deserialize, Default, PartialEq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Compute,
    Graphics,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ProcessesFile {
    Procs(Vec<Proc>),
    Error { error: c_int },
}

/// The processes on GPU `i` now (an unreadable file: none, and says why on stderr), or the
/// error the file asks for.
fn procs(i: usize) -> Result<Vec<Proc>, c_int> {
    let Some(path) = machine().ok().and_then(|m| m.processes_file.as_ref()) else {
        return Ok(Vec::new());
    };
    let Ok(text) = std::fs::read(path) else {
        return Ok(Vec::new());
    };
    match serde_json::from_slice::<ProcessesFile>(&text) {
        Ok(ProcessesFile::Procs(all)) => Ok(all.into_iter().filter(|p| p.gpu == i).collect()),
        Ok(ProcessesFile::Error { error }) => Err(error),
        Err(e) => {
            eprintln!("mock-nvml: {}: {e}", path.display());
            Ok(Vec::new())
        }
    }
}

/// Device memory in use on GPU `i`: its processes' sum.
pub(crate) fn memory_used(i: usize) -> u64 {
    procs(i)
        .unwrap_or_default()
        .iter()
        .map(|p| p.used_memory)
        .sum()
}

fn gpu_index(h: *mut c_void) -> Result<usize, c_int> {
    decode(h).map(|(handle, _)| match handle {
        Handle::Gpu(i) | Handle::Mig(i, _) => i,
    })
}

/// nvmlProcessInfo_t (the v2 layout the _v2/_v3 calls fill).
#[repr(C)]
pub struct ProcessInfo {
    pid: c_uint,
    used_gpu_memory: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

/// NVML's list protocol: `*count` in is the room at `out`; too little (or a null `out`)
/// answers INSUFFICIENT_SIZE with the count needed.
fn fill<T>(items: Vec<T>, count: *mut c_uint, out: *mut T) -> Result<(), c_int> {
    if count.is_null() {
        return Err(INVALID_ARGUMENT);
    }
    // SAFETY: non-null; NVML's contract is that `count` points at a valid c_uint.
    let room = unsafe { count.read() } as usize;
    put(count, items.len() as c_uint)?;
    if items.is_empty() {
        return Ok(());
    }
    if out.is_null() || room < items.len() {
        return Err(INSUFFICIENT_SIZE);
    }
    for (k, item) in items.into_iter().enumerate() {
        // SAFETY: the caller gave room for `room` >= items.len() elements at `out`.
        unsafe { out.add(k).write(item) };
    }
    Ok(())
}

fn running(h: *mut c_void, kind: Kind, count: *mut c_uint, out: *mut ProcessInfo) -> c_int {
    ret(gpu_index(h).and_then(|i| {
        let list = procs(i)?
            .into_iter()
            .filter(|p| p.kind == kind)
            .map(|p| ProcessInfo {
                pid: p.pid,
                used_gpu_memory: p.used_memory,
                gpu_instance_id: u32::MAX,
                compute_instance_id: u32::MAX,
            })
            .collect();
        fill(list, count, out)
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    h: *mut c_void,
    count: *mut c_uint,
    out: *mut ProcessInfo,
) -> c_int {
    running(h, Kind::Compute, count, out)
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetComputeRunningProcesses_v2(
    h: *mut c_void,
    count: *mut c_uint,
    out: *mut ProcessInfo,
) -> c_int {
    running(h, Kind::Compute, count, out)
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v3(
    h: *mut c_void,
    count: *mut c_uint,
    out: *mut ProcessInfo,
) -> c_int {
    running(h, Kind::Graphics, count, out)
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v2(
    h: *mut c_void,
    count: *mut c_uint,
    out: *mut ProcessInfo,
) -> c_int {
    running(h, Kind::Graphics, count, out)
}

/// nvmlProcessUtilizationSample_t.
#[repr(C)]
pub struct UtilSample {
    pid: c_uint,
    time_stamp: c_ulonglong,
    sm_util: c_uint,
    mem_util: c_uint,
    enc_util: c_uint,
    dec_util: c_uint,
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetProcessUtilization(
    h: *mut c_void,
    out: *mut UtilSample,
    count: *mut c_uint,
    last_seen: c_ulonglong,
) -> c_int {
    ret(gpu_index(h).and_then(|i| {
        let samples: Vec<UtilSample> = procs(i)?
            .into_iter()
            .filter(|p| p.sm.is_some() || p.mem.is_some())
            .map(|p| UtilSample {
                pid: p.pid,
                time_stamp: p.timestamp.unwrap_or(1),
                sm_util: p.sm.unwrap_or(0),
                mem_util: p.mem.unwrap_or(0),
                enc_util: 0,
                dec_util: 0,
            })
            .filter(|s| s.time_stamp > last_seen)
            .collect();
        if samples.is_empty() {
            return Err(NOT_FOUND);
        }
        fill(samples, count, out)
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetTemperature(
    h: *mut c_void,
    _sensor: c_uint,
    out: *mut c_uint,
) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| put(out, gpu.temperature.ok_or(NOT_SUPPORTED)?)))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetPowerUsage(h: *mut c_void, out: *mut c_uint) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| put(out, gpu.power_usage.ok_or(NOT_SUPPORTED)?)))
}

/// nvmlUtilization_t.
#[repr(C)]
pub struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetUtilizationRates(h: *mut c_void, out: *mut Utilization) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| {
        let [g, m] = gpu.utilization.ok_or(NOT_SUPPORTED)?;
        put(out, Utilization { gpu: g, memory: m })
    }))
}
