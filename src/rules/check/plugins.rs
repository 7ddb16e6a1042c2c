//! Plugin contracts: names, patterns, endpoints, `receive` lines, and
//! PHI received in clear.

use super::*;

impl Checker<'_> {
    pub(super) fn plugins(&mut self) {
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
}
