//! Paths compiled for evaluation, and the locations they select in an
//! event.
//!
//! The root of every path is the event object `{"topic", "publisher",
//! "subscriber", "attributes", "payload"}`, so `payload.mrn` is the
//! location `[Key("payload"), Key("mrn")]`. A dotted path selects at most
//! one location; a JSONPath may select many. JSONPaths are parsed once, by
//! [`CompiledPath::compile`]: parsing costs several microseconds, far more
//! than evaluating.

use jsonpath_rust::parser::model::JpQuery;
use serde_json::{Map, Value};

use crate::rules::path::{PathExpr, PathKind};

/// One step from a JSON value to one of its children.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// A member of an object.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// A path ready to evaluate.
#[derive(Clone, Debug)]
pub enum CompiledPath {
    /// A plain member chain from the event root. Its segments name object
    /// members only: `payload.items.0` is the member `"0"`, not an index.
    /// `steps` are the same segments as [`Step::Key`]s.
    Dotted {
        segments: Vec<String>,
        steps: Vec<Step>,
    },
    /// Any other JSONPath, parsed once, with its text for messages.
    JsonPath { query: JpQuery, text: String },
}

impl CompiledPath {
    /// Compiles a path of a rule file. The error is the JSONPath parser's
    /// first line (the checker reports it with a span before this runs).
    pub fn compile(path: &PathExpr) -> Result<CompiledPath, String> {
        match &path.kind {
            PathKind::Dotted(segments) => Ok(CompiledPath::Dotted {
                segments: segments.clone(),
                steps: segments.iter().cloned().map(Step::Key).collect(),
            }),
            PathKind::JsonPath(text) => match jsonpath_rust::parser::parse_json_path(text) {
                Ok(query) => Ok(CompiledPath::JsonPath {
                    query,
                    text: text.clone(),
                }),
                Err(error) => Err(error
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid JSONPath")
                    .to_string()),
            },
        }
    }

    /// The steps of a plain path, which names one location whether or not
    /// it exists (what a `receive` projection copies).
    pub fn steps(&self) -> Option<&[Step]> {
        match self {
            CompiledPath::Dotted { steps, .. } => Some(steps),
            CompiledPath::JsonPath { .. } => None,
        }
    }

    /// The member names of a plain path (`["attributes", "priority"]`).
    pub fn segments(&self) -> Option<&[String]> {
        match self {
            CompiledPath::Dotted { segments, .. } => Some(segments),
            CompiledPath::JsonPath { .. } => None,
        }
    }

    /// The path in canonical form: dotted when plain, else the JSONPath as
    /// written.
    pub fn text(&self) -> String {
        match self {
            CompiledPath::Dotted { segments, .. } => segments.join("."),
            CompiledPath::JsonPath { text, .. } => text.clone(),
        }
    }

    /// Every existing location the path selects in `root`, in the order
    /// the JSONPath engine visits them (document order), each once.
    pub fn locate(&self, root: &Value) -> Vec<Vec<Step>> {
        match self {
            CompiledPath::Dotted { steps, .. } => match get(root, steps) {
                Some(_) => vec![steps.clone()],
                None => Vec::new(),
            },
            CompiledPath::JsonPath { query, .. } => {
                // A query whose result is not a set of nodes (a function
                // value) selects no location.
                let Ok(found) = jsonpath_rust::query::js_path_process(query, root) else {
                    return Vec::new();
                };
                let mut locations: Vec<Vec<Step>> = Vec::with_capacity(found.len());
                for found in found {
                    // INVARIANT: jsonpath-rust writes RFC 9535 normalized
                    // paths, which `parse_normalized` reads in full (tested
                    // below). A location that failed to parse would leave a
                    // value untransformed, so it must never happen.
                    let steps = parse_normalized(&found.path);
                    debug_assert!(steps.is_some(), "unreadable location {}", found.path);
                    if let Some(steps) = steps
                        && !locations.contains(&steps)
                    {
                        locations.push(steps);
                    }
                }
                locations
            }
        }
    }

    /// The values the path selects, in the order of [`CompiledPath::locate`].
    pub fn values<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        match self {
            CompiledPath::Dotted { steps, .. } => get(root, steps).into_iter().collect(),
            CompiledPath::JsonPath { query, .. } => {
                match jsonpath_rust::query::js_path_process(query, root) {
                    Ok(found) => {
                        let mut values: Vec<&Value> = Vec::with_capacity(found.len());
                        for found in found {
                            if !values.iter().any(|seen| std::ptr::eq(*seen, found.val)) {
                                values.push(found.val);
                            }
                        }
                        values
                    }
                    Err(_) => Vec::new(),
                }
            }
        }
    }
}

impl PartialEq for CompiledPath {
    /// Two compiled paths are equal when they were compiled from the same
    /// text: the parsed query is a function of it.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CompiledPath::Dotted { steps: a, .. }, CompiledPath::Dotted { steps: b, .. }) => {
                a == b
            }
            (CompiledPath::JsonPath { text: a, .. }, CompiledPath::JsonPath { text: b, .. }) => {
                a == b
            }
            _ => false,
        }
    }
}

impl Eq for CompiledPath {}

/// The value at a location, if there is one.
pub fn get<'v>(root: &'v Value, location: &[Step]) -> Option<&'v Value> {
    location
        .iter()
        .try_fold(root, |value, step| match (step, value) {
            (Step::Key(key), Value::Object(map)) => map.get(key),
            (Step::Index(index), Value::Array(items)) => items.get(*index),
            _ => None,
        })
}

/// The value at a location, mutably, if there is one.
pub fn get_mut<'v>(root: &'v mut Value, location: &[Step]) -> Option<&'v mut Value> {
    location
        .iter()
        .try_fold(root, |value, step| match (step, value) {
            (Step::Key(key), Value::Object(map)) => map.get_mut(key),
            (Step::Index(index), Value::Array(items)) => items.get_mut(*index),
            _ => None,
        })
}

/// Removes the value at a location and returns it; `None` when there is no
/// such value, or for the root itself, which cannot be removed.
///
/// Removing an array element shifts the later elements down, so the other
/// locations into that array go stale: a caller removing several
/// locations removes them in descending order (sort, then reverse).
pub fn remove(root: &mut Value, location: &[Step]) -> Option<Value> {
    let (last, parents) = location.split_last()?;
    match (last, get_mut(root, parents)?) {
        (Step::Key(key), Value::Object(map)) => map.remove(key),
        (Step::Index(index), Value::Array(items)) if *index < items.len() => {
            Some(items.remove(*index))
        }
        _ => None,
    }
}

/// Sets the value at a location, creating what is missing on the way:
/// used to build a `receive` projection from an empty object.
///
/// A missing or `null` parent becomes an object (before a `Key` step) or
/// an array (before an `Index` step). An array shorter than an index is
/// padded with `null`s, so elements keep their positions: inserting at
/// `items[2]` into a missing array gives `[null, null, VALUE]`. An
/// existing value at the location is replaced. When a parent has another
/// type (a string where an object is needed) nothing is inserted and
/// `false` is returned; an empty location replaces the root.
pub fn insert(root: &mut Value, location: &[Step], value: Value) -> bool {
    let Some((last, parents)) = location.split_last() else {
        *root = value;
        return true;
    };
    let mut current = root;
    for (step, next) in parents.iter().zip(location.iter().skip(1)) {
        let Some(child) = child_or_create(current, step, next) else {
            return false;
        };
        current = child;
    }
    match (last, current) {
        (Step::Key(key), parent) => {
            if parent.is_null() {
                *parent = Value::Object(Map::new());
            }
            match parent {
                Value::Object(map) => {
                    map.insert(key.clone(), value);
                    true
                }
                _ => false,
            }
        }
        (Step::Index(index), parent) => {
            if parent.is_null() {
                *parent = Value::Array(Vec::new());
            }
            match parent {
                Value::Array(items) => {
                    if items.len() <= *index {
                        items.resize(*index + 1, Value::Null);
                    }
                    items[*index] = value;
                    true
                }
                _ => false,
            }
        }
    }
}

/// The child of `value` at `step`, created (as the container `next`
/// needs) when missing or `null`.
fn child_or_create<'v>(value: &'v mut Value, step: &Step, next: &Step) -> Option<&'v mut Value> {
    if value.is_null() {
        *value = empty_container(step);
    }
    let child = match (step, value) {
        (Step::Key(key), Value::Object(map)) => map.entry(key.clone()).or_insert(Value::Null),
        (Step::Index(index), Value::Array(items)) => {
            if items.len() <= *index {
                items.resize(*index + 1, Value::Null);
            }
            &mut items[*index]
        }
        _ => return None,
    };
    if child.is_null() {
        *child = empty_container(next);
    }
    Some(child)
}

fn empty_container(step: &Step) -> Value {
    match step {
        Step::Key(_) => Value::Object(Map::new()),
        Step::Index(_) => Value::Array(Vec::new()),
    }
}

/// Reads an RFC 9535 normalized path (`$['a'][0]['b\'c']`) into steps.
///
/// Names are in single quotes; inside them `\'`, `\\`, `\b`, `\f`, `\n`,
/// `\r`, `\t`, `\/`, `\"` and `\uXXXX` (with surrogate pairs) are escapes.
/// Indices are plain decimal numbers.
pub fn parse_normalized(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[')?;
        if let Some(quoted) = rest.strip_prefix('\'') {
            let (name, after) = unquote(quoted)?;
            steps.push(Step::Key(name));
            rest = after.strip_prefix(']')?;
        } else {
            let end = rest.find(']')?;
            let digits = &rest[..end];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            steps.push(Step::Index(digits.parse().ok()?));
            rest = &rest[end + 1..];
        }
    }
    Some(steps)
}

/// The name up to the closing quote, unescaped, and the text after it.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' => return Some((name, &text[at + 1..])),
            '\\' => {
                let (_, escape) = chars.next()?;
                let decoded = match escape {
                    '\'' | '\\' | '/' | '"' => escape,
                    'b' => '\u{0008}',
                    'f' => '\u{000C}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => {
                        let high = hex4(&mut chars)?;
                        if (0xD800..0xDC00).contains(&high) {
                            let (_, backslash) = chars.next()?;
                            let (_, u) = chars.next()?;
                            if backslash != '\\' || u != 'u' {
                                return None;
                            }
                            let low = hex4(&mut chars)?;
                            if !(0xDC00..0xE000).contains(&low) {
                                return None;
                            }
                            char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                        } else {
                            char::from_u32(high)?
                        }
                    }
                    _ => return None,
                };
                name.push(decoded);
            }
            c => name.push(c),
        }
    }
    None
}

fn hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    (0..4).try_fold(0, |code, _| {
        let (_, digit) = chars.next()?;
        Some(code * 16 + digit.to_digit(16)?)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::source::{Sources, Span};

    fn compile(text: &str) -> CompiledPath {
        let mut sources = Sources::new();
        let span = Span::file_start(sources.add("t.rules", String::new()));
        let path = if text.starts_with('$') {
            PathExpr::jsonpath(text, span)
        } else {
            PathExpr::dotted(text, span)
        };
        CompiledPath::compile(&path).unwrap()
    }

    fn key(name: &str) -> Step {
        Step::Key(name.to_string())
    }

    fn event() -> Value {
        json!({
            "topic": "patients.admitted",
            "publisher": "ehr",
            "subscriber": "analytics",
            "attributes": {"priority": "urgent"},
            "payload": {
                "mrn": "MRN-0012345",
                "ssn": "123-45-6789",
                "contacts": [
                    {"name": "Ann", "ssn": "111-22-3333"},
                    {"name": "Bob"}
                ],
                "odd keys": {"it's": 1, "back\\slash": 2, "line\nbreak": 3, "é": 4}
            }
        })
    }

    /// (path, the locations it selects in `event()`).
    #[test]
    fn paths_select_these_locations() {
        let cases: Vec<(&str, Vec<Vec<Step>>)> = vec![
            ("payload.mrn", vec![vec![key("payload"), key("mrn")]]),
            ("$.payload.mrn", vec![vec![key("payload"), key("mrn")]]),
            ("payload.missing", vec![]),
            ("payload.mrn.deeper", vec![]),
            ("topic", vec![vec![key("topic")]]),
            (
                "$..ssn",
                vec![
                    vec![key("payload"), key("ssn")],
                    vec![key("payload"), key("contacts"), Step::Index(0), key("ssn")],
                ],
            ),
            (
                "$.payload.contacts[*].name",
                vec![
                    vec![key("payload"), key("contacts"), Step::Index(0), key("name")],
                    vec![key("payload"), key("contacts"), Step::Index(1), key("name")],
                ],
            ),
            (
                "$.payload.contacts[1]",
                vec![vec![key("payload"), key("contacts"), Step::Index(1)]],
            ),
            (
                "$.payload.contacts[?@.ssn]",
                vec![vec![key("payload"), key("contacts"), Step::Index(0)]],
            ),
            (
                "$.payload['odd keys'].*",
                vec![
                    vec![key("payload"), key("odd keys"), key("back\\slash")],
                    vec![key("payload"), key("odd keys"), key("it's")],
                    vec![key("payload"), key("odd keys"), key("line\nbreak")],
                    vec![key("payload"), key("odd keys"), key("é")],
                ],
            ),
            ("$.payload.nothing[*]", vec![]),
            ("$", vec![vec![]]),
        ];
        let root = event();
        for (text, expected) in cases {
            let path = compile(text);
            let locations = path.locate(&root);
            assert_eq!(locations, expected, "{text}");
            let values: Vec<&Value> = locations.iter().map(|l| get(&root, l).unwrap()).collect();
            assert_eq!(path.values(&root), values, "{text}");
        }
    }

    #[test]
    fn duplicate_selections_are_reported_once() {
        let path = compile("$.payload['mrn','mrn']");
        assert_eq!(
            path.locate(&event()),
            vec![vec![key("payload"), key("mrn")]]
        );
        assert_eq!(path.values(&event()).len(), 1);
    }

    #[test]
    fn normalized_paths_read_every_escape() {
        let cases: [(&str, Option<Vec<Step>>); 10] = [
            ("$", Some(vec![])),
            (
                "$['a'][0]['b c']",
                Some(vec![key("a"), Step::Index(0), key("b c")]),
            ),
            (r"$['it\'s']", Some(vec![key("it's")])),
            (r"$['back\\slash']", Some(vec![key("back\\slash")])),
            (r"$['\b\f\n\r\t']", Some(vec![key("\u{8}\u{c}\n\r\t")])),
            (r"$['\u001f']", Some(vec![key("\u{1f}")])),
            (r"$['\ud83d\ude00']", Some(vec![key("😀")])),
            ("$['unterminated", None),
            ("$[x]", None),
            ("a", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_normalized(text), expected, "{text}");
        }
    }

    #[test]
    fn jsonpath_locations_round_trip_any_member_name() {
        // Every control character and the quote and backslash, as written
        // by the JSONPath engine and read back here.
        let names: Vec<String> = (0u8..0x20)
            .map(|b| char::from(b).to_string())
            .chain(["'".into(), "\\".into(), "\"".into(), "ü/ß".into()])
            .collect();
        let object: Map<String, Value> = names
            .iter()
            .map(|name| (name.clone(), json!(name)))
            .collect();
        let root = json!({"payload": object});
        let locations = compile("$.payload.*").locate(&root);
        assert_eq!(locations.len(), names.len());
        for location in locations {
            let Some(Step::Key(name)) = location.last() else {
                panic!("{location:?}");
            };
            assert_eq!(get(&root, &location), Some(&json!(name)));
        }
    }

    #[test]
    fn remove_takes_members_and_elements_out() {
        let mut root = event();
        let contacts = [key("payload"), key("contacts")];
        assert_eq!(
            remove(&mut root, &[key("payload"), key("mrn")]),
            Some(json!("MRN-0012345"))
        );
        assert_eq!(remove(&mut root, &[key("payload"), key("mrn")]), None);
        assert_eq!(
            remove(
                &mut root,
                &[key("payload"), key("contacts"), Step::Index(0)]
            ),
            Some(json!({"name": "Ann", "ssn": "111-22-3333"}))
        );
        // Later elements shifted down.
        assert_eq!(get(&root, &contacts), Some(&json!([{"name": "Bob"}])));
        assert_eq!(
            remove(
                &mut root,
                &[key("payload"), key("contacts"), Step::Index(5)]
            ),
            None
        );
        assert_eq!(remove(&mut root, &[key("topic"), key("x")]), None);
        assert_eq!(remove(&mut root, &[]), None);
    }

    #[test]
    fn get_mut_reaches_the_same_values_as_get() {
        let mut root = event();
        let location = [key("payload"), key("contacts"), Step::Index(1), key("name")];
        *get_mut(&mut root, &location).unwrap() = json!("Bea");
        assert_eq!(get(&root, &location), Some(&json!("Bea")));
        assert!(get_mut(&mut root, &[key("payload"), Step::Index(0)]).is_none());
    }

    /// (values inserted in order into `{}`, the object built).
    #[test]
    fn insert_builds_projections() {
        type Inserts = Vec<(Vec<Step>, Value)>;
        let cases: Vec<(Inserts, Value)> = vec![
            (
                vec![(
                    vec![key("payload"), key("address"), key("city")],
                    json!("Oslo"),
                )],
                json!({"payload": {"address": {"city": "Oslo"}}}),
            ),
            (
                vec![
                    (vec![key("payload"), key("ward")], json!("3B")),
                    (vec![key("payload"), key("mrn")], json!("h")),
                ],
                json!({"payload": {"ward": "3B", "mrn": "h"}}),
            ),
            (
                vec![
                    (
                        vec![key("p"), key("items"), Step::Index(1), key("n")],
                        json!(2),
                    ),
                    (
                        vec![key("p"), key("items"), Step::Index(0), key("n")],
                        json!(1),
                    ),
                ],
                json!({"p": {"items": [{"n": 1}, {"n": 2}]}}),
            ),
            (
                vec![(vec![key("p"), Step::Index(2)], json!("x"))],
                json!({"p": [null, null, "x"]}),
            ),
            (
                vec![
                    (vec![key("p")], json!("a string")),
                    (vec![key("p"), key("q")], json!(1)),
                ],
                json!({"p": "a string"}),
            ),
            (
                vec![
                    (vec![key("p"), key("q")], json!(1)),
                    (vec![key("p"), key("q")], json!(2)),
                ],
                json!({"p": {"q": 2}}),
            ),
        ];
        for (inserts, expected) in cases {
            let mut root = json!({});
            for (location, value) in &inserts {
                let inserted = insert(&mut root, location, value.clone());
                assert_eq!(inserted, get(&root, location) == Some(value), "{inserts:?}");
            }
            assert_eq!(root, expected, "{inserts:?}");
        }
    }
}
