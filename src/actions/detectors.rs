//! Detectors for `redact`: named patterns that find PHI in free text.
//!
//! The built-in detectors are listed in [`BUILTINS`], each with the source
//! of its format; a `detector NAME matches "REGEX"` declaration adds one,
//! or replaces the built-in of the same name (typically `mrn`).
//!
//! A [`Selection`] (the detectors of one `redact` action) is compiled into
//! a multi-pattern regex, so one pass over the text finds the leftmost
//! match of any selected detector. At each match start, one anchored query
//! tells which other detectors match there too, and the longest valid
//! match wins; the search then resumes one character later, so that a
//! match of another detector starting inside a span is still found. Overlapping
//! spans merge into one, named after the span that starts first (the
//! longest, on a tie). Some formats need a check that a regex cannot
//! express well (the Luhn digit of a card number, impossible SSN ranges,
//! IPv6 compression): those matches pass through a validator.
//!
//! Built-in patterns use ASCII classes and ASCII word boundaries
//! (`(?-u:\b)`): a Unicode `\b` would stop the lazy DFA on non-ASCII text
//! and cost an order of magnitude in throughput.
//!
//! FIXME: resuming one character after each match start rescans every
//! candidate. Prose runs at several hundred MB/s, but text made of
//! candidates (thousands of space-separated digits, each the start of a
//! would-be card number) drops to a few MB/s; the payload size limit
//! bounds the cost. An overlapping forward pass that reports every
//! (detector, end) pair would avoid the rescans.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use regex_automata::meta::{self, Regex};
use regex_automata::{Anchored, Input, MatchKind, PatternID, PatternSet};

use crate::rules::check::REGEX_SIZE_LIMIT;

/// Every detector known to a rule set: the built-ins, with custom
/// detectors added or replacing them.
pub struct Detectors {
    detectors: Vec<Detector>,
    /// Compiled selections by detector indices: a rule set has few
    /// distinct selections but may use each in many actions.
    selections: Mutex<HashMap<Vec<usize>, Selection>>,
}

/// The detectors of one `redact` action, compiled. Cloning is cheap.
///
/// A selection belongs to the [`Detectors`] that made it; two selections
/// are equal when they name the same detectors of it.
#[derive(Clone)]
pub struct Selection {
    indices: Vec<usize>,
    /// `None` for an empty selection, which finds nothing.
    matcher: Option<Arc<Matcher>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectorError {
    #[error("invalid regex for detector `{name}`: {reason}")]
    InvalidRegex { name: String, reason: String },
    #[error("detector `{name}` is declared twice")]
    Duplicate { name: String },
    #[error("unknown detector `{name}`")]
    UnknownDetector { name: String },
    #[error("the detectors of one `redact` are too large to compile together")]
    TooLarge,
}

/// Checks a candidate match; returns the length of its valid prefix, or
/// `None` to reject it.
type Validator = fn(&str) -> Option<usize>;

struct Detector {
    name: String,
    pattern: String,
    validator: Option<Validator>,
}

/// A built-in detector: its name, its pattern and its validator.
pub struct Builtin {
    pub name: &'static str,
    pub pattern: &'static str,
    validator: Option<Validator>,
}

/// The built-in detectors, in their order of preference when two match
/// the same text with the same length.
pub const BUILTINS: &[Builtin] = &[
    // US Social Security numbers, AAA-GG-SSSS, as the SSA assigns them:
    // area 000, 666 and 900-999, group 00 and serial 0000 are never issued
    // (SSA, "Social Security Number Randomization", 2011; POMS RM 10201).
    // Written with dashes or spaces; nine bare digits are too often
    // something else.
    Builtin {
        name: "ssn",
        pattern: r"(?-u:\b)[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}(?-u:\b)",
        validator: Some(valid_ssn),
    },
    // Telephone numbers. North American Numbering Plan (NANPA): a 3-digit
    // area code starting with 2-9, a 3-digit exchange and 4 digits:
    // `(555) 123-4567`, `555-123-4567`, `555.123.4567`, `5551234567`, with
    // an optional `+1` or `1-` prefix. The plan also starts exchanges with
    // 2-9, but fictional numbers such as 555-123-4567 are common in
    // examples and redacting them costs nothing. Seven-digit local numbers
    // (`555-0199`) are not matched: they read like ranges (`250-1000 mg`).
    // Other countries in E.164 form (ITU-T E.164): `+`, a country code,
    // at most 15 digits in all.
    Builtin {
        name: "phone",
        pattern: concat!(
            r"(?:(?:\+1[-. ]?|(?-u:\b)1[-. ]?)?\([2-9][0-9]{2}\)[-. ]?",
            r"|(?:\+1[-. ]?|(?-u:\b)1[-. ]?|(?-u:\b))[2-9][0-9]{2}[-. ]?)",
            r"[0-9]{3}[-. ]?[0-9]{4}(?-u:\b)",
            r"|\+[2-9][0-9]{0,2}(?:[-. ]?[0-9]{1,4}){2,7}(?-u:\b)",
        ),
        validator: Some(valid_phone),
    },
    // Email addresses: a dot-atom local part, `@`, and a domain of
    // letter-digit-hyphen labels with an alphabetic top-level label
    // (RFC 5321 section 4.1.2, without quoted local parts or address
    // literals, as in the WHATWG "valid e-mail address").
    Builtin {
        name: "email",
        pattern: concat!(
            r"(?-u:\b)[A-Za-z0-9._%+-]+@",
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}(?-u:\b)",
        ),
        validator: None,
    },
    // Payment card numbers (ISO/IEC 7812-1): 13 to 19 digits, optionally
    // grouped by single spaces or dashes, whose last digit is the Luhn
    // check digit (ISO/IEC 7812-1 Annex B).
    Builtin {
        name: "credit_card",
        pattern: r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
        validator: Some(valid_card),
    },
    // IP addresses. IPv4 in dotted-decimal form, each octet 0-255
    // (RFC 3986 section 3.2.2, `IPv4address`). IPv6 in the text forms of
    // RFC 4291 section 2.2 with `::` compression; the regex finds
    // candidates and the standard library's parser decides. Embedded IPv4
    // forms (`::ffff:192.0.2.1`) are found only in their IPv4 part
    // (FIXME: the `::ffff:` prefix stays in clear).
    Builtin {
        name: "ip_address",
        pattern: concat!(
            r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}",
            r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?-u:\b)",
            r"|(?:(?-u:\b)[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}",
        ),
        validator: Some(valid_ip),
    },
    // URLs with an `http`, `https` or `ftp` scheme, or a bare `www.` host
    // (RFC 3986 URI syntax), up to the next space, angle bracket or quote.
    // Trailing sentence punctuation is left out, as autolinkers do.
    Builtin {
        name: "url",
        pattern: r#"(?-u:\b)(?:(?i-u:https?|ftp)://|(?i-u:www)\.)[^\s<>"'`]+"#,
        validator: Some(valid_url),
    },
    // Dates. ISO 8601 calendar dates (`2026-12-03`, with an optional
    // time); numeric day and month in either order (`12/03/2026`,
    // `3.12.26`); written English dates (`3 Dec 2026`, `December 3rd,
    // 2026`, `Dec 2026`). HIPAA's Safe Harbor method (45 CFR
    // 164.514(b)(2)(i)(C)) counts every date element but the year as an
    // identifier; a bare year is not matched.
    Builtin {
        name: "date",
        pattern: concat!(
            r"(?-u:\b)[12][0-9]{3}[-/](?:0[1-9]|1[0-2])[-/](?:0[1-9]|[12][0-9]|3[01])",
            r"(?:[T ][0-2][0-9]:[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?",
            r"(?:Z|[+-][0-2][0-9]:?[0-5][0-9])?)?(?-u:\b)",
            r"|(?-u:\b)(?:0?[1-9]|[12][0-9]|3[01])[-/.](?:0?[1-9]|[12][0-9]|3[01])[-/.]",
            r"(?:[12][0-9]{3}|[0-9]{2})(?-u:\b)",
            r"|(?-u:\b)(?:(?:0?[1-9]|[12][0-9]|3[01])(?:st|nd|rd|th)? (?:of )?)?",
            r"(?i-u:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?",
            r"|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)",
            r"\.?(?: (?:0?[1-9]|[12][0-9]|3[01])(?:st|nd|rd|th)?)?,? [12][0-9]{3}(?-u:\b)",
        ),
        validator: None,
    },
    // US ZIP codes and ZIP+4 (USPS Publication 28, section 231).
    Builtin {
        name: "zip",
        pattern: r"(?-u:\b)[0-9]{5}(?:-[0-9]{4})?(?-u:\b)",
        validator: None,
    },
    // Medical record numbers. No standard exists: the default is the
    // label `MRN` (any case), an optional `-`, `:`, `#` or space, and 6 to
    // 10 digits. A `detector mrn matches "..."` gives the local format.
    Builtin {
        name: "mrn",
        pattern: r"(?-u:\b)(?i-u:mrn)(?: ?[-:#] ?| )?[0-9]{6,10}(?-u:\b)",
        validator: None,
    },
];

impl Detectors {
    /// The built-ins plus the custom detectors of a rule set, as (name,
    /// regex) pairs. A custom detector with a built-in's name replaces it.
    pub fn new(custom: &[(String, String)]) -> Result<Detectors, DetectorError> {
        let mut detectors: Vec<Detector> = BUILTINS
            .iter()
            .map(|builtin| Detector {
                name: builtin.name.to_string(),
                pattern: builtin.pattern.to_string(),
                validator: builtin.validator,
            })
            .collect();
        let mut declared: Vec<&str> = Vec::with_capacity(custom.len());

        for (name, pattern) in custom {
            if declared.contains(&name.as_str()) {
                return Err(DetectorError::Duplicate { name: name.clone() });
            }
            declared.push(name);
            check_pattern(name, pattern)?;
            let detector = Detector {
                name: name.clone(),
                pattern: pattern.clone(),
                validator: None,
            };
            match detectors.iter_mut().find(|known| known.name == *name) {
                Some(builtin) => *builtin = detector,
                None => detectors.push(detector),
            }
        }
        Ok(Detectors {
            detectors,
            selections: Mutex::new(HashMap::new()),
        })
    }

    /// The detector names: built-ins first, then custom ones in the order
    /// given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.detectors.iter().map(|detector| detector.name.as_str())
    }

    /// Compiles the detectors named by one `redact` action. Selections are
    /// cached, so selecting the same names again is cheap.
    pub fn select(&self, names: &[String]) -> Result<Selection, DetectorError> {
        let mut indices = Vec::with_capacity(names.len());
        for name in names {
            let index = self
                .detectors
                .iter()
                .position(|detector| detector.name == *name)
                .ok_or_else(|| DetectorError::UnknownDetector { name: name.clone() })?;
            indices.push(index);
        }
        indices.sort_unstable();
        indices.dedup();

        // A poisoned lock only means another thread panicked while
        // inserting; the map is still a valid cache.
        let mut cache = self
            .selections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(selection) = cache.get(&indices) {
            return Ok(selection.clone());
        }
        let selection = self.compile(indices.clone())?;
        cache.insert(indices, selection.clone());
        Ok(selection)
    }

    /// Every selected detector applied to `text`: each detected span is
    /// replaced by `[REDACTED:NAME]`. `None` when nothing was found.
    pub fn redact(&self, text: &str, selection: &Selection) -> Option<String> {
        let matcher = selection.matcher.as_deref()?;
        let spans = matcher.spans(text);
        if spans.is_empty() {
            return None;
        }

        let mut redacted = String::with_capacity(text.len());
        let mut copied = 0;
        for span in spans {
            redacted.push_str(&text[copied..span.start]);
            redacted.push_str("[REDACTED:");
            redacted.push_str(&matcher.names[span.detector]);
            redacted.push(']');
            copied = span.end;
        }
        redacted.push_str(&text[copied..]);
        Some(redacted)
    }

    fn compile(&self, indices: Vec<usize>) -> Result<Selection, DetectorError> {
        if indices.is_empty() {
            return Ok(Selection {
                indices,
                matcher: None,
            });
        }
        let selected: Vec<&Detector> = indices.iter().map(|&i| &self.detectors[i]).collect();
        let patterns: Vec<&str> = selected.iter().map(|d| d.pattern.as_str()).collect();
        let limit = Some(REGEX_SIZE_LIMIT * (patterns.len() + 1));
        let build = |kind: MatchKind| {
            Regex::builder()
                .configure(meta::Config::new().nfa_size_limit(limit).match_kind(kind))
                .build_many(&patterns)
                .map_err(|_| DetectorError::TooLarge)
        };
        let matcher = Matcher {
            first: build(MatchKind::LeftmostFirst)?,
            every: build(MatchKind::All)?,
            names: selected.iter().map(|d| d.name.clone()).collect(),
            validators: selected.iter().map(|d| d.validator).collect(),
        };
        Ok(Selection {
            indices,
            matcher: Some(Arc::new(matcher)),
        })
    }
}

impl fmt::Debug for Detectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detectors")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Selection {
    /// Whether the selection names no detector (and so finds nothing).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

impl fmt::Debug for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = match &self.matcher {
            Some(matcher) => matcher.names.iter().map(String::as_str).collect(),
            None => Vec::new(),
        };
        f.debug_tuple("Selection").field(&names).finish()
    }
}

impl PartialEq for Selection {
    fn eq(&self, other: &Self) -> bool {
        self.indices == other.indices
    }
}

impl Eq for Selection {}

/// The compiled form of a selection: pattern `i` of each regex is
/// detector `names[i]`.
struct Matcher {
    /// Leftmost-first: finds the next match start, and a pattern's end.
    first: Regex,
    /// Every pattern at once: which patterns match at a given start.
    every: Regex,
    names: Vec<String>,
    validators: Vec<Option<Validator>>,
}

/// A detected span of text, by byte offsets, and the pattern that found
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    detector: usize,
}

impl Matcher {
    /// The detected spans of `text`, sorted and merged.
    fn spans(&self, text: &str) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        let mut matching = PatternSet::new(self.names.len());
        let mut at = 0;
        while at < text.len() {
            let Some(found) = self.first.search(&Input::new(text).range(at..)) else {
                break;
            };
            let start = found.start();
            let candidate =
                self.longest_at(text, start, found.pattern(), found.end(), &mut matching);
            if let Some(span) = candidate {
                match spans.last_mut() {
                    // Starts only grow, so a span can only overlap the last.
                    Some(last) if span.start < last.end => last.end = last.end.max(span.end),
                    _ => spans.push(span),
                }
            }
            // Resume one character after the start, not at the end: a
            // match of another detector may begin inside this one.
            at = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
        spans
    }

    /// The longest valid match of any pattern at `start`, given that
    /// `pattern` matched there up to `end`. `matching` is scratch space.
    fn longest_at(
        &self,
        text: &str,
        start: usize,
        pattern: PatternID,
        end: usize,
        matching: &mut PatternSet,
    ) -> Option<Span> {
        // One anchored pass tells which patterns match here at all; most
        // of the time only `pattern` does, and no other search is needed.
        let here = Input::new(text).range(start..);
        matching.clear();
        self.every
            .which_overlapping_matches(&here.clone().anchored(Anchored::Yes), matching);
        let others = matching.iter().filter(|&id| id != pattern);
        let ends = std::iter::once((pattern, Some(end))).chain(others.map(|id| {
            let input = here.clone().anchored(Anchored::Pattern(id));
            (id, self.first.search(&input).map(|found| found.end()))
        }));

        let mut best: Option<Span> = None;
        for (id, end) in ends {
            let Some(end) = end else { continue };
            let index = id.as_usize();
            let length = match self.validators[index] {
                Some(validate) => validate(&text[start..end]).unwrap_or(0),
                None => end - start,
            };
            if length > 0 && best.is_none_or(|best| start + length > best.end) {
                best = Some(Span {
                    start,
                    end: start + length,
                    detector: index,
                });
            }
        }
        best
    }
}

/// A custom pattern must compile on its own, within the size limit that
/// the checker applies.
fn check_pattern(name: &str, pattern: &str) -> Result<(), DetectorError> {
    let config = meta::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT));
    match Regex::builder().configure(config).build(pattern) {
        Ok(_) => Ok(()),
        Err(error) => {
            let reason = if error.size_limit().is_some() {
                "the regex is too large".to_string()
            } else {
                error
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid regex")
                    .to_string()
            };
            Err(DetectorError::InvalidRegex {
                name: name.to_string(),
                reason,
            })
        }
    }
}

/// Area 000, 666 or 900-999, group 00 and serial 0000 are never issued;
/// both separators must be the same.
fn valid_ssn(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (area, group, serial) = (&text[0..3], &text[4..6], &text[7..11]);
    let valid = bytes[3] == bytes[6]
        && area != "000"
        && area != "666"
        && !area.starts_with('9')
        && group != "00"
        && serial != "0000";
    valid.then_some(text.len())
}

/// E.164 numbers have at most 15 digits; local numbers at least 7.
fn valid_phone(text: &str) -> Option<usize> {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    (7..=15).contains(&digits).then_some(text.len())
}

/// 13 to 19 digits whose Luhn sum is a multiple of 10.
fn valid_card(text: &str) -> Option<usize> {
    let digits = text
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'));
    let (mut count, mut sum) = (0, 0);
    for digit in digits {
        // Every second digit from the right is doubled, its digits summed.
        sum += match count % 2 {
            0 => digit,
            _ if digit >= 5 => digit * 2 - 9,
            _ => digit * 2,
        };
        count += 1;
    }
    ((13..=19).contains(&count) && sum % 10 == 0).then_some(text.len())
}

/// IPv4 candidates are exact; IPv6 candidates must parse, possibly
/// without a trailing `:` that ended a sentence (`fe80::1: down`).
fn valid_ip(text: &str) -> Option<usize> {
    if !text.contains(':') {
        return Some(text.len());
    }
    if !text.bytes().any(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let parses = |candidate: &str| candidate.parse::<std::net::Ipv6Addr>().is_ok();
    if parses(text) {
        return Some(text.len());
    }
    let trimmed = text.strip_suffix(':')?;
    parses(trimmed).then_some(trimmed.len())
}

/// Leaves out trailing sentence punctuation, and a closing parenthesis
/// that the URL did not open.
fn valid_url(text: &str) -> Option<usize> {
    let mut url = text;
    loop {
        let trimmed = url.trim_end_matches(['.', ',', ';', ':', '!', '?', ']', '}']);
        let unbalanced =
            trimmed.ends_with(')') && trimmed.matches(')').count() > trimmed.matches('(').count();
        let trimmed = if unbalanced {
            &trimmed[..trimmed.len() - 1]
        } else {
            trimmed
        };
        if trimmed.len() == url.len() {
            break;
        }
        url = trimmed;
    }
    // `https://` alone is no URL.
    let host_start = url.find("://").map_or(4, |at| at + 3);
    (url.len() > host_start).then_some(url.len())
}

#[cfg(test)]
mod tests;
