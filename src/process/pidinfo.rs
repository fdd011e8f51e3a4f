//! Identity of a process across time: pid + start time (field 22 of `/proc/PID/stat`).
//! A pid alone can be recycled; the pair cannot (within one boot).

/// The process' state letter and start time (in clock ticks since boot).
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces and parentheses: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); starttime is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// True while `pid` is the same process we recorded and has not exited (zombies count as exited).
pub fn is_alive(pid: i32, recorded_start: u64) -> bool {
    pid > 0
        && matches!(stat(pid), Some((state, start)) if start == recorded_start && state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let me = std::process::id() as i32;
        let start = start_time(me).unwrap();
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1));
        assert!(!is_alive(0, start));
        assert!(start_time(i32::MAX).is_none());
    }
}
