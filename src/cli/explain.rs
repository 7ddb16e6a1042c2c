//! `phigate explain`: what each recipient of one event would get, and why.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::{EXIT_OK, EXIT_USAGE, RuleContext};
use crate::rules::{BlockReason, Decision, Event, Outcome, Rejection};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The topic of the event.
    #[arg(long)]
    pub topic: String,

    /// The publishing plugin.
    #[arg(long = "from", value_name = "PLUGIN")]
    pub publisher: String,

    /// An attribute of the event, as KEY=VALUE (repeatable). The value is
    /// read as JSON when it parses, else as a string.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,

    /// Rule files or folders. Default: the configuration's `rules.paths`,
    /// else `rules`.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// How the explanation is written.
    #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
    pub format: ExplainFormat,

    /// A file holding the payload as JSON; `-` or nothing reads stdin
    /// when it is not a terminal, else the payload is `{}`.
    #[arg(value_name = "PAYLOAD_FILE")]
    pub payload: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    Human,
    Json,
}

pub fn run(config_arg: Option<&Path>, args: ExplainArgs) -> u8 {
    let payload = match read_payload(args.payload.as_deref()) {
        Ok(payload) => payload,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    let mut attributes = Map::new();
    for pair in &args.attributes {
        let Some((key, value)) = pair.split_once('=') else {
            eprintln!("error: `--attr {pair}` is not KEY=VALUE");
            return EXIT_USAGE;
        };
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        attributes.insert(key.to_string(), value);
    }
    let context = match RuleContext::open(config_arg, &args.rules) {
        Ok(context) => context,
        Err(code) => return code,
    };

    let event = Event {
        topic: args.topic.clone(),
        publisher: args.publisher.clone(),
        attributes,
        payload,
    };
    let engine = &context.rule_set.engine;
    let decision = engine.decide(&event, &context.keys, context.filter_mode);
    let text = match args.format {
        ExplainFormat::Human => human(engine, &event, &decision),
        ExplainFormat::Json => {
            serde_json::to_string_pretty(&as_json(&event, &decision)).unwrap_or_default()
        }
    };
    println!("{text}");
    EXIT_OK
}

fn read_payload(path: Option<&Path>) -> Result<Value, String> {
    use std::io::{IsTerminal, Read};
    let text = match path {
        Some(path) if path != Path::new("-") => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        _ if path.is_none() && std::io::stdin().is_terminal() => {
            return Ok(Value::Object(Map::new()));
        }
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read the payload from stdin: {e}"))?;
            if text.trim().is_empty() {
                return Ok(Value::Object(Map::new()));
            }
            text
        }
    };
    serde_json::from_str(&text).map_err(|e| {
        // The position only: serde's message can quote the input.
        format!(
            "the payload is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })
}

fn rejection_text(rejection: &Rejection) -> String {
    match rejection {
        Rejection::UndeclaredField { model, field } => {
            format!("field `{field}` is not declared by model `{model}` (HTTP 422)")
        }
        Rejection::NotAllowed { .. } => format!("{rejection} (HTTP 403)"),
        Rejection::InvalidTopic => format!("{rejection} (HTTP 400)"),
        other => format!("{other} (HTTP 422)"),
    }
}

fn human(
    engine: &crate::rules::Engine,
    event: &Event,
    decision: &Result<Decision, Rejection>,
) -> String {
    let mut out = format!("event on `{}` from `{}`\n", event.topic, event.publisher);
    let decision = match decision {
        Ok(decision) => decision,
        Err(rejection) => {
            out.push_str(&format!("rejected: {}\n", rejection_text(rejection)));
            return out;
        }
    };
    if decision.deliveries.is_empty() {
        out.push_str("no recipients\n");
    }
    for delivery in &decision.deliveries {
        let how = if delivery.routed { " (routed)" } else { "" };
        let verdict = match &delivery.outcome {
            Outcome::Deliver { .. } => "delivered".to_string(),
            Outcome::Blocked(BlockReason::Rules(rules)) => {
                let names: Vec<String> = rules.iter().map(|r| format!("\"{r}\"")).collect();
                format!("blocked by {}", names.join(", "))
            }
            Outcome::Blocked(BlockReason::FilterError) => {
                "blocked: a field action failed (fail-closed)".to_string()
            }
        };
        out.push_str(&format!("\n{}{how}: {verdict}\n", delivery.plugin));
        if delivery.fired.is_empty() {
            out.push_str("  rules fired: none\n");
        } else {
            out.push_str("  rules fired:\n");
            for rule in &delivery.fired {
                match engine.condition_text(rule) {
                    Some(condition) => out.push_str(&format!("    \"{rule}\"  when {condition}\n")),
                    None => out.push_str(&format!("    \"{rule}\"  (always)\n")),
                }
            }
        }
        for error in &delivery.filter_errors {
            let origin = match &error.rule {
                Some(rule) => format!("rule \"{rule}\""),
                None => "a `receive` transform".to_string(),
            };
            out.push_str(&format!(
                "  filter error: {origin} on `{}`: {}\n",
                error.path, error.reason
            ));
        }
        if let Outcome::Deliver {
            payload,
            attributes,
        } = &delivery.outcome
        {
            let pretty = serde_json::to_string_pretty(payload).unwrap_or_default();
            out.push_str(&format!("  payload: {}\n", pretty.replace('\n', "\n  ")));
            if !attributes.is_empty() {
                out.push_str(&format!(
                    "  attributes: {}\n",
                    Value::Object(attributes.clone())
                ));
            }
        }
    }
    out
}

fn as_json(event: &Event, decision: &Result<Decision, Rejection>) -> Value {
    match decision {
        Err(rejection) => json!({
            "topic": event.topic,
            "publisher": event.publisher,
            "rejected": rejection_text(rejection),
        }),
        Ok(decision) => {
            let recipients: Vec<Value> = decision
                .deliveries
                .iter()
                .map(|delivery| {
                    let (outcome, payload, attributes) = match &delivery.outcome {
                        Outcome::Deliver {
                            payload,
                            attributes,
                        } => (
                            "delivered",
                            payload.clone(),
                            Value::Object(attributes.clone()),
                        ),
                        Outcome::Blocked(_) => ("blocked", Value::Null, Value::Null),
                    };
                    let errors: Vec<Value> = delivery
                        .filter_errors
                        .iter()
                        .map(|e| json!({"rule": e.rule, "path": e.path, "reason": e.reason}))
                        .collect();
                    json!({
                        "plugin": delivery.plugin,
                        "outcome": outcome,
                        "routed": delivery.routed,
                        "rules": delivery.fired,
                        "filter_errors": errors,
                        "payload": payload,
                        "attributes": attributes,
                    })
                })
                .collect();
            json!({ "topic": event.topic, "publisher": event.publisher, "recipients": recipients })
        }
    }
}
