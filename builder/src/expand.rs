//! Docker's word processing for instructions that expand variables (FROM, COPY, ENV, ARG, LABEL,
//! WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL): quotes, the escape character, `$v`, `${v}`,
//! `${v:-w}`, `${v:+w}` (and `-`/`+` without the colon). RUN/CMD/ENTRYPOINT are left to the shell.

use std::collections::BTreeMap;

pub type Vars = BTreeMap<String, String>;

/// Expand `s` into one word (quotes removed; whitespace kept).
pub fn word(s: &str, vars: &Vars, escape: char) -> Result<String, String> {
    Ok(lex(s, vars, escape, false)?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// Expand `s` and split it on unquoted whitespace.
pub fn words(s: &str, vars: &Vars, escape: char) -> Result<Vec<String>, String> {
    lex(s, vars, escape, true)
}

/// `KEY=VALUE` pairs (ENV, LABEL, ARG); legacy `ENV KEY value words` when `legacy` and the first
/// word has no `=`.
pub fn pairs(
    s: &str,
    vars: &Vars,
    escape: char,
    legacy: bool,
) -> Result<Vec<(String, String)>, String> {
    let ws = words(s, vars, escape)?;
    if legacy && !ws.is_empty() && !ws[0].contains('=') {
        let key = ws[0].clone();
        let t = s.trim_start();
        let rest = t.find(char::is_whitespace).map_or("", |p| t[p..].trim());
        if rest.is_empty() {
            return Err(format!("{key} needs a value"));
        }
        return Ok(vec![(key, word(rest, vars, escape)?)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("expected KEY=VALUE, got {w:?}")),
        })
        .collect()
}

/// Heredoc bodies: only `$v`/`${v…}` expand (`\$` stays literal); quotes are kept as text.
pub fn vars_only(s: &str, vars: &Vars) -> Result<String, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else if chars[i] == '$' {
            i = dollar(&chars, i, vars, '\\', &mut out)?;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn lex(s: &str, vars: &Vars, escape: char, split: bool) -> Result<Vec<String>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false; // a quoted "" still makes a word
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                cur.push(n);
                has = true;
                i += 2;
                continue;
            }
            cur.push(c);
            i += 1;
        } else if c == '\'' {
            let end = find(&chars, i + 1, '\'').ok_or("unterminated single quote")?;
            cur.extend(&chars[i + 1..end]);
            has = true;
            i = end + 1;
        } else if c == '"' {
            i += 1;
            has = true;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err("unterminated double quote".into());
                };
                if d == '"' {
                    i += 1;
                    break;
                }
                if d == escape && matches!(chars.get(i + 1), Some('"' | '$' | '\\')) {
                    cur.push(chars[i + 1]);
                    i += 2;
                } else if d == '$' {
                    i = dollar(&chars, i, vars, escape, &mut cur)?;
                } else {
                    cur.push(d);
                    i += 1;
                }
            }
        } else if c == '$' {
            let before = cur.len();
            i = dollar(&chars, i, vars, escape, &mut cur)?;
            has |= cur.len() > before;
        } else if split && c.is_whitespace() {
            if has || !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            has = false;
            i += 1;
        } else {
            cur.push(c);
            has = true;
            i += 1;
        }
    }
    if has || !cur.is_empty() || !split {
        out.push(cur);
    }
    Ok(out)
}

fn find(chars: &[char], from: usize, c: char) -> Option<usize> {
    (from..chars.len()).find(|&j| chars[j] == c)
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expand the `$...` at `chars[i]` into `out`; returns the index after it.
fn dollar(
    chars: &[char],
    i: usize,
    vars: &Vars,
    escape: char,
    out: &mut String,
) -> Result<usize, String> {
    let mut j = i + 1;
    if chars.get(j) == Some(&'{') {
        let close = matching_brace(chars, j).ok_or("missing '}' in ${...}")?;
        let inner: String = chars[j + 1..close].iter().collect();
        let name_len = inner.chars().take_while(|&c| is_name(c)).count();
        if name_len == 0 {
            return Err(format!("bad substitution ${{{inner}}}"));
        }
        let (name, op) = inner.split_at(name_len);
        let val = vars.get(name);
        let set_nonempty = val.is_some_and(|v| !v.is_empty());
        let alt = |w: &str| word(w, vars, escape);
        let text = match op {
            "" => val.cloned().unwrap_or_default(),
            _ if op.starts_with(":-") => {
                if set_nonempty {
                    val.cloned().unwrap_or_default()
                } else {
                    alt(&op[2..])?
                }
            }
            _ if op.starts_with(":+") => {
                if set_nonempty {
                    alt(&op[2..])?
                } else {
                    String::new()
                }
            }
            _ if op.starts_with('-') => match val {
                Some(v) => v.clone(),
                None => alt(&op[1..])?,
            },
            _ if op.starts_with('+') => {
                if val.is_some() {
                    alt(&op[1..])?
                } else {
                    String::new()
                }
            }
            _ => return Err(format!("unsupported modifier in ${{{inner}}}")),
        };
        out.push_str(&text);
        return Ok(close + 1);
    }
    while j < chars.len() && is_name(chars[j]) {
        j += 1;
    }
    if j == i + 1 {
        out.push('$');
        return Ok(j);
    }
    let name: String = chars[i + 1..j].iter().collect();
    out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
    Ok(j)
}

fn matching_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (k, &c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "1"), ("E", ""), ("P", "/opt/app")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms() {
        let v = vars();
        assert_eq!(word("$A-${A}", &v, '\\').unwrap(), "1-1");
        assert_eq!(word("${E:-def}/${X:-x y}", &v, '\\').unwrap(), "def/x y");
        assert_eq!(
            word("${A:+set}${E:+no}${X+no}${E+yes}", &v, '\\').unwrap(),
            "setyes"
        );
        assert_eq!(word("${E-keep}", &v, '\\').unwrap(), "");
        assert_eq!(word("${P}/bin", &v, '\\').unwrap(), "/opt/app/bin");
        assert_eq!(word("'$A' \"$A\" \\$A $", &v, '\\').unwrap(), "$A 1 $A $");
        assert_eq!(word("`$A", &v, '`').unwrap(), "$A");
        assert!(word("${A", &v, '\\').is_err());
        assert!(word("\"x", &v, '\\').is_err());
        assert_eq!(
            vars_only("it's \"$A\" \\$A ${E:-d}\n", &v).unwrap(),
            "it's \"1\" $A d\n"
        );
    }

    #[test]
    fn splitting_and_pairs() {
        let v = vars();
        assert_eq!(
            words(" a  \"b c\" '' $E ", &v, '\\').unwrap(),
            ["a", "b c", ""]
        );
        assert_eq!(
            pairs("X=$A Y=\"two words\" Z=", &v, '\\', true).unwrap(),
            [
                ("X".into(), "1".into()),
                ("Y".into(), "two words".into()),
                ("Z".into(), String::new())
            ]
        );
        assert_eq!(
            pairs("K some value", &v, '\\', true).unwrap(),
            [("K".into(), "some value".into())]
        );
        assert!(pairs("K", &v, '\\', true).is_err());
        assert!(pairs("=v", &v, '\\', false).is_err());
    }
}
