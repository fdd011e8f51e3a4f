//! `.dockerignore` (or `<Dockerfile>.dockerignore`) with Docker's semantics: one pattern a
//! line, `#` comments, `**` for any number of directories, `!` exceptions, the last matching
//! line wins, and a pattern that matches a directory excludes everything below it.

use crate::error::{io, Error, Result};
use globset::{GlobBuilder, GlobMatcher};
use std::path::Path;

pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    /// BuildKit's choice: `<Dockerfile>.dockerignore` next to the Dockerfile when there is
    /// one (per-Dockerfile rules), else the context's `.dockerignore`.
    pub fn load(context: &Path, dockerfile: &Path) -> Result<Ignore> {
        let mut specific = dockerfile.as_os_str().to_owned();
        specific.push(".dockerignore");
        let specific = std::path::PathBuf::from(specific);
        let p = if specific.is_file() {
            specific
        } else {
            context.join(".dockerignore")
        };
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                Ignore::parse(&text).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ignore { rules: Vec::new() }),
            Err(e) => Err(io(p)(e)),
        }
    }

    pub fn parse(text: &str) -> std::result::Result<Ignore, String> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (neg, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let pat = clean_pattern(pat);
            if pat.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&pat)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("bad pattern {line:?}: {e}"))?;
            rules.push((glob.compile_matcher(), neg));
        }
        Ok(Ignore { rules })
    }

    /// Is `rel` (a path relative to the context, `/`-separated) excluded?
    pub fn excluded(&self, rel: &str) -> bool {
        let mut out = false;
        for (glob, neg) in &self.rules {
            let hit = ancestors(rel).any(|a| glob.is_match(a));
            if hit {
                out = !neg;
            }
        }
        out
    }
}

/// `rel` and each of its parent dirs: `a/b/c`, `a/b`, `a`.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    let mut cur = Some(rel);
    std::iter::from_fn(move || {
        let r = cur?;
        cur = r.rfind('/').map(|i| &r[..i]);
        Some(r)
    })
}

/// Docker cleans patterns like paths: no leading `/` or `./`, no trailing `/`, `..` resolved.
fn clean_pattern(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_semantics() {
        let ig = Ignore::parse(
            "# comment\n*.pyc\n/data/\n!data/keep.txt\n**/__pycache__\nsecret*\n!secret.pub\nlogs\n!logs/ok/**\n",
        )
        .unwrap();
        assert!(ig.excluded("a.pyc"));
        assert!(!ig.excluded("src/a.pyc"), "* does not cross /");
        assert!(ig.excluded("data/x.bin"));
        assert!(!ig.excluded("data/keep.txt"));
        assert!(ig.excluded("src/pkg/__pycache__/m.cpython.pyc"));
        assert!(ig.excluded("__pycache__"));
        assert!(ig.excluded("secret.key"));
        assert!(!ig.excluded("secret.pub"));
        assert!(ig.excluded("logs/a.log"));
        assert!(!ig.excluded("logs/ok/b.log"), "last match wins");
        assert!(!ig.excluded("app.py"));
    }

    #[test]
    fn bad_pattern() {
        assert!(Ignore::parse("[x\n").is_err());
    }
}
