//! What the engine decides for one event: who receives it, and what each
//! recipient gets. Types only here; `rules::engine` computes them.

use serde_json::{Map, Value};

/// One published event, as the engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub topic: String,
    pub publisher: String,
    pub attributes: Map<String, Value>,
    pub payload: Value,
}

/// Why an event is refused as a whole, before any recipient is considered.
///
/// The `Display` texts name rule-file things only (models, topics,
/// declared fields): they are safe for an HTTP error body. Undeclared field
/// names come from the payload, so they are kept out of `Display` and only
/// tools run by the operator (`test`, `explain`) show them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The publisher holds no `publish` pattern matching the topic (403).
    #[error("plugin `{publisher}` may not publish on this topic")]
    NotAllowed { publisher: String },
    /// The topic's model requires an object payload (422).
    #[error("the payload must be a JSON object for model `{model}`")]
    NotAnObject { model: String },
    /// The payload carries a field its model does not declare (422).
    #[error("the payload has a field that model `{model}` does not declare")]
    UndeclaredField { model: String, field: String },
    /// A declared field has the wrong JSON type (422).
    #[error("field `{field}` of model `{model}` must be of type {expected}")]
    WrongType {
        model: String,
        field: String,
        expected: &'static str,
    },
    /// The topic is not a valid concrete topic (400).
    #[error("invalid topic")]
    InvalidTopic,
}

/// The decision for one event: one entry per recipient, sorted by plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub deliveries: Vec<Delivery>,
}

impl Decision {
    pub fn delivery(&self, plugin: &str) -> Option<&Delivery> {
        self.deliveries.iter().find(|d| d.plugin == plugin)
    }
}

/// What one recipient gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub plugin: String,
    /// Whether the plugin is a recipient through `route to` (it may also
    /// subscribe).
    pub routed: bool,
    pub outcome: Outcome,
    /// Names of the rules whose condition held for this recipient, sorted.
    pub fired: Vec<String>,
    /// Actions that could not be applied. Under `fail-closed` any of them
    /// blocks the delivery; under `fail-open` the delivery goes out
    /// without them. Either way they are audited.
    pub filter_errors: Vec<FilterError>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// What this recipient receives: its payload projection with every
    /// action applied, and the attributes with theirs.
    Deliver {
        payload: Value,
        attributes: Map<String, Value>,
    },
    /// Not delivered.
    Blocked(BlockReason),
}

impl Outcome {
    pub fn payload(&self) -> Option<&Value> {
        match self {
            Outcome::Deliver { payload, .. } => Some(payload),
            Outcome::Blocked(_) => None,
        }
    }

    pub fn is_blocked(&self) -> bool {
        matches!(self, Outcome::Blocked(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockReason {
    /// These rules (sorted names) hold `block`.
    Rules(Vec<String>),
    /// A field action failed under `fail-closed`.
    FilterError,
}

/// An action that could not be applied. Names the rule and the path as
/// written, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    /// The rule, or `None` for a `receive ... encrypted|hashed|masked`.
    pub rule: Option<String>,
    pub path: String,
    pub reason: String,
}

// ---------------------------------------------------------------------------
// Evaluation

use std::collections::{BTreeSet, HashMap};

use super::ast::CompareOp;
use super::compile::{Cond, Engine, FieldTree, Test};
use super::topic::TopicPattern;
use crate::actions::location::{self, Step};
use crate::actions::{self as field_actions, FieldAction, Tools};
use crate::config::FilterMode;
use crate::keys::KeyRing;

/// One field action located in a recipient's payload, before conflicts
/// between actions are resolved.
struct Located<'e> {
    location: Vec<Step>,
    action: &'e FieldAction,
    rule: Option<&'e str>,
    path: &'e str,
}

impl Engine {
    /// Decides one event: checks the publisher's contract and the topic's
    /// model, finds the recipients, and computes each one's delivery.
    pub fn decide(
        &self,
        event: &Event,
        keys: &KeyRing,
        mode: FilterMode,
    ) -> Result<Decision, Rejection> {
        if TopicPattern::parse_topic(&event.topic).is_err() {
            return Err(Rejection::InvalidTopic);
        }
        let plan = self.plan(&event.topic);

        let publisher = self.plugin_ids.get(&event.publisher);
        if !publisher.is_some_and(|id| plan.publishers.contains(id)) {
            return Err(Rejection::NotAllowed {
                publisher: event.publisher.clone(),
            });
        }
        for model in &plan.models {
            self.validate(*model, &event.payload)?;
        }

        let mut root = event_root(event);
        let mut recipients: BTreeSet<(&str, usize)> = plan
            .subscribers
            .iter()
            .map(|id| (self.plugins[*id].name.as_str(), *id))
            .collect();
        let mut routed = BTreeSet::new();
        for rule_id in &plan.routing {
            let rule = &self.rules[*rule_id];
            if holds(rule.condition.as_ref(), &root) {
                for target in &rule.routes {
                    recipients.insert((self.plugins[*target].name.as_str(), *target));
                    routed.insert(*target);
                }
            }
        }

        let tools = Tools {
            keys,
            detectors: &self.detectors,
        };
        let mut deliveries = Vec::with_capacity(recipients.len());
        for (name, id) in recipients {
            set_subscriber(&mut root, name);
            let mut delivery = self.deliver(&plan.rules, event, &root, id, &tools, mode);
            delivery.routed = routed.contains(&id);
            deliveries.push(delivery);
        }
        Ok(Decision { deliveries })
    }

    /// The delivery for one recipient; `root` names it as `subscriber`.
    fn deliver(
        &self,
        index: &super::compile::RuleIndex,
        event: &Event,
        root: &Value,
        plugin_id: usize,
        tools: &Tools<'_>,
        mode: FilterMode,
    ) -> Delivery {
        let plugin = &self.plugins[plugin_id];

        let mut candidates: Vec<usize> = index.general.clone();
        if let Some(rules) = index.by_subscriber.get(&plugin_id) {
            candidates.extend(rules);
        }
        if let Some(rules) = index.by_publisher.get(&event.publisher) {
            candidates.extend(rules);
        }
        if !index.by_attribute.is_empty() {
            for (name, value) in &event.attributes {
                if let Some(rules) = index.by_attribute.get(&(name.clone(), value.to_string())) {
                    candidates.extend(rules);
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let matched: Vec<usize> = candidates
            .into_iter()
            .filter(|id| holds(self.rules[*id].condition.as_ref(), root))
            .collect();

        let mut fired: Vec<String> = matched
            .iter()
            .map(|id| self.rules[*id].name.clone())
            .collect();
        fired.sort();
        let mut blockers: Vec<String> = matched
            .iter()
            .filter(|id| self.rules[**id].block)
            .map(|id| self.rules[*id].name.clone())
            .collect();
        blockers.sort();
        let mut delivery = Delivery {
            plugin: plugin.name.clone(),
            routed: false,
            outcome: Outcome::Blocked(BlockReason::Rules(Vec::new())),
            fired,
            filter_errors: Vec::new(),
        };
        if !blockers.is_empty() {
            delivery.outcome = Outcome::Blocked(BlockReason::Rules(blockers));
            return delivery;
        }

        // The recipient's view: its `receive` projection of the payload,
        // beside the event's other members.
        let mut view = root.clone();
        view["payload"] = self.project(plugin_id, root);

        let mut located = Vec::new();
        for receive in &plugin.receives {
            if let Some(transform) = &receive.transform {
                for location in receive.path.locate(&view) {
                    located.push(Located {
                        location,
                        action: transform,
                        rule: None,
                        path: &receive.text,
                    });
                }
            }
        }
        for id in &matched {
            let rule = &self.rules[*id];
            for action in &rule.actions {
                for location in action.path.locate(&view) {
                    located.push(Located {
                        location,
                        action: &action.action,
                        rule: Some(&rule.name),
                        path: &action.text,
                    });
                }
            }
        }

        for chosen in resolve(located) {
            if let Err(error) =
                field_actions::apply(chosen.action, &mut view, &chosen.location, tools)
            {
                delivery.filter_errors.push(FilterError {
                    rule: chosen.rule.map(str::to_string),
                    path: chosen.path.to_string(),
                    reason: error.to_string(),
                });
            }
        }

        if !delivery.filter_errors.is_empty() && mode == FilterMode::FailClosed {
            delivery.outcome = Outcome::Blocked(BlockReason::FilterError);
            return delivery;
        }
        let payload = view
            .get_mut("payload")
            .map(Value::take)
            .unwrap_or(Value::Null);
        let attributes = match view.get_mut("attributes").map(Value::take) {
            Some(Value::Object(attributes)) => attributes,
            _ => Map::new(),
        };
        delivery.outcome = Outcome::Deliver {
            payload,
            attributes,
        };
        delivery
    }

    /// The payload fields a plugin may see, with their parents.
    fn project(&self, plugin_id: usize, root: &Value) -> Value {
        let plugin = &self.plugins[plugin_id];
        if plugin.receive_all {
            return root.get("payload").cloned().unwrap_or(Value::Null);
        }
        let mut projected = Value::Object(Map::new());
        for receive in &plugin.receives {
            for location in receive.path.locate(root) {
                let Some(value) = location::get(root, &location) else {
                    continue;
                };
                let [Step::Key(member), inside @ ..] = location.as_slice() else {
                    continue;
                };
                if member != "payload" {
                    continue;
                }
                if inside.is_empty() {
                    return value.clone();
                }
                location::insert(&mut projected, inside, value.clone());
            }
        }
        projected
    }

    /// Checks a payload against a model: an object, with no field the
    /// model does not declare, and declared types respected.
    fn validate(&self, model_id: usize, payload: &Value) -> Result<(), Rejection> {
        let model = &self.models[model_id];
        let Value::Object(object) = payload else {
            return Err(Rejection::NotAnObject {
                model: model.name.clone(),
            });
        };
        validate_object(&model.name, &model.fields, object, "")
    }
}

fn validate_object(
    model: &str,
    tree: &FieldTree,
    object: &Map<String, Value>,
    prefix: &str,
) -> Result<(), Rejection> {
    for (key, value) in object {
        let field = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let Some(node) = tree.children.get(key) else {
            return Err(Rejection::UndeclaredField {
                model: model.to_string(),
                field,
            });
        };
        match &node.declared {
            Some((_, Some(ty))) => {
                let (ok, expected) = match ty {
                    super::ast::FieldType::String => (value.is_string(), "string"),
                    super::ast::FieldType::Number => (value.is_number(), "number"),
                    super::ast::FieldType::Boolean => (value.is_boolean(), "boolean"),
                    super::ast::FieldType::Object => (value.is_object(), "object"),
                    super::ast::FieldType::Array => (value.is_array(), "array"),
                };
                // `null` stands for an absent value of any type.
                if !ok && !value.is_null() {
                    return Err(Rejection::WrongType {
                        model: model.to_string(),
                        field,
                        expected,
                    });
                }
            }
            Some((_, None)) => {}
            None => match value {
                Value::Object(inner) => validate_object(model, &node.children, inner, &field)?,
                _ => {
                    return Err(Rejection::WrongType {
                        model: model.to_string(),
                        field,
                        expected: "object",
                    });
                }
            },
        }
    }
    Ok(())
}

/// The event as conditions and paths see it.
fn event_root(event: &Event) -> Value {
    let mut root = Map::with_capacity(5);
    root.insert("topic".into(), Value::String(event.topic.clone()));
    root.insert("publisher".into(), Value::String(event.publisher.clone()));
    root.insert("subscriber".into(), Value::Null);
    root.insert("attributes".into(), Value::Object(event.attributes.clone()));
    root.insert("payload".into(), event.payload.clone());
    Value::Object(root)
}

fn set_subscriber(root: &mut Value, name: &str) {
    if let Some(subscriber) = root.get_mut("subscriber") {
        *subscriber = Value::String(name.to_string());
    }
}

/// Keeps, of all the actions located in one payload, those that apply:
/// per location the strongest action (every redaction, when nothing
/// stronger is there), and none below a location whose action already
/// covers the whole subtree. Returns them deepest first, later array
/// elements first, so that a removal never shifts a location still to be
/// visited.
fn resolve(located: Vec<Located<'_>>) -> Vec<Located<'_>> {
    let mut strongest: HashMap<Vec<Step>, Located<'_>> = HashMap::new();
    let mut redactions: Vec<Located<'_>> = Vec::new();
    for candidate in located {
        if matches!(candidate.action, FieldAction::Redact { .. }) {
            redactions.push(candidate);
        } else if strongest
            .get(&candidate.location)
            .is_none_or(|current| outranks(&candidate, current))
        {
            strongest.insert(candidate.location.clone(), candidate);
        }
    }

    let mut strength_at: HashMap<Vec<Step>, u8> = strongest
        .iter()
        .map(|(location, chosen)| (location.clone(), chosen.action.strength()))
        .collect();
    for redaction in &redactions {
        strength_at.entry(redaction.location.clone()).or_insert(1);
    }
    // An action is covered by an action above it that is at least as
    // strong; a redaction also by anything stronger at its own place.
    // Redactions never cover each other.
    let covered = |location: &[Step], threshold: u8, include_self: bool| {
        let lengths = if include_self {
            0..location.len() + 1
        } else {
            0..location.len()
        };
        lengths.into_iter().any(|len| {
            strength_at
                .get(&location[..len])
                .is_some_and(|s| *s >= threshold)
        })
    };

    let mut kept: Vec<Located<'_>> = Vec::new();
    for chosen in strongest.into_values() {
        if !covered(&chosen.location, chosen.action.strength(), false) {
            kept.push(chosen);
        }
    }
    for redaction in redactions {
        if !covered(&redaction.location, 2, true) {
            kept.push(redaction);
        }
    }
    kept.sort_by(|a, b| {
        b.location
            .len()
            .cmp(&a.location.len())
            .then_with(|| b.location.cmp(&a.location))
            .then_with(|| tie_order(a).cmp(&tie_order(b)))
    });
    kept
}

/// Whether `a` replaces `b` at one location: stronger wins; between equals,
/// a fixed order on their parameters, so the result never depends on the
/// order of rules or files.
fn outranks(a: &Located<'_>, b: &Located<'_>) -> bool {
    let (sa, sb) = (a.action.strength(), b.action.strength());
    if sa != sb {
        return sa > sb;
    }
    tie_order(a) < tie_order(b)
}

/// Between equal actions: the smaller `keep`, then the smaller key id
/// (the default key first), then the rule name and path.
fn tie_order<'a>(located: &'a Located<'_>) -> (u32, &'a str, &'a str, &'a str) {
    let (keep, key) = match located.action {
        FieldAction::Mask { keep } => (*keep, ""),
        FieldAction::Encrypt { key } | FieldAction::Hash { key } => {
            (0, key.as_deref().unwrap_or(""))
        }
        _ => (0, ""),
    };
    (keep, key, located.rule.unwrap_or(""), located.path)
}

fn holds(condition: Option<&Cond>, root: &Value) -> bool {
    condition.is_none_or(|c| evaluate(c, root))
}

fn evaluate(condition: &Cond, root: &Value) -> bool {
    match condition {
        Cond::And(terms) => terms.iter().all(|t| evaluate(t, root)),
        Cond::Or(terms) => terms.iter().any(|t| evaluate(t, root)),
        Cond::Not(inner) => !evaluate(inner, root),
        Cond::Test(path, test) => {
            let values = path.values(root);
            match test {
                Test::Exists => !values.is_empty(),
                Test::Compare(CompareOp::Eq, literal) => values.iter().any(|v| json_eq(v, literal)),
                Test::Compare(CompareOp::Ne, literal) => {
                    !values.iter().any(|v| json_eq(v, literal))
                }
                Test::Compare(op, literal) => values.iter().any(|v| compare(v, *op, literal)),
                Test::In(literals) => values
                    .iter()
                    .any(|v| literals.iter().any(|l| json_eq(v, l))),
                Test::Regex(regex) => values
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| regex.is_match(s))),
                Test::Topic(pattern) => values
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| pattern.matches(s))),
                Test::StartsWith(prefix) => values
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))),
                Test::Contains(needle) => values.iter().any(|v| match v {
                    Value::String(s) => s.contains(needle.as_str()),
                    Value::Array(items) => items
                        .iter()
                        .any(|item| item.as_str() == Some(needle.as_str())),
                    _ => false,
                }),
            }
        }
    }
}

/// JSON equality, with numbers compared by value (`1 == 1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Ordering tests: numbers by value, strings by code point; anything else
/// does not compare.
fn compare(value: &Value, op: CompareOp, literal: &Value) -> bool {
    let ordering = match (value, literal) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::Ne => ordering.is_ne(),
    }
}
