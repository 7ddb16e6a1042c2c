//! Parse + check of a generated rule set with 10,000 rules.
//!
//! Run: `cargo bench --bench check`. Figures go in BENCHMARKS.md.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use phigate::rules::{self, CheckOptions, Sources};

/// A realistic rule set: 20 modelled topic families, 50 plugins, and
/// `rules` rules mixing topic, attribute, payload and subscriber conditions
/// with every kind of action.
pub fn generate(rules: usize) -> String {
    let mut text = String::new();
    for family in 0..20 {
        let _ = writeln!(
            text,
            "model M{family} {{\n  mrn: phi string\n  name: phi string\n  note: phi string\n  ward: public string\n  score: public number\n  code: public string\n}}\ntopic \"f{family}.*\" carries M{family}\n"
        );
    }
    for plugin in 0..50 {
        let family = plugin % 20;
        let _ = writeln!(
            text,
            "plugin \"p{plugin}\" {{\n  publish \"f{family}.*\"\n  subscribe \"f{family}.*\", \"f{}.*\"\n  receive payload.ward\n  receive payload.code\n  receive payload.mrn hashed\n}}\n",
            (family + 1) % 20
        );
    }
    for rule in 0..rules {
        let family = rule % 20;
        let plugin = rule % 50;
        let condition = match rule % 5 {
            0 => format!("topic == \"f{family}.e{}\"", rule % 7),
            1 => format!(
                "topic matches \"f{family}.*\" and attributes.priority == \"p{}\"",
                rule % 3
            ),
            2 => format!(
                "subscriber == \"p{plugin}\" and payload.code in [\"A{rule}\", \"B{rule}\"]"
            ),
            3 => format!(
                "topic == \"f{family}.e1\" and (payload.score >= {rule} or payload.ward starts with \"W\")"
            ),
            _ => format!("topic matches \"f{family}.*\" and not payload.note exists"),
        };
        let action = match rule % 6 {
            0 => "strip payload.note".to_string(),
            1 => "encrypt payload.name".to_string(),
            2 => "hash payload.mrn".to_string(),
            3 => "mask payload.code keep 2".to_string(),
            4 => "redact payload.note using ssn, phone, email".to_string(),
            _ => "block".to_string(),
        };
        let _ = writeln!(
            text,
            "rule \"r{rule}\" {{\n  when {condition}\n  {action}\n}}\n"
        );
    }
    text
}

fn parse_and_check(text: &str) -> usize {
    let mut sources = Sources::new();
    sources.add("bench.rules", text.to_string());
    let parsed = rules::parse_all(&sources, &[]);
    let findings = rules::check(&sources, &parsed.files, &CheckOptions::default());
    parsed.diagnostics.len() + findings.len()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group.sample_size(20);
    for size in [100, 1_000, 10_000] {
        let text = generate(size);
        group.bench_function(format!("parse+check/{size}"), |b| {
            b.iter(|| parse_and_check(black_box(&text)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
