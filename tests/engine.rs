//! The decision semantics of the rule language (SPEC §2.3), one test per
//! point, through the library: rule text in, decisions out.

use phigate::config::FilterMode;
use phigate::keys::KeyRing;
use phigate::rules::{
    self, BlockReason, CheckOptions, Decision, Engine, Event, Outcome, Rejection, Severity, Sources,
};
use serde_json::{Map, Value, json};

const BASE: &str = r#"
model Patient {
  mrn: phi string
  name: phi string
  ssn: phi string
  address: phi object
  diagnosis: phi object
  notes: phi string
  ward: public string
  age: public number
}
topic "patients.*" carries Patient

plugin "ehr" { publish "patients.*", "messages.**" }
"#;

fn engine(extra: &str) -> Engine {
    let mut sources = Sources::new();
    sources.add("test.rules", format!("{BASE}{extra}"));
    let parsed = rules::parse_all(&sources, &[]);
    let findings = rules::check(&sources, &parsed.files, &CheckOptions::default());
    let errors: Vec<_> = parsed
        .diagnostics
        .iter()
        .chain(&findings)
        .filter(|d| d.severity() == Severity::Error)
        .map(|d| format!("{} {}", d.code.id, d.message))
        .collect();
    assert!(errors.is_empty(), "rule set does not check: {errors:?}");
    Engine::compile(&sources, &parsed.files).expect("compiles")
}

fn event(topic: &str, payload: Value) -> Event {
    Event {
        topic: topic.to_string(),
        publisher: "ehr".to_string(),
        attributes: Map::new(),
        payload,
    }
}

fn decide(engine: &Engine, event: &Event, keys: &KeyRing) -> Decision {
    engine
        .decide(event, keys, FilterMode::FailClosed)
        .expect("accepted")
}

fn payload<'d>(decision: &'d Decision, plugin: &str) -> &'d Value {
    decision
        .delivery(plugin)
        .unwrap_or_else(|| panic!("`{plugin}` is not a recipient"))
        .outcome
        .payload()
        .unwrap_or_else(|| panic!("`{plugin}` is blocked"))
}

fn admitted() -> Value {
    json!({
        "mrn": "MRN-0012345", "name": "Ada Lovelace", "ssn": "123-45-6789",
        "address": {"street": "1 Main St", "city": "Leeds", "zip": "LS1 4AP"},
        "diagnosis": {"code": "B20"}, "ward": "3B", "age": 36
    })
}

#[test]
fn publishing_needs_a_matching_publish_pattern() {
    let engine = engine("plugin \"lab\" { publish \"labs.*\" }\n");
    let mut e = event("patients.admitted", admitted());
    e.publisher = "lab".into();
    let keys = KeyRing::ephemeral();
    assert!(matches!(
        engine.decide(&e, &keys, FilterMode::FailClosed),
        Err(Rejection::NotAllowed { .. })
    ));
    e.publisher = "nobody".into();
    assert!(matches!(
        engine.decide(&e, &keys, FilterMode::FailClosed),
        Err(Rejection::NotAllowed { .. })
    ));
}

#[test]
fn a_modelled_topic_refuses_undeclared_fields_and_non_objects() {
    let engine = engine("");
    let keys = KeyRing::ephemeral();
    let mut payload = admitted();
    payload["snn"] = json!("123-45-6789");
    let rejected = engine.decide(
        &event("patients.admitted", payload),
        &keys,
        FilterMode::FailClosed,
    );
    assert_eq!(
        rejected,
        Err(Rejection::UndeclaredField {
            model: "Patient".into(),
            field: "snn".into()
        })
    );
    // The message that may reach an HTTP body names no payload field.
    assert!(!rejected.unwrap_err().to_string().contains("snn"));

    let not_object = engine.decide(
        &event("patients.admitted", json!([1])),
        &keys,
        FilterMode::FailClosed,
    );
    assert!(matches!(not_object, Err(Rejection::NotAnObject { .. })));
    let wrong_type = engine.decide(
        &event("patients.admitted", json!({"age": "old"})),
        &keys,
        FilterMode::FailClosed,
    );
    assert!(matches!(
        wrong_type,
        Err(Rejection::WrongType {
            expected: "number",
            ..
        })
    ));
    // Topics without a model take any payload.
    let free = engine.decide(
        &event("messages.new", json!({"anything": 1})),
        &keys,
        FilterMode::FailClosed,
    );
    assert!(free.is_ok());
}

#[test]
fn recipients_are_subscribers_and_routed_plugins() {
    let engine = engine(
        r#"
plugin "scheduler" { subscribe "patients.admitted" receive payload.ward }
plugin "archive" { subscribe "patients.discharged" receive payload.ward }
plugin "pager" { receive payload.ward }
rule "old patients page" {
  when payload.age > 90
  route to "pager"
}
"#,
    );
    let keys = KeyRing::ephemeral();
    let young = decide(&engine, &event("patients.admitted", admitted()), &keys);
    let names: Vec<&str> = young.deliveries.iter().map(|d| d.plugin.as_str()).collect();
    assert_eq!(names, ["scheduler"]);

    let mut old = admitted();
    old["age"] = json!(95);
    let decision = decide(&engine, &event("patients.admitted", old), &keys);
    let names: Vec<&str> = decision
        .deliveries
        .iter()
        .map(|d| d.plugin.as_str())
        .collect();
    assert_eq!(names, ["pager", "scheduler"]);
    assert!(decision.delivery("pager").unwrap().routed);
    assert_eq!(payload(&decision, "pager"), &json!({"ward": "3B"}));
}

#[test]
fn any_block_blocks_and_names_its_rules() {
    let engine = engine(
        r#"
plugin "analytics" { subscribe "patients.**" receive payload.ward }
plugin "scheduler" { subscribe "patients.**" receive payload.ward }
rule "no HIV to analytics" {
  when subscriber == "analytics" and payload.diagnosis.code in ["B20", "Z21"]
  block
}
rule "strip ward everywhere" { strip payload.ward }
"#,
    );
    let decision = decide(
        &engine,
        &event("patients.admitted", admitted()),
        &KeyRing::ephemeral(),
    );
    let analytics = decision.delivery("analytics").unwrap();
    assert_eq!(
        analytics.outcome,
        Outcome::Blocked(BlockReason::Rules(vec!["no HIV to analytics".into()]))
    );
    assert_eq!(payload(&decision, "scheduler"), &json!({}));
}

#[test]
fn receive_projects_fields_with_their_parents() {
    let engine = engine(
        r#"
plugin "mail" { subscribe "patients.*" receive payload.address.city receive payload.ward }
"#,
    );
    let decision = decide(
        &engine,
        &event("patients.admitted", admitted()),
        &KeyRing::ephemeral(),
    );
    assert_eq!(
        payload(&decision, "mail"),
        &json!({"address": {"city": "Leeds"}, "ward": "3B"})
    );
}

#[test]
fn receive_transforms_encrypt_hash_and_mask() {
    let engine = engine(
        r#"
plugin "scheduler" {
  subscribe "patients.*"
  receive payload.name encrypted
  receive payload.mrn hashed
  receive payload.ssn masked
}
"#,
    );
    let keys = KeyRing::ephemeral();
    let decision = decide(&engine, &event("patients.admitted", admitted()), &keys);
    let got = payload(&decision, "scheduler");
    let name = got["name"].as_str().unwrap();
    assert!(name.starts_with("enc:v1:"));
    assert_eq!(keys.decrypt(name).unwrap(), json!("Ada Lovelace"));
    assert!(got["mrn"].as_str().unwrap().starts_with("hmac:v1:"));
    assert_eq!(got["ssn"], json!("***********"));

    // The same input gives the same pseudonym.
    let again = decide(&engine, &event("patients.admitted", admitted()), &keys);
    assert_eq!(payload(&again, "scheduler")["mrn"], got["mrn"]);
}

#[test]
fn every_field_action() {
    let engine = engine(
        r#"
plugin "all" { subscribe "patients.*" receive all }
rule "actions" {
  strip payload.ssn
  encrypt payload.diagnosis
  hash payload.mrn
  mask payload.name keep 3
  redact payload.notes using phone, email
}
"#,
    );
    let keys = KeyRing::ephemeral();
    let mut input = admitted();
    input["notes"] = json!("call 555-867-5309 or ada@example.org today");
    let decision = decide(&engine, &event("patients.admitted", input), &keys);
    let got = payload(&decision, "all");
    assert!(got.get("ssn").is_none());
    assert_eq!(
        keys.decrypt(got["diagnosis"].as_str().unwrap()).unwrap(),
        json!({"code": "B20"})
    );
    assert!(got["mrn"].as_str().unwrap().starts_with("hmac:v1:"));
    assert_eq!(got["name"], json!("*********ace"));
    assert_eq!(
        got["notes"],
        json!("call [REDACTED:phone] or [REDACTED:email] today")
    );
    assert_eq!(got["ward"], json!("3B"));
}

#[test]
fn jsonpath_actions_reach_every_match() {
    let engine = engine(
        r#"
plugin "all" { subscribe "messages.**" receive all }
rule "no SSN anywhere" { strip $..ssn }
rule "item names hashed" { hash $.payload.items[*].name }
"#,
    );
    let input = json!({"ssn": "1", "items": [{"name": "a", "ssn": "2"}, {"name": "b"}], "deep": {"x": {"ssn": 3}}});
    let decision = decide(
        &engine,
        &event("messages.new", input),
        &KeyRing::ephemeral(),
    );
    let got = payload(&decision, "all");
    assert!(!got.to_string().contains("ssn"));
    assert!(
        got["items"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("hmac:v1:")
    );
    assert!(
        got["items"][1]["name"]
            .as_str()
            .unwrap()
            .starts_with("hmac:v1:")
    );
}

#[test]
fn the_strongest_action_wins_whatever_the_order() {
    let rules_a = r#"
plugin "all" { subscribe "patients.*" receive all }
rule "a" { mask payload.mrn }
rule "b" { hash payload.mrn }
rule "c" { encrypt payload.name }
rule "d" { strip payload.name }
rule "e" { redact payload.address using zip }
rule "f" { hash payload.address }
"#;
    // The same rules, in reverse order.
    let mut lines: Vec<&str> = rules_a.lines().collect();
    let (header, rest) = lines.split_at_mut(2);
    rest.reverse();
    let rules_b = format!("{}\n{}", header.join("\n"), rest.join("\n"));

    let keys = KeyRing::ephemeral();
    let a = decide(
        &engine(rules_a),
        &event("patients.admitted", admitted()),
        &keys,
    );
    let b = decide(
        &engine(&rules_b),
        &event("patients.admitted", admitted()),
        &keys,
    );
    let got = payload(&a, "all");
    assert_eq!(got, payload(&b, "all"));
    assert!(got["mrn"].as_str().unwrap().starts_with("hmac:v1:"));
    assert!(got.get("name").is_none());
    assert!(got["address"].as_str().unwrap().starts_with("hmac:v1:"));
}

#[test]
fn a_stronger_action_inside_a_weaker_one_applies_first() {
    let engine = engine(
        r#"
plugin "all" { subscribe "patients.*" receive all }
rule "hash the address" { hash payload.address }
rule "but never the zip" { strip payload.address.zip }
"#,
    );
    let keys = KeyRing::ephemeral();
    let with_zip = decide(&engine, &event("patients.admitted", admitted()), &keys);
    let mut no_zip_input = admitted();
    no_zip_input["address"]
        .as_object_mut()
        .unwrap()
        .remove("zip");
    let without_zip = decide(&engine, &event("patients.admitted", no_zip_input), &keys);
    assert_eq!(
        payload(&with_zip, "all")["address"],
        payload(&without_zip, "all")["address"]
    );
}

#[test]
fn an_action_on_an_absent_path_does_nothing() {
    let engine = engine(
        r#"
plugin "all" { subscribe "patients.*" receive all }
rule "mask notes" { mask payload.notes }
"#,
    );
    let decision = decide(
        &engine,
        &event("patients.admitted", json!({"ward": "3B"})),
        &KeyRing::ephemeral(),
    );
    assert_eq!(payload(&decision, "all"), &json!({"ward": "3B"}));
}

#[test]
fn a_filter_error_blocks_under_fail_closed_and_is_reported_under_fail_open() {
    let engine = engine(
        r#"
plugin "all" { subscribe "patients.*" receive all }
rule "mask the address" { mask payload.address }
rule "encrypt under a missing key" { encrypt payload.name with key "nope" }
"#,
    );
    let keys = KeyRing::ephemeral();
    let e = event("patients.admitted", admitted());
    let closed = engine.decide(&e, &keys, FilterMode::FailClosed).unwrap();
    let delivery = closed.delivery("all").unwrap();
    assert_eq!(delivery.outcome, Outcome::Blocked(BlockReason::FilterError));
    let mut failed: Vec<(&str, &str)> = delivery
        .filter_errors
        .iter()
        .map(|f| (f.rule.as_deref().unwrap(), f.path.as_str()))
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            ("encrypt under a missing key", "payload.name"),
            ("mask the address", "payload.address")
        ]
    );
    for error in &delivery.filter_errors {
        assert!(!error.reason.contains("Leeds") && !error.reason.contains("Ada"));
    }

    let open = engine.decide(&e, &keys, FilterMode::FailOpen).unwrap();
    let delivery = open.delivery("all").unwrap();
    assert_eq!(delivery.filter_errors.len(), 2);
    assert!(delivery.outcome.payload().is_some());
}

#[test]
fn conditions_cover_every_test() {
    let engine = engine(
        r#"
plugin "all" { subscribe "patients.*", "messages.**" receive all }
rule "eq" { when payload.ward == "3B" strip payload.a }
rule "ne" { when payload.ward != "4C" strip payload.b }
rule "lt" { when payload.age < 40 strip payload.c }
rule "ge" { when payload.age >= 36.0 strip payload.d }
rule "in" { when payload.ward in ["1A", "3B"] strip payload.e }
rule "exists" { when payload.notes exists strip payload.f }
rule "matches" { when payload.notes matches "^call [0-9]+" strip payload.g }
rule "starts" { when payload.notes starts with "call" strip payload.h }
rule "contains" { when payload.tags contains "vip" strip payload.i }
rule "topic" { when topic matches "messages.*" and publisher == "ehr" strip payload.j }
rule "attr" { when attributes.priority == "urgent" and not (payload.x exists or payload.y exists) strip payload.k }
rule "never" { when payload.ward == "9Z" or payload.age > 100 strip payload.l }
"#,
    );
    let fields = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
    let mut input = json!({"ward": "3B", "age": 36, "notes": "call 911", "tags": ["vip", "new"]});
    for field in fields {
        input[field] = json!(1);
    }
    let mut e = event("messages.new", input);
    e.attributes.insert("priority".into(), json!("urgent"));
    let decision = decide(&engine, &e, &KeyRing::ephemeral());
    let got = payload(&decision, "all");
    for field in &fields[..11] {
        assert!(got.get(*field).is_none(), "rule for `{field}` did not fire");
    }
    assert_eq!(got["l"], json!(1));
    assert_eq!(decision.delivery("all").unwrap().fired.len(), 11);
}

#[test]
fn field_names_are_case_sensitive() {
    let engine = engine(
        r#"
plugin "all" { subscribe "messages.**" receive all }
rule "strip ssn" { strip payload.ssn }
"#,
    );
    let decision = decide(
        &engine,
        &event("messages.new", json!({"SSN": "x", "ssn": "y"})),
        &KeyRing::ephemeral(),
    );
    assert_eq!(payload(&decision, "all"), &json!({"SSN": "x"}));
}

#[test]
fn stripping_array_elements_keeps_other_locations_right() {
    let engine = engine(
        r#"
plugin "all" { subscribe "messages.**" receive all }
rule "first item gone" { strip $.payload.items[0] }
rule "second item masked" { mask $.payload.items[1].code }
"#,
    );
    let input = json!({"items": [{"code": "AAA"}, {"code": "BBB"}, {"code": "CCC"}]});
    let decision = decide(
        &engine,
        &event("messages.new", input),
        &KeyRing::ephemeral(),
    );
    assert_eq!(
        payload(&decision, "all"),
        &json!({"items": [{"code": "***"}, {"code": "CCC"}]})
    );
}

#[test]
fn attribute_actions_change_the_delivered_attributes() {
    let engine = engine(
        r#"
plugin "all" { subscribe "messages.**" receive all }
rule "no caller id" { strip attributes.caller }
"#,
    );
    let mut e = event("messages.new", json!({}));
    e.attributes.insert("caller".into(), json!("555-867-5309"));
    e.attributes.insert("priority".into(), json!("low"));
    let decision = decide(&engine, &e, &KeyRing::ephemeral());
    match &decision.delivery("all").unwrap().outcome {
        Outcome::Deliver { attributes, .. } => {
            assert_eq!(
                Value::Object(attributes.clone()),
                json!({"priority": "low"})
            )
        }
        Outcome::Blocked(reason) => panic!("blocked: {reason:?}"),
    }
}

// Regression tests for disagreements the differential test
// (tests/differential.rs) found between the engine and the reference.

#[test]
fn an_encryption_inside_a_hashed_value_keeps_the_pseudonym_stable() {
    // The city used to be encrypted first and the address then hashed over
    // a fresh ciphertext: a new pseudonym for the same address every time.
    let engine = engine(
        r#"
plugin "all" { subscribe "patients.*" receive all receive payload.name encrypted }
rule "hash the address" { hash payload.address }
rule "encrypt the city" { encrypt payload.address.city }
rule "hash everything" { hash $.payload }
"#,
    );
    let keys = KeyRing::ephemeral();
    let first = decide(&engine, &event("patients.admitted", admitted()), &keys);
    let again = decide(&engine, &event("patients.admitted", admitted()), &keys);
    assert_eq!(payload(&first, "all"), payload(&again, "all"));
    // The pseudonym of the plain payload: nothing below it was encrypted.
    assert_eq!(
        payload(&first, "all"),
        &json!(keys.hash(None, &admitted()).unwrap())
    );
}

#[test]
fn a_redaction_leaves_the_values_of_stronger_actions_below_it_alone() {
    // The redaction of `notes` used to run last, over the encrypted,
    // hashed and masked values inside it, and could redact digits out of
    // a ciphertext.
    let engine = engine(
        r#"
detector digits matches "[0-9]+"
plugin "all" { subscribe "messages.**" receive all }
rule "redact digits" { redact payload.notes using digits }
rule "encrypt the secret" { encrypt payload.notes.secret }
rule "hash the id" { hash payload.notes.id }
rule "mask the card" { mask payload.notes.card keep 4 }
"#,
    );
    let keys = KeyRing::ephemeral();
    let notes = json!({"text": "room 301", "secret": "PIN 1234", "id": 42, "card": "4111 1111"});
    let input = json!({ "notes": notes });
    let got = payload(
        &decide(&engine, &event("messages.new", input), &keys),
        "all",
    )["notes"]
        .clone();
    assert_eq!(got["text"], json!("room [REDACTED:digits]"));
    assert_eq!(
        keys.decrypt(got["secret"].as_str().unwrap()).unwrap(),
        json!("PIN 1234")
    );
    assert_eq!(got["id"], json!(keys.hash(None, &json!(42)).unwrap()));
    assert_eq!(got["card"], json!("*****1111"));
}

#[test]
fn declared_types_below_a_declared_field_are_checked() {
    // `address.zip: number` used to go unchecked once `address` itself
    // was declared.
    let engine = engine(
        r#"
model Visit {
  address: phi object
  address.zip: phi number
}
topic "visits.*" carries Visit
plugin "clinic" { publish "visits.*" }
"#,
    );
    let keys = KeyRing::ephemeral();
    let visit = |address: Value| {
        let mut e = event("visits.new", json!({ "address": address }));
        e.publisher = "clinic".into();
        engine.decide(&e, &keys, FilterMode::FailClosed)
    };
    assert!(matches!(
        visit(json!({"zip": "LS1"})),
        Err(Rejection::WrongType {
            expected: "number",
            ..
        })
    ));
    // The declared `address` still covers members the model does not name.
    assert!(visit(json!({"zip": 12345, "city": "Leeds"})).is_ok());
    assert!(visit(json!({"zip": null})).is_ok());
}
