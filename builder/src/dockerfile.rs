//! Dockerfile → stages of instructions, parsed by the `parse-dockerfile` crate (continuations,
//! comments, the `escape` directive, heredocs) and reduced to what the builder executes.
//! Values stay unexpanded here: expansion needs the ARG/ENV state at each step (build.rs).

use crate::error::{Error, Result};
use crate::heredoc::{self, Heredoc};
use parse_dockerfile::{self as pd, Command, Instruction, JsonOrStringArray, Source};
use std::path::Path;

/// Shell form (run by SHELL, default `/bin/sh -c`) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq)]
pub enum CmdForm {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum Src {
    Path(String),
    /// `COPY <<NAME /dst`: the file's name, body, and whether `$v` expands in it.
    Inline {
        name: String,
        body: String,
        expand: bool,
    },
}

#[derive(Debug, Clone)]
pub enum Kind {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    Arg(String),
    Env(String),
    Label(String),
    Run {
        flags: Vec<(String, String)>,
        cmd: CmdForm,
        heredocs: Vec<Heredoc>,
    },
    Copy {
        add: bool,
        flags: Vec<(String, String)>,
        srcs: Vec<Src>,
        dest: String,
    },
    Cmd(CmdForm),
    Entrypoint(CmdForm),
    Shell(Vec<String>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    Stopsignal(String),
    Maintainer(String),
    /// HEALTHCHECK / ONBUILD: no OCI config field; kept as annotations.
    Annotation(&'static str),
}

#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based line of the instruction keyword.
    pub line: usize,
    /// The instruction's source text (continuations joined, comments dropped).
    pub text: String,
    pub kind: Kind,
}

#[derive(Debug)]
pub struct Stage {
    pub from: Step,
    pub steps: Vec<Step>,
}

#[derive(Debug)]
pub struct Dockerfile {
    pub escape: char,
    pub global_args: Vec<Step>,
    pub stages: Vec<Stage>,
}

pub fn parse_file(path: &Path) -> Result<Dockerfile> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
    parse(&text).map_err(|msg| Error::Parse {
        file: path.to_path_buf(),
        msg,
    })
}

pub fn parse(text: &str) -> std::result::Result<Dockerfile, String> {
    let mut masked = heredoc::mask(text)?;
    let df = pd::parse(&masked.text).map_err(|e| format!("line {}: {e}", e.line()))?;
    let escape = df
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |d| d.value.value);
    let starts: Vec<usize> = df.instructions.iter().map(start_of).collect();
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (i, ins) in df.instructions.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let step = Step {
            line: line_of(text, starts[i]),
            text: source_text(&text[starts[i]..end]),
            kind: convert(ins, text, starts[i], &mut masked.runs)?,
        };
        match (&step.kind, stages.last_mut()) {
            (Kind::From { .. }, _) => stages.push(Stage {
                from: step,
                steps: Vec::new(),
            }),
            (_, Some(stage)) => stage.steps.push(step),
            (Kind::Arg(_), None) => global_args.push(step),
            (_, None) => {
                return Err(format!(
                    "line {}: instruction before the first FROM",
                    step.line
                ))
            }
        }
    }
    if stages.is_empty() {
        return Err("no FROM instruction".into());
    }
    Ok(Dockerfile {
        escape,
        global_args,
        stages,
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].bytes().filter(|&b| b == b'\n').count() + 1
}

fn source_text(raw: &str) -> String {
    raw.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

fn start_of(ins: &Instruction<'_>) -> usize {
    match ins {
        Instruction::Add(i) => i.add.span.start,
        Instruction::Arg(i) => i.arg.span.start,
        Instruction::Cmd(i) => i.cmd.span.start,
        Instruction::Copy(i) => i.copy.span.start,
        Instruction::Entrypoint(i) => i.entrypoint.span.start,
        Instruction::Env(i) => i.env.span.start,
        Instruction::Expose(i) => i.expose.span.start,
        Instruction::From(i) => i.from.span.start,
        Instruction::Healthcheck(i) => i.healthcheck.span.start,
        Instruction::Label(i) => i.label.span.start,
        Instruction::Maintainer(i) => i.maintainer.span.start,
        Instruction::Onbuild(i) => i.onbuild.span.start,
        Instruction::Run(i) => i.run.span.start,
        Instruction::Shell(i) => i.shell.span.start,
        Instruction::Stopsignal(i) => i.stopsignal.span.start,
        Instruction::User(i) => i.user.span.start,
        Instruction::Volume(i) => i.volume.span.start,
        Instruction::Workdir(i) => i.workdir.span.start,
        _ => 0,
    }
}

fn cmd(c: &Command<'_>) -> CmdForm {
    match c {
        Command::Exec(v) => CmdForm::Exec(v.value.iter().map(|s| s.value.to_string()).collect()),
        Command::Shell(s) => CmdForm::Shell(s.value.to_string()),
        _ => CmdForm::Shell(String::new()),
    }
}

fn flags(f: &[pd::Flag<'_>]) -> Vec<(String, String)> {
    f.iter()
        .map(|f| {
            (
                f.name.value.to_string(),
                f.value
                    .as_ref()
                    .map(|v| v.value.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Heredoc names in an instruction's first line, in order (`<<EOF`, `<<-"EOF"`).
fn heredoc_names(first_line: &str) -> Vec<String> {
    first_line
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("<<"))
        .map(|w| {
            w.trim_start_matches('-')
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string()
        })
        .collect()
}

fn convert(
    ins: &Instruction<'_>,
    text: &str,
    start: usize,
    run_heredocs: &mut std::collections::HashMap<usize, Vec<Heredoc>>,
) -> std::result::Result<Kind, String> {
    let first_line = text[start..].lines().next().unwrap_or("");
    Ok(match ins {
        Instruction::From(i) => Kind::From {
            image: i.image.value.to_string(),
            alias: i.as_.as_ref().map(|(_, a)| a.value.to_string()),
            platform: flags(&i.options)
                .into_iter()
                .find(|(k, _)| k == "platform")
                .map(|(_, v)| v),
        },
        Instruction::Arg(i) => Kind::Arg(i.arguments.value.to_string()),
        Instruction::Env(i) => Kind::Env(i.arguments.value.to_string()),
        Instruction::Label(i) => Kind::Label(i.arguments.value.to_string()),
        Instruction::Run(i) => {
            let heredocs = run_heredocs.remove(&start).unwrap_or_default();
            let cmd = match cmd(&i.arguments) {
                CmdForm::Shell(c) if !heredocs.is_empty() => {
                    CmdForm::Shell(c.replace(heredoc::MARK, "<<"))
                }
                c => c,
            };
            Kind::Run {
                flags: flags(&i.options),
                cmd,
                heredocs,
            }
        }
        Instruction::Copy(i) => copy(false, &i.options, &i.src, &i.dest.value, first_line),
        Instruction::Add(i) => copy(true, &i.options, &i.src, &i.dest.value, first_line),
        Instruction::Cmd(i) => Kind::Cmd(cmd(&i.arguments)),
        Instruction::Entrypoint(i) => Kind::Entrypoint(cmd(&i.arguments)),
        Instruction::Shell(i) => {
            Kind::Shell(i.arguments.iter().map(|s| s.value.to_string()).collect())
        }
        Instruction::Workdir(i) => Kind::Workdir(i.arguments.value.to_string()),
        Instruction::User(i) => Kind::User(i.arguments.value.to_string()),
        Instruction::Expose(i) => {
            Kind::Expose(i.arguments.iter().map(|s| s.value.to_string()).collect())
        }
        Instruction::Volume(i) => Kind::Volume(match &i.arguments {
            JsonOrStringArray::Json(v) => v.value.iter().map(|s| s.value.to_string()).collect(),
            JsonOrStringArray::String(v) => v.iter().map(|s| s.value.to_string()).collect(),
        }),
        Instruction::Stopsignal(i) => Kind::Stopsignal(i.arguments.value.to_string()),
        Instruction::Maintainer(i) => Kind::Maintainer(i.name.value.to_string()),
        Instruction::Healthcheck(_) => Kind::Annotation("healthcheck"),
        Instruction::Onbuild(_) => Kind::Annotation("onbuild"),
        _ => {
            return Err(format!(
                "line {}: unsupported instruction",
                line_of(text, start)
            ))
        }
    })
}

fn copy(
    add: bool,
    opts: &[pd::Flag<'_>],
    src: &[Source<'_>],
    dest: &str,
    first_line: &str,
) -> Kind {
    let mut names = heredoc_names(first_line).into_iter();
    let srcs = src
        .iter()
        .map(|s| match s {
            Source::Path(p) => Src::Path(p.value.to_string()),
            Source::HereDoc(h) => Src::Inline {
                name: names.next().unwrap_or_else(|| "heredoc".into()),
                body: h.value.to_string(),
                expand: h.expand,
            },
            _ => Src::Path(String::new()),
        })
        .collect();
    Kind::Copy {
        add,
        flags: flags(opts),
        srcs,
        dest: dest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DF: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=oci:/img
FROM ${BASE} AS build
# a comment
RUN echo a \
    && echo b
RUN <<EOF
echo heredoc
EOF
COPY --chown=1:1 <<-"CONF" /etc/app.conf
	k=v
CONF
HEALTHCHECK CMD true
FROM scratch
COPY --from=build /x /y
CMD ["run", "x"]
"#;

    #[test]
    fn stages_lines_heredocs() {
        let df = parse(DF).unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        let s0 = &df.stages[0];
        assert!(
            matches!(&s0.from.kind, Kind::From { image, alias: Some(a), .. } if image == "${BASE}" && a == "build")
        );
        assert_eq!(s0.steps[0].line, 5);
        assert!(s0.steps[0].text.contains("echo b"));
        match &s0.steps[1].kind {
            Kind::Run { heredocs, cmd, .. } => {
                assert_eq!(cmd, &CmdForm::Shell("<<EOF".into()));
                assert_eq!(heredocs[0].body, "echo heredoc\n");
            }
            k => panic!("{k:?}"),
        }
        match &s0.steps[2].kind {
            Kind::Copy {
                srcs, dest, flags, ..
            } => {
                assert_eq!(dest, "/etc/app.conf");
                assert_eq!(flags[0], ("chown".into(), "1:1".into()));
                assert!(
                    matches!(&srcs[0], Src::Inline { name, body, expand: false } if name == "CONF" && body == "k=v\n")
                );
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(s0.steps[3].kind, Kind::Annotation("healthcheck")));
        assert!(
            matches!(&df.stages[1].steps[1].kind, Kind::Cmd(CmdForm::Exec(v)) if v == &["run", "x"])
        );
    }

    #[test]
    fn escape_directive_and_errors() {
        let df = parse("# escape=`\nFROM scratch\nENV A=1 `\n  B=2\n").unwrap();
        assert_eq!(df.escape, '`');
        assert!(matches!(&df.stages[0].steps[0].kind, Kind::Env(s) if s.contains("B=2")));
        assert!(parse("RUN true\n").is_err());
        assert!(parse("").is_err());
        assert!(parse("FROM scratch\nBOGUS x\n")
            .unwrap_err()
            .contains("line 2"));
    }
}
