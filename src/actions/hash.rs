//! `hash PATH` (and `receive PATH hashed`): the value, whatever its JSON
//! type, becomes the keyed pseudonym `hmac:v1:KEY_ID:BASE64URL` (SPEC
//! 2.3.7). Equal values give equal pseudonyms, so recipients can join on
//! them without seeing the value.

use serde_json::Value;

use super::ActionError;
use crate::keys::{KeyError, KeyRing};

/// Replaces `value` by its pseudonym under `key`, or the default key.
pub fn apply(value: &mut Value, key: Option<&str>, keys: &KeyRing) -> Result<(), ActionError> {
    let hashed = keys.hash(key, value).map_err(|error| match error {
        KeyError::UnknownKey { id } => ActionError::UnknownKey { id },
        KeyError::NoKeys => ActionError::NoKeys { action: "hash" },
        _ => ActionError::HashFailed,
    })?;
    *value = Value::String(hashed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// (input, another input, whether their pseudonyms are equal).
    #[test]
    fn cases() {
        let keys = KeyRing::ephemeral();
        let cases: Vec<(Value, Value, bool)> = vec![
            (json!("MRN-0012345"), json!("MRN-0012345"), true),
            (json!("MRN-0012345"), json!("MRN-0012346"), false),
            (json!(42), json!(42), true),
            (json!(42), json!("42"), false),
            (json!({"a": 1, "b": [2]}), json!({"b": [2], "a": 1}), true),
            (json!(null), json!(false), false),
        ];
        for (first, second, equal) in cases {
            let (mut a, mut b) = (first.clone(), second.clone());
            apply(&mut a, None, &keys).unwrap();
            apply(&mut b, None, &keys).unwrap();
            assert!(a.as_str().unwrap().starts_with("hmac:v1:ephemeral:"), "{a}");
            assert_eq!(a == b, equal, "{first} and {second}");
        }
    }

    #[test]
    fn an_unknown_key_is_an_error() {
        let keys = KeyRing::ephemeral();
        let mut value = json!("x");
        assert_eq!(
            apply(&mut value, Some("nope"), &keys),
            Err(ActionError::UnknownKey { id: "nope".into() })
        );
        assert_eq!(value, json!("x"));
    }
}
