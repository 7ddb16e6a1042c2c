//! The detector table: for each built-in, texts it must find and texts it
//! must leave alone; then merging, custom detectors and selections.

use super::*;

fn detectors() -> Detectors {
    Detectors::new(&[]).unwrap()
}

fn redact_with(detectors: &Detectors, names: &[&str], text: &str) -> Option<String> {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let selection = detectors.select(&names).unwrap();
    detectors.redact(text, &selection)
}

/// (detector, text, redacted text or `None` when nothing is found). Each
/// text is run with its detector alone.
const CASES: &[(&str, &str, Option<&str>)] = &[
    // ssn
    ("ssn", "SSN 123-45-6789.", Some("SSN [REDACTED:ssn].")),
    ("ssn", "ssn 123 45 6789", Some("ssn [REDACTED:ssn]")),
    ("ssn", "000-12-3456", None),
    ("ssn", "666-12-3456", None),
    ("ssn", "900-12-3456", None),
    ("ssn", "999-12-3456", None),
    ("ssn", "123-00-4567", None),
    ("ssn", "123-45-0000", None),
    ("ssn", "123-45 6789", None),
    ("ssn", "123456789", None),
    ("ssn", "1123-45-6789", None),
    ("ssn", "123-45-67890", None),
    (
        "ssn",
        "665-12-3456 and 667-12-3456",
        Some("[REDACTED:ssn] and [REDACTED:ssn]"),
    ),
    // phone
    (
        "phone",
        "call (555) 123-4567 now",
        Some("call [REDACTED:phone] now"),
    ),
    ("phone", "call 555-123-4567", Some("call [REDACTED:phone]")),
    ("phone", "555.123.4567", Some("[REDACTED:phone]")),
    ("phone", "5551234567", Some("[REDACTED:phone]")),
    ("phone", "+1 555 123 4567", Some("[REDACTED:phone]")),
    ("phone", "1-800-555-0199", Some("[REDACTED:phone]")),
    ("phone", "+15551234567", Some("[REDACTED:phone]")),
    ("phone", "555-0199", None),
    ("phone", "dose 250-1000 mg", None),
    ("phone", "+44 20 7946 0958", Some("[REDACTED:phone]")),
    ("phone", "+33 1 23 45 67 89", Some("[REDACTED:phone]")),
    ("phone", "(155) 123-4567", None),
    ("phone", "055-123-4567", None),
    ("phone", "dose 5 mg at 12:30", None),
    ("phone", "12345", None),
    ("phone", "2026-12-03", None),
    // email
    (
        "email",
        "mail ada.lovelace+x@example.co.uk.",
        Some("mail [REDACTED:email]."),
    ),
    (
        "email",
        "<bob@mail.example.org>",
        Some("<[REDACTED:email]>"),
    ),
    ("email", "ada@localhost", None),
    ("email", "@example.org", None),
    ("email", "ada at example dot org", None),
    // credit_card
    (
        "credit_card",
        "card 4111 1111 1111 1111 exp",
        Some("card [REDACTED:credit_card] exp"),
    ),
    (
        "credit_card",
        "4111-1111-1111-1111",
        Some("[REDACTED:credit_card]"),
    ),
    (
        "credit_card",
        "5500005555555559",
        Some("[REDACTED:credit_card]"),
    ),
    (
        "credit_card",
        "378282246310005",
        Some("[REDACTED:credit_card]"),
    ),
    ("credit_card", "4111111111111112", None),
    ("credit_card", "4111 1111 1111 1112", None),
    ("credit_card", "411111111111", None),
    ("credit_card", "41111111111111111111111", None),
    // ip_address
    (
        "ip_address",
        "from 192.168.0.1.",
        Some("from [REDACTED:ip_address]."),
    ),
    ("ip_address", "10.0.0.255", Some("[REDACTED:ip_address]")),
    ("ip_address", "256.1.1.1", None),
    ("ip_address", "1.2.3", None),
    ("ip_address", "192.168.1.300", None),
    (
        "ip_address",
        "host 2001:db8::8a2e:370:7334 up",
        Some("host [REDACTED:ip_address] up"),
    ),
    (
        "ip_address",
        "fe80::1: down",
        Some("[REDACTED:ip_address]: down"),
    ),
    (
        "ip_address",
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
        Some("[REDACTED:ip_address]"),
    ),
    (
        "ip_address",
        "loopback ::1",
        Some("loopback [REDACTED:ip_address]"),
    ),
    ("ip_address", "at 10:30:00 today", None),
    ("ip_address", "ratio 1:2", None),
    ("ip_address", "note:: see", None),
    // url
    (
        "url",
        "see https://example.org/a?b=c.",
        Some("see [REDACTED:url]."),
    ),
    ("url", "(http://example.org/x)", Some("([REDACTED:url])")),
    (
        "url",
        "http://en.wikipedia.org/wiki/A_(b)",
        Some("[REDACTED:url]"),
    ),
    (
        "url",
        "www.example.org/portal, then",
        Some("[REDACTED:url], then"),
    ),
    ("url", "FTP://files.example.org", Some("[REDACTED:url]")),
    ("url", "https://", None),
    ("url", "example.org", None),
    // date
    ("date", "born 1985-04-12.", Some("born [REDACTED:date].")),
    (
        "date",
        "at 2026-12-03T17:45:00Z",
        Some("at [REDACTED:date]"),
    ),
    ("date", "on 12/03/2026", Some("on [REDACTED:date]")),
    ("date", "on 3.12.26", Some("on [REDACTED:date]")),
    ("date", "seen 3 Dec 2026", Some("seen [REDACTED:date]")),
    ("date", "December 3rd, 2026", Some("[REDACTED:date]")),
    ("date", "since Dec. 2026", Some("since [REDACTED:date]")),
    ("date", "the 3rd of march 2026", Some("the [REDACTED:date]")),
    ("date", "1985-13-12", None),
    ("date", "in 2026", None),
    ("date", "BP 120/80", None),
    ("date", "may 5 tablets", None),
    // zip
    ("zip", "Boston, MA 02134", Some("Boston, MA [REDACTED:zip]")),
    ("zip", "02134-1234", Some("[REDACTED:zip]")),
    ("zip", "0213", None),
    ("zip", "021345", None),
    // mrn
    ("mrn", "MRN-0012345", Some("[REDACTED:mrn]")),
    ("mrn", "mrn: 12345678", Some("[REDACTED:mrn]")),
    ("mrn", "MRN#1234567890", Some("[REDACTED:mrn]")),
    ("mrn", "MRN 12345", None),
    ("mrn", "XMRN-0012345", None),
];

#[test]
fn builtin_detectors_find_what_they_should_and_nothing_else() {
    let detectors = detectors();
    let mut failures = Vec::new();
    for (name, text, expected) in CASES {
        let found = redact_with(&detectors, &[name], text);
        if found.as_deref() != *expected {
            failures.push(format!(
                "{name} on {text:?}: got {found:?}, want {expected:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_detector_has_cases_on_both_sides() {
    for builtin in BUILTINS {
        let cases = CASES.iter().filter(|(name, ..)| *name == builtin.name);
        let found = cases
            .clone()
            .filter(|(.., expected)| expected.is_some())
            .count();
        let clean = cases.filter(|(.., expected)| expected.is_none()).count();
        assert!(found > 0 && clean > 0, "{}", builtin.name);
    }
}

#[test]
fn the_builtins_are_those_the_checker_knows() {
    let detectors = detectors();
    let names: Vec<&str> = detectors.names().collect();
    assert_eq!(names, crate::rules::BUILTIN_DETECTORS);
}

#[test]
fn all_detectors_together() {
    let detectors = detectors();
    let all: Vec<&str> = BUILTINS.iter().map(|builtin| builtin.name).collect();
    let cases = [
        (
            "Pt MRN-0012345 seen 3 Dec 2026, call 555-123-4567 or ada@example.org.",
            "Pt [REDACTED:mrn] seen [REDACTED:date], call [REDACTED:phone] or [REDACTED:email].",
        ),
        // A URL that holds an email: one span, named by the earliest start.
        (
            "see https://example.org/?to=ada@example.org now",
            "see [REDACTED:url] now",
        ),
        // Nothing on a line of clinical prose.
        (
            "Patient reports mild pain, 2 tablets daily, BP 120/80.",
            "Patient reports mild pain, 2 tablets daily, BP 120/80.",
        ),
        // Non-ASCII text around matches keeps its characters.
        (
            "Zoë’s number: 555-123-4567 — né le 3 déc. 2026",
            "Zoë’s number: [REDACTED:phone] — né le 3 déc. 2026",
        ),
    ];
    for (text, expected) in cases {
        let redacted = redact_with(&detectors, &all, text).unwrap_or_else(|| text.to_string());
        assert_eq!(redacted, expected);
    }
}

#[test]
fn overlapping_spans_merge_under_the_earliest_start() {
    // `x1` finds `abc`, `x2` finds `bcd`: one span `abcd`, named `x1`.
    let custom = [
        ("x1".to_string(), "abc".to_string()),
        ("x2".to_string(), "bcd".to_string()),
        ("x3".to_string(), "cd".to_string()),
    ];
    let detectors = Detectors::new(&custom).unwrap();
    let cases = [
        (&["x1", "x2"][..], "zabcdz", "z[REDACTED:x1]z"),
        (&["x2", "x1"][..], "zabcdz", "z[REDACTED:x1]z"),
        (&["x2", "x3"][..], "zbcdz", "z[REDACTED:x2]z"),
        (&["x3", "x2"][..], "zbcdz", "z[REDACTED:x2]z"),
        (&["x1", "x3"][..], "abcd abc", "[REDACTED:x1] [REDACTED:x1]"),
        // Adjacent spans stay apart.
        (&["x1"][..], "abcabc", "[REDACTED:x1][REDACTED:x1]"),
    ];
    for (names, text, expected) in cases {
        assert_eq!(
            redact_with(&detectors, names, text).as_deref(),
            Some(expected),
            "{names:?} on {text}"
        );
    }
}

#[test]
fn at_one_start_the_longest_match_wins() {
    // `zip` finds `02134` at the same start where `z9` finds more.
    let custom = [("z9".to_string(), r"[0-9]{5}-[0-9]{4}-X".to_string())];
    let detectors = Detectors::new(&custom).unwrap();
    assert_eq!(
        redact_with(&detectors, &["zip", "z9"], "02134-1234-X").as_deref(),
        Some("[REDACTED:z9]")
    );
}

#[test]
fn custom_detectors_add_and_replace() {
    let custom = [
        ("mrn".to_string(), "MRN[- ]?[0-9]{6,10}".to_string()),
        ("ward".to_string(), r"\bward [0-9][A-Z]\b".to_string()),
    ];
    let detectors = Detectors::new(&custom).unwrap();
    let names: Vec<&str> = detectors.names().collect();
    assert_eq!(names.len(), BUILTINS.len() + 1);
    assert_eq!(names.last(), Some(&"ward"));
    // The replacement is case-sensitive, unlike the built-in.
    assert_eq!(redact_with(&detectors, &["mrn"], "mrn-0012345"), None);
    assert_eq!(
        redact_with(&detectors, &["mrn", "ward"], "MRN 0012345 in ward 3B").as_deref(),
        Some("[REDACTED:mrn] in [REDACTED:ward]")
    );
}

#[test]
fn bad_custom_detectors_and_unknown_names_are_errors() {
    let invalid = Detectors::new(&[("bad".to_string(), "(unclosed".to_string())]).unwrap_err();
    assert!(matches!(&invalid, DetectorError::InvalidRegex { name, .. } if name == "bad"));
    assert!(
        invalid
            .to_string()
            .starts_with("invalid regex for detector `bad`")
    );

    let huge = Detectors::new(&[("huge".to_string(), r"\w{1000}\w{1000}\w{1000}".to_string())]);
    assert!(
        matches!(&huge, Err(DetectorError::InvalidRegex { reason, .. }) if reason == "the regex is too large"),
        "{huge:?}"
    );

    let twice = [
        ("a".to_string(), "a".to_string()),
        ("a".to_string(), "b".to_string()),
    ];
    assert_eq!(
        Detectors::new(&twice).unwrap_err(),
        DetectorError::Duplicate { name: "a".into() }
    );

    let detectors = detectors();
    assert_eq!(
        detectors.select(&["ssn".into(), "snn".into()]).unwrap_err(),
        DetectorError::UnknownDetector { name: "snn".into() }
    );
}

#[test]
fn selections_are_cached_and_compare_by_detectors() {
    let detectors = detectors();
    let first = detectors.select(&["phone".into(), "ssn".into()]).unwrap();
    let second = detectors
        .select(&["ssn".into(), "phone".into(), "ssn".into()])
        .unwrap();
    assert_eq!(first, second);
    assert!(Arc::ptr_eq(
        first.matcher.as_ref().unwrap(),
        second.matcher.as_ref().unwrap()
    ));
    assert_ne!(first, detectors.select(&["ssn".into()]).unwrap());
    assert_eq!(format!("{first:?}"), r#"Selection(["ssn", "phone"])"#);

    let empty = detectors.select(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(detectors.redact("123-45-6789", &empty), None);
}

#[test]
fn patterns_that_match_nothing_or_everything_terminate() {
    let custom = [("empty".to_string(), "x*".to_string())];
    let detectors = Detectors::new(&custom).unwrap();
    assert_eq!(redact_with(&detectors, &["empty"], "abc"), None);
    assert_eq!(
        redact_with(&detectors, &["empty"], "axxb").as_deref(),
        Some("a[REDACTED:empty]b")
    );
    assert_eq!(redact_with(&detectors, &["empty"], ""), None);
}

#[test]
fn luhn_and_ssn_validators() {
    let luhn = [
        ("4111111111111111", true),
        ("4111111111111112", false),
        ("79927398713", false), // valid Luhn, but only 11 digits
        ("0000000000000", true),
        ("4012 8888 8888 1881", true),
        ("6011-1111-1111-1117", true),
    ];
    for (number, valid) in luhn {
        assert_eq!(valid_card(number).is_some(), valid, "{number}");
    }
}
