//! Which topics a rule's condition can hold for, read off its tests of
//! `topic`.

use super::*;

/// Which topics a rule can apply to, as far as its condition tells.
#[derive(Clone, Debug)]
pub(super) enum Scope {
    /// Any topic at all.
    Any,
    /// Only topics matching one of these; empty means no topic.
    Topics(Vec<TopicPattern>),
}

/// The topics on which a condition surely holds, whatever else the event
/// carries: the under-estimate that `scope_of` is the over-estimate of.
/// Only tests of `topic` can make a condition hold for sure.
pub(super) fn sure_scope(condition: &Condition) -> Scope {
    let nowhere = || Scope::Topics(Vec::new());
    match condition {
        Condition::Check(check) if check.path.is_member("topic") => match &check.op {
            TestOp::Compare(CompareOp::Eq, literal) => literal
                .value
                .as_str()
                .and_then(|t| TopicPattern::parse_topic(t).ok())
                .map_or_else(nowhere, |p| Scope::Topics(vec![p])),
            TestOp::Matches(pattern) => TopicPattern::parse(&pattern.text)
                .map_or_else(|_| nowhere(), |p| Scope::Topics(vec![p])),
            TestOp::In(literals) => Scope::Topics(
                literals
                    .iter()
                    .filter_map(|l| {
                        l.value
                            .as_str()
                            .and_then(|t| TopicPattern::parse_topic(t).ok())
                    })
                    .collect(),
            ),
            _ => nowhere(),
        },
        Condition::Check(_) | Condition::Not(_) => nowhere(),
        Condition::Or(terms) => {
            let mut union = Vec::new();
            for term in terms {
                match sure_scope(term) {
                    Scope::Any => return Scope::Any,
                    Scope::Topics(patterns) => union.extend(patterns),
                }
            }
            Scope::Topics(union)
        }
        Condition::And(terms) => {
            terms
                .iter()
                .map(sure_scope)
                .fold(Scope::Any, |a, b| match (a, b) {
                    (Scope::Any, other) | (other, Scope::Any) => other,
                    // A topic surely in both lies within a pattern of each side.
                    (Scope::Topics(a), Scope::Topics(b)) => {
                        let from_a = a.iter().filter(|p| b.iter().any(|q| p.is_within(q)));
                        let from_b = b.iter().filter(|q| a.iter().any(|p| q.is_within(p)));
                        Scope::Topics(from_a.chain(from_b).cloned().collect())
                    }
                })
        }
    }
}

/// The topic patterns a condition can hold for, or `None` when it may hold
/// for any topic. A superset: the condition itself must still be tested.
pub(crate) fn topic_scope(condition: &Condition) -> Option<Vec<TopicPattern>> {
    match scope_of(condition) {
        Scope::Any => None,
        Scope::Topics(patterns) => Some(patterns),
    }
}

/// The topics a condition can hold for; a superset, never too narrow.
pub(super) fn scope_of(condition: &Condition) -> Scope {
    match condition {
        Condition::Check(check) if check.path.is_member("topic") => match &check.op {
            TestOp::Compare(CompareOp::Eq, literal) => literal
                .value
                .as_str()
                .and_then(|t| TopicPattern::parse_topic(t).ok())
                .map_or(Scope::Any, |p| Scope::Topics(vec![p])),
            TestOp::Matches(pattern) => {
                TopicPattern::parse(&pattern.text).map_or(Scope::Any, |p| Scope::Topics(vec![p]))
            }
            TestOp::In(literals) => {
                let patterns: Option<Vec<TopicPattern>> = literals
                    .iter()
                    .map(|l| {
                        l.value
                            .as_str()
                            .and_then(|t| TopicPattern::parse_topic(t).ok())
                    })
                    .collect();
                patterns.map_or(Scope::Any, Scope::Topics)
            }
            _ => Scope::Any,
        },
        Condition::Check(_) | Condition::Not(_) => Scope::Any,
        Condition::And(terms) => terms.iter().map(scope_of).fold(Scope::Any, intersect),
        Condition::Or(terms) => {
            let mut union = Vec::new();
            for term in terms {
                match scope_of(term) {
                    Scope::Any => return Scope::Any,
                    Scope::Topics(patterns) => union.extend(patterns),
                }
            }
            Scope::Topics(union)
        }
    }
}

pub(super) fn intersect(a: Scope, b: Scope) -> Scope {
    match (a, b) {
        (Scope::Any, other) | (other, Scope::Any) => other,
        (Scope::Topics(a), Scope::Topics(b)) => Scope::Topics(
            a.into_iter()
                .filter(|p| b.iter().any(|q| p.overlaps(q)))
                .collect(),
        ),
    }
}

pub(super) fn scopes_overlap(a: &Scope, b: &Scope) -> bool {
    match (a, b) {
        (Scope::Any, _) | (_, Scope::Any) => true,
        (Scope::Topics(a), Scope::Topics(b)) => a.iter().any(|p| b.iter().any(|q| p.overlaps(q))),
    }
}
