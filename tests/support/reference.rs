//! A reference evaluator for the rule language: the plainest reading of
//! SPEC §2.3, straight over the syntax tree. Tests only.
//!
//! It shares no code with `rules::compile` or `rules::decide`. For every
//! event it scans every item: plugins for their topic patterns, `topic`
//! declarations for models, rules for conditions, which it evaluates on
//! the syntax tree, parsing JSONPaths and regexes as it meets them. It
//! resolves competing actions with its own reading of "the strongest
//! wins", value by value. Only the field-action primitives
//! (`actions::apply`, `location::insert`, the detectors and the key ring)
//! and `TopicPattern::matches` are shared: the differential test is about
//! how the engine compiles, indexes, plans and resolves, not about AES or
//! regexes.
//!
//! Where SPEC is silent it follows the choices written down for the
//! engine:
//!
//! - `!=` holds when no selected value equals the literal, absent included;
//!   every other test holds when some selected value satisfies it;
//!   `exists` when the path selects anything, `null` included.
//! - `<`, `<=`, `>`, `>=` compare numbers by value and strings by code
//!   point; other pairs never compare. `contains` looks into strings and
//!   into arrays of strings.
//! - Routing conditions see `subscriber` as `null`.
//! - A model field covers its subtree; `null` passes any declared type; a
//!   member that only leads to declared fields must be an object.
//! - Recipients are sorted by plugin name; `fired` lists, sorted, the rules
//!   whose condition held for that recipient.
//! - `receive ... encrypted|hashed|masked` are actions like a rule's, so
//!   they compete with the rules' actions (and `receive all` beside them
//!   still delivers everything).
//! - Between equally strong actions on one value: the smaller mask
//!   `keep`, then the smaller key id (the default key counting as ""),
//!   then the rule name (a `receive` counting as ""), then the path text.
//!   Every redaction on a value applies, in the order deepest location
//!   first, then rule name, then path.
//!
//! "The strongest wins" is read per value: an action on a location reaches
//! every value below it. So an action is dropped when a location above it
//! holds one at least as strong, and a redaction skips the subtrees where
//! a stronger action sits. An `encrypt` below a `hash` is dropped too: the
//! hash replaces the whole value either way, and a pseudonym computed over
//! a freshly encrypted (random) text would not be "the same input gives
//! the same pseudonym" (SPEC 2.3.7).

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use jsonpath_rust::JsonPath;
use phigate::actions::{self, Detectors, FieldAction, Step, Tools, location};
use phigate::config::FilterMode;
use phigate::keys::KeyRing;
use phigate::rules::ast::{
    self, ActionKind, CompareOp, Condition, FieldType, Item, Receive, ReceiveTransform, TestOp,
};
use phigate::rules::path::{PathExpr, PathKind};
use phigate::rules::topic::TopicPattern;
use phigate::rules::{BlockReason, Decision, Delivery, Event, FilterError, Outcome, Rejection};
use regex::Regex;
use serde_json::{Map, Value};

/// Decides one event against a rule set that has checked clean.
pub fn decide(
    files: &[ast::File],
    event: &Event,
    keys: &KeyRing,
    mode: FilterMode,
) -> Result<Decision, Rejection> {
    let items: Vec<&Item> = files.iter().flat_map(|file| &file.items).collect();
    let plugins: Vec<&ast::Plugin> = items
        .iter()
        .filter_map(|item| match item {
            Item::Plugin(plugin) => Some(plugin),
            _ => None,
        })
        .collect();
    let rules: Vec<&ast::Rule> = items
        .iter()
        .filter_map(|item| match item {
            Item::Rule(rule) => Some(rule),
            _ => None,
        })
        .collect();

    // 2.3.1: only a plugin with a matching `publish` may publish.
    if TopicPattern::parse_topic(&event.topic).is_err() {
        return Err(Rejection::InvalidTopic);
    }
    let may_publish = plugins.iter().any(|plugin| {
        plugin.name.text == event.publisher
            && plugin
                .publishes
                .iter()
                .any(|pattern| topic_matches(&pattern.text, &event.topic))
    });
    if !may_publish {
        return Err(Rejection::NotAllowed {
            publisher: event.publisher.clone(),
        });
    }

    // 2.3.2: every model the topic carries.
    for item in &items {
        let Item::Topic(declaration) = item else {
            continue;
        };
        if !topic_matches(&declaration.pattern.text, &event.topic) {
            continue;
        }
        let model = items
            .iter()
            .find_map(|item| match item {
                Item::Model(model) if model.name.text == declaration.model.text => Some(model),
                _ => None,
            })
            .expect("a checked rule set declares every model it names");
        validate(model, &event.payload)?;
    }

    // 2.3.3: subscribers, and the targets of routing rules that hold.
    let mut root = event_root(event);
    let mut recipients: BTreeMap<String, bool> = BTreeMap::new();
    for plugin in &plugins {
        let subscribes = plugin
            .subscribes
            .iter()
            .any(|pattern| topic_matches(&pattern.text, &event.topic));
        if subscribes {
            recipients.insert(plugin.name.text.clone(), false);
        }
    }
    for rule in &rules {
        for action in &rule.actions {
            if let ActionKind::Route(targets) = &action.kind
                && holds(rule.condition.as_ref(), &root)
            {
                for target in targets {
                    recipients.insert(target.text.clone(), true);
                }
            }
        }
    }

    // 2.3.4: one delivery per recipient.
    let detectors = detectors_of(&items);
    let tools = Tools {
        keys,
        detectors: &detectors,
    };
    let mut deliveries = Vec::new();
    for (name, routed) in recipients {
        root["subscriber"] = Value::String(name.clone());
        let plugin = plugins
            .iter()
            .find(|plugin| plugin.name.text == name)
            .expect("a checked rule set routes to declared plugins only");
        let mut delivery = deliver(plugin, &rules, &root, &tools, mode);
        delivery.routed = routed;
        deliveries.push(delivery);
    }
    Ok(Decision { deliveries })
}

/// The delivery to one recipient; `root` names it as `subscriber`.
fn deliver(
    plugin: &ast::Plugin,
    rules: &[&ast::Rule],
    root: &Value,
    tools: &Tools<'_>,
    mode: FilterMode,
) -> Delivery {
    let matched: Vec<&ast::Rule> = rules
        .iter()
        .copied()
        .filter(|rule| holds(rule.condition.as_ref(), root))
        .collect();
    let mut fired: Vec<String> = matched.iter().map(|rule| rule.name.text.clone()).collect();
    fired.sort();
    let mut blockers: Vec<String> = matched
        .iter()
        .filter(|rule| rule.actions.iter().any(|a| a.kind == ActionKind::Block))
        .map(|rule| rule.name.text.clone())
        .collect();
    blockers.sort();

    let mut delivery = Delivery {
        plugin: plugin.name.text.clone(),
        routed: false,
        outcome: Outcome::Blocked(BlockReason::Rules(blockers.clone())),
        fired,
        filter_errors: Vec::new(),
    };
    if !blockers.is_empty() {
        return delivery;
    }

    // What the recipient may see: the event, with its payload projected.
    let mut view = root.clone();
    view["payload"] = project(plugin, root);

    let mut located = Vec::new();
    for receive in &plugin.receives {
        if let Receive::Path {
            path,
            transform: Some(transform),
            ..
        } = receive
        {
            let action = match transform {
                ReceiveTransform::Encrypted => FieldAction::Encrypt { key: None },
                ReceiveTransform::Hashed => FieldAction::Hash { key: None },
                ReceiveTransform::Masked => FieldAction::Mask { keep: 0 },
            };
            for (location, _) in select(path, &view) {
                located.push(Located {
                    location,
                    action: action.clone(),
                    rule: None,
                    path: path.text.clone(),
                });
            }
        }
    }
    for rule in &matched {
        for action in &rule.actions {
            let (Some(path), Some(field_action)) = (
                action.kind.path(),
                field_action(&action.kind, tools.detectors),
            ) else {
                continue;
            };
            for (location, _) in select(path, &view) {
                located.push(Located {
                    location,
                    action: field_action.clone(),
                    rule: Some(rule.name.text.clone()),
                    path: path.text.clone(),
                });
            }
        }
    }

    let plan = resolve(located);
    for (redaction, shielded) in &plan.redactions {
        for leaf in leaves(&view, &redaction.location, shielded) {
            actions::apply(&redaction.action, &mut view, &leaf, tools)
                .expect("a redaction cannot fail");
        }
    }
    for chosen in &plan.others {
        if let Err(error) = actions::apply(&chosen.action, &mut view, &chosen.location, tools) {
            delivery.filter_errors.push(FilterError {
                rule: chosen.rule.clone(),
                path: chosen.path.clone(),
                reason: error.to_string(),
            });
        }
    }

    if !delivery.filter_errors.is_empty() && mode == FilterMode::FailClosed {
        delivery.outcome = Outcome::Blocked(BlockReason::FilterError);
        return delivery;
    }
    let payload = view.get("payload").cloned().unwrap_or(Value::Null);
    let attributes = match view.get("attributes") {
        Some(Value::Object(attributes)) => attributes.clone(),
        _ => Map::new(),
    };
    delivery.outcome = Outcome::Deliver {
        payload,
        attributes,
    };
    delivery
}

// ---------------------------------------------------------------------------
// Models

/// 2.3.2: an object, with no member the model does not declare, and every
/// declared type respected.
fn validate(model: &ast::Model, payload: &Value) -> Result<(), Rejection> {
    let Value::Object(members) = payload else {
        return Err(Rejection::NotAnObject {
            model: model.name.text.clone(),
        });
    };
    validate_members(model, members, &[])
}

fn validate_members(
    model: &ast::Model,
    members: &Map<String, Value>,
    prefix: &[String],
) -> Result<(), Rejection> {
    for (name, value) in members {
        let mut path = prefix.to_vec();
        path.push(name.clone());
        let field = path.join(".");

        let covered = model.fields.iter().any(|f| path.starts_with(&f.path));
        let leads_to_declared = model
            .fields
            .iter()
            .any(|f| f.path.len() > path.len() && f.path.starts_with(&path));
        if !covered && !leads_to_declared {
            return Err(Rejection::UndeclaredField {
                model: model.name.text.clone(),
                field,
            });
        }

        for declared in model.fields.iter().filter(|f| f.path == path) {
            if let Some(ty) = declared.ty
                && !has_type(value, ty)
                && !value.is_null()
            {
                return Err(Rejection::WrongType {
                    model: model.name.text.clone(),
                    field: field.clone(),
                    expected: type_name(ty),
                });
            }
        }

        if leads_to_declared {
            match value {
                Value::Object(inner) => validate_members(model, inner, &path)?,
                // Under a declared field anything goes; only the declared
                // fields below it, when present, are held to their types.
                _ if covered => {}
                _ => {
                    return Err(Rejection::WrongType {
                        model: model.name.text.clone(),
                        field,
                        expected: "object",
                    });
                }
            }
        }
    }
    Ok(())
}

fn has_type(value: &Value, ty: FieldType) -> bool {
    match ty {
        FieldType::String => value.is_string(),
        FieldType::Number => value.is_number(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Object => value.is_object(),
        FieldType::Array => value.is_array(),
    }
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String => "string",
        FieldType::Number => "number",
        FieldType::Boolean => "boolean",
        FieldType::Object => "object",
        FieldType::Array => "array",
    }
}

// ---------------------------------------------------------------------------
// Conditions

fn holds(condition: Option<&Condition>, root: &Value) -> bool {
    condition.is_none_or(|condition| evaluate(condition, root))
}

fn evaluate(condition: &Condition, root: &Value) -> bool {
    match condition {
        Condition::And(terms) => terms.iter().all(|term| evaluate(term, root)),
        Condition::Or(terms) => terms.iter().any(|term| evaluate(term, root)),
        Condition::Not(inner) => !evaluate(inner, root),
        Condition::Check(check) => {
            let values: Vec<&Value> = select(&check.path, root)
                .into_iter()
                .map(|(_, value)| value)
                .collect();
            test(check, &values)
        }
    }
}

fn test(check: &ast::Check, values: &[&Value]) -> bool {
    let any = |pass: &dyn Fn(&Value) -> bool| values.iter().any(|value| pass(value));
    match &check.op {
        TestOp::Exists => !values.is_empty(),
        TestOp::Compare(CompareOp::Eq, literal) => any(&|v| same(v, &literal.value)),
        TestOp::Compare(CompareOp::Ne, literal) => !any(&|v| same(v, &literal.value)),
        TestOp::Compare(op, literal) => any(&|v| {
            order(v, &literal.value).is_some_and(|ordering| match op {
                CompareOp::Lt => ordering == Ordering::Less,
                CompareOp::Le => ordering != Ordering::Greater,
                CompareOp::Gt => ordering == Ordering::Greater,
                CompareOp::Ge => ordering != Ordering::Less,
                CompareOp::Eq | CompareOp::Ne => unreachable!("handled above"),
            })
        }),
        TestOp::In(literals) => any(&|v| literals.iter().any(|l| same(v, &l.value))),
        TestOp::Matches(pattern) if check.path.is_member("topic") => {
            let pattern = TopicPattern::parse(&pattern.text).expect("checked topic pattern");
            any(&|v| v.as_str().is_some_and(|topic| pattern.matches(topic)))
        }
        TestOp::Matches(regex) => {
            let regex = Regex::new(&regex.text).expect("checked regex");
            any(&|v| v.as_str().is_some_and(|text| regex.is_match(text)))
        }
        TestOp::StartsWith(prefix) => any(&|v| {
            v.as_str()
                .is_some_and(|text| text.starts_with(&prefix.text))
        }),
        TestOp::Contains(needle) => any(&|v| match v {
            Value::String(text) => text.contains(&needle.text),
            Value::Array(items) => items.iter().any(|item| item.as_str() == Some(&needle.text)),
            _ => false,
        }),
    }
}

/// Equality of JSON values, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.chars().cmp(y.chars())),
        _ => None,
    }
}

fn topic_matches(pattern: &str, topic: &str) -> bool {
    TopicPattern::parse(pattern).is_ok_and(|pattern| pattern.matches(topic))
}

// ---------------------------------------------------------------------------
// Paths

/// Every location a path selects in `root`, each once, with its value.
fn select<'v>(path: &PathExpr, root: &'v Value) -> Vec<(Vec<Step>, &'v Value)> {
    match &path.kind {
        PathKind::Dotted(segments) => {
            let steps: Vec<Step> = segments.iter().cloned().map(Step::Key).collect();
            value_at(root, &steps)
                .map(|value| (steps, value))
                .into_iter()
                .collect()
        }
        PathKind::JsonPath(text) => {
            let Ok(found) = root.query_with_path(text) else {
                return Vec::new();
            };
            let mut selected: Vec<(Vec<Step>, &Value)> = Vec::new();
            for found in found {
                let steps = read_normalized(&found.path)
                    .unwrap_or_else(|| panic!("unreadable JSONPath location {}", found.path));
                if !selected.iter().any(|(seen, _)| *seen == steps) {
                    selected.push((steps, found.val));
                }
            }
            selected
        }
    }
}

fn value_at<'v>(root: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    let mut value = root;
    for step in steps {
        value = match (step, value) {
            (Step::Key(key), Value::Object(members)) => members.get(key)?,
            (Step::Index(index), Value::Array(items)) => items.get(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Reads a normalized path as jsonpath-rust writes it (RFC 9535):
/// `$['a'][0]`. Names are in single quotes with the escapes of JSON
/// strings, plus `\'`.
fn read_normalized(text: &str) -> Option<Vec<Step>> {
    let mut rest = text.strip_prefix('$')?;
    let mut steps = Vec::new();
    while let Some(inside) = rest.strip_prefix('[') {
        if let Some(quoted) = inside.strip_prefix('\'') {
            // The name as the body of a JSON string, for serde_json to
            // decode.
            let mut json = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (at, '\'') => break at + 1,
                    (_, '\\') => match chars.next()? {
                        (_, '\'') => json.push('\''),
                        (_, escaped) => {
                            json.push('\\');
                            json.push(escaped);
                        }
                    },
                    (_, '"') => json.push_str("\\\""),
                    (_, c) => json.push(c),
                }
            };
            steps.push(Step::Key(
                serde_json::from_str(&format!("\"{json}\"")).ok()?,
            ));
            rest = quoted[end..].strip_prefix(']')?;
        } else {
            let end = inside.find(']')?;
            steps.push(Step::Index(inside[..end].parse().ok()?));
            rest = &inside[end + 1..];
        }
    }
    rest.is_empty().then_some(steps)
}

// ---------------------------------------------------------------------------
// Projection and actions

/// 2.3.4 and 2.3.8: the payload fields the plugin receives, with their
/// parents.
fn project(plugin: &ast::Plugin, root: &Value) -> Value {
    let payload = root.get("payload").cloned().unwrap_or(Value::Null);
    let mut projected = Value::Object(Map::new());
    for receive in &plugin.receives {
        let path = match receive {
            Receive::All { .. } => return payload,
            Receive::Path { path, .. } => path,
        };
        for (location, value) in select(path, root) {
            match location.split_first() {
                Some((Step::Key(member), [])) if member == "payload" => return payload,
                Some((Step::Key(member), inside)) if member == "payload" => {
                    location::insert(&mut projected, inside, value.clone());
                }
                _ => {}
            }
        }
    }
    projected
}

fn field_action(kind: &ActionKind, detectors: &Detectors) -> Option<FieldAction> {
    Some(match kind {
        ActionKind::Strip(_) => FieldAction::Strip,
        ActionKind::Encrypt { key, .. } => FieldAction::Encrypt {
            key: key.as_ref().map(|k| k.text.clone()),
        },
        ActionKind::Hash { key, .. } => FieldAction::Hash {
            key: key.as_ref().map(|k| k.text.clone()),
        },
        ActionKind::Mask { keep, .. } => FieldAction::Mask { keep: *keep },
        ActionKind::Redact {
            detectors: names, ..
        } => {
            let names: Vec<String> = names.iter().map(|n| n.text.clone()).collect();
            FieldAction::Redact {
                detectors: detectors.select(&names).expect("checked detectors"),
            }
        }
        ActionKind::Block | ActionKind::Route(_) => return None,
    })
}

/// The built-in detectors with the rule set's own; built once per set of
/// declarations, as compiling detectors is slow in a debug build.
fn detectors_of(items: &[&Item]) -> Rc<Detectors> {
    /// Detectors by their custom (name, regex) declarations.
    type Built = HashMap<Vec<(String, String)>, Rc<Detectors>>;
    thread_local! {
        static BUILT: RefCell<Built> = RefCell::new(HashMap::new());
    }
    let custom: Vec<(String, String)> = items
        .iter()
        .filter_map(|item| match item {
            Item::Detector(d) => Some((d.name.text.clone(), d.regex.text.clone())),
            _ => None,
        })
        .collect();
    BUILT.with(|built| {
        let mut built = built.borrow_mut();
        let detectors = built
            .entry(custom.clone())
            .or_insert_with(|| Rc::new(Detectors::new(&custom).expect("checked detectors")));
        Rc::clone(detectors)
    })
}

/// One action found at one location of a recipient's view.
#[derive(Clone, Debug)]
struct Located {
    location: Vec<Step>,
    action: FieldAction,
    /// `None` for a `receive` transform.
    rule: Option<String>,
    /// The path as written.
    path: String,
}

impl Located {
    fn is_redaction(&self) -> bool {
        matches!(self.action, FieldAction::Redact { .. })
    }

    /// Between equally strong actions, the smallest of these wins.
    fn tie(&self) -> (u32, &str, &str, &str) {
        let (keep, key) = match &self.action {
            FieldAction::Mask { keep } => (*keep, ""),
            FieldAction::Encrypt { key } | FieldAction::Hash { key } => {
                (0, key.as_deref().unwrap_or(""))
            }
            FieldAction::Strip | FieldAction::Redact { .. } => (0, ""),
        };
        (keep, key, self.rule.as_deref().unwrap_or(""), &self.path)
    }
}

/// What applies, in order: the redactions, each with the subtrees it must
/// leave alone, then the other actions.
struct Plan {
    redactions: Vec<(Located, Vec<Vec<Step>>)>,
    others: Vec<Located>,
}

fn resolve(located: Vec<Located>) -> Plan {
    // The strongest action other than a redaction at each location.
    let mut strongest: BTreeMap<Vec<Step>, Located> = BTreeMap::new();
    for candidate in located.iter().filter(|l| !l.is_redaction()) {
        let wins = match strongest.get(&candidate.location) {
            None => true,
            Some(current) => {
                (Reverse(candidate.action.strength()), candidate.tie())
                    < (Reverse(current.action.strength()), current.tie())
            }
        };
        if wins {
            strongest.insert(candidate.location.clone(), candidate.clone());
        }
    }

    let covers = |above: &Located, below: &Located| {
        above.action.strength() >= below.action.strength()
            || (matches!(above.action, FieldAction::Hash { .. })
                && matches!(below.action, FieldAction::Encrypt { .. }))
    };
    let mut others: Vec<Located> = strongest
        .values()
        .filter(|chosen| {
            !proper_prefixes(&chosen.location)
                .any(|above| strongest.get(above).is_some_and(|a| covers(a, chosen)))
        })
        .cloned()
        .collect();

    let mut redactions: Vec<(Located, Vec<Vec<Step>>)> = located
        .into_iter()
        .filter(|l| l.is_redaction())
        .filter(|r| {
            !proper_prefixes(&r.location)
                .chain([r.location.as_slice()])
                .any(|above| strongest.contains_key(above))
        })
        .map(|redaction| {
            let shielded = others
                .iter()
                .filter(|other| {
                    other.location.len() > redaction.location.len()
                        && other.location.starts_with(&redaction.location)
                })
                .map(|other| other.location.clone())
                .collect();
            (redaction, shielded)
        })
        .collect();

    redactions.sort_by(|(a, _), (b, _)| {
        b.location
            .len()
            .cmp(&a.location.len())
            .then_with(|| b.location.cmp(&a.location))
            .then_with(|| a.tie().cmp(&b.tie()))
    });
    // Deepest first, and later array elements before earlier ones, so that
    // removing an element never moves a location still to be visited.
    others.sort_by(|a, b| {
        b.location
            .len()
            .cmp(&a.location.len())
            .then_with(|| b.location.cmp(&a.location))
    });
    Plan { redactions, others }
}

fn proper_prefixes(location: &[Step]) -> impl Iterator<Item = &[Step]> {
    (0..location.len()).map(|len| &location[..len])
}

/// The strings and numbers at or below `at`, outside the shielded
/// subtrees: the values a redaction at `at` reaches.
fn leaves(view: &Value, at: &[Step], shielded: &[Vec<Step>]) -> Vec<Vec<Step>> {
    fn walk(value: &Value, here: &mut Vec<Step>, shielded: &[Vec<Step>], out: &mut Vec<Vec<Step>>) {
        if shielded.contains(here) {
            return;
        }
        match value {
            Value::String(_) | Value::Number(_) => out.push(here.clone()),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    here.push(Step::Index(index));
                    walk(item, here, shielded, out);
                    here.pop();
                }
            }
            Value::Object(members) => {
                for (name, member) in members {
                    here.push(Step::Key(name.clone()));
                    walk(member, here, shielded, out);
                    here.pop();
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
    let mut out = Vec::new();
    if let Some(value) = value_at(view, at) {
        walk(value, &mut at.to_vec(), shielded, &mut out);
    }
    out
}

/// The event as conditions and paths see it, `subscriber` still unknown.
fn event_root(event: &Event) -> Value {
    let mut root = Map::new();
    root.insert("topic".into(), Value::String(event.topic.clone()));
    root.insert("publisher".into(), Value::String(event.publisher.clone()));
    root.insert("subscriber".into(), Value::Null);
    root.insert("attributes".into(), Value::Object(event.attributes.clone()));
    root.insert("payload".into(), event.payload.clone());
    Value::Object(root)
}

#[test]
fn the_reference_reads_every_location_jsonpath_rust_writes() {
    let names = [
        "plain",
        "it's",
        "back\\slash",
        "line\nbreak",
        "\"quoted\"",
        "é😀",
        "\u{1f}",
    ];
    let members: Map<String, Value> = names
        .iter()
        .map(|name| (name.to_string(), Value::String(name.to_string())))
        .collect();
    let root = serde_json::json!({"payload": {"items": [members]}});
    let found = root
        .query_with_path("$.payload.items[0].*")
        .expect("a valid query");
    assert_eq!(found.len(), names.len());
    for found in found {
        let steps = read_normalized(&found.path).expect("readable");
        assert_eq!(value_at(&root, &steps), Some(found.val), "{}", found.path);
        assert!(matches!(steps.get(2), Some(Step::Index(0))));
    }
    assert_eq!(read_normalized("$['unterminated"), None);
    assert_eq!(read_normalized("$[x]"), None);
}
