//! Running the `test` blocks of a rule set against the engine.
//!
//! A test publishes one event and states what some plugins get. Pure: the
//! caller prints the results.

use serde_json::{Map, Value};

use super::Engine;
use super::ast::{ExpectKind, Expectation, Test};
use super::decide::{BlockReason, Event, Outcome, json_eq};
use super::source::Span;
use crate::actions::location::CompiledPath;
use crate::config::FilterMode;
use crate::keys::KeyRing;

/// In an expected payload, this string stands for any encrypted value.
pub const ANY_ENCRYPTED: &str = "<encrypted>";
/// In an expected payload, this string stands for any hashed value.
pub const ANY_HASHED: &str = "<hashed>";

/// The result of one test block.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub name: String,
    pub span: Span,
    /// One line per expectation that did not hold; empty when it passed.
    pub failures: Vec<String>,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every test against `engine`.
pub fn run(engine: &Engine, tests: &[&Test], keys: &KeyRing, mode: FilterMode) -> Vec<TestResult> {
    tests
        .iter()
        .map(|test| run_one(engine, test, keys, mode))
        .collect()
}

fn run_one(engine: &Engine, test: &Test, keys: &KeyRing, mode: FilterMode) -> TestResult {
    let attributes = match &test.attributes {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let event = Event {
        topic: test.topic.text.clone(),
        publisher: test.publisher.text.clone(),
        attributes,
        payload: test.payload.clone(),
    };
    let mut result = TestResult {
        name: test.name.text.clone(),
        span: test.span,
        failures: Vec::new(),
    };

    let decision = match engine.decide(&event, keys, mode) {
        Ok(decision) => decision,
        Err(rejection) => {
            let why = match &rejection {
                super::Rejection::UndeclaredField { model, field } => {
                    format!("field `{field}` is not declared by model `{model}`")
                }
                other => other.to_string(),
            };
            result
                .failures
                .push(format!("the event was rejected: {why}"));
            return result;
        }
    };

    for expectation in &test.expectations {
        let delivery = decision.delivery(&expectation.plugin.text);
        let failure = match (&expectation.kind, delivery.map(|d| &d.outcome)) {
            (ExpectKind::Blocked, Some(Outcome::Blocked(_))) => None,
            (ExpectKind::Blocked, Some(Outcome::Deliver { payload, .. })) => {
                Some(format!("it received {}", compact(payload)))
            }
            (ExpectKind::Blocked, None) => Some("it is not a recipient".to_string()),
            (ExpectKind::Receives(expected), Some(Outcome::Deliver { payload, .. })) => {
                (!is_subset(expected, payload)).then(|| format!("it received {}", compact(payload)))
            }
            (ExpectKind::Receives(_), Some(Outcome::Blocked(reason))) => Some(blocked_by(reason)),
            (ExpectKind::Receives(_), None) => Some("it is not a recipient".to_string()),
            (ExpectKind::NotReceives(path), Some(Outcome::Deliver { payload, .. })) => {
                let present = match CompiledPath::compile(path) {
                    Ok(compiled) => {
                        let root = serde_json::json!({ "payload": payload });
                        !compiled.values(&root).is_empty()
                    }
                    Err(_) => true,
                };
                present.then(|| format!("it received {}", compact(payload)))
            }
            (ExpectKind::NotReceives(_), _) => None,
        };
        if let Some(failure) = failure {
            result
                .failures
                .push(format!("expected {}, but {failure}", describe(expectation)));
        }
    }
    result
}

fn blocked_by(reason: &BlockReason) -> String {
    match reason {
        BlockReason::Rules(rules) => {
            let names: Vec<String> = rules.iter().map(|r| format!("\"{r}\"")).collect();
            format!("it was blocked by {}", names.join(", "))
        }
        BlockReason::FilterError => "it was blocked by a filter error".to_string(),
    }
}

fn describe(expectation: &Expectation) -> String {
    let plugin = &expectation.plugin.text;
    match &expectation.kind {
        ExpectKind::Blocked => format!("\"{plugin}\" blocked"),
        ExpectKind::Receives(value) => format!("\"{plugin}\" receives {}", compact(value)),
        ExpectKind::NotReceives(path) => format!("\"{plugin}\" not receives {}", path.text),
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Whether every field of `expected` is in `actual` with that value;
/// objects nest (a nested object is itself a subset match), and the
/// placeholders [`ANY_ENCRYPTED`] and [`ANY_HASHED`] match any value of
/// that kind.
pub fn is_subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => expected
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|found| is_subset(value, found))),
        (Value::String(placeholder), Value::String(found)) if placeholder == ANY_ENCRYPTED => {
            found.starts_with("enc:v1:")
        }
        (Value::String(placeholder), Value::String(found)) if placeholder == ANY_HASHED => {
            found.starts_with("hmac:v1:")
        }
        _ => json_eq(expected, actual),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_matching() {
        let actual = json!({"ward": "3B", "address": {"city": "Leeds", "zip": "LS1"}, "mrn": "hmac:v1:k:abc"});
        assert!(is_subset(&json!({"ward": "3B"}), &actual));
        assert!(is_subset(&json!({"address": {"city": "Leeds"}}), &actual));
        assert!(is_subset(&json!({"mrn": "<hashed>"}), &actual));
        assert!(!is_subset(&json!({"mrn": "<encrypted>"}), &actual));
        assert!(!is_subset(&json!({"ward": "3C"}), &actual));
        assert!(!is_subset(&json!({"name": "Ada"}), &actual));
    }
}
