//! From a checked rule set to the structure the engine evaluates.
//!
//! Compilation resolves every name to an index, parses every path, regex
//! and topic pattern once, and builds a trie of topic patterns. For each
//! concrete topic the trie yields a [`Plan`]: the models, publishers,
//! subscribers and candidate rules of that topic, with rules indexed by
//! the equality tests that can rule them out cheaply. Plans are cached, so
//! the trie is walked once per distinct topic.
//!
//! The input must have checked clean; a problem the checker would have
//! reported becomes a [`CompileError`] rather than a panic.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::ast::{
    self, ActionKind, CompareOp, Condition, DataClass, FieldType, Item, Receive, ReceiveTransform,
    TestOp,
};
use super::check::{REGEX_SIZE_LIMIT, topic_scope};
use super::source::{FileId, Sources};
use super::topic::{Segment, TopicPattern};
use crate::actions::FieldAction;
use crate::actions::detectors::Detectors;
use crate::actions::location::CompiledPath;

/// A rule set the checker would have refused.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile the rule set: {0}")]
pub struct CompileError(pub String);

/// The most topics whose plans are kept; the cache starts over when full.
const PLAN_CACHE_SIZE: usize = 4096;

/// A compiled rule set, ready to decide events. Cheap to share.
pub struct Engine {
    pub(super) plugins: Vec<CompiledPlugin>,
    pub(super) plugin_ids: HashMap<String, usize>,
    pub(super) rules: Vec<CompiledRule>,
    pub(super) models: Vec<CompiledModel>,
    pub(super) detectors: Detectors,
    trie: TopicTrie,
    /// Rules whose condition does not narrow the topic.
    any_topic_rules: Vec<usize>,
    plans: RwLock<HashMap<String, Arc<Plan>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("plugins", &self.plugins.len())
            .field("rules", &self.rules.len())
            .field("models", &self.models.len())
            .finish_non_exhaustive()
    }
}

pub(super) struct CompiledPlugin {
    pub name: String,
    /// Kept beside the trie for the scanning baseline.
    pub subscribes: Vec<TopicPattern>,
    pub receive_all: bool,
    pub receives: Vec<CompiledReceive>,
    pub endpoint: Option<String>,
}

pub(super) struct CompiledReceive {
    pub path: CompiledPath,
    pub transform: Option<FieldAction>,
    pub text: String,
}

pub(super) struct CompiledRule {
    pub name: String,
    pub condition: Option<Cond>,
    /// The condition as written, for `explain`.
    pub condition_text: Option<String>,
    pub block: bool,
    pub routes: Vec<usize>,
    pub actions: Vec<CompiledAction>,
}

pub(super) struct CompiledAction {
    pub path: CompiledPath,
    pub action: FieldAction,
    pub text: String,
}

/// A condition with paths, regexes and patterns compiled.
#[derive(Clone)]
pub(super) enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Test(CompiledPath, Test),
}

#[derive(Clone)]
pub(super) enum Test {
    Exists,
    Compare(CompareOp, Value),
    In(Vec<Value>),
    Regex(Regex),
    Topic(TopicPattern),
    StartsWith(String),
    Contains(String),
}

pub(super) struct CompiledModel {
    pub name: String,
    pub fields: FieldTree,
}

/// Declared fields as a tree of member names.
#[derive(Default)]
pub(super) struct FieldTree {
    pub children: HashMap<String, FieldNode>,
}

#[derive(Default)]
pub(super) struct FieldNode {
    /// Set when this node is itself declared: it then covers its subtree.
    pub declared: Option<(DataClass, Option<FieldType>)>,
    pub children: FieldTree,
}

/// What one concrete topic needs, computed once and cached.
pub(super) struct Plan {
    pub models: Vec<usize>,
    pub publishers: BTreeSet<usize>,
    pub subscribers: BTreeSet<usize>,
    /// The rules that may hold on this topic, each with its condition
    /// specialised to the topic: tests of `topic` are already decided.
    pub rules: Vec<PlannedRule>,
    /// Positions in `rules` of those that hold a `route to`.
    pub routing: Vec<usize>,
    /// Positions in `rules`, indexed by an equality test.
    pub index: RuleIndex,
}

/// A candidate rule of a plan.
pub(super) struct PlannedRule {
    pub id: usize,
    /// `None` when the condition holds for every event on the topic.
    pub condition: Option<Cond>,
    /// Whether the condition may depend on the recipient: it tests
    /// `subscriber`, or uses a JSONPath that could reach it. Otherwise it
    /// is evaluated once per event, not once per recipient.
    pub per_recipient: bool,
}

/// Candidate rules, split by an equality test that must hold for them.
#[derive(Default)]
pub(super) struct RuleIndex {
    pub general: Vec<usize>,
    pub by_subscriber: HashMap<usize, Vec<usize>>,
    pub by_publisher: HashMap<String, Vec<usize>>,
    /// Keyed by attribute name and the literal's JSON text.
    pub by_attribute: HashMap<(String, String), Vec<usize>>,
}

/// What a rule can be indexed by: a conjunct that must hold.
enum IndexKey {
    Subscriber(usize),
    Publisher(String),
    Attribute(String, String),
}

#[derive(Clone, Copy)]
enum TrieItem {
    Publish(usize),
    Subscribe(usize),
    Rule(usize),
    Carries(usize),
}

/// Topic patterns by segment: one walk of a topic finds every pattern
/// that matches it.
#[derive(Default)]
struct TopicTrie {
    root: TrieNode,
}

#[derive(Default)]
struct TrieNode {
    literal: HashMap<String, TrieNode>,
    star: Option<Box<TrieNode>>,
    /// Items whose pattern ends here.
    here: Vec<TrieItem>,
    /// Items whose pattern has `**` here: they match one or more further
    /// segments.
    rest: Vec<TrieItem>,
}

impl TopicTrie {
    fn insert(&mut self, pattern: &TopicPattern, item: TrieItem) {
        let mut node = &mut self.root;
        for segment in pattern.segments() {
            node = match segment {
                Segment::Literal(literal) => node.literal.entry(literal.clone()).or_default(),
                Segment::One => node.star.get_or_insert_with(Default::default),
                Segment::Rest => {
                    node.rest.push(item);
                    return;
                }
            };
        }
        node.here.push(item);
    }

    fn walk(&self, segments: &[&str], found: &mut Vec<TrieItem>) {
        walk_node(&self.root, segments, found);
    }
}

fn walk_node(node: &TrieNode, segments: &[&str], found: &mut Vec<TrieItem>) {
    let Some((first, rest)) = segments.split_first() else {
        found.extend_from_slice(&node.here);
        return;
    };
    found.extend_from_slice(&node.rest);
    if let Some(child) = node.literal.get(*first) {
        walk_node(child, rest, found);
    }
    if let Some(child) = &node.star {
        walk_node(child, rest, found);
    }
}

impl Engine {
    /// Compiles a rule set that has checked clean.
    pub fn compile(
        sources: &Sources,
        files: &[(FileId, ast::File)],
    ) -> Result<Engine, CompileError> {
        let items: Vec<&Item> = files.iter().flat_map(|(_, file)| &file.items).collect();

        let mut custom_detectors = Vec::new();
        for item in &items {
            if let Item::Detector(detector) = item {
                custom_detectors.push((detector.name.text.clone(), detector.regex.text.clone()));
            }
        }
        let detectors =
            Detectors::new(&custom_detectors).map_err(|e| CompileError(e.to_string()))?;

        let mut plugin_ids = HashMap::new();
        let mut plugin_items = Vec::new();
        for item in &items {
            if let Item::Plugin(plugin) = item {
                if plugin_ids
                    .insert(plugin.name.text.clone(), plugin_items.len())
                    .is_some()
                {
                    return Err(CompileError(format!(
                        "plugin `{}` declared twice",
                        plugin.name.text
                    )));
                }
                plugin_items.push(plugin);
            }
        }

        let mut model_ids = HashMap::new();
        let mut models = Vec::new();
        for item in &items {
            if let Item::Model(model) = item {
                model_ids.insert(model.name.text.clone(), models.len());
                models.push(compile_model(model));
            }
        }

        let mut trie = TopicTrie::default();
        let mut plugins = Vec::new();
        for (id, plugin) in plugin_items.iter().enumerate() {
            for pattern in &plugin.publishes {
                trie.insert(&pattern_of(&pattern.text)?, TrieItem::Publish(id));
            }
            for pattern in &plugin.subscribes {
                trie.insert(&pattern_of(&pattern.text)?, TrieItem::Subscribe(id));
            }
            plugins.push(compile_plugin(plugin)?);
        }

        for item in &items {
            if let Item::Topic(topic) = item {
                let model = *model_ids
                    .get(&topic.model.text)
                    .ok_or_else(|| CompileError(format!("unknown model `{}`", topic.model.text)))?;
                trie.insert(&pattern_of(&topic.pattern.text)?, TrieItem::Carries(model));
            }
        }

        let mut rules = Vec::new();
        let mut any_topic_rules = Vec::new();
        for item in &items {
            let Item::Rule(rule) = item else {
                continue;
            };
            let id = rules.len();
            rules.push(compile_rule(rule, sources, &plugin_ids, &detectors)?);
            match rule.condition.as_ref().map(topic_scope) {
                Some(Some(patterns)) => {
                    for pattern in patterns {
                        trie.insert(&pattern, TrieItem::Rule(id));
                    }
                }
                _ => any_topic_rules.push(id),
            }
        }

        Ok(Engine {
            plugins,
            plugin_ids,
            rules,
            models,
            detectors,
            trie,
            any_topic_rules,
            plans: RwLock::new(HashMap::new()),
        })
    }

    /// The names of every declared plugin, in declaration order.
    pub fn plugin_names(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(|p| p.name.as_str())
    }

    /// The push endpoint of a plugin, if it has one.
    pub fn endpoint(&self, plugin: &str) -> Option<&str> {
        let id = *self.plugin_ids.get(plugin)?;
        self.plugins[id].endpoint.as_deref()
    }

    /// The condition of a rule as written, for `explain`.
    pub fn condition_text(&self, rule: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.name == rule)
            .and_then(|r| r.condition_text.as_deref())
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The plan of a concrete topic, from the cache or freshly built.
    /// `None` when `topic` is not a valid concrete topic; only valid
    /// topics are cached, so a hit needs no validation.
    pub(super) fn plan(&self, topic: &str) -> Option<Arc<Plan>> {
        if let Ok(plans) = self.plans.read()
            && let Some(plan) = plans.get(topic)
        {
            return Some(Arc::clone(plan));
        }
        TopicPattern::parse_topic(topic).ok()?;
        let plan = Arc::new(self.build_plan(topic));
        if let Ok(mut plans) = self.plans.write() {
            if plans.len() >= PLAN_CACHE_SIZE {
                plans.clear();
            }
            plans.insert(topic.to_string(), Arc::clone(&plan));
        }
        Some(plan)
    }

    fn build_plan(&self, topic: &str) -> Plan {
        let segments: Vec<&str> = topic.split('.').collect();
        let mut found = Vec::new();
        self.trie.walk(&segments, &mut found);

        let mut models = Vec::new();
        let mut publishers = BTreeSet::new();
        let mut subscribers = BTreeSet::new();
        let mut candidates: BTreeSet<usize> = self.any_topic_rules.iter().copied().collect();
        for item in found {
            match item {
                TrieItem::Publish(plugin) => {
                    publishers.insert(plugin);
                }
                TrieItem::Subscribe(plugin) => {
                    subscribers.insert(plugin);
                }
                TrieItem::Rule(rule) => {
                    candidates.insert(rule);
                }
                TrieItem::Carries(model) => {
                    if !models.contains(&model) {
                        models.push(model);
                    }
                }
            }
        }

        let mut planned = Vec::new();
        let mut routing = Vec::new();
        let mut index = RuleIndex::default();
        for id in candidates {
            let rule = &self.rules[id];
            let condition = match rule.condition.as_ref().map(|c| specialise(c, topic)) {
                None | Some(Known::True) => None,
                Some(Known::False) => continue,
                Some(Known::Open(condition)) => Some(condition),
            };
            let position = planned.len();
            if !rule.routes.is_empty() {
                routing.push(position);
            }
            match condition.as_ref().and_then(|c| self.index_key(c)) {
                Some(IndexKey::Subscriber(plugin)) => index
                    .by_subscriber
                    .entry(plugin)
                    .or_default()
                    .push(position),
                Some(IndexKey::Publisher(name)) => {
                    index.by_publisher.entry(name).or_default().push(position)
                }
                Some(IndexKey::Attribute(name, value)) => index
                    .by_attribute
                    .entry((name, value))
                    .or_default()
                    .push(position),
                None => index.general.push(position),
            }
            let per_recipient = condition.as_ref().is_some_and(depends_on_subscriber);
            planned.push(PlannedRule {
                id,
                condition,
                per_recipient,
            });
        }
        Plan {
            models,
            publishers,
            subscribers,
            rules: planned,
            routing,
            index,
        }
    }

    /// An equality conjunct that must hold for the condition to hold.
    fn index_key(&self, condition: &Cond) -> Option<IndexKey> {
        let conjuncts: &[Cond] = match condition {
            Cond::And(terms) => terms,
            single => std::slice::from_ref(single),
        };
        let mut best = None;
        for term in conjuncts {
            let Cond::Test(path, Test::Compare(CompareOp::Eq, literal)) = term else {
                continue;
            };
            let Some(segments) = path.segments() else {
                continue;
            };
            let key = match (segments, literal) {
                ([member], Value::String(name)) if member == "subscriber" => {
                    match self.plugin_ids.get(name) {
                        Some(id) => IndexKey::Subscriber(*id),
                        // A subscriber that is not a plugin never receives.
                        None => IndexKey::Subscriber(usize::MAX),
                    }
                }
                ([member], Value::String(name)) if member == "publisher" => {
                    IndexKey::Publisher(name.clone())
                }
                ([root, name], Value::String(_) | Value::Bool(_)) if root == "attributes" => {
                    IndexKey::Attribute(name.clone(), literal.to_string())
                }
                _ => continue,
            };
            // Prefer the most selective kind of key: subscriber, then
            // publisher, then an attribute.
            let rank = |key: &IndexKey| match key {
                IndexKey::Subscriber(_) => 0,
                IndexKey::Publisher(_) => 1,
                IndexKey::Attribute(..) => 2,
            };
            if best.as_ref().is_none_or(|b| rank(&key) < rank(b)) {
                best = Some(key);
            }
        }
        best
    }
}

/// Whether a condition may read `subscriber`.
fn depends_on_subscriber(condition: &Cond) -> bool {
    match condition {
        Cond::And(terms) | Cond::Or(terms) => terms.iter().any(depends_on_subscriber),
        Cond::Not(inner) => depends_on_subscriber(inner),
        Cond::Test(path, _) => match path.segments() {
            Some(segments) => segments.first().is_some_and(|first| first == "subscriber"),
            // A JSONPath might reach it through a wildcard.
            None => true,
        },
    }
}

/// A condition with what one topic decides of it taken out.
enum Known {
    True,
    False,
    Open(Cond),
}

/// Decides every test of `topic` in a condition for one concrete topic and
/// simplifies what remains. The result holds for an event on `topic`
/// exactly when the original condition does.
fn specialise(condition: &Cond, topic: &str) -> Known {
    match condition {
        Cond::Test(path, test)
            if path
                .segments()
                .is_some_and(|s| s.len() == 1 && s[0] == "topic") =>
        {
            let root = serde_json::json!({ "topic": topic });
            if super::decide::test_holds(path, test, &root) {
                Known::True
            } else {
                Known::False
            }
        }
        Cond::Test(..) => Known::Open(condition.clone()),
        Cond::Not(inner) => match specialise(inner, topic) {
            Known::True => Known::False,
            Known::False => Known::True,
            Known::Open(inner) => Known::Open(Cond::Not(Box::new(inner))),
        },
        Cond::And(terms) => {
            let mut open = Vec::new();
            for term in terms {
                match specialise(term, topic) {
                    Known::False => return Known::False,
                    Known::True => {}
                    Known::Open(term) => open.push(term),
                }
            }
            match open.len() {
                0 => Known::True,
                1 => Known::Open(open.remove(0)),
                _ => Known::Open(Cond::And(open)),
            }
        }
        Cond::Or(terms) => {
            let mut open = Vec::new();
            for term in terms {
                match specialise(term, topic) {
                    Known::True => return Known::True,
                    Known::False => {}
                    Known::Open(term) => open.push(term),
                }
            }
            match open.len() {
                0 => Known::False,
                1 => Known::Open(open.remove(0)),
                _ => Known::Open(Cond::Or(open)),
            }
        }
    }
}

fn pattern_of(text: &str) -> Result<TopicPattern, CompileError> {
    TopicPattern::parse(text).map_err(|e| CompileError(format!("invalid topic pattern: {e}")))
}

fn compile_path(path: &super::path::PathExpr) -> Result<CompiledPath, CompileError> {
    CompiledPath::compile(path)
        .map_err(|e| CompileError(format!("invalid path `{}`: {e}", path.text)))
}

fn compile_model(model: &ast::Model) -> CompiledModel {
    let mut fields = FieldTree::default();
    for field in &model.fields {
        let mut current = &mut fields;
        let Some((last, parents)) = field.path.split_last() else {
            continue;
        };
        for segment in parents {
            current = &mut current
                .children
                .entry(segment.clone())
                .or_default()
                .children;
        }
        current.children.entry(last.clone()).or_default().declared = Some((field.class, field.ty));
    }
    CompiledModel {
        name: model.name.text.clone(),
        fields,
    }
}

fn compile_plugin(plugin: &ast::Plugin) -> Result<CompiledPlugin, CompileError> {
    let mut receive_all = false;
    let mut receives = Vec::new();
    for receive in &plugin.receives {
        match receive {
            Receive::All { .. } => receive_all = true,
            Receive::Path {
                path, transform, ..
            } => receives.push(CompiledReceive {
                path: compile_path(path)?,
                transform: transform.map(|t| match t {
                    ReceiveTransform::Encrypted => FieldAction::Encrypt { key: None },
                    ReceiveTransform::Hashed => FieldAction::Hash { key: None },
                    ReceiveTransform::Masked => FieldAction::Mask { keep: 0 },
                }),
                text: path.text.clone(),
            }),
        }
    }
    let subscribes = plugin
        .subscribes
        .iter()
        .map(|p| pattern_of(&p.text))
        .collect::<Result<_, _>>()?;
    Ok(CompiledPlugin {
        name: plugin.name.text.clone(),
        subscribes,
        receive_all,
        receives,
        endpoint: plugin.endpoints.first().map(|e| e.text.clone()),
    })
}

fn compile_rule(
    rule: &ast::Rule,
    sources: &Sources,
    plugin_ids: &HashMap<String, usize>,
    detectors: &Detectors,
) -> Result<CompiledRule, CompileError> {
    let condition = rule.condition.as_ref().map(compile_condition).transpose()?;
    let condition_text = rule
        .condition
        .as_ref()
        .and_then(condition_span)
        .map(|span| {
            let text = sources.get(span.file).text();
            let written = text.get(span.start..span.end).unwrap_or("");
            written.split_whitespace().collect::<Vec<_>>().join(" ")
        });

    let mut block = false;
    let mut routes = Vec::new();
    let mut actions = Vec::new();
    for action in &rule.actions {
        let field_action = match &action.kind {
            ActionKind::Block => {
                block = true;
                continue;
            }
            ActionKind::Route(targets) => {
                for target in targets {
                    let id = plugin_ids
                        .get(&target.text)
                        .ok_or_else(|| CompileError(format!("unknown plugin `{}`", target.text)))?;
                    routes.push(*id);
                }
                continue;
            }
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
                let selection = detectors
                    .select(&names)
                    .map_err(|e| CompileError(e.to_string()))?;
                FieldAction::Redact {
                    detectors: selection,
                }
            }
        };
        let Some(path) = action.kind.path() else {
            continue;
        };
        actions.push(CompiledAction {
            path: compile_path(path)?,
            action: field_action,
            text: path.text.clone(),
        });
    }
    routes.sort_unstable();
    routes.dedup();

    Ok(CompiledRule {
        name: rule.name.text.clone(),
        condition,
        condition_text,
        block,
        routes,
        actions,
    })
}

/// The text range of a condition, from its first test to its last.
fn condition_span(condition: &Condition) -> Option<super::source::Span> {
    match condition {
        Condition::Check(check) => Some(check.span),
        Condition::Not(inner) => condition_span(inner),
        Condition::And(terms) | Condition::Or(terms) => {
            let first = condition_span(terms.first()?)?;
            let last = condition_span(terms.last()?)?;
            Some(super::source::Span::new(first.file, first.start, last.end))
        }
    }
}

fn compile_condition(condition: &Condition) -> Result<Cond, CompileError> {
    Ok(match condition {
        Condition::And(terms) => Cond::And(
            terms
                .iter()
                .map(compile_condition)
                .collect::<Result<_, _>>()?,
        ),
        Condition::Or(terms) => Cond::Or(
            terms
                .iter()
                .map(compile_condition)
                .collect::<Result<_, _>>()?,
        ),
        Condition::Not(inner) => Cond::Not(Box::new(compile_condition(inner)?)),
        Condition::Check(check) => {
            let path = compile_path(&check.path)?;
            let test = match &check.op {
                TestOp::Exists => Test::Exists,
                TestOp::Compare(op, literal) => Test::Compare(*op, literal.value.clone()),
                TestOp::In(literals) => {
                    Test::In(literals.iter().map(|l| l.value.clone()).collect())
                }
                TestOp::Matches(pattern) if check.path.is_member("topic") => {
                    Test::Topic(pattern_of(&pattern.text)?)
                }
                TestOp::Matches(regex) => Test::Regex(
                    RegexBuilder::new(&regex.text)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|_| {
                            CompileError(format!(
                                "invalid regex in rule condition `{}`",
                                check.path.text
                            ))
                        })?,
                ),
                TestOp::StartsWith(prefix) => Test::StartsWith(prefix.text.clone()),
                TestOp::Contains(needle) => Test::Contains(needle.text.clone()),
            };
            Cond::Test(path, test)
        }
    })
}
