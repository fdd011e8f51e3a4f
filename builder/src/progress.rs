//! Step output (`--progress plain|tty|auto`, `-q`). The choice describes the terminal, so it is
//! process-wide, set once by `Builder::new`; RUN steps ask it whether to stream their output
//! (plain) or capture it in a file (tty: a status line redrawn in place; quiet: nothing), which
//! is printed to stderr only when the step fails.

use crate::error::{io, Result};
use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Plain,
    Tty,
    Quiet,
}

struct Settings {
    mode: Mode,
    /// The store's tmp dir: capture files there are removed by `prune` if a build is killed.
    tmp: PathBuf,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The tty status line: the running step's label and whether the line lacks its newline.
struct Line {
    label: String,
    open: bool,
}

static LINE: Mutex<Line> = Mutex::new(Line {
    label: String::new(),
    open: false,
});

/// Redraws of the status line at most this often.
const REDRAW: Duration = Duration::from_millis(100);

/// `progress` is checked by the caller (plain, tty or auto). The first call wins.
pub fn init(progress: &str, quiet: bool, tmp: PathBuf) {
    let mode = match progress {
        _ if quiet => Mode::Quiet,
        "tty" => Mode::Tty,
        "auto" if std::io::stdout().is_terminal() => Mode::Tty,
        _ => Mode::Plain,
    };
    let _ = SETTINGS.set(Settings { mode, tmp });
}

pub fn mode() -> Mode {
    SETTINGS.get().map_or(Mode::Plain, |s| s.mode)
}

fn line_state() -> std::sync::MutexGuard<'static, Line> {
    LINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `[3/7] RUN pip install …`: the first line of the step, at most 100 characters.
fn label(no: usize, total: usize, text: &str, cached: bool) -> String {
    let first = text.lines().next().unwrap_or("");
    let short: String = first.chars().take(100).collect();
    let more = if short.len() < text.len() { " …" } else { "" };
    let tag = if cached { "CACHED " } else { "" };
    format!("[{no}/{total}] {tag}{short}{more}")
}

/// A step line that stays (FROM, config instructions, CACHED).
pub fn line(no: usize, total: usize, text: &str, cached: bool) {
    if mode() != Mode::Quiet {
        print_line(&label(no, total, text, cached));
    }
}

/// Any line for stdout: ends an open status line first.
pub fn print_line(text: &str) {
    end_line();
    println!("{text}");
}

/// A RUN/COPY step starts executing: plain prints its line, tty opens the status line.
pub fn start(no: usize, total: usize, text: &str) {
    let l = label(no, total, text, false);
    match mode() {
        Mode::Quiet => {}
        Mode::Plain => print_line(&l),
        Mode::Tty => {
            end_line();
            let mut st = line_state();
            draw(&fit(&l, width()));
            st.label = l;
            st.open = true;
        }
    }
}

/// The step executed by `start` is done: tty replaces the status line with the final one.
pub fn done(no: usize, total: usize, took: Duration) {
    let secs = took.as_secs_f64();
    match mode() {
        Mode::Quiet => {}
        Mode::Plain => print_line(&format!("[{no}/{total}] done in {secs:.3}s")),
        Mode::Tty => {
            let mut st = line_state();
            let suffix = format!(" done in {secs:.1}s");
            let label = if st.label.is_empty() {
                format!("[{no}/{total}]")
            } else {
                std::mem::take(&mut st.label)
            };
            let w = width().saturating_sub(suffix.chars().count());
            draw(&format!("{}{suffix}\n", fit(&label, w)));
            st.open = false;
        }
    }
}

/// Put the newline an open status line lacks (before an error message, or any other line).
pub fn end_line() {
    let mut st = line_state();
    if st.open {
        st.open = false;
        draw("\n");
    }
}

/// `\r\x1b[K` + text on stdout, flushed (stdout is line-buffered).
fn draw(text: &str) {
    let mut out = std::io::stdout().lock();
    let text = if text == "\n" {
        "\n".to_string()
    } else {
        format!("\r\x1b[K{text}")
    };
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The terminal's width: `COLUMNS`, else 80; the last column is left free so that a full
/// line does not wrap (which would break the in-place redraw).
fn width() -> usize {
    let cols = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .unwrap_or(80);
    cols.max(20) - 1
}

/// `s` cut to `max` characters, the cut marked with `…`.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Output of one RUN step in a file of the store's tmp dir (a file, not a pipe: the wait loop
/// only polls, and a pipe nobody reads would fill up and stall the step). Removed on drop.
pub struct Capture {
    path: PathBuf,
    file: File,
    started: Instant,
    last_draw: Instant,
}

impl Capture {
    /// None in plain mode (the output is streamed as it comes).
    pub fn new() -> Result<Option<Capture>> {
        let Some(s) = SETTINGS.get().filter(|s| s.mode != Mode::Plain) else {
            return Ok(None);
        };
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        std::fs::create_dir_all(&s.tmp).map_err(io(&s.tmp))?;
        // <tag>-<pid>-<n>, as Store::tmp names its files (prune removes a killed build's)
        let path = s.tmp.join(format!("runlog-{}-{n}", std::process::id()));
        let file = File::options()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io(&path))?;
        let now = Instant::now();
        Ok(Some(Capture {
            path,
            file,
            started: now,
            last_draw: now,
        }))
    }

    /// stdout and stderr of the runtime: both into the file, in the order written.
    pub fn stdio(&self) -> Result<(Stdio, Stdio)> {
        let dup = || self.file.try_clone().map_err(io(&self.path));
        Ok((Stdio::from(dup()?), Stdio::from(dup()?)))
    }

    /// Called by the wait loop: redraw the status line (tty), at most every `REDRAW`.
    pub fn tick(&mut self) {
        if mode() != Mode::Tty || self.last_draw.elapsed() < REDRAW {
            return;
        }
        self.last_draw = Instant::now();
        let st = line_state();
        if !st.open {
            return;
        }
        let w = width();
        let head = format!(
            "{} {:.1}s",
            fit(&st.label, w / 2),
            self.started.elapsed().as_secs_f64()
        );
        let last = last_line(&self.path);
        let text = if last.is_empty() {
            head
        } else {
            format!("{head}  {last}")
        };
        draw(&fit(&text, w));
    }

    /// The step ended. `failed`: end the status line and print the whole output to stderr
    /// (so a CI log shows why); on success the line goes back to the label alone, for `done`.
    /// A cancelled step only ends the line (the error message follows).
    pub fn finish(mut self, failed: bool, cancelled: bool) {
        if !failed && !cancelled {
            let st = line_state();
            if st.open {
                draw(&fit(&st.label, width()));
            }
            return;
        }
        end_line();
        if failed && !cancelled {
            let mut text = Vec::new();
            let _ = self.file.seek(SeekFrom::Start(0));
            let _ = self.file.read_to_end(&mut text);
            if !text.is_empty() && !text.ends_with(b"\n") {
                text.push(b'\n');
            }
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&text);
            let _ = err.flush();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The last non-empty line written so far (after its last `\r`: progress bars redraw with
/// it), without escape sequences or control characters.
fn last_line(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = f.take(4096).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let line = text
        .split('\n')
        .map(|l| l.rsplit('\r').find(|s| !s.trim().is_empty()).unwrap_or(""))
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("");
    printable(line).trim().to_string()
}

/// `s` without ANSI escape sequences (`ESC [ … letter`) and other control characters.
fn printable(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        break;
                    }
                }
            }
        } else if c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_of_output() {
        assert_eq!(printable("\x1b[31mred\x1b[0m\tx\x07"), "red x");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        let d = std::env::temp_dir().join(format!("progress-test-{}", std::process::id()));
        std::fs::write(&d, "one\ntwo 10%\rtwo 50%\r\n\n").unwrap();
        assert_eq!(last_line(&d), "two 50%");
        std::fs::write(&d, "").unwrap();
        assert_eq!(last_line(&d), "");
        let _ = std::fs::remove_file(&d);
        assert_eq!(label(3, 7, "RUN a\nb", false), "[3/7] RUN a …");
    }
}
