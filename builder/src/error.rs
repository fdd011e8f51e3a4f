//! Typed errors: each names the Dockerfile line, path or image that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Dockerfile {file}: parse error: {msg}")]
    Parse { file: PathBuf, msg: String },
    #[error("Dockerfile line {line}: {msg}")]
    Line { line: usize, msg: String },
    #[error("Dockerfile line {line}: RUN failed with exit code {code}: {cmd}")]
    RunFailed { line: usize, code: i32, cmd: String },
    #[error("image {image}: {msg}")]
    Image { image: String, msg: String },
    #[error("{0}")]
    Usage(String),
    /// SIGINT/SIGTERM arrived; `line`: the Dockerfile line of the step it interrupted.
    #[error("cancelled by {}{}", crate::cancel::name(*signal), line.map(|l| format!(" at Dockerfile line {l}")).unwrap_or_default())]
    Cancelled { signal: i32, line: Option<usize> },
    /// An overlay mount failed: the builder extracts layers instead.
    #[error("mounting overlay at {target}: {msg}")]
    Overlay { target: PathBuf, msg: String },
    /// `prune` arguments and failures.
    #[error("prune {path}: {msg}")]
    Prune { path: PathBuf, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// `map_err` helper: attach the path to an io::Error.
pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// An error located at a Dockerfile line.
pub fn at(line: usize, msg: impl Into<String>) -> Error {
    Error::Line {
        line,
        msg: msg.into(),
    }
}

impl Error {
    /// Put a line number on an error that has none (a failed COPY names its path
    /// first; the user needs the line too).
    pub fn at_line(self, line: usize) -> Error {
        match self {
            Error::Line { .. } | Error::RunFailed { .. } | Error::Parse { .. } => self,
            Error::Cancelled { signal, line: None } => Error::Cancelled {
                signal,
                line: Some(line),
            },
            Error::Cancelled { .. } => self,
            other => at(line, other.to_string()),
        }
    }

    /// Exit status for the CLI: a failed RUN exits with the step's own code, a cancelled build
    /// with 128 + the signal.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::RunFailed { code, .. } if *code > 0 && *code < 256 => *code,
            Error::Usage(_) => 2,
            // The shell's convention for a process ended by a signal: 130 (INT), 143 (TERM).
            Error::Cancelled { signal, .. } => 128 + signal,
            _ => 1,
        }
    }
}
