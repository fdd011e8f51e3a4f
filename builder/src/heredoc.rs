//! RUN heredocs. parse-dockerfile (0.1.9) reads a RUN heredoc only when one `<<EOF` starts the
//! command; BuildKit allows any number anywhere on the line (`RUN <<A cat >a && python3 <<B`).
//! So before parsing, every RUN's heredoc bodies are taken out (BuildKit's rules: markers on
//! the instruction's line, bodies in order after it) and blanked, and each `<<` becomes `«`
//! (same byte length, so every offset the parser reports still points into the original
//! text). COPY/ADD heredocs are left to the parser; their bodies are only skipped here.

use std::collections::HashMap;

/// Stand-in for `<<` in a masked RUN line (two bytes in UTF-8, as `<<` is).
pub const MARK: &str = "\u{ab}";

#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    pub name: String,
    /// Lines as written (leading tabs kept; see `strip_tabs`), each ending in `\n`.
    pub body: String,
    /// `<<-NAME`: leading tabs are removed from the body's lines.
    pub strip_tabs: bool,
}

impl Heredoc {
    /// The body the command sees (`<<-`: without leading tabs).
    pub fn content(&self) -> String {
        if !self.strip_tabs {
            return self.body.clone();
        }
        self.body
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

#[derive(Debug)]
pub struct Masked {
    pub text: String,
    /// Byte offset of each RUN keyword that had heredocs → its heredocs, in order.
    pub runs: HashMap<usize, Vec<Heredoc>>,
}

struct Marker {
    at: usize,
    name: String,
    strip_tabs: bool,
}

/// The `escape` parser directive, read as the parser will (leading `# key=value` lines).
fn escape_char(text: &str) -> char {
    for line in text.lines() {
        let Some(d) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = d.split_once('=') else {
            break;
        };
        if k.trim().eq_ignore_ascii_case("escape") {
            return v.trim().chars().next().unwrap_or('\\');
        }
    }
    '\\'
}

/// Heredoc markers in `text[from..to]`. As BuildKit decides: the line is split into shell
/// words (quotes and the escape character respected) and a heredoc is a whole word
/// `[N]<<[-]NAME` whose NAME has no `<`: so `$((1<<4))`, `cat<<X` and `<<<here` are not.
fn markers(text: &str, from: usize, to: usize, escape: char) -> Vec<Marker> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = from;
    while i < to {
        while i < to && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        let mut quote: Option<u8> = None;
        while i < to {
            let c = b[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c as char == escape => i += 1,
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None if c.is_ascii_whitespace() => break,
                None => {}
            }
            i += 1;
        }
        if let Some(m) = heredoc_word(&text[start..i.min(to)], start) {
            out.push(m);
        }
    }
    out
}

/// A word `[N]<<[-]NAME` (NAME possibly quoted) at offset `at` → its marker.
fn heredoc_word(word: &str, at: usize) -> Option<Marker> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.contains('<') {
        return None;
    }
    let name: String = rest.chars().filter(|&c| c != '"' && c != '\'').collect();
    (!name.is_empty()).then_some(Marker {
        at: at + digits,
        name,
        strip_tabs,
    })
}

/// Take RUN heredoc bodies out of `text` (see the module doc).
pub fn mask(text: &str) -> Result<Masked, String> {
    let escape = escape_char(text);
    let mut out = text.as_bytes().to_vec();
    let mut runs = HashMap::new();
    // (start offset, line without its newline)
    let mut lines = Vec::new();
    let mut off = 0;
    for l in text.split_inclusive('\n') {
        lines.push((off, l.trim_end_matches(['\n', '\r'])));
        off += l.len();
    }
    let lineno = |i: usize| i + 1;
    let mut i = 0;
    while i < lines.len() {
        let (start, line) = lines[i];
        let t = line.trim_start();
        let kw_at = start + (line.len() - t.len());
        let keyword = t
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if t.is_empty() || t.starts_with('#') {
            i += 1;
            continue;
        }
        // the instruction's logical line: continuation lines (comment and empty lines inside
        // it are skipped, as the parser does) up to one not ending in escape
        let mut j = i;
        while lines[j].1.trim_end().ends_with(escape) && j + 1 < lines.len() {
            j += 1;
            while j + 1 < lines.len() && {
                let l = lines[j].1.trim();
                l.is_empty() || l.starts_with('#')
            } {
                j += 1;
            }
        }
        if !matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            i = j + 1;
            continue;
        }
        let end = lines[j].0 + lines[j].1.len();
        let found = markers(text, kw_at + keyword.len(), end, escape);
        let mut next = j + 1;
        let mut docs = Vec::new();
        for m in &found {
            let mut body = String::new();
            loop {
                let Some(&(s, l)) = lines.get(next) else {
                    return Err(format!(
                        "line {}: heredoc {:?} has no terminating line",
                        lineno(i),
                        m.name
                    ));
                };
                let term = if m.strip_tabs {
                    l.trim_start_matches('\t')
                } else {
                    l
                };
                if keyword == "RUN" {
                    out[s..s + l.len()].fill(b' ');
                }
                next += 1;
                if term == m.name {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            docs.push(Heredoc {
                name: m.name.clone(),
                body,
                strip_tabs: m.strip_tabs,
            });
        }
        if keyword == "RUN" && !docs.is_empty() {
            if text[kw_at..end].contains(MARK) {
                return Err(format!(
                    "line {}: RUN with heredocs cannot also contain {MARK:?}",
                    lineno(i)
                ));
            }
            for m in &found {
                out[m.at..m.at + 2].copy_from_slice(MARK.as_bytes());
            }
            runs.insert(kw_at, docs);
        }
        i = next;
    }
    let text = String::from_utf8(out).map_err(|e| format!("masking heredocs: {e}"))?;
    Ok(Masked { text, runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_anywhere_and_copy_bodies_skipped() {
        let df = "FROM scratch\n\
                  RUN <<A cat > /a && \\\n  python3 <<-\"B\"\n\
                  a1\n\
                  A\n\
                  \tb1 $X\n\
                  \tB\n\
                  COPY <<C /c\n\
                  RUN not-an-instruction <<D\n\
                  C\n\
                  RUN echo '<<no' \"<<nope\" x<<<here $((1<<4)) cat<<X\n\
                  RUN sh <<E\n\
                  e\n\
                  E\n";
        let m = mask(df).unwrap();
        assert_eq!(m.text.len(), df.len());
        assert_eq!(
            m.text.lines().filter(|l| l.trim().is_empty()).count(),
            6,
            "bodies and terminators blanked:\n{}",
            m.text
        );
        let first = df.find("RUN").unwrap();
        let docs = &m.runs[&first];
        assert_eq!(docs.len(), 2);
        assert_eq!(
            (docs[0].name.as_str(), docs[0].body.as_str()),
            ("A", "a1\n")
        );
        assert_eq!(docs[1].name, "B");
        assert!(docs[1].strip_tabs);
        assert_eq!(docs[1].content(), "b1 $X\n");
        assert!(m.text.contains(&format!("RUN {MARK}A cat > /a")));
        assert!(m.text.contains(&format!("python3 {MARK}-\"B\"")));
        assert!(
            m.text
                .contains("COPY <<C /c\nRUN not-an-instruction <<D\nC\n"),
            "COPY heredocs are left to the parser"
        );
        assert_eq!(
            m.runs.len(),
            2,
            "quoted <<, <<<, $((1<<4)), cat<<X are not heredocs"
        );
        let last = df.rfind("RUN sh").unwrap();
        assert_eq!(m.runs[&last][0].body, "e\n");
        // the masked text parses, line numbers unchanged
        let parsed = crate::dockerfile::parse(df).unwrap();
        let lines: Vec<usize> = parsed.stages[0].steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 8, 11, 12]);
    }

    #[test]
    fn unterminated_and_escape_directive() {
        assert!(mask("FROM scratch\nRUN <<EOF\necho\n")
            .unwrap_err()
            .contains("line 2: heredoc \"EOF\""));
        let m = mask("# escape=`\nFROM scratch\nRUN cat <<X `\n  > /x\nbody\nX\n").unwrap();
        let env = mask("FROM scratch\nENV A=1 \\\n# c\nRUN <<X\n").unwrap();
        assert!(
            env.runs.is_empty(),
            "a continuation line is not an instruction"
        );
        assert_eq!(m.runs.values().next().unwrap()[0].body, "body\n");
    }
}
