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

use std::collections::BTreeSet;

use super::ast::CompareOp;
use std::sync::Arc;

use super::compile::{Cond, Engine, FieldTree, Plan, Test};
use crate::actions::location::{self, CompiledPath, Step};
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
        let plan = self.admit(event)?;
        let mut root = EventView::new(event);
        let (recipients, routed) = self.recipients(&plan, &root);

        let tools = Tools {
            keys,
            detectors: &self.detectors,
        };
        let mut deliveries = Vec::with_capacity(recipients.len());
        // Conditions that do not depend on the recipient, decided once.
        let mut settled: Vec<Option<bool>> = vec![None; plan.rules.len()];
        for (name, id) in recipients {
            root.set_subscriber(name);
            let mut delivery = self.deliver(&plan, &mut settled, event, &root, id, &tools, mode);
            delivery.routed = routed.contains(&id);
            deliveries.push(delivery);
        }
        Ok(Decision { deliveries })
    }

    /// Routing only: the recipients of an event, by name, without
    /// computing what each one gets.
    pub fn route(&self, event: &Event) -> Result<Vec<String>, Rejection> {
        let plan = self.admit(event)?;
        let root = EventView::new(event);
        let (recipients, _) = self.recipients(&plan, &root);
        Ok(recipients
            .into_iter()
            .map(|(name, _)| name.to_string())
            .collect())
    }

    /// Routing by the plainest method: every plugin's patterns and every
    /// rule's condition, with no trie, index or cache. The baseline the
    /// benchmarks compare [`Engine::route`] with; not for production use.
    #[doc(hidden)]
    pub fn route_by_scanning(&self, event: &Event) -> Vec<String> {
        let root = EventView::new(event);
        let mut recipients = BTreeSet::new();
        for plugin in &self.plugins {
            if plugin.subscribes.iter().any(|p| p.matches(&event.topic)) {
                recipients.insert(plugin.name.as_str());
            }
        }
        for rule in &self.rules {
            if holds(rule.condition.as_ref(), &root) {
                for target in &rule.routes {
                    recipients.insert(self.plugins[*target].name.as_str());
                }
            }
        }
        recipients.into_iter().map(str::to_string).collect()
    }

    /// Checks what makes an event acceptable at all: a concrete topic, a
    /// publisher allowed on it, a payload its models accept.
    fn admit(&self, event: &Event) -> Result<Arc<Plan>, Rejection> {
        let plan = self.plan(&event.topic).ok_or(Rejection::InvalidTopic)?;

        let publisher = self.plugin_ids.get(&event.publisher);
        if !publisher.is_some_and(|id| plan.publishers.contains(id)) {
            return Err(Rejection::NotAllowed {
                publisher: event.publisher.clone(),
            });
        }
        for model in &plan.models {
            self.validate(*model, &event.payload)?;
        }
        Ok(plan)
    }

    /// The subscribers of the topic and the plugins routed to, by name,
    /// with the ids of the routed ones.
    fn recipients(
        &self,
        plan: &Plan,
        root: &EventView<'_>,
    ) -> (BTreeSet<(&str, usize)>, BTreeSet<usize>) {
        let mut recipients: BTreeSet<(&str, usize)> = plan
            .subscribers
            .iter()
            .map(|id| (self.plugins[*id].name.as_str(), *id))
            .collect();
        let mut routed = BTreeSet::new();
        for position in &plan.routing {
            let planned = &plan.rules[*position];
            let rule = &self.rules[planned.id];
            if holds(planned.condition.as_ref(), root) {
                for target in &rule.routes {
                    recipients.insert((self.plugins[*target].name.as_str(), *target));
                    routed.insert(*target);
                }
            }
        }
        (recipients, routed)
    }

    /// The delivery for one recipient; `root` names it as `subscriber`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the arguments are the decision's state"
    )]
    fn deliver(
        &self,
        plan: &Plan,
        settled: &mut [Option<bool>],
        event: &Event,
        root: &EventView<'_>,
        plugin_id: usize,
        tools: &Tools<'_>,
        mode: FilterMode,
    ) -> Delivery {
        let plugin = &self.plugins[plugin_id];

        // Positions in the plan of the rules that may hold for this
        // recipient: the unindexed ones, and those whose indexed equality
        // test the event and recipient satisfy.
        let index = &plan.index;
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
            .filter(|position| {
                let planned = &plan.rules[*position];
                if planned.per_recipient {
                    return holds(planned.condition.as_ref(), root);
                }
                *settled[*position].get_or_insert_with(|| holds(planned.condition.as_ref(), root))
            })
            .map(|position| plan.rules[position].id)
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
        let mut view = Map::with_capacity(5);
        for member in ["topic", "publisher", "subscriber", "attributes"] {
            view.insert(
                member.to_string(),
                root.member(member).cloned().unwrap_or(Value::Null),
            );
        }
        view.insert("payload".to_string(), self.project(plugin_id, root));
        let mut view = Value::Object(view);

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

        let chosen = resolve(located);
        let transformed: Vec<&[Step]> = chosen
            .iter()
            .filter(|c| !is_redaction(c.action))
            .map(|c| c.location.as_slice())
            .collect();
        for chosen in &chosen {
            let applied = if is_redaction(chosen.action) {
                redact_around(chosen, &transformed, &mut view, tools)
            } else {
                field_actions::apply(chosen.action, &mut view, &chosen.location, tools)
            };
            if let Err(error) = applied {
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
    fn project(&self, plugin_id: usize, root: &EventView<'_>) -> Value {
        let plugin = &self.plugins[plugin_id];
        if plugin.receive_all {
            return root.event.payload.clone();
        }
        let mut projected = Value::Object(Map::new());
        for receive in &plugin.receives {
            // A plain path reads the payload in place.
            if let Some([top, inside @ ..]) = receive.path.segments() {
                if top != "payload" {
                    continue;
                }
                let found = inside
                    .iter()
                    .try_fold(&root.event.payload, |value, member| {
                        value.get(member.as_str())
                    });
                if let Some(value) = found {
                    if inside.is_empty() {
                        return value.clone();
                    }
                    let steps: Vec<Step> = inside.iter().cloned().map(Step::Key).collect();
                    location::insert(&mut projected, &steps, value.clone());
                }
                continue;
            }
            let whole = root.whole();
            for location in receive.path.locate(whole) {
                let Some(value) = location::get(whole, &location) else {
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
        validate_object(&model.name, &model.fields, object, "", false)
    }
}

/// Checks the members of `object` against the fields of `tree`. Below a
/// declared field (`covered`) any member may appear, but the declared
/// fields further down still hold their values to their types.
fn validate_object(
    model: &str,
    tree: &FieldTree,
    object: &Map<String, Value>,
    prefix: &str,
    covered: bool,
) -> Result<(), Rejection> {
    for (key, value) in object {
        let field = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let Some(node) = tree.children.get(key) else {
            if covered {
                continue;
            }
            return Err(Rejection::UndeclaredField {
                model: model.to_string(),
                field,
            });
        };
        if let Some((_, Some(ty))) = &node.declared {
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
        let covered = covered || node.declared.is_some();
        match value {
            Value::Object(inner) if !node.children.children.is_empty() => {
                validate_object(model, &node.children, inner, &field, covered)?;
            }
            _ if covered => {}
            // A member that only leads to declared fields must hold them.
            _ => {
                return Err(Rejection::WrongType {
                    model: model.to_string(),
                    field,
                    expected: "object",
                });
            }
        }
    }
    Ok(())
}

/// What conditions and paths are evaluated against: the event object
/// `{topic, publisher, subscriber, attributes, payload}`.
pub(super) trait Root {
    /// A top-level member.
    fn member(&self, name: &str) -> Option<&Value>;
    /// The whole event as one value, for JSONPaths.
    fn whole(&self) -> &Value;
}

impl Root for Value {
    fn member(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }

    fn whole(&self) -> &Value {
        self
    }
}

/// The event seen through its members, borrowing the payload: plain paths
/// read it in place, and only a JSONPath makes the whole event a value
/// (once, then kept up to date).
struct EventView<'e> {
    event: &'e Event,
    topic: Value,
    publisher: Value,
    subscriber: Value,
    attributes: Value,
    whole: std::cell::OnceCell<Value>,
}

impl<'e> EventView<'e> {
    fn new(event: &'e Event) -> Self {
        EventView {
            event,
            topic: Value::String(event.topic.clone()),
            publisher: Value::String(event.publisher.clone()),
            subscriber: Value::Null,
            attributes: Value::Object(event.attributes.clone()),
            whole: std::cell::OnceCell::new(),
        }
    }

    fn set_subscriber(&mut self, name: &str) {
        self.subscriber = Value::String(name.to_string());
        if let Some(whole) = self.whole.get_mut() {
            whole["subscriber"] = self.subscriber.clone();
        }
    }
}

impl Root for EventView<'_> {
    fn member(&self, name: &str) -> Option<&Value> {
        match name {
            "topic" => Some(&self.topic),
            "publisher" => Some(&self.publisher),
            "subscriber" => Some(&self.subscriber),
            "attributes" => Some(&self.attributes),
            "payload" => Some(&self.event.payload),
            _ => None,
        }
    }

    fn whole(&self) -> &Value {
        self.whole.get_or_init(|| {
            let mut root = Map::with_capacity(5);
            root.insert("topic".into(), self.topic.clone());
            root.insert("publisher".into(), self.publisher.clone());
            root.insert("subscriber".into(), self.subscriber.clone());
            root.insert("attributes".into(), self.attributes.clone());
            root.insert("payload".into(), self.event.payload.clone());
            Value::Object(root)
        })
    }
}

/// Keeps, of all the actions located in one payload, those that apply:
/// per location the strongest action (every redaction, when nothing
/// stronger is there), and none below a location whose action already
/// covers the whole subtree. Returns the redactions first, as they change
/// no structure; then the other actions deepest first, later array
/// elements first, so that a removal never shifts a location still to be
/// visited.
fn resolve(mut located: Vec<Located<'_>>) -> Vec<Located<'_>> {
    // Sorted by location, a parent comes before its children, and at one
    // location the action that wins comes first (redactions last).
    located.sort_by(|a, b| {
        a.location
            .cmp(&b.location)
            .then_with(|| b.action.strength().cmp(&a.action.strength()))
            .then_with(|| tie_order(a).cmp(&tie_order(b)))
    });

    let mut kept: Vec<Located<'_>> = Vec::with_capacity(located.len());
    // Kept actions other than redactions on the path down to the current
    // location: their index in `kept`, and the strongest strength from the
    // top down to them.
    let mut above: Vec<(usize, u8)> = Vec::new();
    for candidate in located {
        let strength = candidate.action.strength();
        if let Some(last) = kept.last()
            && last.location == candidate.location
        {
            // Another action at a place already decided: only redactions
            // add to redactions.
            if last.action.strength() == 1 && strength == 1 {
                kept.push(candidate);
            }
            continue;
        }
        while let Some(&(index, _)) = above.last() {
            let parent = &kept[index].location;
            if parent.len() < candidate.location.len() && candidate.location.starts_with(parent) {
                break;
            }
            above.pop();
        }
        let strongest_above = above.last().map_or(0, |(_, s)| *s);
        if strongest_above >= covering_strength(candidate.action) {
            continue;
        }
        if strength >= 2 {
            above.push((kept.len(), strength.max(strongest_above)));
        }
        kept.push(candidate);
    }

    kept.sort_by(|a, b| {
        (!is_redaction(a.action))
            .cmp(&!is_redaction(b.action))
            .then_with(|| b.location.len().cmp(&a.location.len()))
            .then_with(|| b.location.cmp(&a.location))
            .then_with(|| tie_order(a).cmp(&tie_order(b)))
    });
    kept
}

fn is_redaction(action: &FieldAction) -> bool {
    matches!(action, FieldAction::Redact { .. })
}

/// Applies a redaction, leaving alone the values below it that a stronger
/// action (at one of the `transformed` locations) is still to transform:
/// on each value the strongest action wins (SPEC 2.3.5), and a redaction
/// applied over them would rewrite the kept characters of a mask or the
/// inside of an encrypted or hashed value. Those values are taken out
/// while the redaction runs and put back after.
fn redact_around(
    redaction: &Located<'_>,
    transformed: &[&[Step]],
    view: &mut Value,
    tools: &Tools<'_>,
) -> Result<(), field_actions::ActionError> {
    let at = redaction.location.as_slice();
    let mut taken = Vec::new();
    for inner in transformed {
        if inner.len() > at.len()
            && inner.starts_with(at)
            && let Some(value) = location::get_mut(view, inner)
        {
            taken.push((*inner, value.take()));
        }
    }
    let applied = field_actions::apply(redaction.action, view, at, tools);
    // In reverse: when a value and one inside it were both taken out, the
    // outer one goes back first and the inner one then into it.
    for (inner, value) in taken.into_iter().rev() {
        if let Some(slot) = location::get_mut(view, inner) {
            *slot = value;
        }
    }
    applied
}

/// The least strength that an action above `action` must have to cover
/// it, so that `action` is dropped.
///
/// An action at least as strong covers it, and anything but a redaction
/// covers a redaction. A hash also covers an encryption: the hash replaces
/// the whole value anyway, and computed over a fresh (random) ciphertext
/// it would give a new pseudonym for the same input every time (SPEC
/// 2.3.7), so the encryption is dropped and the hash sees the plaintext.
fn covering_strength(action: &FieldAction) -> u8 {
    match action {
        FieldAction::Encrypt { .. } => FieldAction::Hash { key: None }.strength(),
        other => other.strength().max(2),
    }
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

fn holds(condition: Option<&Cond>, root: &impl Root) -> bool {
    condition.is_none_or(|c| evaluate(c, root))
}

fn evaluate(condition: &Cond, root: &impl Root) -> bool {
    match condition {
        Cond::And(terms) => terms.iter().all(|t| evaluate(t, root)),
        Cond::Or(terms) => terms.iter().any(|t| evaluate(t, root)),
        Cond::Not(inner) => !evaluate(inner, root),
        Cond::Test(path, test) => test_holds(path, test, root),
    }
}

/// Whether one test holds: for some value the path selects (a plain path
/// selects at most one), or, for `!=`, for none of them.
pub(super) fn test_holds(path: &CompiledPath, test: &Test, root: &impl Root) -> bool {
    match path.segments() {
        Some([first, rest @ ..]) => {
            let value = root.member(first).and_then(|top| {
                rest.iter()
                    .try_fold(top, |value, segment| value.get(segment.as_str()))
            });
            test_values(test, value.into_iter())
        }
        _ => test_values(test, path.values(root.whole()).into_iter()),
    }
}

fn test_values<'v>(test: &Test, mut values: impl Iterator<Item = &'v Value>) -> bool {
    match test {
        Test::Exists => values.next().is_some(),
        Test::Compare(CompareOp::Eq, literal) => values.any(|v| json_eq(v, literal)),
        Test::Compare(CompareOp::Ne, literal) => !values.any(|v| json_eq(v, literal)),
        Test::Compare(op, literal) => values.any(|v| compare(v, *op, literal)),
        Test::In(literals) => values.any(|v| literals.iter().any(|l| json_eq(v, l))),
        Test::Regex(regex) => values.any(|v| v.as_str().is_some_and(|s| regex.is_match(s))),
        Test::Topic(pattern) => values.any(|v| v.as_str().is_some_and(|s| pattern.matches(s))),
        Test::StartsWith(prefix) => {
            values.any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix.as_str())))
        }
        Test::Contains(needle) => values.any(|v| match v {
            Value::String(s) => s.contains(needle.as_str()),
            Value::Array(items) => items
                .iter()
                .any(|item| item.as_str() == Some(needle.as_str())),
            _ => false,
        }),
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
