//! Topic patterns: `patients.*`, `messages.**`, `lab.results`.
//!
//! Topics split on `.`. In a pattern, `*` matches exactly one segment and
//! `**` one or more; `**` may stand only last. A concrete topic (as a test
//! publishes it) has no wildcard at all.

use std::fmt;

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: one or more segments; always last.
    Rest,
}

/// A parsed, valid topic pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    segments: Vec<Segment>,
}

/// Why a pattern is not valid, in words for the rule author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError(pub &'static str);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl TopicPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError("a topic cannot be empty"));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let segment = match *part {
                "" => return Err(PatternError("a topic segment cannot be empty")),
                "*" => Segment::One,
                "**" if index + 1 == parts.len() => Segment::Rest,
                "**" => return Err(PatternError("`**` may stand only last")),
                literal if literal.contains('*') => {
                    return Err(PatternError("`*` must be a whole segment"));
                }
                literal if !literal.chars().all(is_topic_char) => {
                    return Err(PatternError(
                        "topic segments use letters, digits, `_` and `-` only",
                    ));
                }
                literal => Segment::Literal(literal.to_string()),
            };
            segments.push(segment);
        }
        Ok(TopicPattern { segments })
    }

    /// Parses a concrete topic: a pattern without wildcards.
    pub fn parse_topic(text: &str) -> Result<Self, PatternError> {
        let pattern = TopicPattern::parse(text)?;
        if pattern.is_concrete() {
            Ok(pattern)
        } else {
            Err(PatternError("a published topic cannot contain `*`"))
        }
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn is_concrete(&self) -> bool {
        self.segments
            .iter()
            .all(|segment| matches!(segment, Segment::Literal(_)))
    }

    /// Whether a concrete topic matches this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return parts.next().is_some_and(|part| !part.is_empty()),
                Segment::One => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(literal) => match parts.next() {
                    Some(part) if part == literal => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// Whether some topic matches both patterns.
    pub fn overlaps(&self, other: &TopicPattern) -> bool {
        overlap(&self.segments, &other.segments)
    }

    /// Whether every topic this pattern matches is matched by `wider` too.
    pub fn is_within(&self, wider: &TopicPattern) -> bool {
        within(&self.segments, &wider.segments)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, segment) in self.segments.iter().enumerate() {
            if index > 0 {
                f.write_str(".")?;
            }
            match segment {
                Segment::Literal(literal) => f.write_str(literal)?,
                Segment::One => f.write_str("*")?,
                Segment::Rest => f.write_str("**")?,
            }
        }
        Ok(())
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn overlap(a: &[Segment], b: &[Segment]) -> bool {
    match (a.first(), b.first()) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        // `**` takes one or more segments: whatever remains on the other
        // side (at least one segment) can be absorbed.
        (Some(Segment::Rest), Some(_)) | (Some(_), Some(Segment::Rest)) => true,
        (Some(Segment::Literal(x)), Some(Segment::Literal(y))) if x != y => false,
        (Some(_), Some(_)) => overlap(&a[1..], &b[1..]),
    }
}

fn within(narrow: &[Segment], wide: &[Segment]) -> bool {
    match (narrow.first(), wide.first()) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(_), Some(Segment::Rest)) => true,
        (Some(Segment::Rest), Some(_)) => false,
        (Some(_), Some(Segment::One)) => within(&narrow[1..], &wide[1..]),
        (Some(Segment::One), Some(Segment::Literal(_))) => false,
        (Some(Segment::Literal(x)), Some(Segment::Literal(y))) => {
            x == y && within(&narrow[1..], &wide[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> TopicPattern {
        TopicPattern::parse(text).expect("valid pattern")
    }

    #[test]
    fn single_star_matches_exactly_one_segment() {
        let p = pattern("patients.*");
        assert!(p.matches("patients.admitted"));
        assert!(!p.matches("patients"));
        assert!(!p.matches("patients.admitted.late"));
    }

    #[test]
    fn double_star_matches_one_or_more_segments() {
        let p = pattern("messages.**");
        assert!(p.matches("messages.new"));
        assert!(p.matches("messages.new.urgent"));
        assert!(!p.matches("messages"));
        assert!(!p.matches("messagesx.new"));
    }

    #[test]
    fn rejects_malformed_patterns() {
        for bad in ["", "a..b", "a.**.b", "a*", ".a", "a.", "a b"] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(TopicPattern::parse_topic("a.*").is_err());
    }

    #[test]
    fn overlap_and_containment() {
        assert!(pattern("patients.*").overlaps(&pattern("patients.admitted")));
        assert!(pattern("a.**").overlaps(&pattern("*.b.c")));
        assert!(!pattern("a.*").overlaps(&pattern("a.b.c")));
        assert!(!pattern("a.b").overlaps(&pattern("a.c")));

        assert!(pattern("patients.admitted").is_within(&pattern("patients.*")));
        assert!(pattern("a.*.c").is_within(&pattern("a.**")));
        assert!(!pattern("a.**").is_within(&pattern("a.*")));
        assert!(!pattern("a.*").is_within(&pattern("a.b")));
    }
}
