//! The checker: every problem of a parsed rule set, reported as data.
//!
//! The checker never stops at the first finding; it walks every item of
//! every file once and returns all it found, sorted by position. Only the
//! compiler needs a clean rule set. Each lookup table is built once, so a
//! run stays close to linear in the size of the rule set.

use std::collections::{HashMap, HashSet};

use regex::RegexBuilder;

use super::BUILTIN_DETECTORS;
use super::ast::*;
use super::codes;
use super::diagnostic::Diagnostic;
use super::path::{PathExpr, PathKind, ROOTS};
use super::source::{Sources, Span};
use super::topic::{Segment, TopicPattern};

mod conflicts;
mod endpoint;
mod plugins;
mod scope;

use endpoint::{Endpoint, classify_endpoint};
pub(crate) use scope::topic_scope;
use scope::{Scope, scope_of, scopes_overlap, sure_scope};

/// What the checker knows beyond the rule files.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// The key ids of the key file, when one was found; `None` skips the
    /// check of `with key` names.
    pub key_ids: Option<HashSet<String>>,
}

/// The largest compiled size of a regex in a rule file, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Checks a parsed rule set and returns every finding, sorted by position.
pub fn check(
    sources: &Sources,
    files: &[(super::FileId, File)],
    options: &CheckOptions,
) -> Vec<Diagnostic> {
    let items: Vec<&Item> = files.iter().flat_map(|(_, file)| &file.items).collect();
    let mut checker = Checker::new(sources, &items, options);

    checker.declarations();
    checker.models();
    checker.topics();
    checker.detectors();
    checker.plugins();
    checker.rules();
    checker.tests();
    checker.conflicting_actions();

    let mut findings = checker.findings;
    findings.sort_by_key(|d| (d.span.file, d.span.start, d.code.id));
    findings
}

struct Checker<'a> {
    sources: &'a Sources,
    options: &'a CheckOptions,
    models: HashMap<&'a str, &'a Model>,
    plugins: HashMap<&'a str, &'a Plugin>,
    detectors: HashMap<&'a str, &'a Detector>,
    /// Valid `topic ... carries ...` declarations.
    carries: Vec<(TopicPattern, &'a TopicDecl)>,
    publishes: HashMap<&'a str, Vec<TopicPattern>>,
    subscribes: HashMap<&'a str, Vec<TopicPattern>>,
    route_targets: HashSet<&'a str>,
    rules: Vec<&'a Rule>,
    plugin_list: Vec<&'a Plugin>,
    tests: Vec<&'a Test>,
    model_list: Vec<&'a Model>,
    topic_list: Vec<&'a TopicDecl>,
    detector_list: Vec<&'a Detector>,
    /// JSONPath texts already parsed, with why each was invalid (`None`
    /// when valid). Every use of an invalid text is still reported.
    jsonpaths: HashMap<String, Option<String>>,
    /// Regexes already compiled, with why each was invalid (`None` when
    /// valid). Every use of an invalid regex is still reported.
    regexes: HashMap<String, Option<String>>,
    findings: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn new(sources: &'a Sources, items: &[&'a Item], options: &'a CheckOptions) -> Self {
        let mut checker = Checker {
            sources,
            options,
            models: HashMap::new(),
            plugins: HashMap::new(),
            detectors: HashMap::new(),
            carries: Vec::new(),
            publishes: HashMap::new(),
            subscribes: HashMap::new(),
            route_targets: HashSet::new(),
            rules: Vec::new(),
            plugin_list: Vec::new(),
            tests: Vec::new(),
            model_list: Vec::new(),
            topic_list: Vec::new(),
            detector_list: Vec::new(),
            jsonpaths: HashMap::new(),
            regexes: HashMap::new(),
            findings: Vec::new(),
        };
        for item in items {
            match item {
                Item::Model(model) => checker.model_list.push(model),
                Item::Topic(topic) => checker.topic_list.push(topic),
                Item::Detector(detector) => checker.detector_list.push(detector),
                Item::Plugin(plugin) => checker.plugin_list.push(plugin),
                Item::Rule(rule) => checker.rules.push(rule),
                Item::Test(test) => checker.tests.push(test),
            }
        }
        checker
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.findings.push(diagnostic);
    }

    fn where_is(&self, span: Span) -> String {
        let (file, line, column) = self.sources.locate(span);
        format!("{}:{line}:{column}", file.path().display())
    }

    // -- declarations -------------------------------------------------------

    /// Indexes every declaration by name and reports duplicates.
    fn declarations(&mut self) {
        let mut seen: HashMap<(&str, &str), Span> = HashMap::new();
        let mut declared = Vec::new();
        for model in &self.model_list {
            declared.push(("model", &model.name));
        }
        for detector in &self.detector_list {
            declared.push(("detector", &detector.name));
        }
        for plugin in &self.plugin_list {
            declared.push(("plugin", &plugin.name));
        }
        for rule in &self.rules {
            declared.push(("rule", &rule.name));
        }
        for test in &self.tests {
            declared.push(("test", &test.name));
        }
        for topic in &self.topic_list {
            declared.push(("topic", &topic.pattern));
        }
        for (kind, name) in declared {
            if let Some(first) = seen.get(&(kind, name.text.as_str())) {
                let first = self.where_is(*first);
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE_NAME,
                        name.span,
                        format!("{kind} `{}` is declared more than once", name.text),
                    )
                    .with_label("declared again here")
                    .with_help(format!("the first declaration is at {first}")),
                );
            } else {
                seen.insert((kind, name.text.as_str()), name.span);
            }
        }

        for model in &self.model_list {
            self.models.entry(model.name.text.as_str()).or_insert(model);
        }
        for detector in &self.detector_list {
            self.detectors
                .entry(detector.name.text.as_str())
                .or_insert(detector);
        }
        let plugin_list = self.plugin_list.clone();
        for plugin in plugin_list {
            self.plugins
                .entry(plugin.name.text.as_str())
                .or_insert(plugin);
            let publishes: Vec<TopicPattern> = plugin
                .publishes
                .iter()
                .filter_map(|p| TopicPattern::parse(&p.text).ok())
                .collect();
            let subscribes: Vec<TopicPattern> = plugin
                .subscribes
                .iter()
                .filter_map(|p| TopicPattern::parse(&p.text).ok())
                .collect();
            self.publishes
                .entry(plugin.name.text.as_str())
                .or_default()
                .extend(publishes);
            self.subscribes
                .entry(plugin.name.text.as_str())
                .or_default()
                .extend(subscribes);
        }
        for rule in &self.rules {
            for action in &rule.actions {
                if let ActionKind::Route(targets) = &action.kind {
                    self.route_targets
                        .extend(targets.iter().map(|t| t.text.as_str()));
                }
            }
        }
    }

    fn models(&mut self) {
        for model in self.model_list.clone() {
            let mut fields: HashMap<&str, Span> = HashMap::new();
            for field in &model.fields {
                if let Some(first) = fields.get(field.name.text.as_str()) {
                    let first = self.where_is(*first);
                    self.report(
                        Diagnostic::new(
                            codes::DUPLICATE_NAME,
                            field.name.span,
                            format!(
                                "field `{}` is declared twice in model `{}`",
                                field.name.text, model.name.text
                            ),
                        )
                        .with_help(format!("the first declaration is at {first}")),
                    );
                } else {
                    fields.insert(field.name.text.as_str(), field.name.span);
                }
            }
        }
    }

    fn topics(&mut self) {
        for topic in self.topic_list.clone() {
            let pattern = self.topic_pattern(&topic.pattern);
            if !self.models.contains_key(topic.model.text.as_str()) {
                let names: Vec<&str> = self.models.keys().copied().collect();
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_MODEL,
                        topic.model.span,
                        format!("unknown model `{}`", topic.model.text),
                    )
                    .with_label("no model of this name is declared")
                    .with_suggestion(&topic.model.text, names),
                );
                continue;
            }
            if let Some(pattern) = pattern {
                self.carries.push((pattern, topic));
            }
        }
    }

    fn detectors(&mut self) {
        for detector in self.detector_list.clone() {
            self.regex(&detector.regex);
        }
    }

    // -- rules --------------------------------------------------------------

    fn rules(&mut self) {
        for rule in self.rules.clone() {
            let scope = match &rule.condition {
                Some(condition) => {
                    let scope = scope_of(condition);
                    self.condition(condition, &scope);
                    scope
                }
                None => Scope::Any,
            };

            let routes = rule
                .actions
                .iter()
                .any(|a| matches!(a.kind, ActionKind::Route(_)));
            if routes && let Some(span) = rule.condition.as_ref().and_then(find_subscriber_test) {
                self.report(
                    Diagnostic::new(
                        codes::ROUTE_TESTS_SUBSCRIBER,
                        span,
                        format!(
                            "rule `{}` routes, so its condition cannot test `subscriber`",
                            rule.name.text
                        ),
                    )
                    .with_label("recipients are not known yet when routing is decided")
                    .with_help("move the routing into a rule of its own without `subscriber`"),
                );
            }

            for action in &rule.actions {
                self.action(action, &scope);
            }

            if rule.actions.is_empty() {
                self.report(
                    Diagnostic::new(
                        codes::NO_ACTION,
                        rule.name.span,
                        format!("rule `{}` has no action", rule.name.text),
                    )
                    .with_help("add an action such as `strip`, `block` or `route to`"),
                );
            }
            self.never_matches(rule, &scope);
        }
    }

    /// Checks every test of a condition; `scope` is the rule's, so that a
    /// payload path is held to the models of the topics the rule can see.
    fn condition(&mut self, condition: &Condition, scope: &Scope) {
        match condition {
            Condition::And(terms) | Condition::Or(terms) => {
                for term in terms {
                    self.condition(term, scope);
                }
            }
            Condition::Not(inner) => self.condition(inner, scope),
            Condition::Check(check) => self.check_test(check, scope),
        }
    }

    fn check_test(&mut self, check: &Check, scope: &Scope) {
        if !self.event_path(&check.path) {
            return;
        }
        self.model_field(&check.path, scope);
        let is_topic = check.path.is_member("topic");
        let names_plugin = check.path.is_member("subscriber") || check.path.is_member("publisher");
        match &check.op {
            TestOp::Matches(pattern) if is_topic => {
                self.topic_pattern(pattern);
            }
            TestOp::Matches(regex) => self.regex(regex),
            TestOp::Compare(op, literal) => {
                if is_topic && matches!(op, super::ast::CompareOp::Eq | super::ast::CompareOp::Ne) {
                    self.concrete_topic(literal);
                }
                if names_plugin
                    && matches!(op, super::ast::CompareOp::Eq | super::ast::CompareOp::Ne)
                {
                    self.plugin_literal(literal);
                }
            }
            TestOp::In(literals) => {
                for literal in literals {
                    if is_topic {
                        self.concrete_topic(literal);
                    }
                    if names_plugin {
                        self.plugin_literal(literal);
                    }
                }
            }
            TestOp::Exists | TestOp::StartsWith(_) | TestOp::Contains(_) => {}
        }
    }

    fn concrete_topic(&mut self, literal: &Literal) {
        let Some(text) = literal.value.as_str() else {
            return;
        };
        if let Err(error) = TopicPattern::parse_topic(text) {
            self.report(
                Diagnostic::new(
                    codes::INVALID_TOPIC_PATTERN,
                    literal.span,
                    format!("invalid topic: {error}"),
                )
                .with_help("to test a pattern, write `topic matches \"PATTERN\"`"),
            );
        }
    }

    fn plugin_literal(&mut self, literal: &Literal) {
        let Some(text) = literal.value.as_str() else {
            return;
        };
        let name = Name {
            text: text.to_string(),
            span: literal.span,
        };
        self.known_plugin(&name);
    }

    fn known_plugin(&mut self, name: &Name) -> bool {
        if self.plugins.contains_key(name.text.as_str()) {
            return true;
        }
        let names: Vec<&str> = self.plugins.keys().copied().collect();
        self.report(
            Diagnostic::new(
                codes::UNKNOWN_PLUGIN,
                name.span,
                format!("unknown plugin `{}`", name.text),
            )
            .with_label("no plugin of this name is declared")
            .with_suggestion(&name.text, names),
        );
        false
    }

    fn action(&mut self, action: &Action, scope: &Scope) {
        if let Some(path) = action.kind.path()
            && self.event_path(path)
        {
            self.action_target(path, action.kind.keyword());
            self.model_field(path, scope);
        }
        match &action.kind {
            ActionKind::Encrypt { key: Some(key), .. }
            | ActionKind::Hash { key: Some(key), .. } => {
                self.key(key);
            }
            ActionKind::Redact { detectors, .. } => {
                for detector in detectors {
                    self.detector_name(detector);
                }
            }
            ActionKind::Route(targets) => {
                for target in targets {
                    self.known_plugin(target);
                }
            }
            _ => {}
        }
    }

    /// Field actions change the payload or the attributes, nothing else.
    fn action_target(&mut self, path: &PathExpr, keyword: &str) {
        let Some(root) = path.root() else {
            return;
        };
        if root != "payload" && root != "attributes" {
            self.report(
                Diagnostic::new(
                    codes::INVALID_PATH,
                    path.span,
                    format!("`{keyword}` cannot change `{root}`"),
                )
                .with_help("field actions apply to paths under `payload` or `attributes`"),
            );
        }
    }

    fn key(&mut self, key: &Name) {
        let Some(known) = &self.options.key_ids else {
            return;
        };
        if known.contains(&key.text) {
            return;
        }
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        let diagnostic = Diagnostic::new(
            codes::UNKNOWN_KEY,
            key.span,
            format!("unknown key `{}`", key.text),
        )
        .with_label("not in the key file")
        .with_suggestion(&key.text, names);
        let diagnostic = if diagnostic.help.is_none() {
            diagnostic.with_help(
                "`phigate keys generate` adds a key; `phigate keys list` shows their ids",
            )
        } else {
            diagnostic
        };
        self.report(diagnostic);
    }

    fn detector_name(&mut self, name: &Name) {
        let text = name.text.as_str();
        if BUILTIN_DETECTORS.contains(&text) || self.detectors.contains_key(text) {
            return;
        }
        let names: Vec<&str> = BUILTIN_DETECTORS
            .iter()
            .copied()
            .chain(self.detectors.keys().copied())
            .collect();
        self.report(
            Diagnostic::new(
                codes::UNKNOWN_DETECTOR,
                name.span,
                format!("unknown detector `{text}`"),
            )
            .with_label("neither built in nor declared with `detector`")
            .with_suggestion(text, names),
        );
    }

    fn never_matches(&mut self, rule: &Rule, scope: &Scope) {
        let Scope::Topics(patterns) = scope else {
            return;
        };
        let reason = if patterns.is_empty() {
            Some("its conditions on `topic` contradict each other".to_string())
        } else if !self.plugins.is_empty()
            && !self
                .publishes
                .values()
                .flatten()
                .any(|published| patterns.iter().any(|p| p.overlaps(published)))
        {
            let shown = patterns
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ");
            Some(format!("no plugin publishes on {shown}"))
        } else {
            None
        };
        if let Some(reason) = reason {
            self.report(
                Diagnostic::new(
                    codes::NEVER_MATCHES,
                    rule.name.span,
                    format!("rule `{}` can never match: {reason}", rule.name.text),
                )
                .with_help("check the topic in its `when` condition"),
            );
        }
    }

    // -- tests --------------------------------------------------------------

    fn tests(&mut self) {
        for test in self.tests.clone() {
            if let Err(error) = TopicPattern::parse_topic(&test.topic.text) {
                self.report(
                    Diagnostic::new(
                        codes::INVALID_TEST,
                        test.topic.span,
                        format!("invalid topic in test: {error}"),
                    )
                    .with_help(
                        "a test publishes on one concrete topic, such as `patients.admitted`",
                    ),
                );
            }
            self.known_plugin(&test.publisher);
            if test.expectations.is_empty() {
                self.report(
                    Diagnostic::new(
                        codes::INVALID_TEST,
                        test.name.span,
                        format!("test `{}` has no `expect`", test.name.text),
                    )
                    .with_help(
                        "add `expect \"PLUGIN\" blocked`, `receives {...}` or `not receives PATH`",
                    ),
                );
            }
            for expectation in &test.expectations {
                self.known_plugin(&expectation.plugin);
                if let ExpectKind::NotReceives(path) = &expectation.kind
                    && self.jsonpath(path)
                    && path.payload_field().is_none()
                    && path.root().is_some()
                {
                    self.report(
                        Diagnostic::new(
                            codes::INVALID_TEST,
                            path.span,
                            format!(
                                "`not receives` takes a path inside the payload, not `{}`",
                                path.text
                            ),
                        )
                        .with_help("write it as `payload.FIELD`"),
                    );
                }
            }
        }
    }

    // -- shared checks ------------------------------------------------------

    /// Checks that a path starts at a member of the event and, for a
    /// JSONPath, that it parses. Returns whether later checks may use it.
    fn event_path(&mut self, path: &PathExpr) -> bool {
        if !self.jsonpath(path) {
            return false;
        }
        let Some(segments) = path.segments() else {
            return true;
        };
        let root = segments[0].as_str();
        if !ROOTS.contains(&root) {
            self.report(
                Diagnostic::new(
                    codes::INVALID_PATH,
                    path.span,
                    format!("`{root}` is not part of an event"),
                )
                .with_label(
                    "paths start at `topic`, `publisher`, `subscriber`, `attributes` or `payload`",
                )
                .with_suggestion(root, ROOTS),
            );
            return false;
        }
        if segments.len() > 1 && matches!(root, "topic" | "publisher" | "subscriber") {
            self.report(
                Diagnostic::new(
                    codes::INVALID_PATH,
                    path.span,
                    format!("`{root}` is a string and has no fields"),
                )
                .with_help(format!("test `{root}` itself")),
            );
            return false;
        }
        true
    }

    /// Parses a JSONPath once per distinct text, reporting each invalid
    /// use; plain paths always pass.
    fn jsonpath(&mut self, path: &PathExpr) -> bool {
        if path.segments().is_some() {
            return true;
        }
        let text = path.text.as_str();
        let invalid = match self.jsonpaths.get(text) {
            Some(invalid) => invalid.clone(),
            None => {
                let parsed = jsonpath_rust::parser::parse_json_path(text);
                let invalid = parsed.err().map(|error| first_line(&error.to_string()));
                self.jsonpaths.insert(text.to_string(), invalid.clone());
                invalid
            }
        };
        let valid = invalid.is_none();
        if let Some(reason) = invalid {
            self.report(
                Diagnostic::new(
                    codes::INVALID_JSONPATH,
                    path.span,
                    format!("invalid JSONPath `{text}`"),
                )
                .with_label(reason)
                .with_help("JSONPaths look like `$..ssn` or `$.payload.items[*].name`"),
            );
        }
        valid
    }

    fn regex(&mut self, regex: &Name) {
        let invalid = match self.regexes.get(regex.text.as_str()) {
            Some(invalid) => invalid.clone(),
            None => {
                let result = RegexBuilder::new(&regex.text)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build();
                let invalid = result.err().map(|error| match error {
                    regex::Error::CompiledTooBig(_) => "the regex is too large".to_string(),
                    other => last_line(&other.to_string()),
                });
                self.regexes.insert(regex.text.clone(), invalid.clone());
                invalid
            }
        };
        if let Some(reason) = invalid {
            self.report(
                Diagnostic::new(codes::INVALID_REGEX, regex.span, "invalid regex")
                    .with_label(reason)
                    .with_help("regexes follow the syntax of the Rust `regex` crate: no look-around or back-references"),
            );
        }
    }

    fn topic_pattern(&mut self, pattern: &Name) -> Option<TopicPattern> {
        match TopicPattern::parse(&pattern.text) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                self.report(
                    Diagnostic::new(
                        codes::INVALID_TOPIC_PATTERN,
                        pattern.span,
                        format!("invalid topic pattern: {error}"),
                    )
                    .with_help("`*` matches one segment and `**` one or more, last only: `patients.*`, `messages.**`"),
                );
                None
            }
        }
    }

    /// The models that constrain every topic of a scope, or `None` when
    /// some topic of the scope may carry an unmodelled payload.
    fn models_for(&self, scope: &Scope) -> Option<Vec<&'a Model>> {
        let Scope::Topics(patterns) = scope else {
            return None;
        };
        if patterns.is_empty() {
            return None;
        }
        let mut models: Vec<&'a Model> = Vec::new();
        for pattern in patterns {
            let covered = self
                .carries
                .iter()
                .any(|(carried, _)| pattern.is_within(carried));
            if !covered {
                return None;
            }
            for (carried, decl) in &self.carries {
                if pattern.overlaps(carried)
                    && let Some(model) = self.models.get(decl.model.text.as_str())
                    && !models.iter().any(|m| std::ptr::eq(*m, *model))
                {
                    models.push(model);
                }
            }
        }
        Some(models)
    }

    /// Reports a payload path that no model of its topics declares.
    fn model_field(&mut self, path: &PathExpr, scope: &Scope) {
        let Some(field) = path.payload_field() else {
            return;
        };
        if field.is_empty() {
            return;
        }
        let Some(models) = self.models_for(scope) else {
            return;
        };
        let declared = models.iter().any(|model| {
            model
                .fields
                .iter()
                .any(|decl| is_prefix(&decl.path, field) || is_prefix(field, &decl.path))
        });
        if declared {
            return;
        }
        let wrong = field.join(".");
        let names: Vec<&str> = models
            .iter()
            .flat_map(|m| m.fields.iter().map(|f| f.name.text.as_str()))
            .collect();
        let model_names = models
            .iter()
            .map(|m| format!("`{}`", m.name.text))
            .collect::<Vec<_>>()
            .join(", ");
        self.report(
            Diagnostic::new(
                codes::UNKNOWN_FIELD,
                path.span,
                format!("unknown field `{wrong}` in model {model_names}"),
            )
            .with_label(format!(
                "not declared by {model_names}, the model of these topics"
            ))
            .with_suggestion(&wrong, names),
        );
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .take(120)
        .collect()
}

fn is_prefix(prefix: &[String], path: &[String]) -> bool {
    prefix.len() <= path.len() && prefix.iter().zip(path).all(|(a, b)| a == b)
}

/// Whether an action on `path` reaches the payload field `field`.
fn path_covers(path: &PathExpr, field: &[String]) -> bool {
    if let Some(target) = path.payload_field() {
        return is_prefix(target, field);
    }
    path.descendant_name()
        .is_some_and(|name| field.iter().any(|segment| segment == name))
}

fn find_subscriber_test(condition: &Condition) -> Option<Span> {
    match condition {
        Condition::And(terms) | Condition::Or(terms) => terms.iter().find_map(find_subscriber_test),
        Condition::Not(inner) => find_subscriber_test(inner),
        Condition::Check(check) => {
            // A plain path tests `subscriber` only when it starts there:
            // `payload.subscriber_count` is a payload field. A JSONPath
            // such as `$..subscriber` can reach the member from anywhere,
            // so any mention of the name counts, and so does a wildcard
            // over the event's own members (`$.*`, `$..*`).
            let mentions = match &check.path.kind {
                PathKind::Dotted(_) => check.path.root() == Some("subscriber"),
                PathKind::JsonPath(text) => {
                    text.contains("subscriber")
                        || ["$.*", "$[*]", "$..*", "$..[*]"]
                            .iter()
                            .any(|start| text.starts_with(start))
                }
            };
            mentions.then_some(check.path.span)
        }
    }
}
