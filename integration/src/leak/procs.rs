//! Processes marked with the test's `GPURUN_IT=<marker>`.

use std::path::PathBuf;

/// Every pid in /proc.
pub(crate) fn pids() -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// Pids whose environment holds `GPURUN_IT=<marker>` exactly.
///
/// The runtime itself runs with the marker (so does everything it starts without clearing the
/// environment: its init before exec, helpers such as gpurun-nvml, runc's `runc init`), and
/// tests put it in the container's `process.env`.
pub fn marked_pids(marker: &str) -> Vec<i32> {
    let needle = format!("GPURUN_IT={marker}");
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// True when `pid` carries a `GPURUN_IT` marker other than `marker` (another test's).
pub(crate) fn marked_other(pid: i32, marker: &str) -> bool {
    let ours = format!("GPURUN_IT={marker}");
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        env.split(|b| *b == 0)
            .any(|kv| kv.starts_with(b"GPURUN_IT=") && kv != ours.as_bytes())
    })
}

/// `comm` of a process ("?" once it is gone).
pub(crate) fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Command line of a process, NULs as spaces.
pub(crate) fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// `exe` of a process.
pub(crate) fn exe(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// `[1234 (sleep: sleep 3600), …]` for a leak report.
pub(crate) fn describe(pids: &[i32]) -> String {
    let items: Vec<String> = pids
        .iter()
        .map(|p| format!("{p} ({}: {})", comm(*p), cmdline(*p)))
        .collect();
    format!("[{}]", items.join(", "))
}
