//! The rule language, one phase per module: `syntax` turns text into the
//! `ast`, `check` reports every problem of a rule set as data, and `render`
//! shows those findings to people and tools.
//!
//! Nothing in this module does I/O: callers read the files into
//! [`Sources`] and decide what to do with the findings.

pub mod ast;
pub mod check;
pub mod codes;
pub mod compile;
pub mod decide;
pub mod diagnostic;
pub mod path;
pub mod render;
pub mod source;
pub mod syntax;
pub mod testing;
pub mod topic;

pub use check::{CheckOptions, check};
pub use compile::{CompileError, Engine};
pub use decide::{BlockReason, Decision, Delivery, Event, FilterError, Outcome, Rejection};
pub use diagnostic::{Diagnostic, Severity};
pub use source::{FileId, Sources, Span};

/// The detectors `redact` knows without a `detector` declaration. A
/// declaration with one of these names replaces the built-in pattern.
pub const BUILTIN_DETECTORS: &[&str] = &[
    "ssn",
    "phone",
    "email",
    "credit_card",
    "ip_address",
    "url",
    "date",
    "zip",
    "mrn",
];

/// Every file of a rule set, parsed. Files that failed to parse are absent
/// from `files`; their findings are in `diagnostics`.
#[derive(Debug, Default)]
pub struct Parsed {
    pub files: Vec<(FileId, ast::File)>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses every file of `sources` except those listed in `skip` (such as
/// the configuration file, which shares the source map).
pub fn parse_all(sources: &Sources, skip: &[FileId]) -> Parsed {
    let mut parsed = Parsed::default();
    for id in sources.ids().filter(|id| !skip.contains(id)) {
        match syntax::parse(id, sources.get(id).text()) {
            Ok(file) => parsed.files.push((id, file)),
            Err(diagnostic) => parsed.diagnostics.push(diagnostic),
        }
    }
    parsed
}
