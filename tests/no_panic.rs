//! A rule file is user input: no text may panic the parser or the checker.
//!
//! Random bytes, and random mutations of the example rule set, go through
//! the whole front end (parse, check, render) and must come out as
//! findings.

use phigate::rules::{self, CheckOptions, Sources, render};
use proptest::prelude::*;

fn front_end(text: &str) {
    let mut sources = Sources::new();
    sources.add("fuzz.rules", text.to_string());
    let parsed = rules::parse_all(&sources, &[]);
    let mut findings = parsed.diagnostics;
    findings.extend(rules::check(
        &sources,
        &parsed.files,
        &CheckOptions::default(),
    ));
    render::human(&sources, &findings, false);
    render::json(&sources, &findings);
    render::sarif(&sources, &findings);
}

fn example_rules() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("rules/ exists")
        .map(|entry| entry.expect("readable").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read_to_string(path).expect("example rules are UTF-8"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fragments that are likely to reach deep into the grammar when spliced.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "\"",
    "\\",
    "$..",
    "$.payload[",
    "**",
    "*",
    ".",
    ",",
    ":",
    "#",
    "\n",
    "not ",
    "and ",
    "or ",
    "when ",
    "rule ",
    "model ",
    "plugin ",
    "test ",
    "expect ",
    "receives ",
    "== ",
    ">= ",
    "in [",
    "keep 99999999999999999999",
    "1e999",
    "\\ud800",
    "matches \"(\"",
    "\u{e9}",
    "\u{1F600}",
    "payload.",
    "topic ",
    "route to ",
    "using ",
];

#[derive(Clone, Debug)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, fragment: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0..FRAGMENTS.len())
            .prop_map(|(at, fragment)| Mutation::Insert { at, fragment }),
        (any::<usize>(), 1usize..200).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(text: &mut String, mutation: &Mutation) {
    let boundary = |text: &str, at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match mutation {
        Mutation::Delete { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, (start + len).min(text.len()));
            text.replace_range(start..end, "");
        }
        Mutation::Insert { at, fragment } => {
            let at = boundary(text, *at);
            text.insert_str(at, FRAGMENTS[*fragment]);
        }
        Mutation::Duplicate { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, (start + len).min(text.len()));
            let copy = text[start..end].to_string();
            text.insert_str(end, &copy);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        front_end(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_fragments_never_panic(parts in proptest::collection::vec(0..FRAGMENTS.len(), 0..200)) {
        let text: String = parts.iter().map(|i| FRAGMENTS[*i]).collect();
        front_end(&text);
    }

    #[test]
    fn mutated_example_rules_never_panic(mutations in proptest::collection::vec(mutation(), 1..12)) {
        let mut text = example_rules();
        for mutation in &mutations {
            apply(&mut text, mutation);
        }
        front_end(&text);
    }
}

#[test]
fn deep_nesting_is_a_finding_not_a_stack_overflow() {
    let text = format!(
        "rule \"deep\" {{ when {}payload.a exists{} block }}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let mut sources = Sources::new();
    sources.add("deep.rules", text);
    let parsed = rules::parse_all(&sources, &[]);
    assert_eq!(parsed.diagnostics.len(), 1);
    assert_eq!(parsed.diagnostics[0].code.id, "E0104");

    let json = format!(
        "test \"t\" {{ publish \"a.b\" from \"p\" {}",
        "{\"a\":[".repeat(50_000)
    );
    let mut sources = Sources::new();
    sources.add("deep.rules", json);
    let parsed = rules::parse_all(&sources, &[]);
    assert_eq!(parsed.diagnostics[0].code.id, "E0104");
}

#[test]
fn many_negations_do_not_recurse() {
    let text = format!(
        "rule \"n\" {{ when {}payload.a exists block }}",
        "not ".repeat(200_000)
    );
    front_end(&text);
}
