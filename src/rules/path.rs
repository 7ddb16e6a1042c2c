//! Paths into the event `{topic, publisher, subscriber, attributes, payload}`.
//!
//! A path is written either dotted (`payload.diagnosis.code`) or as a
//! JSONPath (`$..ssn`). A JSONPath made only of plain member names
//! (`$.payload.mrn`) is read as the dotted path it spells, so the two
//! spellings of one field are the same path to every later phase.

use std::fmt;

use super::source::Span;

/// The top-level members of an event.
pub const ROOTS: [&str; 5] = ["topic", "publisher", "subscriber", "attributes", "payload"];

/// A path as written, with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct PathExpr {
    pub kind: PathKind,
    /// The path exactly as written in the rule file.
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Member names from the event root: `["payload", "diagnosis", "code"]`.
    Dotted(Vec<String>),
    /// Any other JSONPath, kept as text for the JSONPath engine.
    JsonPath(String),
}

impl PathExpr {
    pub fn dotted(text: &str, span: Span) -> Self {
        PathExpr {
            kind: PathKind::Dotted(text.split('.').map(str::to_string).collect()),
            text: text.to_string(),
            span,
        }
    }

    pub fn jsonpath(text: &str, span: Span) -> Self {
        let kind = match plain_members(text) {
            Some(segments) => PathKind::Dotted(segments),
            None => PathKind::JsonPath(text.to_string()),
        };
        PathExpr {
            kind,
            text: text.to_string(),
            span,
        }
    }

    /// The dotted segments, when the path is a plain member chain.
    pub fn segments(&self) -> Option<&[String]> {
        match &self.kind {
            PathKind::Dotted(segments) => Some(segments),
            PathKind::JsonPath(_) => None,
        }
    }

    /// The first segment of a plain path (`payload`, `attributes`, ...).
    pub fn root(&self) -> Option<&str> {
        self.segments()
            .and_then(|segments| segments.first())
            .map(String::as_str)
    }

    /// The segments below `payload`, when this plain path is inside it.
    pub fn payload_field(&self) -> Option<&[String]> {
        match self.segments() {
            Some([root, rest @ ..]) if root == "payload" => Some(rest),
            _ => None,
        }
    }

    /// Whether this path is exactly the event member `name` (`topic`, ...).
    pub fn is_member(&self, name: &str) -> bool {
        matches!(self.segments(), Some([only]) if only == name)
    }

    /// A JSONPath of the `$..name` form: the member name it finds anywhere.
    pub fn descendant_name(&self) -> Option<&str> {
        match &self.kind {
            PathKind::JsonPath(text) => {
                let name = text.strip_prefix("$..")?;
                is_plain_name(name).then_some(name)
            }
            PathKind::Dotted(_) => None,
        }
    }

    /// The path in one canonical spelling: dotted when it can be.
    pub fn canonical(&self) -> String {
        match &self.kind {
            PathKind::Dotted(segments) => segments.join("."),
            PathKind::JsonPath(text) => text.clone(),
        }
    }
}

impl fmt::Display for PathExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `$.a.b['c']` as `["a", "b", "c"]`, or `None` when the JSONPath holds
/// anything but plain member names.
fn plain_members(text: &str) -> Option<Vec<String>> {
    let mut rest = text.strip_prefix('$')?;
    let mut segments = Vec::new();
    while !rest.is_empty() {
        if let Some(after_dot) = rest.strip_prefix('.') {
            if after_dot.starts_with('.') {
                return None;
            }
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            let name = &after_dot[..end];
            if !is_plain_name(name) {
                return None;
            }
            segments.push(name.to_string());
            rest = &after_dot[end..];
        } else if let Some(after_bracket) = rest.strip_prefix("['") {
            let end = after_bracket.find("']")?;
            let name = &after_bracket[..end];
            if name.is_empty() || name.contains(['\'', '\\']) {
                return None;
            }
            segments.push(name.to_string());
            rest = &after_bracket[end + 2..];
        } else {
            return None;
        }
    }
    (!segments.is_empty()).then_some(segments)
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::source::Sources;

    fn span() -> Span {
        let mut sources = Sources::new();
        Span::file_start(sources.add("t.rules", String::new()))
    }

    #[test]
    fn simple_jsonpaths_read_as_dotted_paths() {
        let path = PathExpr::jsonpath("$.payload['mrn']", span());
        assert_eq!(path.canonical(), "payload.mrn");
        assert_eq!(path.payload_field(), Some(&["mrn".to_string()][..]));
        assert_eq!(path.text, "$.payload['mrn']");
    }

    #[test]
    fn other_jsonpaths_stay_jsonpaths() {
        for text in ["$..ssn", "$.payload.items[*].name", "$.payload[0]", "$"] {
            let path = PathExpr::jsonpath(text, span());
            assert!(matches!(path.kind, PathKind::JsonPath(_)), "{text}");
        }
        assert_eq!(
            PathExpr::jsonpath("$..ssn", span()).descendant_name(),
            Some("ssn")
        );
    }
}
