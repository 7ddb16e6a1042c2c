//! `encrypt PATH [with key "ID"]`: the value, whatever its JSON type,
//! becomes the string `enc:v1:KEY_ID:BASE64URL` (SPEC 2.3.7), which a
//! holder of the key decrypts back into the same JSON value.

use serde_json::Value;

use super::ActionError;
use crate::keys::{KeyError, KeyRing};

/// Replaces `value` by its encryption under `key`, or the default key.
pub fn apply(value: &mut Value, key: Option<&str>, keys: &KeyRing) -> Result<(), ActionError> {
    let encrypted = keys.encrypt(key, value).map_err(|error| match error {
        KeyError::UnknownKey { id } => ActionError::UnknownKey { id },
        KeyError::NoKeys => ActionError::NoKeys { action: "encrypt" },
        _ => ActionError::EncryptionFailed,
    })?;
    *value = Value::String(encrypted);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// (input, key) — the output is random, so each case is checked by
    /// its prefix and by decrypting it.
    #[test]
    fn cases() {
        let keys = KeyRing::ephemeral();
        let id = keys.default_id().unwrap().to_string();
        let cases: Vec<(Value, Option<&str>)> = vec![
            (json!("Ada Lovelace"), None),
            (json!(1815), Some(&id)),
            (json!({"street": "1 Main St", "city": "Oslo"}), None),
            (json!([1, "two", null]), None),
            (json!(null), None),
            (json!(""), None),
        ];
        for (input, key) in cases {
            let mut value = input.clone();
            apply(&mut value, key, &keys).unwrap();
            let text = value.as_str().unwrap();
            assert!(text.starts_with(&format!("enc:v1:{id}:")), "{text}");
            assert_eq!(keys.decrypt(text).unwrap(), input);
        }
    }

    #[test]
    fn failures_name_the_key_and_keep_the_value() {
        let keys = KeyRing::ephemeral();
        let mut value = json!("Ada");
        let error = apply(&mut value, Some("k20260101T000000Z"), &keys).unwrap_err();
        assert_eq!(
            error,
            ActionError::UnknownKey {
                id: "k20260101T000000Z".into()
            }
        );
        assert_eq!(value, json!("Ada"));
    }
}
