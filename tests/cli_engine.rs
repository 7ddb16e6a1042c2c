//! `phigate test` and `phigate explain`, driven through the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn phigate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phigate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // No `phigate.toml` here: the commands use their defaults.
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_example_rules_pass_their_tests() {
    let output = phigate(&["test", "rules"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    assert!(!text.contains("FAILED"));
}

#[test]
fn a_failing_test_names_the_test_the_expectation_and_what_was_delivered() {
    let output = phigate(&["test", "tests/rulesets/failing.rules"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("ok      scheduler gets the ward"), "{text}");
    assert!(
        text.contains("FAILED  wrongly expects the ward to be blocked"),
        "{text}"
    );
    assert!(
        text.contains(r#"expected "scheduler" blocked, but it received {"ward":"3B"}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"expected "scheduler" receives {"name":"Ada"}, but it received {"ward":"3B"}"#
        ),
        "{text}"
    );
    assert!(text.trim_end().ends_with("1 passed, 1 failed"), "{text}");
}

#[test]
fn test_refuses_a_rule_set_with_errors() {
    let output = phigate(&["test", "tests/check/unknown_model.rules"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("E0203"));
}

#[test]
fn explain_shows_each_recipient_its_rules_and_payload() {
    let payload = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explain-payload.json");
    std::fs::write(
        &payload,
        r#"{"mrn": "MRN-0012345", "name": "Ada L.", "ward": "3B", "ssn": "123-45-6789", "diagnosis": {"code": "B20"}}"#,
    )
    .unwrap();
    let output = phigate(&[
        "explain",
        "--topic",
        "patients.admitted",
        "--from",
        "ehr",
        payload.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains(r#"analytics: blocked by "analytics never learns of HIV""#),
        "{text}"
    );
    assert!(text.contains("scheduler: delivered"), "{text}");
    assert!(
        text.contains(r#""no SSN leaves the gateway"  (always)"#),
        "{text}"
    );
    assert!(text.contains(r#""ward": "3B""#), "{text}");
    assert!(
        !text.contains("123-45-6789"),
        "the stripped SSN must not appear: {text}"
    );
    assert!(
        !text.contains("Ada L."),
        "the scheduler gets the name encrypted: {text}"
    );
}

#[test]
fn explain_json_and_attributes() {
    let payload = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explain-chat.json");
    std::fs::write(&payload, r#"{"content": "call 555-867-5309"}"#).unwrap();
    let output = phigate(&[
        "explain",
        "--topic",
        "messages.new",
        "--from",
        "chat",
        "--attr",
        "priority=urgent",
        "--format",
        "json",
        payload.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let recipients = document["recipients"].as_array().unwrap();
    let pager = recipients
        .iter()
        .find(|r| r["plugin"] == "pager")
        .expect("routed to the pager");
    assert_eq!(pager["routed"], true);
    assert_eq!(pager["outcome"], "delivered");
    assert_eq!(pager["payload"]["content"], "call [REDACTED:phone]");
    assert!(
        pager["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "urgent chat pages on-call")
    );
}

#[test]
fn explain_reports_a_rejected_event() {
    let payload = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explain-rejected.json");
    std::fs::write(&payload, r#"{"ward": "3B"}"#).unwrap();
    let output = phigate(&[
        "explain",
        "--topic",
        "patients.admitted",
        "--from",
        "chat",
        payload.to_str().unwrap(),
    ]);
    assert!(
        stdout(&output)
            .contains("rejected: plugin `chat` may not publish on this topic (HTTP 403)")
    );
}
