//! Showing findings: to people (`human`), to programs (`json`) and to code
//! scanning (`sarif`, version 2.1.0).
//!
//! Renderers return strings; the command-line layer decides where they go.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::codes;
use super::diagnostic::{Diagnostic, Severity};
use super::source::Sources;

/// Human output: the finding, where it is, the source line with a caret
/// under the span, and the help line. `color` adds ANSI colours.
pub fn human(sources: &Sources, diagnostics: &[Diagnostic], color: bool) -> String {
    let paint = Paint { color };
    let mut out = String::new();
    for diagnostic in diagnostics {
        let (file, line, column) = sources.locate(diagnostic.span);
        let (severity, tint) = match diagnostic.severity() {
            Severity::Error => ("error", RED),
            Severity::Warning => ("warning", YELLOW),
        };
        let gutter = " ".repeat(line.to_string().len());
        let text = file.line_text(line);
        let caret_start = column - 1;
        let caret_width = caret_width(sources, diagnostic, text, caret_start);

        let _ = writeln!(
            out,
            "{}: {}",
            paint.bold(tint, &format!("{severity}[{}]", diagnostic.code.id)),
            paint.bold(WHITE, &diagnostic.message)
        );
        let _ = writeln!(
            out,
            "{gutter}{} {}:{line}:{column}",
            paint.bold(BLUE, "-->"),
            file.path().display()
        );
        let _ = writeln!(out, "{gutter} {}", paint.bold(BLUE, "|"));
        let _ = writeln!(
            out,
            "{} {} {}",
            paint.bold(BLUE, &line.to_string()),
            paint.bold(BLUE, "|"),
            text.replace('\t', " ")
        );
        let underline = format!(
            "{}{}",
            " ".repeat(caret_start),
            paint.bold(tint, &"^".repeat(caret_width))
        );
        match &diagnostic.label {
            Some(label) => {
                let _ = writeln!(
                    out,
                    "{gutter} {} {underline} {}",
                    paint.bold(BLUE, "|"),
                    paint.bold(tint, label)
                );
            }
            None => {
                let _ = writeln!(out, "{gutter} {} {underline}", paint.bold(BLUE, "|"));
            }
        }
        if let Some(help) = &diagnostic.help {
            let _ = writeln!(out, "{gutter} {}", paint.bold(BLUE, "|"));
            let _ = writeln!(
                out,
                "{gutter} {} {}: {help}",
                paint.bold(BLUE, "="),
                paint.bold(WHITE, "help")
            );
        }
        out.push('\n');
    }
    out
}

/// The one-line closing summary of human output.
pub fn summary(diagnostics: &[Diagnostic], files: usize) -> String {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity() == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    let files_word = if files == 1 { "file" } else { "files" };
    format!(
        "checked {files} rule {files_word}: {errors} {}, {warnings} {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// Number of carets: the span's width in characters, on its first line.
fn caret_width(
    sources: &Sources,
    diagnostic: &Diagnostic,
    line_text: &str,
    start_column: usize,
) -> usize {
    let file = sources.get(diagnostic.span.file);
    let span_text = file
        .text()
        .get(diagnostic.span.start..diagnostic.span.end)
        .unwrap_or("");
    let on_line = span_text.lines().next().unwrap_or("").chars().count();
    let room = line_text.chars().count().saturating_sub(start_column);
    on_line.min(room.max(1)).max(1)
}

/// `{"findings": [...]}`, lines and columns 1-based.
pub fn json(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    let findings: Vec<Value> = diagnostics
        .iter()
        .map(|diagnostic| {
            let (file, line, column) = sources.locate(diagnostic.span);
            json!({
                "code": diagnostic.code.id,
                "severity": diagnostic.severity().as_str(),
                "file": file.path().display().to_string(),
                "line": line,
                "column": column,
                "message": diagnostic.message,
                "help": diagnostic.help,
            })
        })
        .collect();
    let document = json!({ "findings": findings });
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

/// A SARIF 2.1.0 log with one run, as code scanning services accept it.
pub fn sarif(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    let rules: Vec<Value> = codes::ALL
        .iter()
        .map(|code| {
            json!({
                "id": code.id,
                "shortDescription": { "text": code.summary },
                "defaultConfiguration": { "level": level(code.severity) },
            })
        })
        .collect();
    let results: Vec<Value> = diagnostics
        .iter()
        .map(|diagnostic| {
            let (file, line, column) = sources.locate(diagnostic.span);
            let (end_line, end_column) = file.line_col(diagnostic.span.end);
            let mut text = diagnostic.message.clone();
            if let Some(help) = &diagnostic.help {
                text.push_str("\nhelp: ");
                text.push_str(help);
            }
            let rule_index = codes::ALL.iter().position(|c| c.id == diagnostic.code.id);
            json!({
                "ruleId": diagnostic.code.id,
                "ruleIndex": rule_index,
                "level": level(diagnostic.severity()),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&file.path().display().to_string()) },
                        "region": {
                            "startLine": line,
                            "startColumn": column,
                            "endLine": end_line.max(line),
                            "endColumn": if end_line > line || end_column > column { end_column } else { column + 1 },
                        },
                    },
                }],
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "phigate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                },
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default()
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// A relative URI for a file path: forward slashes, no leading `./`.
fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    path.strip_prefix("./").unwrap_or(&path).to_string()
}

const RED: &str = "31";
const YELLOW: &str = "33";
const BLUE: &str = "34";
const WHITE: &str = "37";

struct Paint {
    color: bool,
}

impl Paint {
    fn bold(&self, tint: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[1;{tint}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}
