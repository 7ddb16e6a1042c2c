//! The compiled engine against the reference evaluator
//! (`support/reference.rs`), on random rule sets and events.
//!
//! Rule sets are drawn from a small vocabulary so that rules, plugins and
//! events often meet: a few topics and patterns, six plugin names, one set
//! of payload fields. Every rule set must check without errors (warnings
//! are fine); its items are shuffled and split over two files, as the
//! order of files and items must never change a decision. Each event is
//! decided by both evaluators under both filter modes, and everything a
//! decision says is compared: acceptance, recipients, routing, blocks and
//! their rules, fired rules, filter errors, payloads and attributes.
//! Encrypted values are compared after decryption; hashes are
//! deterministic under one key ring and compared as they are.
//!
//! At least 1,000 cases run; `PROPTEST_CASES` may ask for more.

#[path = "support/reference.rs"]
mod reference;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::LazyLock;

use phigate::config::FilterMode;
use phigate::keys::KeyRing;
use phigate::rules::topic::TopicPattern;
use phigate::rules::{
    self, BlockReason, CheckOptions, Decision, Engine, Event, Outcome, Rejection, Severity, Sources,
};
use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Value, json};

/// The least number of cases, whatever `PROPTEST_CASES` says.
const MIN_CASES: u32 = 1000;

static KEYS: LazyLock<KeyRing> = LazyLock::new(KeyRing::ephemeral);

#[test]
fn the_engine_agrees_with_the_reference() {
    let config = Config {
        cases: Config::default().cases.max(MIN_CASES),
        failure_persistence: None,
        // Shrinking a large case is slow in a debug build; a failure is
        // reported, partly minimised, within half a minute.
        max_shrink_time: 30_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let stats = Stats::default();
    let result = runner.run(&case(), |case| run(&case, &stats));
    if let Err(error) = result {
        match error {
            TestError::Fail(reason, case) => panic!(
                "{reason}\n\nrule files, as shrunk:\n{}\nevents:\n{}",
                case.files()
                    .iter()
                    .enumerate()
                    .map(|(index, text)| format!("# set{index}.rules\n{text}"))
                    .collect::<String>(),
                case.events
                    .iter()
                    .map(|e| format!(
                        "  {} from {} {} {}",
                        e.topic,
                        e.publisher,
                        Value::Object(e.attributes.clone()),
                        e.payload
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            TestError::Abort(reason) => panic!("aborted: {reason}"),
        }
    }

    // A generator gone wrong would test nothing and still pass: make sure
    // the cases reach the interesting parts. Per 100 events, at least
    // about half of what is usually seen.
    let decided = stats.decided.get();
    let floors = [
        ("accepted events", stats.accepted.get(), 35),
        ("rejected events", stats.rejected.get(), 15),
        ("deliveries", stats.delivered.get(), 45),
        (
            "deliveries blocked by a rule",
            stats.blocked_by_rule.get(),
            25,
        ),
        ("filter errors", stats.filter_errors.get(), 15),
        ("routed deliveries", stats.routed.get(), 40),
        ("transformed values", stats.transformed.get(), 60),
    ];
    for (what, count, floor) in floors {
        assert!(
            count * 100 >= floor * decided,
            "only {count} {what} for {decided} events: {stats:?}"
        );
    }
}

#[derive(Debug, Default)]
struct Stats {
    decided: Cell<u32>,
    accepted: Cell<u32>,
    rejected: Cell<u32>,
    delivered: Cell<u32>,
    blocked_by_rule: Cell<u32>,
    filter_errors: Cell<u32>,
    routed: Cell<u32>,
    /// Encrypted, hashed, masked or redacted values delivered.
    transformed: Cell<u32>,
}

fn bump(counter: &Cell<u32>, by: usize) {
    counter.set(counter.get() + u32::try_from(by).unwrap_or(u32::MAX));
}

fn run(case: &Case, stats: &Stats) -> Result<(), TestCaseError> {
    let files = case.files();
    let mut sources = Sources::new();
    for (index, text) in files.iter().enumerate() {
        sources.add(format!("set{index}.rules"), text.clone());
    }
    let parsed = rules::parse_all(&sources, &[]);
    let findings = rules::check(&sources, &parsed.files, &CheckOptions::default());
    let errors: Vec<String> = parsed
        .diagnostics
        .iter()
        .chain(&findings)
        .filter(|d| d.severity() == Severity::Error)
        .map(|d| format!("{} {}", d.code.id, d.message))
        .collect();
    prop_assert!(
        errors.is_empty(),
        "the generated rule set does not check: {errors:?}\n{}",
        files.join("\n")
    );
    let engine = Engine::compile(&sources, &parsed.files)
        .map_err(|e| TestCaseError::fail(format!("a clean rule set does not compile: {e}")))?;
    let syntax: Vec<rules::ast::File> = parsed.files.iter().map(|(_, file)| file.clone()).collect();

    for event in &case.events {
        for mode in [FilterMode::FailClosed, FilterMode::FailOpen] {
            let got = engine.decide(event, &KEYS, mode);
            let want = reference::decide(&syntax, event, &KEYS, mode);
            if let Err(difference) = compare(&got, &want) {
                return Err(TestCaseError::fail(format!(
                    "engine and reference disagree under {mode:?} on {} from {}: {difference}\n\
                     engine:    {got:?}\nreference: {want:?}",
                    event.topic, event.publisher
                )));
            }
            if mode == FilterMode::FailOpen {
                count(&want, stats);
            }
        }
    }
    Ok(())
}

fn count(decision: &Result<Decision, Rejection>, stats: &Stats) {
    bump(&stats.decided, 1);
    let Ok(decision) = decision else {
        bump(&stats.rejected, 1);
        return;
    };
    bump(&stats.accepted, 1);
    for delivery in &decision.deliveries {
        bump(&stats.routed, usize::from(delivery.routed));
        bump(&stats.filter_errors, delivery.filter_errors.len());
        match &delivery.outcome {
            Outcome::Blocked(_) => bump(&stats.blocked_by_rule, 1),
            Outcome::Deliver {
                payload,
                attributes,
            } => {
                bump(&stats.delivered, 1);
                let text = format!("{payload}{}", Value::Object(attributes.clone()));
                let transformed = ["enc:v1:", "hmac:v1:", "[REDACTED:", "**"]
                    .iter()
                    .map(|mark| text.matches(mark).count())
                    .sum();
                bump(&stats.transformed, transformed);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Comparison

fn compare(
    got: &Result<Decision, Rejection>,
    want: &Result<Decision, Rejection>,
) -> Result<(), String> {
    let (got, want) = match (got, want) {
        (Ok(got), Ok(want)) => (got, want),
        (Err(got), Err(want)) if status(got) == status(want) => return Ok(()),
        _ => return Err("one accepts the event, or they reject it differently".into()),
    };
    let names = |d: &Decision| {
        d.deliveries
            .iter()
            .map(|d| d.plugin.clone())
            .collect::<Vec<_>>()
    };
    if names(got) != names(want) {
        return Err(format!("recipients {:?} and {:?}", names(got), names(want)));
    }
    for (g, w) in got.deliveries.iter().zip(&want.deliveries) {
        let plugin = &g.plugin;
        if g.routed != w.routed {
            return Err(format!("`{plugin}` routed {} and {}", g.routed, w.routed));
        }
        if g.fired != w.fired {
            return Err(format!("`{plugin}` fired {:?} and {:?}", g.fired, w.fired));
        }
        let failed = |d: &rules::Delivery| {
            d.filter_errors
                .iter()
                .map(|f| (f.rule.clone(), f.path.clone()))
                .collect::<BTreeSet<_>>()
        };
        if failed(g) != failed(w) {
            return Err(format!(
                "`{plugin}` filter errors {:?} and {:?}",
                failed(g),
                failed(w)
            ));
        }
        match (&g.outcome, &w.outcome) {
            (Outcome::Blocked(BlockReason::Rules(a)), Outcome::Blocked(BlockReason::Rules(b)))
                if a == b => {}
            (
                Outcome::Blocked(BlockReason::FilterError),
                Outcome::Blocked(BlockReason::FilterError),
            ) => {}
            (
                Outcome::Deliver {
                    payload: p1,
                    attributes: a1,
                },
                Outcome::Deliver {
                    payload: p2,
                    attributes: a2,
                },
            ) => {
                let (p1, p2) = (readable(p1), readable(p2));
                if p1 != p2 {
                    return Err(format!("`{plugin}` payload\n  {p1}\nand\n  {p2}"));
                }
                let (a1, a2) = (
                    readable(&Value::Object(a1.clone())),
                    readable(&Value::Object(a2.clone())),
                );
                if a1 != a2 {
                    return Err(format!("`{plugin}` attributes\n  {a1}\nand\n  {a2}"));
                }
            }
            (g, w) => return Err(format!("`{plugin}` outcome {g:?} and {w:?}")),
        }
    }
    Ok(())
}

/// The status code a rejection maps to. Which of several model violations
/// is reported first may depend on the order of members and models.
fn status(rejection: &Rejection) -> u16 {
    match rejection {
        Rejection::InvalidTopic => 400,
        Rejection::NotAllowed { .. } => 403,
        Rejection::NotAnObject { .. }
        | Rejection::UndeclaredField { .. }
        | Rejection::WrongType { .. } => 422,
    }
}

/// A value with every encrypted string replaced by what it decrypts to;
/// one that does not decrypt stays as it is, so it never compares equal.
fn readable(value: &Value) -> Value {
    match value {
        Value::String(text) if text.starts_with("enc:v1:") => match KEYS.decrypt(text) {
            Ok(plain) => json!({ "decrypted": readable(&plain) }),
            Err(_) => json!({ "undecryptable": text }),
        },
        Value::Array(items) => Value::Array(items.iter().map(readable).collect()),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), readable(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// The vocabulary

const PLUGIN_NAMES: [&str; 6] = ["ehr", "scheduler", "inbox", "analytics", "pager", "lab"];

/// Concrete topics: what events are published on and conditions name.
const TOPICS: [&str; 8] = [
    "patients.admitted",
    "patients.discharged",
    "patients.admitted.late",
    "messages.new",
    "messages.new.urgent",
    "labs.result",
    "labs.result.late",
    "audit",
];

const PATTERNS: [&str; 12] = [
    "patients.*",
    "patients.**",
    "patients.admitted",
    "messages.**",
    "messages.new",
    "labs.*",
    "labs.**",
    "*.admitted",
    "*.*",
    "**",
    "*.new.*",
    "audit",
];

/// Patterns that may carry a model.
const CARRIED: [&str; 6] = [
    "patients.*",
    "patients.**",
    "patients.admitted",
    "labs.*",
    "*.admitted",
    "messages.new",
];

/// Custom detectors; `digits` also finds digits inside encrypted and hashed
/// values.
const CUSTOM_DETECTORS: [(&str, &str); 4] = [
    ("badge", "B-[0-9]{4}"),
    ("room", "[0-9]{3}[A-Z]"),
    ("mrn", "MRN[0-9]{7}"),
    ("digits", "[0-9]{3}"),
];

/// Paths that conditions test. The plain payload paths here, in
/// [`ACTION_PATHS`] and in [`RECEIVE_PATHS`] are declared by every model
/// [`model`] makes, or lead to a declared field, so that they check
/// whatever model a topic carries; JSONPaths are not held to models.
const CONDITION_PATHS: [&str; 22] = [
    "payload.mrn",
    "payload.name",
    "payload.ssn",
    "payload.notes",
    "payload.age",
    "payload.ward",
    "payload.tags",
    "payload.items",
    "payload.address",
    "payload.address.city",
    "payload.address.zip",
    "payload.diagnosis.code",
    "payload.contact.phone",
    "payload",
    "$..code",
    "$..ssn",
    "$..name",
    "$.payload.items[*].name",
    "$.payload.tags[*]",
    "$.payload.items[?@.code == 'B20'].name",
    "$.*",
    "$..*",
];

const ATTRIBUTE_PATHS: [&str; 5] = [
    "attributes.priority",
    "attributes.count",
    "attributes.ssn",
    "$.attributes.*",
    "attributes",
];

/// Paths that field actions change.
const ACTION_PATHS: [&str; 31] = [
    "payload.mrn",
    "payload.name",
    "payload.ssn",
    "payload.notes",
    "payload.age",
    "payload.ward",
    "payload.tags",
    "payload.items",
    "payload.address",
    "payload.address.city",
    "payload.address.zip",
    "payload.address.street",
    "payload.diagnosis",
    "payload.diagnosis.code",
    "payload.contact",
    "payload.contact.phone",
    "payload.items.name",
    "attributes.ssn",
    "attributes.caller",
    "attributes.priority",
    "attributes.nested",
    "$..ssn",
    "$..code",
    "$..name",
    "$..phone",
    "$..city",
    "$.payload.items[*].name",
    "$.payload.items[0]",
    "$.payload.items[1].code",
    "$.payload.tags[*]",
    "$.attributes.*",
];

/// Rarer action paths, which reach much of the event at once.
const WIDE_ACTION_PATHS: [&str; 7] = [
    "payload",
    "attributes",
    "$.payload.*",
    "$.payload.items[*]",
    "$..*",
    "$.*",
    "$",
];

/// Paths that plugins `receive`.
const RECEIVE_PATHS: [&str; 17] = [
    "payload.ward",
    "payload.mrn",
    "payload.name",
    "payload.ssn",
    "payload.address",
    "payload.address.city",
    "payload.diagnosis.code",
    "payload.tags",
    "payload.notes",
    "payload.age",
    "payload",
    "payload.contact.phone",
    "payload.items",
    "$.payload.items[*].name",
    "$.payload..code",
    "$.payload.items[1]",
    "$.payload['ward']",
];

const LITERALS: [&str; 22] = [
    "1e2",
    "\"3B\"",
    "\"B20\"",
    "\"Z21\"",
    "\"urgent\"",
    "\"low\"",
    "\"vip\"",
    "\"Ada Lovelace\"",
    "\"\"",
    "\"MRN-0012345\"",
    "\"a\"",
    "\"3\"",
    "0",
    "1",
    "1.0",
    "2.5",
    "36",
    "90",
    "-3",
    "true",
    "false",
    "null",
];

const REGEXES: [&str; 8] = [
    "^call", "[0-9]{3}", "B2.", "^$", "(?i)ada", "vip|new", "^[a-z]+$", "admitted",
];
const PREFIXES: [&str; 5] = ["call", "B", "", "Ada", "e"];
const NEEDLES: [&str; 5] = ["vip", "555", "B20", "a", "new"];

/// A JSON string literal, as rule files write them.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

// ---------------------------------------------------------------------------
// Rule sets

#[derive(Clone, Debug)]
struct Case {
    set: RuleSet,
    /// Shuffles the items and picks where the first file ends.
    layout: (u64, u8),
    events: Vec<Event>,
}

#[derive(Clone, Debug)]
struct RuleSet {
    /// Model `M{i}` declares `models[i]`.
    models: Vec<Vec<FieldSpec>>,
    /// (pattern, model index).
    carries: Vec<(&'static str, usize)>,
    detectors: Vec<(&'static str, &'static str)>,
    plugins: Vec<PluginSpec>,
    rules: Vec<RuleSpec>,
}

#[derive(Clone, Debug)]
struct FieldSpec {
    path: &'static str,
    class: &'static str,
    ty: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct PluginSpec {
    name: &'static str,
    publishes: Vec<&'static str>,
    subscribes: Vec<&'static str>,
    /// `receive` statements, rendered.
    receives: Vec<String>,
    endpoint: bool,
}

#[derive(Clone, Debug)]
struct RuleSpec {
    name: String,
    condition: Option<Cond>,
    /// Actions, rendered.
    actions: Vec<String>,
}

#[derive(Clone, Debug)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Parens(Box<Cond>),
    /// One test, rendered.
    Test(String),
}

impl Cond {
    fn render(&self) -> String {
        match self {
            Cond::Test(test) => test.clone(),
            Cond::And(terms) => terms
                .iter()
                .map(|term| match term {
                    Cond::Or(_) => format!("({})", term.render()),
                    _ => term.render(),
                })
                .collect::<Vec<_>>()
                .join(" and "),
            Cond::Or(terms) => terms
                .iter()
                .map(Cond::render)
                .collect::<Vec<_>>()
                .join(" or "),
            Cond::Not(inner) => match **inner {
                Cond::And(_) | Cond::Or(_) => format!("not ({})", inner.render()),
                _ => format!("not {}", inner.render()),
            },
            Cond::Parens(inner) => format!("({})", inner.render()),
        }
    }
}

impl RuleSet {
    /// Every item, rendered, in declaration order.
    fn items(&self) -> Vec<String> {
        let mut items = Vec::new();
        for (index, fields) in self.models.iter().enumerate() {
            let mut text = format!("model M{index} {{\n");
            for field in fields {
                let ty = field.ty.map(|t| format!(" {t}")).unwrap_or_default();
                let _ = writeln!(text, "  {}: {}{ty}", field.path, field.class);
            }
            text.push('}');
            items.push(text);
        }
        for (pattern, model) in &self.carries {
            items.push(format!("topic {} carries M{model}", quoted(pattern)));
        }
        for (name, regex) in &self.detectors {
            items.push(format!("detector {name} matches {}", quoted(regex)));
        }
        for plugin in &self.plugins {
            let mut text = format!("plugin {} {{\n", quoted(plugin.name));
            let list = |patterns: &[&str]| {
                patterns
                    .iter()
                    .map(|p| quoted(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !plugin.publishes.is_empty() {
                let _ = writeln!(text, "  publish {}", list(&plugin.publishes));
            }
            if !plugin.subscribes.is_empty() {
                let _ = writeln!(text, "  subscribe {}", list(&plugin.subscribes));
            }
            for receive in &plugin.receives {
                let _ = writeln!(text, "  receive {receive}");
            }
            if plugin.endpoint {
                let _ = writeln!(
                    text,
                    "  endpoint \"https://{}.example.internal/events\"",
                    plugin.name
                );
            }
            text.push('}');
            items.push(text);
        }
        for rule in &self.rules {
            let mut text = format!("rule {} {{\n", quoted(&rule.name));
            if let Some(condition) = &rule.condition {
                let _ = writeln!(text, "  when {}", condition.render());
            }
            for action in &rule.actions {
                let _ = writeln!(text, "  {action}");
            }
            text.push('}');
            items.push(text);
        }
        items
    }
}

impl Case {
    /// The items, shuffled, over two files.
    fn files(&self) -> Vec<String> {
        let mut items = self.set.items();
        let (seed, split) = self.layout;
        shuffle(&mut items, seed);
        let at = usize::from(split) % (items.len() + 1);
        vec![
            items[..at].join("\n\n") + "\n",
            items[at..].join("\n\n") + "\n",
        ]
    }
}

/// A Fisher-Yates shuffle driven by `seed` (a linear congruential
/// generator): the same seed gives the same order, so a shrunk case
/// still shows the order that failed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let bound = u64::try_from(i + 1).expect("a small slice");
        let j = usize::try_from((seed >> 33) % bound).expect("below the length");
        items.swap(i, j);
    }
}

fn case() -> impl Strategy<Value = Case> {
    rule_set()
        .prop_flat_map(|set| {
            let publishers: Vec<(&'static str, Vec<&'static str>)> = set
                .plugins
                .iter()
                .map(|p| (p.name, p.publishes.clone()))
                .collect();
            (
                Just(set),
                (any::<u64>(), any::<u8>()),
                prop::collection::vec(event(publishers), 1..4),
            )
        })
        .prop_map(|(set, layout, events)| Case {
            set,
            layout,
            events,
        })
}

fn rule_set() -> impl Strategy<Value = RuleSet> {
    let plugins = subsequence(PLUGIN_NAMES.to_vec(), 2..=6)
        .prop_shuffle()
        .prop_flat_map(|names| names.into_iter().map(plugin).collect::<Vec<_>>());
    let detectors = subsequence(CUSTOM_DETECTORS.to_vec(), 0..=2);
    let models = prop::collection::vec(model(), 1..=3);
    (models, detectors, plugins)
        .prop_flat_map(|(models, detectors, plugins)| {
            let carries = subsequence(CARRIED.to_vec(), 0..=3).prop_flat_map(move |patterns| {
                let count = models.len();
                let indices = prop::collection::vec(0..count, patterns.len());
                (Just(patterns), indices, Just(models.clone()))
            });
            let names: Vec<&'static str> = plugins.iter().map(|p| p.name).collect();
            // Each distinct list of detectors costs milliseconds to compile
            // in a debug build: a few lists, some with several detectors.
            let using: Vec<String> = ["ssn, phone", "date, email, zip", "mrn"]
                .into_iter()
                .map(str::to_string)
                .chain(detectors.iter().map(|(name, _)| name.to_string()))
                .collect();
            let rules = prop::collection::vec(rule(names, using), 1..=25);
            (carries, Just(detectors), Just(plugins), rules, any::<u64>())
        })
        .prop_map(
            |((patterns, indices, models), detectors, plugins, mut rules, seed)| {
                // Rule names in an order unrelated to the order of the rules.
                let mut numbers: Vec<usize> = (0..rules.len()).collect();
                shuffle(&mut numbers, seed);
                for (rule, number) in rules.iter_mut().zip(numbers) {
                    rule.name = format!("r{number:02}");
                }
                RuleSet {
                    models,
                    carries: patterns.into_iter().zip(indices).collect(),
                    detectors,
                    plugins,
                    rules,
                }
            },
        )
}

/// A model that declares, or leads to, every path of [`CONDITION_PATHS`]
/// and [`ACTION_PATHS`], in one of several shapes.
fn model() -> impl Strategy<Value = Vec<FieldSpec>> {
    let class = || select(vec!["phi", "pii", "public"]);
    // Mostly the type events use, sometimes none, rarely a wrong one.
    let ty = |right: &'static str, wrong: &'static str| {
        prop_oneof![
            20 => Just(Some(right)),
            10 => Just(None),
            1 => Just(Some(wrong)),
        ]
    };
    let simple = [
        ("mrn", "string", "number"),
        ("name", "string", "object"),
        ("ssn", "string", "array"),
        ("notes", "string", "boolean"),
        ("age", "number", "string"),
        ("ward", "string", "number"),
        ("tags", "array", "string"),
        ("items", "array", "object"),
    ];
    let simple_fields: Vec<_> = simple
        .into_iter()
        .map(|(path, right, wrong)| {
            (class(), ty(right, wrong))
                .prop_map(move |(class, ty)| vec![FieldSpec { path, class, ty }])
        })
        .collect();
    let field = move |path: &'static str, right: &'static str, wrong: &'static str| {
        (class(), ty(right, wrong)).prop_map(move |(class, ty)| FieldSpec { path, class, ty })
    };
    let address = prop_oneof![
        field("address", "object", "string").prop_map(|f| vec![f]),
        (
            field("address.city", "string", "number"),
            field("address.zip", "string", "number"),
            field("address.street", "string", "object")
        )
            .prop_map(|(a, b, c)| vec![a, b, c]),
        // A declared field with declared, typed fields below it.
        (
            field("address", "object", "object"),
            field("address.city", "string", "number"),
            field("address.zip", "number", "string")
        )
            .prop_map(|(a, b, c)| vec![a, b, c]),
    ];
    let diagnosis = prop_oneof![
        field("diagnosis", "object", "array").prop_map(|f| vec![f]),
        field("diagnosis.code", "string", "number").prop_map(|f| vec![f]),
    ];
    let contact = prop_oneof![
        field("contact", "object", "string").prop_map(|f| vec![f]),
        (
            field("contact.phone", "string", "number"),
            field("contact.email", "string", "number")
        )
            .prop_map(|(a, b)| vec![a, b]),
    ];
    let room = prop::option::of(field("room", "string", "number"));
    (simple_fields, address, diagnosis, contact, room).prop_map(
        |(simple, address, diagnosis, contact, room)| {
            simple
                .into_iter()
                .flatten()
                .chain(address)
                .chain(diagnosis)
                .chain(contact)
                .chain(room)
                .collect()
        },
    )
}

fn plugin(name: &'static str) -> impl Strategy<Value = PluginSpec> {
    let transform = prop_oneof![
        4 => Just(""),
        1 => Just(" encrypted"),
        1 => Just(" hashed"),
        1 => Just(" masked"),
    ];
    let receive = prop_oneof![
        1 => Just("all".to_string()),
        5 => (select(RECEIVE_PATHS.to_vec()), transform).prop_map(|(path, t)| format!("{path}{t}")),
    ];
    (
        subsequence(PATTERNS.to_vec(), 0..=2),
        subsequence(PATTERNS.to_vec(), 0..=2),
        prop::collection::vec(receive, 1..=3),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            move |(publishes, subscribes, receives, endpoint)| PluginSpec {
                name,
                publishes,
                subscribes,
                receives,
                endpoint,
            },
        )
}

/// A rule; `using` are the detector lists `redact` may name.
fn rule(plugins: Vec<&'static str>, using: Vec<String>) -> impl Strategy<Value = RuleSpec> {
    prop::bool::weighted(0.15).prop_flat_map(move |routes| {
        let condition = prop::option::weighted(0.8, condition(test(plugins.clone(), !routes)));
        let actions =
            prop::collection::vec(action(using.clone()), if routes { 0..3 } else { 1..4 });
        let route = if routes {
            subsequence(plugins.clone(), 1..=2)
                .prop_map(|targets| {
                    let list = targets
                        .iter()
                        .map(|t| quoted(t))
                        .collect::<Vec<_>>()
                        .join(", ");
                    vec![format!("route to {list}")]
                })
                .boxed()
        } else {
            Just(Vec::new()).boxed()
        };
        (condition, actions, route).prop_map(|(condition, mut actions, route)| {
            actions.extend(route);
            RuleSpec {
                name: String::new(),
                condition,
                actions,
            }
        })
    })
}

fn condition(test: BoxedStrategy<String>) -> impl Strategy<Value = Cond> {
    test.prop_map(Cond::Test).prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::Or),
            inner.clone().prop_map(|c| Cond::Not(Box::new(c))),
            inner.prop_map(|c| Cond::Parens(Box::new(c))),
        ]
    })
}

/// Any test but one on `topic`, `publisher` or `subscriber`: the operator
/// and its operand.
fn operation() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("exists".to_string()),
        (
            select(vec!["==", "!=", "<", "<=", ">", ">="]),
            select(LITERALS.to_vec())
        )
            .prop_map(|(op, literal)| format!("{op} {literal}")),
        prop::collection::vec(select(LITERALS.to_vec()), 0..4)
            .prop_map(|literals| format!("in [{}]", literals.join(", "))),
        select(REGEXES.to_vec()).prop_map(|regex| format!("matches {}", quoted(regex))),
        select(PREFIXES.to_vec()).prop_map(|prefix| format!("starts with {}", quoted(prefix))),
        select(NEEDLES.to_vec()).prop_map(|needle| format!("contains {}", quoted(needle))),
    ]
}

fn test(plugins: Vec<&'static str>, subscriber: bool) -> BoxedStrategy<String> {
    let topics = || select(TOPICS.to_vec());
    // The member `topic`, spelled as a dotted path or as a JSONPath.
    let spelled = || prop_oneof![6 => Just("topic"), 1 => Just("$.topic"), 1 => Just("$['topic']")];
    let topic = prop_oneof![
        (spelled(), topics()).prop_map(|(m, t)| format!("{m} == {}", quoted(t))),
        (spelled(), topics()).prop_map(|(m, t)| format!("{m} != {}", quoted(t))),
        (spelled(), select(PATTERNS.to_vec()))
            .prop_map(|(m, p)| format!("{m} matches {}", quoted(p))),
        (spelled(), prop::collection::vec(topics(), 0..3)).prop_map(|(m, ts)| format!(
            "{m} in [{}]",
            ts.iter().map(|t| quoted(t)).collect::<Vec<_>>().join(", ")
        )),
        (spelled(), select(vec!["pat", "mess", "labs.r"]))
            .prop_map(|(m, s)| format!("{m} starts with {}", quoted(s))),
        (spelled(), select(vec!["new", "admitted", "."]))
            .prop_map(|(m, s)| format!("{m} contains {}", quoted(s))),
        (spelled(), select(vec!["<", ">="]), topics())
            .prop_map(|(m, op, t)| format!("{m} {op} {}", quoted(t))),
        spelled().prop_map(|m| format!("{m} exists")),
    ];
    let plugin_test = move |member: &'static str, plugins: Vec<&'static str>| {
        let names = move || select(plugins.clone());
        prop_oneof![
            names().prop_map(move |p| format!("{member} == {}", quoted(p))),
            names().prop_map(move |p| format!("{member} != {}", quoted(p))),
            prop::collection::vec(names(), 1..3).prop_map(move |ps| format!(
                "{member} in [{}]",
                ps.iter().map(|p| quoted(p)).collect::<Vec<_>>().join(", ")
            )),
            select(vec!["^e", "a", "^(pager|lab)$"])
                .prop_map(move |r| format!("{member} matches {}", quoted(r))),
            Just(format!("{member} exists")),
            Just(format!("{member} < \"m\"")),
        ]
    };
    let attribute = (select(ATTRIBUTE_PATHS.to_vec()), operation())
        .prop_map(|(path, op)| format!("{path} {op}"));
    // A wildcard over the event's members reaches `subscriber`, which a
    // routing rule may not test (E0402).
    let condition_paths: Vec<&str> = CONDITION_PATHS
        .iter()
        .copied()
        .filter(|path| subscriber || !["$.*", "$..*"].contains(path))
        .collect();
    let payload =
        (select(condition_paths), operation()).prop_map(|(path, op)| format!("{path} {op}"));
    if subscriber {
        prop_oneof![
            2 => topic,
            1 => plugin_test("publisher", plugins.clone()),
            2 => plugin_test("subscriber", plugins),
            2 => attribute,
            6 => payload,
        ]
        .boxed()
    } else {
        prop_oneof![
            2 => topic,
            1 => plugin_test("publisher", plugins),
            2 => attribute,
            6 => payload,
        ]
        .boxed()
    }
}

fn action(using: Vec<String>) -> impl Strategy<Value = String> {
    let path = || {
        prop_oneof![
            12 => select(ACTION_PATHS.to_vec()),
            1 => select(WIDE_ACTION_PATHS.to_vec()),
        ]
    };
    // `retired` is no key of the ring: a filter error.
    let key = || {
        prop_oneof![
            6 => Just(""),
            2 => Just(" with key \"ephemeral\""),
            1 => Just(" with key \"retired\""),
        ]
    };
    prop_oneof![
        6 => path().prop_map(|p| format!("strip {p}")),
        6 => (path(), key()).prop_map(|(p, k)| format!("encrypt {p}{k}")),
        6 => (path(), key()).prop_map(|(p, k)| format!("hash {p}{k}")),
        6 => (path(), prop::option::of(0u32..6)).prop_map(|(p, keep)| match keep {
            Some(keep) => format!("mask {p} keep {keep}"),
            None => format!("mask {p}"),
        }),
        6 => (path(), select(using)).prop_map(|(p, using)| format!("redact {p} using {using}")),
        1 => Just("block".to_string()),
    ]
}

// ---------------------------------------------------------------------------
// Events

/// An event, mostly on a topic some plugin may publish on and from such a
/// plugin.
fn event(publishers: Vec<(&'static str, Vec<&'static str>)>) -> impl Strategy<Value = Event> {
    let topic = prop_oneof![
        40 => select(TOPICS.to_vec()),
        1 => Just("patients..x"),
        1 => Just("patients.*"),
    ];
    let honest = prop::bool::weighted(0.85);
    let picks = (any::<Index>(), any::<Index>());
    (topic, honest, picks, attributes(), payload()).prop_map(
        move |(topic, honest, (first, second), attributes, payload)| {
            let may_publish = |name: &str, topic: &str| {
                publishers.iter().any(|(n, patterns)| {
                    *n == name
                        && patterns
                            .iter()
                            .any(|p| TopicPattern::parse(p).is_ok_and(|p| p.matches(topic)))
                })
            };
            let pairs: Vec<(&str, &str)> = TOPICS
                .iter()
                .flat_map(|t| publishers.iter().map(move |(name, _)| (*t, *name)))
                .filter(|(t, name)| may_publish(name, t))
                .collect();
            let (topic, publisher) = if honest && !pairs.is_empty() {
                pairs[first.index(pairs.len())]
            } else {
                let mut names: Vec<&str> = publishers.iter().map(|(name, _)| *name).collect();
                names.push("nobody");
                (topic, names[second.index(names.len())])
            };
            Event {
                topic: topic.to_string(),
                publisher: publisher.to_string(),
                attributes,
                payload,
            }
        },
    )
}

fn attributes() -> impl Strategy<Value = Map<String, Value>> {
    let choices = vec![
        ("priority", vec![json!("urgent"), json!("low")], vec![]),
        ("count", vec![json!(1), json!(3)], vec![json!("3")]),
        ("ssn", vec![json!("123-45-6789")], vec![]),
        (
            "caller",
            vec![json!("555-867-5309")],
            vec![json!(5558675309_u64)],
        ),
        (
            "nested",
            vec![json!({"ssn": "111-22-3333", "name": "Bob"})],
            vec![json!(["a", 2])],
        ),
    ];
    members(choices, 0.4)
}

fn payload() -> impl Strategy<Value = Value> {
    // (name, usual values, odd values: wrong types, nulls)
    let choices = vec![
        (
            "mrn",
            vec![json!("MRN-0012345"), json!("MRN0012345")],
            vec![json!(12345), Value::Null],
        ),
        (
            "name",
            vec![json!("Ada Lovelace"), json!("Bob"), json!("")],
            vec![json!(7)],
        ),
        (
            "ssn",
            vec![json!("123-45-6789"), json!("111-22-3333")],
            vec![json!(123456789)],
        ),
        (
            "notes",
            vec![
                json!("call 555-867-5309 or ada@example.org"),
                json!("badge B-1234 in room 301A"),
                json!("seen 2024-03-01, zip 12345, MRN0012345"),
                json!("nothing here"),
            ],
            vec![json!(["call 555-867-5309"])],
        ),
        (
            "age",
            vec![json!(36), json!(95), json!(36.0)],
            vec![json!("old"), Value::Null],
        ),
        ("ward", vec![json!("3B"), json!("4C")], vec![json!(3)]),
        (
            "tags",
            vec![json!(["vip", "new"]), json!([])],
            vec![json!(["old", 1]), json!("vip")],
        ),
        (
            "items",
            vec![
                json!([{"name": "a", "code": "B20", "ssn": "111-22-3333"}, {"name": "b"}]),
                json!([]),
                json!([{"code": "Z21"}, "x", {"name": "call 555-867-5309", "code": "B20"}]),
            ],
            vec![json!({"name": "a"})],
        ),
        (
            "address",
            vec![
                json!({"city": "Leeds", "zip": "12345", "street": "1 Main St"}),
                json!({"city": "Oslo"}),
            ],
            vec![
                json!({"city": "Leeds", "zip": 12345}),
                json!("1 Main St"),
                Value::Null,
            ],
        ),
        (
            "diagnosis",
            vec![json!({"code": "B20"}), json!({"code": "Z21"})],
            vec![json!({"code": 20}), json!({"code": "B20", "note": "x"})],
        ),
        (
            "contact",
            vec![
                json!({"phone": "555-123-4567", "email": "a@b.org"}),
                json!({"phone": "555-123-4567"}),
            ],
            vec![json!({"phone": 5551234567_u64})],
        ),
    ];
    // `room` is declared by some models only, `snn` (misspelt) by none.
    let extra = (prop::bool::weighted(0.15), prop::bool::weighted(0.05));
    prop_oneof![
        30 => (members(choices, 0.5), extra).prop_map(|(mut members, (room, snn))| {
            if room {
                members.insert("room".into(), json!("301A"));
            }
            if snn {
                members.insert("snn".into(), json!("123-45-6789"));
            }
            Value::Object(members)
        }),
        1 => Just(json!([1, 2])),
        1 => Just(json!("text")),
        1 => Just(Value::Null),
    ]
}

/// An object with each member present with probability `p`, mostly with
/// one of its usual values, sometimes with an odd one.
fn members(
    choices: Vec<(&'static str, Vec<Value>, Vec<Value>)>,
    p: f64,
) -> impl Strategy<Value = Map<String, Value>> {
    let members: Vec<_> = choices
        .into_iter()
        .map(|(name, usual, odd)| {
            let value = if odd.is_empty() {
                select(usual).boxed()
            } else {
                prop_oneof![8 => select(usual), 1 => select(odd)].boxed()
            };
            prop::option::weighted(p, value).prop_map(move |v| v.map(|v| (name.to_string(), v)))
        })
        .collect();
    members.prop_map(|members| members.into_iter().flatten().collect())
}
