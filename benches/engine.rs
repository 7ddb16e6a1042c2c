//! Benchmarks of the decision engine's per-event work.
//!
//! Run: `cargo bench --bench engine`. Figures go in BENCHMARKS.md.
//!
//! - `redaction`: `redact` with every built-in detector selected, on
//!   free text shaped like clinical notes, in MB/s.
//! - `decisions/*`: one ~1 KB event against generated rule sets of 10 to
//!   10,000 rules: the serde_json parse of the event's bytes (the floor),
//!   routing by scanning every rule (the naive baseline), routing through
//!   the engine, and full decisions for three recipients.
//! - `compile`: compiling a generated rule set; the resident memory the
//!   compiled engine adds is printed once per size.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phigate::actions::detectors::{BUILTINS, Detectors};
use phigate::config::FilterMode;
use phigate::keys::KeyRing;
use phigate::rules::{self, CheckOptions, Engine, Event, Severity, Sources};
use serde_json::Value;

/// Clinical-note-like prose of about `size` bytes: sentences drawn from a
/// fixed list by a small deterministic generator, with a phone number, an
/// email address or an MRN in one sentence in eight.
pub fn clinical_note(size: usize) -> String {
    const SENTENCES: &[&str] = &[
        "Patient seen in clinic today for follow-up of type 2 diabetes.",
        "Reports improved energy and no episodes of hypoglycaemia since the last visit.",
        "Blood pressure 128/82, pulse 74, afebrile; weight stable at 81 kg.",
        "Continue metformin 1000 mg twice daily and review HbA1c in three months.",
        "Mild bilateral ankle oedema noted, no calf tenderness, pedal pulses present.",
        "Discussed diet and exercise; she walks 30 minutes most days with her daughter.",
        "No chest pain, shortness of breath, or palpitations on exertion.",
        "Foot examination normal; monofilament sensation intact on both sides.",
        "Plan: repeat renal function, lipid panel, and urine albumin before next review.",
        "Patient understands the plan and agrees; questions answered in full.",
        "Lives alone, independent with activities of daily living, non-smoker.",
        "Eye screening is due; referral letter sent to the ophthalmology service.",
    ];
    const IDENTIFIERS: &[&str] = &[
        "Daughter can be reached on (617) 555-0142 after 5 pm.",
        "Results will be emailed to m.jones@example-clinic.org as requested.",
        "Chart reference MRN-00482913 updated with today's findings.",
        "Pharmacy called back on 617.555.0199 to confirm the refill.",
    ];

    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64: enough variety, identical on every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::with_capacity(size + 128);
    let mut count = 0;
    while text.len() < size {
        let roll = next();
        count += 1;
        let sentence = if count % 8 == 3 {
            IDENTIFIERS[(count / 8) % IDENTIFIERS.len()]
        } else {
            SENTENCES[(roll >> 8) as usize % SENTENCES.len()]
        };
        text.push_str(sentence);
        text.push(if roll % 5 == 0 { '\n' } else { ' ' });
    }
    text.truncate(text.floor_char_boundary(size));
    text
}

fn redaction(c: &mut Criterion) {
    let detectors = Detectors::new(&[]).expect("the built-in detectors compile");
    let all: Vec<String> = BUILTINS.iter().map(|b| b.name.to_string()).collect();
    let selection = detectors.select(&all).expect("every built-in is known");

    let mut group = c.benchmark_group("redaction");
    for (label, size) in [("1KB", 1024), ("64KB", 64 * 1024)] {
        let text = clinical_note(size);
        assert!(
            detectors.redact(&text, &selection).is_some(),
            "the text holds identifiers to find"
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(label, |b| {
            b.iter(|| detectors.redact(black_box(&text), &selection))
        });
    }
    group.finish();
}

/// Rule-set sizes measured.
const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// A generated rule set of `rules` rules, spread over topic families the
/// way a large deployment spreads them over its plugins' topics: one family
/// per 50 rules (at least two), each `fam<N>.*` carrying one model. The
/// benchmark event is on `fam0.updated`, published by `source` and
/// subscribed to by exactly three plugins. Rules mix topic, payload,
/// subscriber and attribute conditions with every field action except
/// `encrypt`, plus `block` and `route to`. All paths are dotted: a `$..`
/// JSONPath costs a full walk of the payload per recipient.
pub fn rule_set(rules: usize) -> String {
    let families = (rules / 50).max(2);
    let mut text = String::from(
        "model Record {\n  mrn: phi string\n  name: phi string\n  note: phi string\n  ward: public string\n  score: public number\n  code: public string\n  priority: public string\n  items: public array\n}\n",
    );
    text.push_str("plugin \"source\" { publish \"**\" }\n");
    for family in 0..families {
        let _ = writeln!(text, "topic \"fam{family}.*\" carries Record");
        let _ = writeln!(
            text,
            "plugin \"p{family}\" {{ subscribe \"fam{family}.*\" receive payload.ward receive payload.code receive payload.mrn hashed }}"
        );
    }
    text.push_str("plugin \"sub-a\" { subscribe \"fam0.*\" receive all }\n");
    text.push_str("plugin \"sub-b\" { subscribe \"fam0.updated\" receive payload.ward receive payload.score receive payload.mrn hashed receive payload.name masked }\n");
    for pager in 0..5 {
        let _ = writeln!(
            text,
            "plugin \"pager{pager}\" {{ receive payload.ward receive payload.priority }}"
        );
    }
    for rule in 0..rules {
        let family = rule % families;
        let (condition, action) = match rule % 10 {
            0..=3 => (
                format!(
                    "topic == \"fam{family}.updated\" and payload.score > {}",
                    rule % 97
                ),
                [
                    "mask payload.code keep 2",
                    "hash payload.mrn",
                    "redact payload.note using phone, email",
                    "strip payload.items",
                ][rule % 4]
                    .to_string(),
            ),
            4 | 5 => (
                format!(
                    "subscriber == \"p{}\" and topic matches \"fam{family}.*\"",
                    (rule / 10) % families
                ),
                "strip payload.note".to_string(),
            ),
            6 | 7 => (
                format!(
                    "topic matches \"fam{family}.*\" and attributes.source == \"s{}\"",
                    rule % 13
                ),
                "hash payload.name".to_string(),
            ),
            8 => (
                format!("topic matches \"fam{family}.*\" and payload.priority == \"urgent\""),
                format!("route to \"pager{}\"", rule % 5),
            ),
            _ => (
                format!(
                    "topic == \"fam{family}.created\" and payload.code in [\"X{rule}\", \"Y{rule}\"]"
                ),
                "block".to_string(),
            ),
        };
        let _ = writeln!(
            text,
            "rule \"r{rule}\" {{\n  when {condition}\n  {action}\n}}"
        );
    }
    text
}

/// A published body of about 1 KB on `fam0.updated`.
pub fn event_body() -> String {
    let note = clinical_note(560).replace(['"', '\\', '\n'], " ");
    format!(
        r#"{{"topic": "fam0.updated", "attributes": {{"source": "s1"}}, "payload": {{"mrn": "MRN-00482913", "name": "Ada Lovelace", "note": "{note}", "ward": "3B", "score": 42, "code": "J18.9", "priority": "routine", "items": [{{"sku": "A-1", "qty": 2}}, {{"sku": "B-7", "qty": 1}}]}}}}"#
    )
}

fn compile(text: &str) -> Engine {
    let mut sources = Sources::new();
    sources.add("bench.rules", text.to_string());
    let parsed = rules::parse_all(&sources, &[]);
    let findings = rules::check(&sources, &parsed.files, &CheckOptions::default());
    let errors: Vec<String> = parsed
        .diagnostics
        .iter()
        .chain(&findings)
        .filter(|d| d.severity() == Severity::Error)
        .map(|d| d.message.clone())
        .collect();
    assert!(
        errors.is_empty(),
        "the generated rule set has errors: {errors:?}"
    );
    Engine::compile(&sources, &parsed.files).expect("compiles")
}

fn parse_event(body: &str) -> Event {
    let value: Value = serde_json::from_str(body).expect("the body is JSON");
    Event {
        topic: value["topic"].as_str().unwrap_or_default().to_string(),
        publisher: "source".to_string(),
        attributes: value["attributes"].as_object().cloned().unwrap_or_default(),
        payload: value["payload"].clone(),
    }
}

fn decisions(c: &mut Criterion) {
    let body = event_body();
    let event = parse_event(&body);
    let keys = KeyRing::ephemeral();

    let mut group = c.benchmark_group("decisions");
    group.bench_function("parse_floor", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(&body)))
    });
    for size in SIZES {
        let engine = compile(&rule_set(size));
        let decision = engine
            .decide(&event, &keys, FilterMode::FailClosed)
            .expect("accepted");
        let recipients: Vec<&str> = decision
            .deliveries
            .iter()
            .map(|d| d.plugin.as_str())
            .collect();
        assert_eq!(recipients, ["p0", "sub-a", "sub-b"]);
        assert_eq!(
            engine.route(&event).expect("accepted"),
            engine.route_by_scanning(&event)
        );

        group.bench_function(format!("naive_scan/{size}"), |b| {
            b.iter(|| engine.route_by_scanning(black_box(&event)))
        });
        group.bench_function(format!("routing/{size}"), |b| {
            b.iter(|| engine.route(black_box(&event)))
        });
        group.bench_function(format!("full/{size}"), |b| {
            b.iter(|| engine.decide(black_box(&event), &keys, FilterMode::FailClosed))
        });
    }
    group.finish();
}

/// Resident memory of this process, in bytes, from /proc (Linux only).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[expect(
    clippy::print_stderr,
    reason = "the benchmark reports a figure criterion cannot measure"
)]
fn compiling(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for size in SIZES {
        let text = rule_set(size);
        let mut sources = Sources::new();
        sources.add("bench.rules", text.clone());
        let parsed = rules::parse_all(&sources, &[]);

        let before = resident_bytes();
        let engine = Engine::compile(&sources, &parsed.files).expect("compiles");
        if let (Some(before), Some(after)) = (before, resident_bytes()) {
            eprintln!(
                "compile/{size}: the engine adds {:.1} MiB resident",
                after.saturating_sub(before) as f64 / 1048576.0
            );
        }
        drop(engine);
        group.bench_function(format!("{size}"), |b| {
            b.iter(|| Engine::compile(&sources, black_box(&parsed.files)))
        });
    }
    group.finish();
}

criterion_group!(benches, decisions, redaction, compiling);
criterion_main!(benches);
