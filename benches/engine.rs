//! Benchmarks of the decision engine's per-event work.
//!
//! Run: `cargo bench --bench engine`. Figures go in BENCHMARKS.md.
//!
//! - `redaction`: `redact` with every built-in detector selected, on
//!   free text shaped like clinical notes, in MB/s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phigate::actions::detectors::{BUILTINS, Detectors};

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

criterion_group!(benches, redaction);
criterion_main!(benches);
