//! The human and SARIF renderings of findings, as users and code scanning
//! see them.
//!
//! Human output is compared with snapshot files under `tests/snapshots/`.
//! After an intended change of wording or layout, rewrite them with
//! `UPDATE_SNAPSHOTS=1 cargo test --test render` and review the diff.

use std::path::Path;

use phigate::rules::{self, CheckOptions, Sources, render};
use serde_json::Value;

/// Parses and checks one in-memory rule file named `name.rules`.
fn findings(name: &str, text: &str) -> (Sources, Vec<rules::Diagnostic>) {
    let mut sources = Sources::new();
    sources.add(format!("rules/{name}.rules"), text.to_string());
    let parsed = rules::parse_all(&sources, &[]);
    let mut all = parsed.diagnostics;
    all.extend(rules::check(
        &sources,
        &parsed.files,
        &CheckOptions::default(),
    ));
    (sources, all)
}

fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(actual, expected, "human rendering of `{name}` changed");
}

const PATIENTS: &str = r#"model Patient {
  mrn: phi
  ssn: phi
  ward: public
}

topic "patients.*" carries Patient

plugin "ehr" {
  publish "patients.*"
}

plugin "scheduler" {
  subscribe "patients.admitted"
  receive payload.ward
}
"#;

fn snapshot_case(name: &str, extra: &str) {
    let text = format!("{PATIENTS}{extra}");
    let (sources, findings) = findings(name, &text);
    assert!(!findings.is_empty(), "`{name}` produced no finding");
    assert_snapshot(name, &render::human(&sources, &findings, false));
}

#[test]
fn unknown_model_field_with_suggestion() {
    snapshot_case(
        "unknown_field",
        "\nrule \"no SSN for the scheduler\" {\n  when topic matches \"patients.*\"\n  strip payload.snn\n}\n",
    );
}

#[test]
fn syntax_error_names_what_was_expected() {
    snapshot_case(
        "syntax_error",
        "\nrule \"broken\" {\n  strip payload.ssn with\n}\n",
    );
}

#[test]
fn unknown_detector() {
    snapshot_case(
        "unknown_detector",
        "\nrule \"redact notes\" {\n  redact payload.ward using ssn, emial\n}\n",
    );
}

#[test]
fn insecure_endpoint() {
    snapshot_case(
        "insecure_endpoint",
        "\nplugin \"inbox\" {\n  subscribe \"patients.admitted\"\n  receive payload.ward\n  endpoint \"http://inbox.example.internal/events\"\n}\n",
    );
}

#[test]
fn conflicting_actions_warning() {
    snapshot_case(
        "conflicting_actions",
        "\nrule \"hash record numbers\" {\n  hash payload.mrn\n}\n\nrule \"strip record numbers\" {\n  strip payload.mrn\n}\n",
    );
}

#[test]
fn routing_rule_that_tests_subscriber() {
    snapshot_case(
        "route_tests_subscriber",
        "\nrule \"page\" {\n  when subscriber == \"scheduler\"\n  route to \"ehr\"\n}\n",
    );
}

#[test]
fn colour_appears_only_when_asked() {
    let (sources, findings) = findings("colour", "rule \"x\" { strip payload.a\n");
    let plain = render::human(&sources, &findings, false);
    let coloured = render::human(&sources, &findings, true);
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[1;31m"));
}

#[test]
fn sarif_has_the_structure_code_scanning_expects() {
    let text = format!(
        "{PATIENTS}\nrule \"r\" {{\n  when topic matches \"patients.*\"\n  strip payload.snn\n  hash payload.mrn\n  strip payload.mrn\n}}\n"
    );
    let (sources, findings) = findings("sarif", &text);
    let log: Value =
        serde_json::from_str(&render::sarif(&sources, &findings)).expect("SARIF is JSON");

    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "phigate");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), rules::codes::ALL.len());

    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    let mut levels = Vec::new();
    for result in results {
        let rule_id = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], rule_id, "ruleIndex points at its rule");
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
        let location = &result["locations"][0]["physicalLocation"];
        assert_eq!(location["artifactLocation"]["uri"], "rules/sarif.rules");
        let region = &location["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(region["startColumn"].as_u64().unwrap() >= 1);
        let start = (
            region["startLine"].as_u64().unwrap(),
            region["startColumn"].as_u64().unwrap(),
        );
        let end = (
            region["endLine"].as_u64().unwrap(),
            region["endColumn"].as_u64().unwrap(),
        );
        assert!(end > start, "the region ends after it starts");
        levels.push(result["level"].as_str().unwrap().to_string());
    }
    // The unknown field is an error; the hash overridden by strip a warning.
    assert!(levels.contains(&"error".to_string()));
    assert!(levels.contains(&"warning".to_string()));
    let unknown = results
        .iter()
        .find(|r| r["ruleId"] == "E0204")
        .expect("E0204 reported");
    let region = &unknown["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 20);
    assert_eq!(region["startColumn"], 9);
}
