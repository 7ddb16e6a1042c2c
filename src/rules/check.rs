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

/// Which topics a rule can apply to, as far as its condition tells.
#[derive(Clone, Debug)]
enum Scope {
    /// Any topic at all.
    Any,
    /// Only topics matching one of these; empty means no topic.
    Topics(Vec<TopicPattern>),
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

    // -- plugins ------------------------------------------------------------

    fn plugins(&mut self) {
        for plugin in self.plugin_list.clone() {
            self.plugin_name(&plugin.name);
            for pattern in plugin.publishes.iter().chain(&plugin.subscribes) {
                self.topic_pattern(pattern);
            }
            for (index, endpoint) in plugin.endpoints.iter().enumerate() {
                if index > 0 {
                    self.report(
                        Diagnostic::new(
                            codes::DUPLICATE_ENDPOINT,
                            endpoint.span,
                            format!(
                                "plugin `{}` declares more than one endpoint",
                                plugin.name.text
                            ),
                        )
                        .with_help("a plugin has one push endpoint; keep the one it serves"),
                    );
                }
                self.endpoint(endpoint);
            }

            let is_recipient = !plugin.subscribes.is_empty()
                || self.route_targets.contains(plugin.name.text.as_str());
            if is_recipient && plugin.receives.is_empty() {
                self.report(
                    Diagnostic::new(
                        codes::NO_RECEIVE,
                        plugin.name.span,
                        format!(
                            "plugin `{}` receives events but no `receive` says what it may see",
                            plugin.name.text
                        ),
                    )
                    .with_help("add `receive` lines naming the fields it needs, or `receive all`"),
                );
            }

            let scope = self.recipient_scope(plugin);
            for receive in &plugin.receives {
                if let Receive::Path { path, .. } = receive {
                    self.receive_path(path, &scope);
                }
            }
            self.phi_in_clear(plugin, &scope);
        }
    }

    fn plugin_name(&mut self, name: &Name) {
        let valid = !name.text.is_empty()
            && name.text.len() <= 64
            && name
                .text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            self.report(
                Diagnostic::new(
                    codes::INVALID_PLUGIN_NAME,
                    name.span,
                    "plugin names use 1 to 64 letters, digits, `_`, `-` and `.`",
                )
                .with_help(
                    "the name appears in URLs such as /messaging/subscriptions/NAME/messages",
                ),
            );
        }
    }

    /// The topics a plugin can receive: its subscriptions, or any topic
    /// when a rule routes to it.
    fn recipient_scope(&self, plugin: &Plugin) -> Scope {
        if self.route_targets.contains(plugin.name.text.as_str()) {
            return Scope::Any;
        }
        Scope::Topics(
            self.subscribes
                .get(plugin.name.text.as_str())
                .cloned()
                .unwrap_or_default(),
        )
    }

    fn receive_path(&mut self, path: &PathExpr, scope: &Scope) {
        if !self.jsonpath(path) {
            return;
        }
        let inside_payload = match &path.kind {
            PathKind::Dotted(segments) => segments.first().is_some_and(|root| root == "payload"),
            PathKind::JsonPath(text) => {
                text.starts_with("$.payload") || text.starts_with("$['payload']")
            }
        };
        if !inside_payload {
            self.report(
                Diagnostic::new(
                    codes::INVALID_PATH,
                    path.span,
                    format!(
                        "`receive` takes a path inside the payload, not `{}`",
                        path.text
                    ),
                )
                .with_help("write it as `payload.FIELD`"),
            );
            return;
        }
        self.model_field(path, scope);
    }

    fn phi_in_clear(&mut self, plugin: &Plugin, scope: &Scope) {
        let Some(models) = self.models_for(scope) else {
            return;
        };
        for receive in &plugin.receives {
            let (span, received): (Span, Option<&[String]>) = match receive {
                Receive::All { span } => (*span, None),
                Receive::Path {
                    path,
                    transform: None,
                    span,
                } => match path.payload_field() {
                    Some(field) => (*span, Some(field)),
                    None => continue,
                },
                Receive::Path { .. } => continue,
            };
            let mut exposed: Vec<&str> = Vec::new();
            for model in &models {
                let topics = self.topics_carrying(model, scope);
                for field in &model.fields {
                    if field.class != DataClass::Phi {
                        continue;
                    }
                    let reached = match received {
                        None => true,
                        Some(received) => {
                            is_prefix(received, &field.path) || is_prefix(&field.path, received)
                        }
                    };
                    if reached
                        && !self.always_transformed(&field.path, &topics)
                        && !exposed.contains(&field.name.text.as_str())
                    {
                        exposed.push(field.name.text.as_str());
                    }
                }
            }
            if exposed.is_empty() {
                continue;
            }
            let list = exposed
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.report(
                Diagnostic::new(
                    codes::PHI_IN_CLEAR,
                    span,
                    format!("plugin `{}` receives PHI in clear: {list}", plugin.name.text),
                )
                .with_help("receive such fields `encrypted`, `hashed` or `masked`, or only the fields the plugin needs"),
            );
        }
    }

    /// The topics of a recipient scope on which `model` is carried.
    fn topics_carrying(&self, model: &Model, scope: &Scope) -> Vec<TopicPattern> {
        let Scope::Topics(patterns) = scope else {
            return Vec::new();
        };
        patterns
            .iter()
            .filter(|pattern| {
                self.carries.iter().any(|(carried, decl)| {
                    decl.model.text == model.name.text && pattern.overlaps(carried)
                })
            })
            .cloned()
            .collect()
    }

    /// Whether some rule strips, encrypts, hashes or masks the field on
    /// every delivery of every one of `topics`: a rule without condition,
    /// or one whose condition surely holds on all of them.
    fn always_transformed(&self, field: &[String], topics: &[TopicPattern]) -> bool {
        self.rules.iter().any(|rule| {
            let everywhere = match &rule.condition {
                None => true,
                Some(condition) => match sure_scope(condition) {
                    Scope::Any => true,
                    Scope::Topics(sure) => topics
                        .iter()
                        .all(|topic| sure.iter().any(|p| topic.is_within(p))),
                },
            };
            everywhere
                && rule.actions.iter().any(|action| {
                    let transforms = matches!(
                        action.kind,
                        ActionKind::Strip(_)
                            | ActionKind::Encrypt { .. }
                            | ActionKind::Hash { .. }
                            | ActionKind::Mask { .. }
                    );
                    transforms
                        && action
                            .kind
                            .path()
                            .is_some_and(|path| path_covers(path, field))
                })
        })
    }

    fn endpoint(&mut self, endpoint: &Name) {
        match classify_endpoint(&endpoint.text) {
            Endpoint::Secure => {}
            Endpoint::Insecure => self.report(
                Diagnostic::new(
                    codes::INSECURE_ENDPOINT,
                    endpoint.span,
                    "endpoint must use HTTPS unless it is on loopback",
                )
                .with_label("plain HTTP would carry PHI in clear over the network")
                .with_help("use an `https://` address"),
            ),
            Endpoint::Invalid(why) => self.report(
                Diagnostic::new(
                    codes::INVALID_ENDPOINT,
                    endpoint.span,
                    format!("invalid endpoint: {why}"),
                )
                .with_help("write a full address such as `https://host.example/events`"),
            ),
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

    // -- conflicts ----------------------------------------------------------

    /// Warns where a weaker field action is overridden by a stronger one
    /// on the same field, for rules whose topics overlap.
    fn conflicting_actions(&mut self) {
        let mut by_path: HashMap<String, Vec<ActionSite<'a>>> = HashMap::new();
        let mut by_last: HashMap<String, HashSet<String>> = HashMap::new();
        for rule in &self.rules {
            let scope = rule.condition.as_ref().map_or(Scope::Any, scope_of);
            for action in &rule.actions {
                let Some(path) = action.kind.path() else {
                    continue;
                };
                let key = match (path.descendant_name(), path.segments()) {
                    (Some(name), _) => format!("..{name}"),
                    (None, Some(_)) => path.canonical(),
                    (None, None) => continue,
                };
                if let Some(last) = path.segments().and_then(|s| s.last()) {
                    by_last.entry(last.clone()).or_default().insert(key.clone());
                }
                by_path.entry(key).or_default().push(ActionSite {
                    rule,
                    action,
                    scope: scope.clone(),
                });
            }
        }

        let mut reports: Vec<(Span, String, &'static str)> = Vec::new();
        let mut keys: Vec<&String> = by_path.keys().collect();
        keys.sort();
        for key in keys {
            let entries = &by_path[key];
            // A `$..name` action also reaches every plain path ending in
            // `name`: those paths compete with it, not with each other.
            let mut rivals: Vec<&ActionSite<'a>> = entries.iter().collect();
            if let Some(name) = key.strip_prefix("..") {
                let plain_keys = by_last.get(name).into_iter().flatten();
                rivals.extend(plain_keys.filter_map(|k| by_path.get(k)).flatten());
            } else if let Some(last) = key.rsplit('.').next()
                && let Some(descendants) = by_path.get(&format!("..{last}"))
            {
                rivals.extend(descendants);
            }
            let rivals = Rivals::new(rivals);
            for entry in entries {
                if let Some(winner) = rivals.winner(entry) {
                    let field = key
                        .strip_prefix("..")
                        .map_or(key.clone(), |name| format!("$..{name}"));
                    let message = format!(
                        "`{}` in rule `{}` is overridden by `{}` in rule `{}` on `{field}`",
                        entry.action.kind.keyword(),
                        entry.rule.name.text,
                        winner.action.kind.keyword(),
                        winner.rule.name.text
                    );
                    reports.push((entry.action.span, message, winner.action.kind.keyword()));
                }
            }
        }
        for (span, message, winner) in reports {
            self.report(
                Diagnostic::new(codes::CONFLICTING_ACTIONS, span, message)
                    .with_label(format!("`{winner}` wins"))
                    .with_help("when actions reach one value the strongest wins: strip, encrypt, hash, mask, redact"),
            );
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

/// One field action, with the topics its rule can apply to.
struct ActionSite<'r> {
    rule: &'r Rule,
    action: &'r Action,
    scope: Scope,
}

/// The actions competing for one field, indexed so that finding the
/// strongest rival of an action with an overlapping scope does not scan
/// every action on the field.
struct Rivals<'s, 'r> {
    /// Every rival, strongest first.
    all: Vec<&'s ActionSite<'r>>,
    /// Rivals by the first literal segment of their topic patterns,
    /// strongest first; rivals of any topic, or with a wildcard first
    /// segment, are in `everywhere`.
    by_family: HashMap<&'s str, Vec<&'s ActionSite<'r>>>,
    everywhere: Vec<&'s ActionSite<'r>>,
}

impl<'s, 'r> Rivals<'s, 'r> {
    fn new(mut all: Vec<&'s ActionSite<'r>>) -> Self {
        all.sort_by_key(|site| std::cmp::Reverse(site.action.kind.strength()));
        let mut by_family: HashMap<&'s str, Vec<&'s ActionSite<'r>>> = HashMap::new();
        let mut everywhere = Vec::new();
        for site in &all {
            match &site.scope {
                Scope::Any => everywhere.push(*site),
                Scope::Topics(patterns) => {
                    for pattern in patterns {
                        match pattern.segments().first() {
                            Some(Segment::Literal(family)) => {
                                by_family.entry(family.as_str()).or_default().push(*site)
                            }
                            _ => everywhere.push(*site),
                        }
                    }
                }
            }
        }
        Rivals {
            all,
            by_family,
            everywhere,
        }
    }

    /// The strongest rival stronger than `site` whose topics overlap.
    fn winner(&self, site: &ActionSite<'_>) -> Option<&'s ActionSite<'r>> {
        let strength = site.action.kind.strength();
        let first_stronger = |list: &[&'s ActionSite<'r>]| {
            list.iter()
                .take_while(|rival| rival.action.kind.strength() > strength)
                .find(|rival| scopes_overlap(&site.scope, &rival.scope))
                .copied()
        };
        let families: Option<Vec<&str>> = match &site.scope {
            Scope::Any => None,
            Scope::Topics(patterns) => patterns
                .iter()
                .map(|p| match p.segments().first() {
                    Some(Segment::Literal(family)) => Some(family.as_str()),
                    _ => None,
                })
                .collect(),
        };
        let Some(families) = families else {
            return first_stronger(&self.all);
        };
        let mut candidates: Vec<&'s ActionSite<'r>> =
            first_stronger(&self.everywhere).into_iter().collect();
        for family in families {
            if let Some(list) = self.by_family.get(family) {
                candidates.extend(first_stronger(list));
            }
        }
        candidates
            .into_iter()
            .max_by_key(|rival| rival.action.kind.strength())
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

/// The topics on which a condition surely holds, whatever else the event
/// carries: the under-estimate that `scope_of` is the over-estimate of.
/// Only tests of `topic` can make a condition hold for sure.
fn sure_scope(condition: &Condition) -> Scope {
    let nowhere = || Scope::Topics(Vec::new());
    match condition {
        Condition::Check(check) if check.path.is_member("topic") => match &check.op {
            TestOp::Compare(super::ast::CompareOp::Eq, literal) => literal
                .value
                .as_str()
                .and_then(|t| TopicPattern::parse_topic(t).ok())
                .map_or_else(nowhere, |p| Scope::Topics(vec![p])),
            TestOp::Matches(pattern) => TopicPattern::parse(&pattern.text)
                .map_or_else(|_| nowhere(), |p| Scope::Topics(vec![p])),
            TestOp::In(literals) => Scope::Topics(
                literals
                    .iter()
                    .filter_map(|l| {
                        l.value
                            .as_str()
                            .and_then(|t| TopicPattern::parse_topic(t).ok())
                    })
                    .collect(),
            ),
            _ => nowhere(),
        },
        Condition::Check(_) | Condition::Not(_) => nowhere(),
        Condition::Or(terms) => {
            let mut union = Vec::new();
            for term in terms {
                match sure_scope(term) {
                    Scope::Any => return Scope::Any,
                    Scope::Topics(patterns) => union.extend(patterns),
                }
            }
            Scope::Topics(union)
        }
        Condition::And(terms) => {
            terms
                .iter()
                .map(sure_scope)
                .fold(Scope::Any, |a, b| match (a, b) {
                    (Scope::Any, other) | (other, Scope::Any) => other,
                    // A topic surely in both lies within a pattern of each side.
                    (Scope::Topics(a), Scope::Topics(b)) => {
                        let from_a = a.iter().filter(|p| b.iter().any(|q| p.is_within(q)));
                        let from_b = b.iter().filter(|q| a.iter().any(|p| q.is_within(p)));
                        Scope::Topics(from_a.chain(from_b).cloned().collect())
                    }
                })
        }
    }
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

/// The topic patterns a condition can hold for, or `None` when it may hold
/// for any topic. A superset: the condition itself must still be tested.
pub(crate) fn topic_scope(condition: &Condition) -> Option<Vec<TopicPattern>> {
    match scope_of(condition) {
        Scope::Any => None,
        Scope::Topics(patterns) => Some(patterns),
    }
}

/// The topics a condition can hold for; a superset, never too narrow.
fn scope_of(condition: &Condition) -> Scope {
    match condition {
        Condition::Check(check) if check.path.is_member("topic") => match &check.op {
            TestOp::Compare(super::ast::CompareOp::Eq, literal) => literal
                .value
                .as_str()
                .and_then(|t| TopicPattern::parse_topic(t).ok())
                .map_or(Scope::Any, |p| Scope::Topics(vec![p])),
            TestOp::Matches(pattern) => {
                TopicPattern::parse(&pattern.text).map_or(Scope::Any, |p| Scope::Topics(vec![p]))
            }
            TestOp::In(literals) => {
                let patterns: Option<Vec<TopicPattern>> = literals
                    .iter()
                    .map(|l| {
                        l.value
                            .as_str()
                            .and_then(|t| TopicPattern::parse_topic(t).ok())
                    })
                    .collect();
                patterns.map_or(Scope::Any, Scope::Topics)
            }
            _ => Scope::Any,
        },
        Condition::Check(_) | Condition::Not(_) => Scope::Any,
        Condition::And(terms) => terms.iter().map(scope_of).fold(Scope::Any, intersect),
        Condition::Or(terms) => {
            let mut union = Vec::new();
            for term in terms {
                match scope_of(term) {
                    Scope::Any => return Scope::Any,
                    Scope::Topics(patterns) => union.extend(patterns),
                }
            }
            Scope::Topics(union)
        }
    }
}

fn intersect(a: Scope, b: Scope) -> Scope {
    match (a, b) {
        (Scope::Any, other) | (other, Scope::Any) => other,
        (Scope::Topics(a), Scope::Topics(b)) => Scope::Topics(
            a.into_iter()
                .filter(|p| b.iter().any(|q| p.overlaps(q)))
                .collect(),
        ),
    }
}

fn scopes_overlap(a: &Scope, b: &Scope) -> bool {
    match (a, b) {
        (Scope::Any, _) | (_, Scope::Any) => true,
        (Scope::Topics(a), Scope::Topics(b)) => a.iter().any(|p| b.iter().any(|q| p.overlaps(q))),
    }
}

enum Endpoint {
    Secure,
    Insecure,
    Invalid(&'static str),
}

/// Sorts an endpoint URL into HTTPS, plain HTTP, or not a URL at all.
/// Plain HTTP is accepted on loopback only.
fn classify_endpoint(url: &str) -> Endpoint {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Endpoint::Invalid("it has no scheme such as `https://`");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Endpoint::Invalid("an IPv6 address lacks its closing `]`"),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Endpoint::Invalid("it has no host");
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Endpoint::Invalid("its port is not a number from 0 to 65535");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Endpoint::Secure,
        "http" if is_loopback(host) => Endpoint::Secure,
        "http" => Endpoint::Insecure,
        _ => Endpoint::Invalid("only `https://` (or `http://` on loopback) is supported"),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_https_outside_loopback() {
        assert!(matches!(
            classify_endpoint("https://inbox.example/events"),
            Endpoint::Secure
        ));
        assert!(matches!(
            classify_endpoint("http://127.0.0.1:9000/hook"),
            Endpoint::Secure
        ));
        assert!(matches!(
            classify_endpoint("http://[::1]:9000/hook"),
            Endpoint::Secure
        ));
        assert!(matches!(
            classify_endpoint("http://localhost/hook"),
            Endpoint::Secure
        ));
        assert!(matches!(
            classify_endpoint("http://inbox.example/events"),
            Endpoint::Insecure
        ));
        assert!(matches!(
            classify_endpoint("inbox.example/events"),
            Endpoint::Invalid(_)
        ));
        assert!(matches!(
            classify_endpoint("https://host:99999/"),
            Endpoint::Invalid(_)
        ));
        assert!(matches!(
            classify_endpoint("ftp://host/"),
            Endpoint::Invalid(_)
        ));
    }
}
