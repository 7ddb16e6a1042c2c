//! From rule text to the typed AST: the pest parse, and nothing more.
//!
//! A rule file is user input. Nothing here panics on any input: every
//! failure, including shapes the grammar should have excluded, becomes a
//! [`Diagnostic`]. A file with a syntax error yields that one diagnostic
//! and no items.

use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::{Pair, Pairs};
use serde_json::{Map, Value};

use super::ast::*;
use super::codes;
use super::diagnostic::Diagnostic;
use super::path::PathExpr;
use super::source::{FileId, Span};

/// The grammar in `grammar/rules.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "../grammar/rules.pest"]
struct RuleParser;

/// Brackets, braces and parentheses nest at most this deep. The parser
/// recurses on each level, so an unbounded depth could exhaust the stack.
pub const MAX_NESTING: usize = 64;

/// The largest rule file read, in bytes.
pub const MAX_FILE_SIZE: usize = 32 * 1024 * 1024;

/// Parses one file. On failure the file contributes no items.
pub fn parse(file: FileId, text: &str) -> Result<File, Diagnostic> {
    if text.len() > MAX_FILE_SIZE {
        return Err(Diagnostic::new(
            codes::TOO_LARGE,
            Span::file_start(file),
            format!("rule file is larger than {} MiB", MAX_FILE_SIZE >> 20),
        ));
    }
    check_nesting(file, text)?;

    let mut pairs = RuleParser::parse(Rule::file, text).map_err(|e| syntax_error(file, text, e))?;
    let builder = Builder { file };
    let file_pair = pairs.next().ok_or_else(|| builder.internal(0))?;

    let mut items = Vec::new();
    for pair in file_pair.into_inner() {
        if pair.as_rule() == Rule::EOI {
            continue;
        }
        items.push(builder.item(pair)?);
    }
    Ok(File { items })
}

/// Refuses nesting deeper than [`MAX_NESTING`] before the parser sees it.
/// Strings and comments are skipped, so quoted brackets do not count.
fn check_nesting(file: FileId, text: &str) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::new(
                        codes::TOO_DEEP,
                        Span::new(file, at, at + 1),
                        format!("brackets nest more than {MAX_NESTING} levels deep"),
                    )
                    .with_help("flatten the condition or the JSON value"));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn syntax_error(file: FileId, text: &str, error: pest::error::Error<Rule>) -> Diagnostic {
    let (start, end) = match error.location {
        InputLocation::Pos(at) => (at, at),
        InputLocation::Span((start, end)) => (start, end),
    };
    let found = describe_found(text, start);
    let message = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } if !positives.is_empty() => {
            let mut expected: Vec<&str> = positives.iter().map(|rule| user_word(*rule)).collect();
            expected.sort_unstable();
            expected.dedup();
            format!("expected {}, found {found}", join_alternatives(&expected))
        }
        ErrorVariant::ParsingError { .. } => format!("unexpected {found}"),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let label_end = if end > start {
        end
    } else {
        token_end(text, start)
    };
    Diagnostic::new(codes::SYNTAX, Span::new(file, start, label_end), message)
}

/// What the parser met where it failed, in a few words.
fn describe_found(text: &str, at: usize) -> String {
    let rest = text.get(at..).unwrap_or("");
    match rest.chars().next() {
        None => "the end of the file".to_string(),
        Some('\n' | '\r') => "the end of the line".to_string(),
        Some(_) => {
            let token = &rest[..token_end(text, at) - at];
            let shown: String = token.chars().take(24).collect();
            format!("`{shown}`")
        }
    }
}

/// The end of the word or symbol starting at `at`.
fn token_end(text: &str, at: usize) -> usize {
    let rest = text.get(at..).unwrap_or("");
    let mut chars = rest.char_indices();
    let Some((_, first)) = chars.next() else {
        return at;
    };
    if first.is_alphanumeric() || first == '_' {
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        at + len
    } else if first.is_whitespace() {
        at
    } else {
        at + first.len_utf8()
    }
}

fn join_alternatives(words: &[&str]) -> String {
    match words {
        [] => "something else".to_string(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The name a user knows for a grammar rule.
fn user_word(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "the end of the file",
        Rule::model => "`model`",
        Rule::topic_decl => "`topic`",
        Rule::detector => "`detector`",
        Rule::plugin => "`plugin`",
        Rule::rule_decl => "`rule`",
        Rule::test => "`test`",
        Rule::field | Rule::field_name => "a field name",
        Rule::class => "a class (`phi`, `pii` or `public`)",
        Rule::field_type => "a type",
        Rule::publish_stmt | Rule::test_publish => "`publish`",
        Rule::subscribe_stmt => "`subscribe`",
        Rule::receive_stmt => "`receive`",
        Rule::receive_all => "`all`",
        Rule::receive_mod => "`encrypted`, `hashed` or `masked`",
        Rule::endpoint_stmt => "`endpoint`",
        Rule::when_clause => "`when`",
        Rule::condition | Rule::conjunction | Rule::negation | Rule::test_expr => "a condition",
        Rule::not_op => "`not`",
        Rule::exists_op => "`exists`",
        Rule::in_op => "`in`",
        Rule::starts_op => "`starts with`",
        Rule::contains_op => "`contains`",
        Rule::matches_op => "`matches`",
        Rule::compare_op | Rule::cmp => "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`)",
        Rule::strip_action => "`strip`",
        Rule::encrypt_action => "`encrypt`",
        Rule::hash_action => "`hash`",
        Rule::with_key => "`with key`",
        Rule::mask_action => "`mask`",
        Rule::redact_action => "`redact`",
        Rule::block_action => "`block`",
        Rule::route_action => "`route to`",
        Rule::test_attributes => "`with attributes`",
        Rule::expectation => "`expect`",
        Rule::expect_blocked => "`blocked`",
        Rule::expect_receives => "`receives`",
        Rule::expect_not_receives => "`not receives`",
        Rule::dotted_path | Rule::jsonpath => "a path",
        Rule::string | Rule::string_body => "a quoted string",
        Rule::number => "a number",
        Rule::integer => "a whole number",
        Rule::boolean => "`true` or `false`",
        Rule::null => "`null`",
        Rule::ident => "a name",
        Rule::json_object => "a JSON object",
        Rule::json_member => "a quoted member name",
        Rule::json_array => "a JSON array",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        Rule::kw_attributes => "`attributes`",
        Rule::kw_block => "`block`",
        Rule::kw_blocked => "`blocked`",
        Rule::kw_carries => "`carries`",
        Rule::kw_contains => "`contains`",
        Rule::kw_detector => "`detector`",
        Rule::kw_encrypt => "`encrypt`",
        Rule::kw_endpoint => "`endpoint`",
        Rule::kw_exists => "`exists`",
        Rule::kw_expect => "`expect`",
        Rule::kw_from => "`from`",
        Rule::kw_hash => "`hash`",
        Rule::kw_in => "`in`",
        Rule::kw_keep => "`keep`",
        Rule::kw_key => "`key`",
        Rule::kw_mask => "`mask`",
        Rule::kw_matches => "`matches`",
        Rule::kw_model => "`model`",
        Rule::kw_not => "`not`",
        Rule::kw_plugin => "`plugin`",
        Rule::kw_publish => "`publish`",
        Rule::kw_receive => "`receive`",
        Rule::kw_receives => "`receives`",
        Rule::kw_redact => "`redact`",
        Rule::kw_route => "`route`",
        Rule::kw_rule => "`rule`",
        Rule::kw_starts => "`starts`",
        Rule::kw_strip => "`strip`",
        Rule::kw_subscribe => "`subscribe`",
        Rule::kw_test => "`test`",
        Rule::kw_to => "`to`",
        Rule::kw_topic => "`topic`",
        Rule::kw_using => "`using`",
        Rule::kw_when => "`when`",
        Rule::kw_with => "`with`",
        _ => "something else",
    }
}

/// Turns parse-tree pairs into AST nodes for one file.
struct Builder {
    file: FileId,
}

type Built<T> = Result<T, Diagnostic>;

impl Builder {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = pair.as_span();
        Span::new(self.file, span.start(), span.end())
    }

    /// A shape the grammar should have excluded: reported, never a panic.
    fn internal(&self, at: usize) -> Diagnostic {
        Diagnostic::new(
            codes::SYNTAX,
            Span::new(self.file, at, at),
            "the rule file could not be read here",
        )
        .with_help("this is a bug in phigate; please report it with the rule file")
    }

    fn next<'i>(&self, pairs: &mut Pairs<'i, Rule>, parent: &Span) -> Built<Pair<'i, Rule>> {
        pairs.next().ok_or_else(|| self.internal(parent.start))
    }

    /// The next pair that is not a keyword.
    fn next_content<'i>(
        &self,
        pairs: &mut Pairs<'i, Rule>,
        parent: &Span,
    ) -> Built<Pair<'i, Rule>> {
        loop {
            let pair = self.next(pairs, parent)?;
            if !is_keyword(pair.as_rule()) {
                return Ok(pair);
            }
        }
    }

    fn item(&self, pair: Pair<'_, Rule>) -> Built<Item> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        match rule {
            Rule::model => {
                let name = self.name(self.next_content(&mut inner, &span)?);
                let fields = inner.map(|field| self.field(field)).collect::<Built<_>>()?;
                Ok(Item::Model(Model { name, fields, span }))
            }
            Rule::topic_decl => {
                let pattern = self.string(self.next_content(&mut inner, &span)?)?;
                let model = self.name(self.next_content(&mut inner, &span)?);
                Ok(Item::Topic(TopicDecl {
                    pattern,
                    model,
                    span,
                }))
            }
            Rule::detector => {
                let name = self.name(self.next_content(&mut inner, &span)?);
                let regex = self.string(self.next_content(&mut inner, &span)?)?;
                Ok(Item::Detector(Detector { name, regex, span }))
            }
            Rule::plugin => self.plugin(inner, span).map(Item::Plugin),
            Rule::rule_decl => self.rule(inner, span).map(Item::Rule),
            Rule::test => self.test(inner, span).map(Item::Test),
            _ => Err(self.internal(span.start)),
        }
    }

    fn field(&self, pair: Pair<'_, Rule>) -> Built<FieldDecl> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.name(self.next(&mut inner, &span)?);
        let class = match self.next(&mut inner, &span)?.as_str() {
            "phi" => DataClass::Phi,
            "pii" => DataClass::Pii,
            _ => DataClass::Public,
        };
        let ty = inner.next().map(|ty| match ty.as_str() {
            "string" => FieldType::String,
            "number" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "object" => FieldType::Object,
            _ => FieldType::Array,
        });
        Ok(FieldDecl {
            path: name.text.split('.').map(str::to_string).collect(),
            name,
            class,
            ty,
        })
    }

    fn plugin(&self, mut inner: Pairs<'_, Rule>, span: Span) -> Built<Plugin> {
        let mut plugin = Plugin {
            name: self.string(self.next_content(&mut inner, &span)?)?,
            publishes: Vec::new(),
            subscribes: Vec::new(),
            receives: Vec::new(),
            endpoints: Vec::new(),
            span,
        };
        for statement in inner {
            let statement_span = self.span(&statement);
            let rule = statement.as_rule();
            let parts = statement.into_inner().filter(|p| !is_keyword(p.as_rule()));
            match rule {
                Rule::publish_stmt => {
                    for part in parts {
                        plugin.publishes.push(self.string(part)?);
                    }
                }
                Rule::subscribe_stmt => {
                    for part in parts {
                        plugin.subscribes.push(self.string(part)?);
                    }
                }
                Rule::endpoint_stmt => {
                    for part in parts {
                        plugin.endpoints.push(self.string(part)?);
                    }
                }
                Rule::receive_stmt => {
                    let receive = self.receive(parts.collect(), statement_span)?;
                    plugin.receives.push(receive);
                }
                _ => return Err(self.internal(statement_span.start)),
            }
        }
        Ok(plugin)
    }

    fn receive(&self, parts: Vec<Pair<'_, Rule>>, span: Span) -> Built<Receive> {
        let mut parts = parts.into_iter();
        let first = parts.next().ok_or_else(|| self.internal(span.start))?;
        if first.as_rule() == Rule::receive_all {
            return Ok(Receive::All { span });
        }
        let path = self.path(first)?;
        let transform = parts.next().map(|modifier| match modifier.as_str() {
            "encrypted" => ReceiveTransform::Encrypted,
            "hashed" => ReceiveTransform::Hashed,
            _ => ReceiveTransform::Masked,
        });
        Ok(Receive::Path {
            path,
            transform,
            span,
        })
    }

    fn rule(&self, mut inner: Pairs<'_, Rule>, span: Span) -> Built<super::ast::Rule> {
        let name = self.string(self.next_content(&mut inner, &span)?)?;
        let mut condition = None;
        let mut actions = Vec::new();
        for part in inner {
            if part.as_rule() == Rule::when_clause {
                let clause_span = self.span(&part);
                let mut clause = part.into_inner();
                let expression = self.next_content(&mut clause, &clause_span)?;
                condition = Some(self.condition(expression)?);
            } else {
                actions.push(self.action(part)?);
            }
        }
        Ok(super::ast::Rule {
            name,
            condition,
            actions,
            span,
        })
    }

    fn condition(&self, pair: Pair<'_, Rule>) -> Built<Condition> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::condition | Rule::conjunction => {
                let is_or = pair.as_rule() == Rule::condition;
                let mut terms: Vec<Condition> = pair
                    .into_inner()
                    .filter(|p| !is_keyword(p.as_rule()))
                    .map(|p| self.condition(p))
                    .collect::<Built<_>>()?;
                match (terms.len(), is_or) {
                    (1, _) => terms.pop().ok_or_else(|| self.internal(span.start)),
                    (_, true) => Ok(Condition::Or(terms)),
                    (_, false) => Ok(Condition::And(terms)),
                }
            }
            Rule::negation => {
                let mut negations = 0usize;
                let mut inner = pair.into_inner();
                let mut term = self.next(&mut inner, &span)?;
                while term.as_rule() == Rule::not_op {
                    negations += 1;
                    term = self.next(&mut inner, &span)?;
                }
                let mut condition = self.condition(term)?;
                // `not not x` is `x`: only the parity of the count matters.
                if negations % 2 == 1 {
                    condition = Condition::Not(Box::new(condition));
                }
                Ok(condition)
            }
            Rule::test_expr => self.check(pair, span).map(Condition::Check),
            _ => Err(self.internal(span.start)),
        }
    }

    fn check(&self, pair: Pair<'_, Rule>, span: Span) -> Built<Check> {
        let mut inner = pair.into_inner();
        let path = self.path(self.next(&mut inner, &span)?)?;
        let op_pair = self.next(&mut inner, &span)?;
        let op_rule = op_pair.as_rule();
        let mut operands = op_pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
        let mut operand = || operands.next().ok_or_else(|| self.internal(span.start));
        let op = match op_rule {
            Rule::exists_op => TestOp::Exists,
            Rule::matches_op => TestOp::Matches(self.string(operand()?)?),
            Rule::starts_op => TestOp::StartsWith(self.string(operand()?)?),
            Rule::contains_op => TestOp::Contains(self.string(operand()?)?),
            Rule::compare_op => {
                let compare = match operand()?.as_str() {
                    "==" => CompareOp::Eq,
                    "!=" => CompareOp::Ne,
                    "<" => CompareOp::Lt,
                    "<=" => CompareOp::Le,
                    ">" => CompareOp::Gt,
                    _ => CompareOp::Ge,
                };
                TestOp::Compare(compare, self.literal(operand()?)?)
            }
            Rule::in_op => {
                let literals = operands
                    .map(|p| self.literal(p))
                    .collect::<Built<Vec<_>>>()?;
                TestOp::In(literals)
            }
            _ => return Err(self.internal(span.start)),
        };
        Ok(Check { path, op, span })
    }

    fn action(&self, pair: Pair<'_, Rule>) -> Built<Action> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut parts = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
        let mut part = || parts.next().ok_or_else(|| self.internal(span.start));
        let kind = match rule {
            Rule::strip_action => ActionKind::Strip(self.path(part()?)?),
            Rule::encrypt_action | Rule::hash_action => {
                let path = self.path(part()?)?;
                let key = match part() {
                    Ok(with_key) => Some(self.key_name(with_key)?),
                    Err(_) => None,
                };
                if rule == Rule::encrypt_action {
                    ActionKind::Encrypt { path, key }
                } else {
                    ActionKind::Hash { path, key }
                }
            }
            Rule::mask_action => {
                let path = self.path(part()?)?;
                let keep = match part() {
                    Ok(number) => self.keep_count(number)?,
                    Err(_) => 0,
                };
                ActionKind::Mask { path, keep }
            }
            Rule::redact_action => {
                let path = self.path(part()?)?;
                let detectors = parts.map(|p| self.name(p)).collect();
                ActionKind::Redact { path, detectors }
            }
            Rule::block_action => ActionKind::Block,
            Rule::route_action => {
                let plugins = parts.map(|p| self.string(p)).collect::<Built<_>>()?;
                ActionKind::Route(plugins)
            }
            _ => return Err(self.internal(span.start)),
        };
        Ok(Action { kind, span })
    }

    fn key_name(&self, with_key: Pair<'_, Rule>) -> Built<Name> {
        let span = self.span(&with_key);
        let mut inner = with_key.into_inner();
        self.string(self.next_content(&mut inner, &span)?)
    }

    fn keep_count(&self, pair: Pair<'_, Rule>) -> Built<u32> {
        let span = self.span(&pair);
        pair.as_str().parse::<u32>().map_err(|_| {
            Diagnostic::new(codes::INVALID_LITERAL, span, "`keep` count is too large")
                .with_help(format!("use a number up to {}", u32::MAX))
        })
    }

    fn test(&self, mut inner: Pairs<'_, Rule>, span: Span) -> Built<Test> {
        let name = self.string(self.next_content(&mut inner, &span)?)?;
        let publish = self.next_content(&mut inner, &span)?;
        let publish_span = self.span(&publish);
        let mut parts = publish.into_inner().filter(|p| !is_keyword(p.as_rule()));
        let mut part = || {
            parts
                .next()
                .ok_or_else(|| self.internal(publish_span.start))
        };
        let topic = self.string(part()?)?;
        let publisher = self.string(part()?)?;
        let mut next = part()?;
        let mut attributes = None;
        if next.as_rule() == Rule::test_attributes {
            let attributes_span = self.span(&next);
            let mut attribute_parts = next.into_inner();
            attributes =
                Some(self.json(self.next_content(&mut attribute_parts, &attributes_span)?)?);
            next = part()?;
        }
        let payload = self.json(next)?;

        let mut expectations = Vec::new();
        for expectation in inner {
            expectations.push(self.expectation(expectation)?);
        }
        Ok(Test {
            name,
            topic,
            publisher,
            attributes,
            payload,
            expectations,
            span,
        })
    }

    fn expectation(&self, pair: Pair<'_, Rule>) -> Built<Expectation> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let plugin = self.string(self.next_content(&mut inner, &span)?)?;
        let what = self.next_content(&mut inner, &span)?;
        let what_span = self.span(&what);
        let rule = what.as_rule();
        let mut parts = what.into_inner().filter(|p| !is_keyword(p.as_rule()));
        let kind = match rule {
            Rule::expect_blocked => ExpectKind::Blocked,
            Rule::expect_receives => {
                let object = parts.next().ok_or_else(|| self.internal(what_span.start))?;
                ExpectKind::Receives(self.json(object)?)
            }
            Rule::expect_not_receives => {
                let path = parts.next().ok_or_else(|| self.internal(what_span.start))?;
                ExpectKind::NotReceives(self.path(path)?)
            }
            _ => return Err(self.internal(what_span.start)),
        };
        Ok(Expectation { plugin, kind, span })
    }

    fn path(&self, pair: Pair<'_, Rule>) -> Built<PathExpr> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::dotted_path => Ok(PathExpr::dotted(pair.as_str(), span)),
            Rule::jsonpath => Ok(PathExpr::jsonpath(pair.as_str(), span)),
            _ => Err(self.internal(span.start)),
        }
    }

    fn name(&self, pair: Pair<'_, Rule>) -> Name {
        Name {
            text: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    /// Decodes a quoted string with JSON escapes.
    fn string(&self, pair: Pair<'_, Rule>) -> Built<Name> {
        let span = self.span(&pair);
        if pair.as_rule() != Rule::string {
            return Err(self.internal(span.start));
        }
        let quoted = pair.as_str();
        let inner = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or("");
        // The common case, a string without escapes, needs no decoding.
        if !inner.contains(|c: char| c == '\\' || c.is_control()) {
            return Ok(Name {
                text: inner.to_string(),
                span,
            });
        }
        match serde_json::from_str::<String>(quoted) {
            Ok(text) => Ok(Name { text, span }),
            Err(_) => Err(Diagnostic::new(
                codes::INVALID_LITERAL,
                span,
                "invalid string: strings use JSON escapes and no control characters",
            )
            .with_help("escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX")),
        }
    }

    fn literal(&self, pair: Pair<'_, Rule>) -> Built<Literal> {
        let span = self.span(&pair);
        let value = self.json(pair)?;
        Ok(Literal { value, span })
    }

    /// Builds a JSON value. Depth is bounded by [`MAX_NESTING`].
    fn json(&self, pair: Pair<'_, Rule>) -> Built<Value> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::json_object => {
                let mut object = Map::new();
                for member in pair.into_inner() {
                    let member_span = self.span(&member);
                    let mut parts = member.into_inner();
                    let key = self.string(self.next(&mut parts, &member_span)?)?;
                    let value = self.json(self.next(&mut parts, &member_span)?)?;
                    if object.insert(key.text.clone(), value).is_some() {
                        return Err(Diagnostic::new(
                            codes::INVALID_LITERAL,
                            key.span,
                            format!("member `{}` appears twice in one object", key.text),
                        ));
                    }
                }
                Ok(Value::Object(object))
            }
            Rule::json_array => pair
                .into_inner()
                .map(|p| self.json(p))
                .collect::<Built<Vec<_>>>()
                .map(Value::Array),
            Rule::string => self.string(pair).map(|name| Value::String(name.text)),
            Rule::number => serde_json::from_str::<Value>(pair.as_str())
                .map_err(|_| Diagnostic::new(codes::INVALID_LITERAL, span, "number out of range")),
            Rule::boolean => Ok(Value::Bool(pair.as_str() == "true")),
            Rule::null => Ok(Value::Null),
            _ => Err(self.internal(span.start)),
        }
    }
}

fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_and
            | Rule::kw_attributes
            | Rule::kw_block
            | Rule::kw_blocked
            | Rule::kw_carries
            | Rule::kw_contains
            | Rule::kw_detector
            | Rule::kw_encrypt
            | Rule::kw_endpoint
            | Rule::kw_exists
            | Rule::kw_expect
            | Rule::kw_from
            | Rule::kw_hash
            | Rule::kw_in
            | Rule::kw_keep
            | Rule::kw_key
            | Rule::kw_mask
            | Rule::kw_matches
            | Rule::kw_model
            | Rule::kw_not
            | Rule::kw_or
            | Rule::kw_plugin
            | Rule::kw_publish
            | Rule::kw_receive
            | Rule::kw_receives
            | Rule::kw_redact
            | Rule::kw_route
            | Rule::kw_rule
            | Rule::kw_starts
            | Rule::kw_strip
            | Rule::kw_subscribe
            | Rule::kw_test
            | Rule::kw_to
            | Rule::kw_topic
            | Rule::kw_using
            | Rule::kw_when
            | Rule::kw_with
    )
}
