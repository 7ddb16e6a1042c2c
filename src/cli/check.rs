//! `phigate check`: lint rule files and, with a configuration, the config.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{DEFAULT_CONFIG, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::config::{Config, RawConfig, base_dir_of};
use crate::load;
use crate::rules::{
    self, CheckOptions, Diagnostic, FileId, Severity, Sources, Span, codes, render,
};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rule files or folders (searched for `*.rules`). Default: the
    /// configuration's `rules.paths`, else `rules`.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Also hold the configuration to production standards.
    #[arg(long)]
    pub production: bool,

    /// Exit 1 on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,

    /// How findings are written to stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

pub fn run(config_arg: Option<&Path>, args: CheckArgs) -> u8 {
    let mut sources = Sources::new();
    let mut findings = Vec::new();

    let config = match read_config(config_arg, &mut sources) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    if let Some(config) = &config {
        findings.extend(config_findings(config, &sources, args.production));
    }

    let rule_paths = match (&args.paths, &config) {
        (paths, _) if !paths.is_empty() => paths.clone(),
        (
            _,
            Some(ConfigFile {
                config: Some(config),
                ..
            }),
        ) => config.rule_paths.clone(),
        _ => vec![PathBuf::from("rules")],
    };
    let files = match load::find_rule_files(&rule_paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let unreadable = match load::read_rule_files(&files, &mut sources) {
        Ok(unreadable) => unreadable,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };

    let mut skip: Vec<FileId> = unreadable.iter().map(|d| d.span.file).collect();
    if let Some(config) = &config {
        skip.push(config.id);
    }
    findings.extend(unreadable);

    let parsed = rules::parse_all(&sources, &skip);
    findings.extend(parsed.diagnostics);
    let options = CheckOptions {
        key_ids: config.as_ref().and_then(|c| c.key_ids.clone()),
    };
    findings.extend(rules::check(&sources, &parsed.files, &options));
    findings.sort_by_key(|d| (d.span.file, d.span.start, d.code.id));

    let output = match args.format {
        Format::Human => {
            let color = std::io::stdout().is_terminal();
            let mut text = render::human(&sources, &findings, color);
            text.push_str(&render::summary(&findings, files.len()));
            text
        }
        Format::Json => render::json(&sources, &findings),
        Format::Sarif => render::sarif(&sources, &findings),
    };
    println!("{output}");

    let errors = findings.iter().any(|d| d.severity() == Severity::Error);
    let warnings = findings.iter().any(|d| d.severity() == Severity::Warning);
    if errors || (warnings && args.deny_warnings) {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }
}

/// The configuration file as `check` sees it: its text in the source map,
/// and the validated config when it was valid.
struct ConfigFile {
    id: FileId,
    raw: Option<RawConfig>,
    config: Option<Config>,
    problems: Vec<crate::config::ConfigProblem>,
    key_ids: Option<HashSet<String>>,
}

/// Reads the configuration named by `--config`, or `phigate.toml` when it
/// exists. An explicitly named file that cannot be read is a usage error.
fn read_config(
    config_arg: Option<&Path>,
    sources: &mut Sources,
) -> Result<Option<ConfigFile>, String> {
    let path = match config_arg {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).is_file() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let id = sources.add(&path, text.clone());

    let (raw, config, problems) = match RawConfig::parse(&text) {
        Err(problem) => (None, None, vec![problem]),
        Ok(raw) => match Config::from_raw(raw.clone(), &base_dir_of(&path)) {
            Ok(config) => (Some(raw), Some(config), Vec::new()),
            Err(problems) => (Some(raw), None, problems),
        },
    };
    let key_ids = config.as_ref().and_then(|c| read_key_ids(&c.keys_file));
    Ok(Some(ConfigFile {
        id,
        raw,
        config,
        problems,
        key_ids,
    }))
}

/// The ids in a key file, or `None` when there is no readable key file
/// (the development profile creates it on first start).
fn read_key_ids(path: &Path) -> Option<HashSet<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let document: serde_json::Value = serde_json::from_str(&text).ok()?;
    let keys = document.get("keys")?.as_array()?;
    Some(
        keys.iter()
            .filter_map(|key| key.get("id")?.as_str().map(str::to_string))
            .collect(),
    )
}

fn config_findings(config: &ConfigFile, sources: &Sources, production: bool) -> Vec<Diagnostic> {
    let file = sources.get(config.id);
    let text = file.text();
    let mut findings: Vec<Diagnostic> = config
        .problems
        .iter()
        .map(|problem| {
            let span = match &problem.span {
                Some(range) => Span::new(config.id, range.start, range.end),
                None => key_span(config.id, text, &problem.key),
            };
            let message = if problem.key.is_empty() {
                format!("invalid configuration: {}", problem.message)
            } else {
                format!("invalid `{}`: {}", problem.key, problem.message)
            };
            Diagnostic::new(codes::CONFIG_INVALID, span, message)
        })
        .collect();

    let Some(raw) = &config.raw else {
        return findings;
    };
    let production = production || raw.server.profile == "production";
    if !production {
        return findings;
    }
    if !raw.messaging.audit_enabled {
        findings.push(
            Diagnostic::new(
                codes::AUDIT_DISABLED,
                key_span(config.id, text, "messaging.audit_enabled"),
                "audit is disabled",
            )
            .with_help("production requires `messaging.audit_enabled = true`"),
        );
    }
    if raw.messaging.filter_mode == "fail-open" {
        findings.push(
            Diagnostic::new(
                codes::FAIL_OPEN,
                key_span(config.id, text, "messaging.filter_mode"),
                "filter errors fail open",
            )
            .with_label("a failed action would let a value through untransformed")
            .with_help("production requires `messaging.filter_mode = \"fail-closed\"`"),
        );
    }
    for key in ["server.tls_cert", "server.tls_key"] {
        let value = if key.ends_with("cert") {
            &raw.server.tls_cert
        } else {
            &raw.server.tls_key
        };
        if value.trim().is_empty() {
            findings.push(
                Diagnostic::new(
                    codes::NO_TLS,
                    key_span(config.id, text, key),
                    format!("`{key}` is empty: no TLS"),
                )
                .with_help("production serves HTTPS only: name a certificate and its key"),
            );
        }
    }
    if raw.server.profile == "development" {
        findings.push(
            Diagnostic::new(
                codes::DEVELOPMENT_CREDENTIALS,
                key_span(config.id, text, "server.profile"),
                "the development profile creates a self-signed certificate, keys and tokens",
            )
            .with_help("set `server.profile = \"production\"` and provision credentials yourself"),
        );
    }
    findings
}

/// Where a dotted key is written in a TOML file: the value of `name = ...`
/// in its `[section]`, else the section header, else the file's start.
fn key_span(file: FileId, text: &str, dotted: &str) -> Span {
    let (section, name) = dotted.split_once('.').unwrap_or(("", dotted));
    let mut offset = 0;
    let mut in_section = section.is_empty();
    let mut header = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            // A header may carry a comment: `[messaging]  # limits`.
            let header_text = trimmed.split('#').next().unwrap_or("").trim_end();
            in_section = header_text.trim_matches(['[', ']']).trim() == section;
            if in_section && header.is_none() {
                header = Some(Span::new(
                    file,
                    offset + line.find('[').unwrap_or(0),
                    offset + line.trim_end().len(),
                ));
            }
        } else if in_section
            && let Some((key, value)) = trimmed.split_once('=')
            && key.trim() == name
        {
            let value_start = offset + line.find('=').unwrap_or(0) + 1;
            let skip = line[value_start - offset..].len()
                - line[value_start - offset..].trim_start().len();
            let start = value_start + skip;
            let end = offset + line.trim_end().len();
            return Span::new(file, start, end.max(start + value.trim().len().min(1)));
        }
        offset += line.len();
    }
    header.unwrap_or(Span::file_start(file))
}
