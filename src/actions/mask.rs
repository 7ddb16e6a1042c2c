//! `mask PATH [keep N]` (and `receive PATH masked`, which keeps nothing):
//! every character of a string but the last N becomes `*`, so the string
//! keeps its length in characters (SPEC 2.3.7). Only strings can be
//! masked: anything else is a filter error, never a value let through.

use serde_json::Value;

use super::{ActionError, type_name};

/// Masks a string value in place, keeping its last `keep` characters.
/// A string of at most `keep` characters is left as it is.
pub fn apply(value: &mut Value, keep: u32) -> Result<(), ActionError> {
    let Value::String(text) = value else {
        return Err(ActionError::MaskNotString {
            found: type_name(value),
        });
    };
    *text = mask(text, keep);
    Ok(())
}

/// `text` with every character but the last `keep` replaced by `*`.
pub fn mask(text: &str, keep: u32) -> String {
    let length = text.chars().count();
    let keep = usize::try_from(keep).unwrap_or(usize::MAX).min(length);
    let hidden = length - keep;
    let mut masked = String::with_capacity(text.len());
    masked.extend(std::iter::repeat_n('*', hidden));
    masked.extend(text.chars().skip(hidden));
    masked
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// (input, keep, output).
    #[test]
    fn cases() {
        let cases: [(Value, u32, Result<Value, ActionError>); 10] = [
            (json!("123-45-6789"), 4, Ok(json!("*******6789"))),
            (json!("Ada"), 0, Ok(json!("***"))),
            (json!("Ada"), 3, Ok(json!("Ada"))),
            (json!("Ada"), 10, Ok(json!("Ada"))),
            (json!(""), 2, Ok(json!(""))),
            // Characters, not bytes: `é` and `😀` are one `*` each.
            (json!("Zoë 😀 x"), 1, Ok(json!("******x"))),
            (
                json!(1234),
                2,
                Err(ActionError::MaskNotString { found: "a number" }),
            ),
            (
                json!({"a": "b"}),
                0,
                Err(ActionError::MaskNotString { found: "an object" }),
            ),
            (
                json!(["a"]),
                0,
                Err(ActionError::MaskNotString { found: "an array" }),
            ),
            (
                json!(null),
                0,
                Err(ActionError::MaskNotString { found: "null" }),
            ),
        ];
        for (input, keep, expected) in cases {
            let mut value = input.clone();
            let result = apply(&mut value, keep).map(|()| value.clone());
            assert_eq!(result, expected, "{input} keep {keep}");
            if expected.is_err() {
                assert_eq!(value, input, "a failed mask changes nothing");
            }
        }
        assert_eq!(
            ActionError::MaskNotString { found: "a boolean" }.to_string(),
            "`mask` applies to strings only, not to a boolean"
        );
    }
}
