//! A mock `libnvidia-ml.so`: exports the NVML symbols gpurun (through nvml-wrapper) calls and
//! answers them from a JSON description of a machine, named by `MOCK_NVML_CONFIG`:
//!
//! ```json
//! {"driver_version": "550.54.15", "cuda_version": 12040,
//!  "devices": [{"name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-…", "minor": 0,
//!               "pci_bus_id": "00000000:07:00.0", "memory_total": 85899345920,
//!               "compute_capability": [8, 0], "brand": 2,
//!               "mig": [{"uuid": "MIG-…", "memory_total": 10737418240}]}]}
//! ```
//!
//! A device with a `mig` list is in MIG mode. Usage readings (see [`process`]): a device may
//! have `"temperature"` (C), `"power_usage"` (mW) and `"utilization": [gpu, memory]`, each
//! "not supported" when absent; the machine may name a `"processes_file"`, re-read at every
//! call, listing the processes on its GPUs. Handles are small integers cast to pointers:
//! GPU i is `0x1000 + i`, its MIG device j is `0x1000 + (i + 1) << 8 | j` — NVML's handles are
//! opaque to callers, so nothing dereferences them.
//!
//! Every export is `extern "C"` writing through caller-supplied pointers; each checks them for
//! null and documents why the write is sound.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};
use std::sync::OnceLock;

use serde::Deserialize;

mod process;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Machine {
    driver_version: String,
    cuda_version: i32,
    #[serde(default)]
    devices: Vec<Gpu>,
    /// A JSON file of [`process::Proc`]s, written by a test once it knows its pids.
    #[serde(default)]
    processes_file: Option<std::path::PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Gpu {
    name: String,
    uuid: String,
    minor: u32,
    pci_bus_id: String,
    memory_total: u64,
    compute_capability: [i32; 2],
    #[serde(default)]
    brand: u32,
    #[serde(default)]
    mig: Vec<Mig>,
    #[serde(default)]
    temperature: Option<u32>,
    #[serde(default)]
    power_usage: Option<u32>,
    #[serde(default)]
    utilization: Option<[u32; 2]>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mig {
    uuid: String,
    memory_total: u64,
    /// GPU instance and compute instance ids.
    gi: u32,
    ci: u32,
}

const SUCCESS: c_int = 0;
const INVALID_ARGUMENT: c_int = 2;
const NOT_SUPPORTED: c_int = 3;
const NOT_FOUND: c_int = 6;
const INSUFFICIENT_SIZE: c_int = 7;
const DRIVER_NOT_LOADED: c_int = 9;
const UNINITIALIZED: c_int = 1;

static MACHINE: OnceLock<Option<Machine>> = OnceLock::new();

fn load() -> Option<Machine> {
    let path = std::env::var_os("MOCK_NVML_CONFIG")?;
    let text = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("mock-nvml: {}: {e}", std::path::Path::new(&path).display());
            None
        }
    }
}

fn machine() -> Result<&'static Machine, c_int> {
    MACHINE.get().and_then(Option::as_ref).ok_or(UNINITIALIZED)
}

/// What a handle stands for.
enum Handle {
    Gpu(usize),
    Mig(usize, usize),
}

const BASE: usize = 0x1000;

fn gpu_handle(i: usize) -> *mut c_void {
    (BASE + i) as *mut c_void
}

fn mig_handle(i: usize, j: usize) -> *mut c_void {
    (BASE + ((i + 1) << 8 | j)) as *mut c_void
}

fn decode(h: *mut c_void) -> Result<(Handle, &'static Gpu), c_int> {
    let m = machine()?;
    let v = (h as usize).checked_sub(BASE).ok_or(INVALID_ARGUMENT)?;
    let handle = if v < 0x100 {
        Handle::Gpu(v)
    } else {
        Handle::Mig((v >> 8) - 1, v & 0xff)
    };
    let i = match handle {
        Handle::Gpu(i) | Handle::Mig(i, _) => i,
    };
    let gpu = m.devices.get(i).ok_or(INVALID_ARGUMENT)?;
    if let Handle::Mig(_, j) = handle {
        if j >= gpu.mig.len() {
            return Err(INVALID_ARGUMENT);
        }
    }
    Ok((handle, gpu))
}

fn ret(r: Result<(), c_int>) -> c_int {
    r.err().unwrap_or(SUCCESS)
}

/// Copy `s` NUL-terminated into `buf` of `len` bytes.
fn put_str(s: &str, buf: *mut c_char, len: c_uint) -> Result<(), c_int> {
    if buf.is_null() {
        return Err(INVALID_ARGUMENT);
    }
    if s.len() + 1 > len as usize {
        return Err(INSUFFICIENT_SIZE);
    }
    // SAFETY: the caller gave `buf` with room for `len` bytes (NVML's contract), and we write
    // s.len() + 1 <= len bytes; source and destination cannot overlap (ours is a Rust string).
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(())
}

/// Store `v` through the out-pointer `p`.
fn put<T>(p: *mut T, v: T) -> Result<(), c_int> {
    if p.is_null() {
        return Err(INVALID_ARGUMENT);
    }
    // SAFETY: non-null, and NVML's contract is that out-pointers point at a valid, aligned T.
    unsafe { p.write(v) };
    Ok(())
}

#[no_mangle]
pub extern "C" fn nvmlInit_v2() -> c_int {
    match MACHINE.get_or_init(load) {
        Some(_) => SUCCESS,
        None => DRIVER_NOT_LOADED,
    }
}

#[no_mangle]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> c_int {
    nvmlInit_v2()
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> c_int {
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(result: c_int) -> *const c_char {
    let s: &'static CStr = match result {
        SUCCESS => c"Success",
        UNINITIALIZED => c"Uninitialized",
        INVALID_ARGUMENT => c"Invalid Argument",
        NOT_SUPPORTED => c"Not Supported",
        NOT_FOUND => c"Not Found",
        INSUFFICIENT_SIZE => c"Insufficient Size",
        DRIVER_NOT_LOADED => c"Driver Not Loaded",
        _ => c"Unknown Error",
    };
    s.as_ptr()
}

#[no_mangle]
pub extern "C" fn nvmlSystemGetDriverVersion(buf: *mut c_char, len: c_uint) -> c_int {
    ret(machine().and_then(|m| put_str(&m.driver_version, buf, len)))
}

#[no_mangle]
pub extern "C" fn nvmlSystemGetCudaDriverVersion_v2(v: *mut c_int) -> c_int {
    ret(machine().and_then(|m| put(v, m.cuda_version)))
}

#[no_mangle]
pub extern "C" fn nvmlSystemGetCudaDriverVersion(v: *mut c_int) -> c_int {
    nvmlSystemGetCudaDriverVersion_v2(v)
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetCount_v2(n: *mut c_uint) -> c_int {
    ret(machine().and_then(|m| put(n, m.devices.len() as c_uint)))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetHandleByIndex_v2(i: c_uint, out: *mut *mut c_void) -> c_int {
    ret(machine().and_then(|m| {
        if (i as usize) < m.devices.len() {
            put(out, gpu_handle(i as usize))
        } else {
            Err(INVALID_ARGUMENT)
        }
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetIndex(h: *mut c_void, out: *mut c_uint) -> c_int {
    ret(decode(h).and_then(|(handle, _)| match handle {
        Handle::Gpu(i) => put(out, i as c_uint),
        Handle::Mig(..) => Err(NOT_SUPPORTED),
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetUUID(h: *mut c_void, buf: *mut c_char, len: c_uint) -> c_int {
    ret(decode(h).and_then(|(handle, gpu)| match handle {
        Handle::Gpu(_) => put_str(&gpu.uuid, buf, len),
        Handle::Mig(_, j) => put_str(&gpu.mig[j].uuid, buf, len),
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetGpuInstanceId(h: *mut c_void, out: *mut c_uint) -> c_int {
    ret(decode(h).and_then(|(handle, gpu)| match handle {
        Handle::Mig(_, j) => put(out, gpu.mig[j].gi),
        Handle::Gpu(_) => Err(INVALID_ARGUMENT),
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetComputeInstanceId(h: *mut c_void, out: *mut c_uint) -> c_int {
    ret(decode(h).and_then(|(handle, gpu)| match handle {
        Handle::Mig(_, j) => put(out, gpu.mig[j].ci),
        Handle::Gpu(_) => Err(INVALID_ARGUMENT),
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetName(h: *mut c_void, buf: *mut c_char, len: c_uint) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| put_str(&gpu.name, buf, len)))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetMinorNumber(h: *mut c_void, out: *mut c_uint) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| put(out, gpu.minor)))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetBrand(h: *mut c_void, out: *mut c_uint) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| put(out, gpu.brand)))
}

/// nvmlPciInfo_t (v3 layout).
#[repr(C)]
pub struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetPciInfo_v3(h: *mut c_void, out: *mut PciInfo) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| {
        let field = |i: usize, radix| {
            let parts: Vec<&str> = gpu.pci_bus_id.split([':', '.']).collect();
            parts
                .get(i)
                .and_then(|p| u32::from_str_radix(p, radix).ok())
                .unwrap_or(0)
        };
        let mut info = PciInfo {
            bus_id_legacy: [0; 16],
            domain: field(0, 16),
            bus: field(1, 16),
            device: field(2, 16),
            pci_device_id: 0x20b2_10de,
            pci_sub_system_id: 0x1463_10de,
            bus_id: [0; 32],
        };
        put_str(&gpu.pci_bus_id, info.bus_id.as_mut_ptr(), 32)?;
        put(out, info)
    }))
}

/// nvmlMemory_v2_t.
#[repr(C)]
pub struct Memory {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetMemoryInfo_v2(h: *mut c_void, out: *mut Memory) -> c_int {
    ret(decode(h).and_then(|(handle, gpu)| {
        let total = match handle {
            Handle::Gpu(_) => gpu.memory_total,
            Handle::Mig(_, j) => gpu.mig[j].memory_total,
        };
        let used = match handle {
            Handle::Gpu(i) => process::memory_used(i).min(total),
            Handle::Mig(..) => 0,
        };
        let version = (std::mem::size_of::<Memory>() as c_uint) | (2 << 24);
        put(
            out,
            Memory {
                version,
                total,
                reserved: 0,
                free: total - used,
                used,
            },
        )
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetCudaComputeCapability(
    h: *mut c_void,
    major: *mut c_int,
    minor: *mut c_int,
) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| {
        put(major, gpu.compute_capability[0])?;
        put(minor, gpu.compute_capability[1])
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetMigMode(
    h: *mut c_void,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| {
        let on = c_uint::from(!gpu.mig.is_empty());
        put(current, on)?;
        put(pending, on)
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetMaxMigDeviceCount(h: *mut c_void, out: *mut c_uint) -> c_int {
    ret(decode(h).and_then(|(_, gpu)| put(out, gpu.mig.len() as c_uint)))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    h: *mut c_void,
    j: c_uint,
    out: *mut *mut c_void,
) -> c_int {
    ret(decode(h).and_then(|(handle, gpu)| match handle {
        Handle::Gpu(i) if (j as usize) < gpu.mig.len() => put(out, mig_handle(i, j as usize)),
        Handle::Gpu(_) => Err(NOT_FOUND),
        Handle::Mig(..) => Err(INVALID_ARGUMENT),
    }))
}

#[no_mangle]
pub extern "C" fn nvmlDeviceIsMigDeviceHandle(h: *mut c_void, out: *mut c_uint) -> c_int {
    ret(decode(h).and_then(|(handle, _)| put(out, c_uint::from(matches!(handle, Handle::Mig(..))))))
}
