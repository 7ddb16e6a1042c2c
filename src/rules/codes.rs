//! The registry of finding codes.
//!
//! Codes are stable: tools and people search for them, so a code is never
//! renumbered or reused, even after its check is removed. They are grouped
//! by the phase that reports them:
//!
//! | range | phase |
//! | --- | --- |
//! | E01xx | reading and parsing a file |
//! | E02xx | names: duplicates and unknown references |
//! | E03xx | patterns, regexes, paths and endpoints |
//! | E04xx | plugin contracts, rules and tests |
//! | E06xx | the configuration file, and `--production` |
//! | W05xx | warnings: legal but probably not what was meant |

use super::diagnostic::Severity;

/// A finding code with its severity and a one-line summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

const fn error(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        severity: Severity::Error,
        summary,
    }
}

const fn warning(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        severity: Severity::Warning,
        summary,
    }
}

pub const SYNTAX: &Code = &error("E0101", "syntax error");
pub const INVALID_LITERAL: &Code = &error("E0102", "invalid string, number or JSON value");
pub const NOT_UTF8: &Code = &error("E0103", "file is not UTF-8");
pub const TOO_DEEP: &Code = &error("E0104", "brackets nested too deeply");
pub const TOO_LARGE: &Code = &error("E0105", "file too large");

pub const DUPLICATE_NAME: &Code = &error("E0201", "duplicate name");
pub const UNKNOWN_PLUGIN: &Code = &error("E0202", "unknown plugin");
pub const UNKNOWN_MODEL: &Code = &error("E0203", "unknown model");
pub const UNKNOWN_FIELD: &Code = &error("E0204", "field not declared by the topic's model");
pub const UNKNOWN_DETECTOR: &Code = &error("E0205", "unknown detector");
pub const UNKNOWN_KEY: &Code = &error("E0206", "unknown key");
pub const INVALID_PLUGIN_NAME: &Code = &error("E0207", "invalid plugin name");

pub const INVALID_TOPIC_PATTERN: &Code = &error("E0301", "invalid topic or topic pattern");
pub const INVALID_REGEX: &Code = &error("E0302", "invalid regex");
pub const INVALID_JSONPATH: &Code = &error("E0303", "invalid JSONPath");
pub const INVALID_PATH: &Code = &error("E0304", "path outside the event or not allowed here");
pub const INSECURE_ENDPOINT: &Code = &error("E0305", "endpoint is not HTTPS and not on loopback");
pub const INVALID_ENDPOINT: &Code = &error("E0306", "endpoint is not a valid URL");

pub const NO_RECEIVE: &Code = &error("E0401", "recipient without `receive`");
pub const ROUTE_TESTS_SUBSCRIBER: &Code = &error("E0402", "routing rule tests `subscriber`");
pub const DUPLICATE_ENDPOINT: &Code = &error("E0403", "plugin declares more than one endpoint");
pub const INVALID_TEST: &Code = &error("E0404", "invalid test block");

pub const CONFLICTING_ACTIONS: &Code = &warning("W0501", "conflicting actions on one field");
pub const NEVER_MATCHES: &Code = &warning("W0502", "rule can never match");
pub const PHI_IN_CLEAR: &Code = &warning("W0503", "plugin receives PHI in clear");
pub const NO_ACTION: &Code = &warning("W0504", "rule has no action");

pub const CONFIG_INVALID: &Code = &error("E0601", "invalid configuration");
pub const AUDIT_DISABLED: &Code = &error("E0602", "audit disabled in production");
pub const FAIL_OPEN: &Code = &error("E0603", "`fail-open` in production");
pub const NO_TLS: &Code = &error("E0604", "no TLS in production");
pub const DEVELOPMENT_CREDENTIALS: &Code = &error("E0605", "development credentials in production");

/// Every code, in registry order.
pub const ALL: &[&Code] = &[
    SYNTAX,
    INVALID_LITERAL,
    NOT_UTF8,
    TOO_DEEP,
    TOO_LARGE,
    DUPLICATE_NAME,
    UNKNOWN_PLUGIN,
    UNKNOWN_MODEL,
    UNKNOWN_FIELD,
    UNKNOWN_DETECTOR,
    UNKNOWN_KEY,
    INVALID_PLUGIN_NAME,
    INVALID_TOPIC_PATTERN,
    INVALID_REGEX,
    INVALID_JSONPATH,
    INVALID_PATH,
    INSECURE_ENDPOINT,
    INVALID_ENDPOINT,
    NO_RECEIVE,
    ROUTE_TESTS_SUBSCRIBER,
    DUPLICATE_ENDPOINT,
    INVALID_TEST,
    CONFLICTING_ACTIONS,
    NEVER_MATCHES,
    PHI_IN_CLEAR,
    NO_ACTION,
    CONFIG_INVALID,
    AUDIT_DISABLED,
    FAIL_OPEN,
    NO_TLS,
    DEVELOPMENT_CREDENTIALS,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_prefixed_by_severity() {
        let mut seen = HashSet::new();
        for code in ALL {
            assert!(seen.insert(code.id), "code {} listed twice", code.id);
            let prefix = match code.severity {
                Severity::Error => 'E',
                Severity::Warning => 'W',
            };
            assert!(
                code.id.starts_with(prefix),
                "{} has the wrong prefix",
                code.id
            );
        }
    }
}
