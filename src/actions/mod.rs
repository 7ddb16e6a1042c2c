//! Field actions: what `strip`, `encrypt`, `hash`, `mask` and `redact` do
//! to one value of an event.
//!
//! Pure functions over serde_json values, one file per action with its
//! table of cases; no I/O and no printing. The decision engine finds the
//! locations with [`location::CompiledPath`], picks the strongest action
//! per location (SPEC 2.3.5) and calls [`apply`] for each. Keys come from
//! [`crate::keys::KeyRing`], detectors from [`detectors::Detectors`], both
//! through [`Tools`].
//!
//! Errors name the action and the key or value type, never a value: they
//! end up in audit records and logs.

pub mod detectors;
pub mod encrypt;
pub mod hash;
pub mod location;
pub mod mask;
pub mod redact;
pub mod strip;

use serde_json::Value;

use crate::keys::KeyRing;
pub use detectors::{DetectorError, Detectors, Selection};
pub use location::{CompiledPath, Step};

/// One field action, compiled: its spec, without the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldAction {
    Strip,
    /// Encrypt with the named key, or the default key.
    Encrypt {
        key: Option<String>,
    },
    /// Pseudonymise with the named key, or the default key.
    Hash {
        key: Option<String>,
    },
    /// Replace every character but the last `keep` by `*`.
    Mask {
        keep: u32,
    },
    Redact {
        detectors: Selection,
    },
}

impl FieldAction {
    /// When several actions reach one value, the strongest wins: strip,
    /// then encrypt, hash, mask, redact (SPEC 2.3.5).
    pub fn strength(&self) -> u8 {
        match self {
            FieldAction::Strip => 5,
            FieldAction::Encrypt { .. } => 4,
            FieldAction::Hash { .. } => 3,
            FieldAction::Mask { .. } => 2,
            FieldAction::Redact { .. } => 1,
        }
    }

    /// The rule-language keyword of the action.
    pub fn keyword(&self) -> &'static str {
        match self {
            FieldAction::Strip => "strip",
            FieldAction::Encrypt { .. } => "encrypt",
            FieldAction::Hash { .. } => "hash",
            FieldAction::Mask { .. } => "mask",
            FieldAction::Redact { .. } => "redact",
        }
    }
}

/// What the actions need beyond the value: keys and detectors.
#[derive(Clone, Copy, Debug)]
pub struct Tools<'a> {
    pub keys: &'a KeyRing,
    pub detectors: &'a Detectors,
}

/// Why an action could not be applied: a filter error (SPEC 2.3.6). The
/// messages name keys and types, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("unknown key `{id}`")]
    UnknownKey { id: String },
    #[error("no key to {action} with: the key file holds no keys")]
    NoKeys { action: &'static str },
    #[error("the value could not be encrypted")]
    EncryptionFailed,
    #[error("the value could not be hashed")]
    HashFailed,
    #[error("`mask` applies to strings only, not to {found}")]
    MaskNotString { found: &'static str },
    #[error("`strip` cannot remove the whole event")]
    StripRoot,
}

/// Applies `action` to the value at `location` in `root` (the event
/// object), in place. A location with no value is no error: the action
/// does nothing (SPEC 2.3.6). On error `root` is unchanged.
pub fn apply(
    action: &FieldAction,
    root: &mut Value,
    location: &[Step],
    tools: &Tools,
) -> Result<(), ActionError> {
    match action {
        // Strip works on the parent; the others on the value itself.
        FieldAction::Strip => strip::apply(root, location),
        FieldAction::Encrypt { key } => transform_at(root, location, |value| {
            encrypt::apply(value, key.as_deref(), tools.keys)
        }),
        FieldAction::Hash { key } => transform_at(root, location, |value| {
            hash::apply(value, key.as_deref(), tools.keys)
        }),
        FieldAction::Mask { keep } => {
            transform_at(root, location, |value| mask::apply(value, *keep))
        }
        FieldAction::Redact { detectors } => transform_at(root, location, |value| {
            redact::apply(value, tools.detectors, detectors);
            Ok(())
        }),
    }
}

/// Runs `transform` on the value at `location`, when there is one.
fn transform_at(
    root: &mut Value,
    location: &[Step],
    transform: impl FnOnce(&mut Value) -> Result<(), ActionError>,
) -> Result<(), ActionError> {
    match location::get_mut(root, location) {
        Some(value) => transform(value),
        None => Ok(()),
    }
}

/// The JSON type of a value, in rule-language words.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(name: &str) -> Step {
        Step::Key(name.to_string())
    }

    #[test]
    fn the_tools_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<KeyRing>();
        shared::<Detectors>();
        shared::<FieldAction>();
    }

    #[test]
    fn strengths_follow_the_contract() {
        let detectors = Detectors::new(&[]).unwrap();
        let selection = detectors.select(&["ssn".to_string()]).unwrap();
        let actions = [
            FieldAction::Strip,
            FieldAction::Encrypt { key: None },
            FieldAction::Hash { key: None },
            FieldAction::Mask { keep: 4 },
            FieldAction::Redact {
                detectors: selection,
            },
        ];
        let strengths: Vec<u8> = actions.iter().map(FieldAction::strength).collect();
        assert_eq!(strengths, [5, 4, 3, 2, 1]);
        let keywords: Vec<&str> = actions.iter().map(FieldAction::keyword).collect();
        assert_eq!(keywords, ["strip", "encrypt", "hash", "mask", "redact"]);
    }

    /// Every action through [`apply`], on a location that exists and on
    /// one that does not.
    #[test]
    fn apply_dispatches_and_ignores_absent_locations() {
        let keys = KeyRing::ephemeral();
        let detectors = Detectors::new(&[]).unwrap();
        let tools = Tools {
            keys: &keys,
            detectors: &detectors,
        };
        let event = json!({"topic": "t", "payload": {
            "ssn": "123-45-6789", "note": "call 555-123-4567", "name": "Ada", "tags": [1, 2]
        }});
        let phone = detectors.select(&["phone".to_string()]).unwrap();
        let cases: Vec<(FieldAction, Vec<Step>, Value)> = vec![
            (
                FieldAction::Strip,
                vec![key("payload"), key("ssn")],
                json!({"note": "call 555-123-4567", "name": "Ada", "tags": [1, 2]}),
            ),
            (
                FieldAction::Strip,
                vec![key("payload"), key("tags"), Step::Index(0)],
                json!({"ssn": "123-45-6789", "note": "call 555-123-4567", "name": "Ada", "tags": [2]}),
            ),
            (
                FieldAction::Mask { keep: 4 },
                vec![key("payload"), key("ssn")],
                json!({"ssn": "*******6789", "note": "call 555-123-4567", "name": "Ada", "tags": [1, 2]}),
            ),
            (
                FieldAction::Redact { detectors: phone },
                vec![key("payload"), key("note")],
                json!({"ssn": "123-45-6789", "note": "call [REDACTED:phone]", "name": "Ada", "tags": [1, 2]}),
            ),
        ];
        for (action, location, expected) in cases {
            let mut root = event.clone();
            apply(&action, &mut root, &location, &tools).unwrap();
            assert_eq!(root["payload"], expected, "{action:?} at {location:?}");

            let mut root = event.clone();
            let absent = [key("payload"), key("absent"), key("deeper")];
            apply(&action, &mut root, &absent, &tools).unwrap();
            assert_eq!(root, event, "{action:?} on an absent location");
        }

        let mut root = event.clone();
        let name = [key("payload"), key("name")];
        apply(
            &FieldAction::Encrypt { key: None },
            &mut root,
            &name,
            &tools,
        )
        .unwrap();
        let encrypted = root["payload"]["name"].as_str().unwrap();
        assert_eq!(keys.decrypt(encrypted).unwrap(), json!("Ada"));
        apply(
            &FieldAction::Hash { key: None },
            &mut root,
            &[key("topic")],
            &tools,
        )
        .unwrap();
        assert_eq!(root["topic"], json!(keys.hash(None, &json!("t")).unwrap()));
    }

    #[test]
    fn failed_actions_leave_the_event_unchanged() {
        let keys = KeyRing::ephemeral();
        let detectors = Detectors::new(&[]).unwrap();
        let tools = Tools {
            keys: &keys,
            detectors: &detectors,
        };
        let event = json!({"payload": {"address": {"city": "Oslo"}}});
        let address = [key("payload"), key("address")];
        let cases = [
            (
                FieldAction::Mask { keep: 0 },
                &address[..],
                ActionError::MaskNotString { found: "an object" },
            ),
            (
                FieldAction::Encrypt {
                    key: Some("k1".into()),
                },
                &address[..],
                ActionError::UnknownKey { id: "k1".into() },
            ),
            (
                FieldAction::Hash {
                    key: Some("k1".into()),
                },
                &address[..],
                ActionError::UnknownKey { id: "k1".into() },
            ),
            (FieldAction::Strip, &[][..], ActionError::StripRoot),
        ];
        for (action, location, expected) in cases {
            let mut root = event.clone();
            let error = apply(&action, &mut root, location, &tools).unwrap_err();
            assert_eq!(error, expected);
            assert_eq!(root, event);
        }
        assert_eq!(
            ActionError::UnknownKey { id: "k1".into() }.to_string(),
            "unknown key `k1`"
        );
        assert_eq!(
            ActionError::MaskNotString { found: "a number" }.to_string(),
            "`mask` applies to strings only, not to a number"
        );
    }
}
