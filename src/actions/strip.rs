//! `strip PATH`: the member or array element is removed from the event.

use serde_json::Value;

use super::ActionError;
use super::location::{self, Step};

/// Removes the value at `location`; an absent location is left alone.
/// Stripping an array element shifts the later ones: strip several
/// elements of one array in descending order.
pub fn apply(root: &mut Value, location: &[Step]) -> Result<(), ActionError> {
    if location.is_empty() {
        return Err(ActionError::StripRoot);
    }
    location::remove(root, location);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(name: &str) -> Step {
        Step::Key(name.to_string())
    }

    /// (input, location, output).
    #[test]
    fn cases() {
        let cases: Vec<(Value, Vec<Step>, Value)> = vec![
            (json!({"a": 1, "b": 2}), vec![key("a")], json!({"b": 2})),
            (
                json!({"a": {"b": {"c": 1}}}),
                vec![key("a"), key("b")],
                json!({"a": {}}),
            ),
            (
                json!({"a": [1, 2, 3]}),
                vec![key("a"), Step::Index(1)],
                json!({"a": [1, 3]}),
            ),
            (
                json!({"a": [1]}),
                vec![key("a"), Step::Index(4)],
                json!({"a": [1]}),
            ),
            (json!({"a": 1}), vec![key("missing")], json!({"a": 1})),
            (
                json!({"a": "text"}),
                vec![key("a"), key("b")],
                json!({"a": "text"}),
            ),
            (json!({"a": null}), vec![key("a")], json!({})),
        ];
        for (input, location, expected) in cases {
            let mut value = input.clone();
            apply(&mut value, &location).unwrap();
            assert_eq!(value, expected, "{input} at {location:?}");
        }
        assert_eq!(apply(&mut json!({}), &[]), Err(ActionError::StripRoot));
    }
}
