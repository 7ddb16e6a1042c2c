//! `redact PATH using DETECTOR, ...`: every span that a selected detector
//! finds becomes `[REDACTED:NAME]` (SPEC 2.3.7).
//!
//! A string is redacted in place. An object or array has every string and
//! number inside it redacted, at any depth; member names are left as they
//! are. A number is redacted through its JSON text, and becomes the
//! redacted string only when something was found (`5551234567` with
//! `phone` becomes `"[REDACTED:phone]"`; `42` stays `42`). Booleans and
//! `null` carry no text and are left alone.

use serde_json::Value;

use super::detectors::{Detectors, Selection};

/// Redacts `value` in place with the selected detectors.
pub fn apply(value: &mut Value, detectors: &Detectors, selection: &Selection) {
    match value {
        Value::String(text) => {
            if let Some(redacted) = detectors.redact(text, selection) {
                *text = redacted;
            }
        }
        Value::Number(number) => {
            if let Some(redacted) = detectors.redact(&number.to_string(), selection) {
                *value = Value::String(redacted);
            }
        }
        Value::Array(items) => {
            for item in items {
                apply(item, detectors, selection);
            }
        }
        Value::Object(members) => {
            for member in members.values_mut() {
                apply(member, detectors, selection);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// (input, detectors, output).
    #[test]
    fn cases() {
        let detectors = Detectors::new(&[]).unwrap();
        let cases: Vec<(Value, &[&str], Value)> = vec![
            (
                json!("Call 555-123-4567 or mail ada@example.org"),
                &["phone", "email"],
                json!("Call [REDACTED:phone] or mail [REDACTED:email]"),
            ),
            (
                json!("Call 555-123-4567 or mail ada@example.org"),
                &["email"],
                json!("Call 555-123-4567 or mail [REDACTED:email]"),
            ),
            (
                json!("nothing to see"),
                &["ssn", "phone"],
                json!("nothing to see"),
            ),
            (
                json!({"note": "SSN 123-45-6789", "n": [{"deep": "MRN-0012345"}], "ok": true}),
                &["ssn", "mrn"],
                json!({"note": "SSN [REDACTED:ssn]", "n": [{"deep": "[REDACTED:mrn]"}], "ok": true}),
            ),
            (
                json!({"123-45-6789": "key names stay"}),
                &["ssn"],
                json!({"123-45-6789": "key names stay"}),
            ),
            (json!(5551234567u64), &["phone"], json!("[REDACTED:phone]")),
            (json!(42), &["phone", "zip"], json!(42)),
            (json!(2.5), &["date"], json!(2.5)),
            (
                json!([12345, "x"]),
                &["zip"],
                json!(["[REDACTED:zip]", "x"]),
            ),
            (json!(null), &["ssn"], json!(null)),
            (json!(false), &["ssn"], json!(false)),
            (json!("MRN-0012345"), &[], json!("MRN-0012345")),
        ];
        for (input, names, expected) in cases {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let selection = detectors.select(&names).unwrap();
            let mut value = input.clone();
            apply(&mut value, &detectors, &selection);
            assert_eq!(value, expected, "{input} using {names:?}");
        }
    }
}
