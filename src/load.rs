//! Finding and reading rule files: the I/O that `rules` itself never does.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::rules::{Diagnostic, Sources, Span, codes};

/// A rule path that could not be read at all.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("no such file or folder: {}", .0.display())]
    Missing(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no `.rules` files found in {}", .0.display())]
    Empty(PathBuf),
}

/// The rule files under `paths`: files as given, folders searched
/// recursively for `*.rules`, each folder's entries in name order.
pub fn find_rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => LoadError::Missing(path.clone()),
            _ => LoadError::Unreadable {
                path: path.clone(),
                source,
            },
        })?;
        if metadata.is_dir() {
            let before = files.len();
            walk(path, &mut files)?;
            if files.len() == before {
                return Err(LoadError::Empty(path.clone()));
            }
        } else {
            files.push(path.clone());
        }
    }
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let unreadable = |source| LoadError::Unreadable {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            walk(&entry, files)?;
        } else if entry.extension().is_some_and(|ext| ext == "rules") {
            files.push(entry);
        }
    }
    Ok(())
}

/// Reads rule files into `sources`. A file that is not UTF-8 is kept as an
/// empty file and reported, so one bad file does not hide the others.
pub fn read_rule_files(
    files: &[PathBuf],
    sources: &mut Sources,
) -> Result<Vec<Diagnostic>, LoadError> {
    let mut findings = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Unreadable {
            path: path.clone(),
            source,
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => {
                sources.add(path, text);
            }
            Err(error) => {
                let valid_up_to = error.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(&error.into_bytes()[..valid_up_to]).into_owned();
                let id = sources.add(path, text);
                findings.push(
                    Diagnostic::new(
                        codes::NOT_UTF8,
                        Span::new(id, valid_up_to, valid_up_to),
                        "rule files must be UTF-8; this byte is not",
                    )
                    .with_help("save the file as UTF-8"),
                );
            }
        }
    }
    Ok(findings)
}

/// A rule set read, parsed, checked clean and compiled.
pub struct RuleSet {
    pub sources: Sources,
    pub files: Vec<(crate::rules::FileId, crate::rules::ast::File)>,
    /// Warnings: they never stop a load.
    pub warnings: Vec<Diagnostic>,
    pub engine: crate::rules::Engine,
}

impl RuleSet {
    /// Every `test` block, in file order.
    pub fn tests(&self) -> Vec<&crate::rules::ast::Test> {
        self.files
            .iter()
            .flat_map(|(_, file)| &file.items)
            .filter_map(|item| match item {
                crate::rules::ast::Item::Test(test) => Some(test),
                _ => None,
            })
            .collect()
    }

    /// Key ids named by `with key` in any rule.
    pub fn key_names(&self) -> Vec<String> {
        use crate::rules::ast::{ActionKind, Item};
        let mut names: Vec<String> = self
            .files
            .iter()
            .flat_map(|(_, file)| &file.items)
            .filter_map(|item| match item {
                Item::Rule(rule) => Some(&rule.actions),
                _ => None,
            })
            .flatten()
            .filter_map(|action| match &action.kind {
                ActionKind::Encrypt { key: Some(key), .. }
                | ActionKind::Hash { key: Some(key), .. } => Some(key.text.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Why a rule set could not be loaded.
pub enum RuleSetError {
    /// A path could not be read at all.
    Io(LoadError),
    /// The rule set has errors; `findings` holds every finding.
    Findings {
        sources: Sources,
        findings: Vec<Diagnostic>,
    },
}

/// Reads the rule files under `paths`, checks them and compiles them.
/// Only a rule set without errors is compiled.
pub fn load_rule_set(
    paths: &[PathBuf],
    options: &crate::rules::CheckOptions,
) -> Result<RuleSet, RuleSetError> {
    let files = find_rule_files(paths).map_err(RuleSetError::Io)?;
    let mut sources = Sources::new();
    let mut findings = read_rule_files(&files, &mut sources).map_err(RuleSetError::Io)?;
    let skip: Vec<crate::rules::FileId> = findings.iter().map(|d| d.span.file).collect();

    let parsed = crate::rules::parse_all(&sources, &skip);
    findings.extend(parsed.diagnostics);
    findings.extend(crate::rules::check(&sources, &parsed.files, options));
    findings.sort_by_key(|d| (d.span.file, d.span.start, d.code.id));

    if findings
        .iter()
        .any(|d| d.severity() == crate::rules::Severity::Error)
    {
        return Err(RuleSetError::Findings { sources, findings });
    }
    let engine = match crate::rules::Engine::compile(&sources, &parsed.files) {
        Ok(engine) => engine,
        Err(error) => {
            let first = sources.ids().next();
            let file = match first {
                Some(file) => file,
                None => sources.add("<rules>", String::new()),
            };
            let span = Span::file_start(file);
            findings.push(Diagnostic::new(codes::SYNTAX, span, error.to_string()));
            return Err(RuleSetError::Findings { sources, findings });
        }
    };
    Ok(RuleSet {
        sources,
        files: parsed.files,
        warnings: findings,
        engine,
    })
}
