//! Conflicting field actions: a weaker action on a field overridden by a
//! stronger one whose rule can apply on the same topics.

use super::*;

impl<'a> Checker<'a> {
    /// Warns where a weaker field action is overridden by a stronger one
    /// on the same field, for rules whose topics overlap.
    pub(super) fn conflicting_actions(&mut self) {
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
