//! SPEC §6 audit and reloads: the hash chain and `audit verify`, rule
//! reloads good and broken, and a canary that must rest nowhere.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::harness::{Gateway, admission, eventually, raw_publish, sqlite};

#[tokio::test]
async fn the_audit_chain_records_every_step_and_verify_finds_tampering() {
    let gateway = Gateway::start("audit", "").await;

    // ingress, blocked (analytics never learns of HIV), egress,
    // processed, rejected, and rules_loaded from the start.
    let mut hiv = admission("3B");
    hiv["payload"]["diagnosis"]["code"] = json!("B20");
    let id = gateway.accepted("ehr", &hiv, None).await;
    let other = gateway.accepted("ehr", &admission("1A"), None).await;
    let pulled = gateway.pull("scheduler", 10, 0.0).await;
    let ids: Vec<&str> = pulled
        .iter()
        .map(|m| m["delivery_id"].as_str().unwrap())
        .collect();
    assert_eq!(gateway.ack("scheduler", &ids).await, 2);
    let refused = json!({"topic": "patients.admitted", "payload": {"shoe_size": 9}});
    assert_eq!(gateway.publish("ehr", &refused, None).await.status, 422);

    let records = gateway.audit().await;
    let kinds: HashSet<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "ingress",
        "rejected",
        "blocked",
        "egress",
        "processed",
        "rules_loaded",
    ] {
        assert!(kinds.contains(kind), "no `{kind}` record in {kinds:?}");
    }
    for field in [
        "seq",
        "at",
        "kind",
        "message_id",
        "topic",
        "publisher",
        "subscriber",
        "rules",
        "detail",
        "prev_hash",
        "hash",
    ] {
        assert!(records[0].get(field).is_some(), "no `{field}` in a record");
    }
    assert_eq!(records[0]["kind"], "rules_loaded");
    assert_eq!(records[0]["prev_hash"], "0".repeat(64));
    for pair in records.windows(2) {
        assert_eq!(pair[1]["seq"], pair[0]["seq"].as_i64().unwrap() + 1);
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let blocked = records.iter().find(|r| r["kind"] == "blocked").unwrap();
    assert_eq!(blocked["subscriber"], "analytics");
    assert_eq!(blocked["message_id"], id.as_str());
    assert_eq!(blocked["rules"], json!(["analytics never learns of HIV"]));

    // `after` is exclusive, `limit` bounds the page.
    let page = gateway
        .get("/audit?after=2&limit=3", Some(gateway.token("admin")))
        .await;
    let seqs: Vec<i64> = page.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);

    // One message's records, and none of another's.
    let path = format!("/audit?message_id={id}");
    let mine = gateway.get(&path, Some(gateway.token("admin"))).await;
    let mine = mine.body["records"].as_array().unwrap();
    assert!(mine.iter().all(|r| r["message_id"] == id.as_str()));
    let kinds: Vec<&str> = mine.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ingress", "blocked", "egress", "processed"]);
    assert!(mine.iter().all(|r| r["message_id"] != other.as_str()));

    let verify = gateway.phigate(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");

    // The triggers refuse changes; behind their back, `verify` names the
    // first record that no longer matches its hash.
    let mut db = sqlite(&gateway).await;
    let update = sqlx::query("UPDATE audit SET detail = 'nothing happened' WHERE seq = 3")
        .execute(&mut db)
        .await;
    assert!(update.is_err(), "the trigger let an UPDATE through");
    assert!(
        sqlx::query("DELETE FROM audit WHERE seq = 3")
            .execute(&mut db)
            .await
            .is_err()
    );
    let tampered = blocked["seq"].as_i64().unwrap();
    sqlx::query("DROP TRIGGER audit_refuse_update")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET subscriber = 'scheduler' WHERE seq = ?")
        .bind(tampered)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    let verify = gateway.phigate(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        said.contains(&format!("seq {tampered}")),
        "verify did not name seq {tampered}: {said}"
    );
}

/// Replaces a rule file the way an editor saving it would not tear it: a
/// new file renamed over the old one.
fn replace_rule_file(path: &Path, text: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

#[tokio::test]
async fn a_good_rule_set_reloads_and_a_broken_one_leaves_the_running_set() {
    let gateway = Gateway::start("reload", "").await;
    let policy = gateway.dir.join("rules/policy.rules");
    let original = std::fs::read_to_string(&policy).unwrap();
    let rules_loaded = |records: &[Value]| {
        records
            .iter()
            .filter(|r| r["kind"] == "rules_loaded")
            .count()
    };
    let ward_for_analytics = async |gateway: &Gateway| {
        let id = gateway.accepted("ehr", &admission("3B"), None).await;
        let pulled = gateway.pull("analytics", 10, 0.0).await;
        let message = pulled.iter().find(|m| m["message_id"] == id.as_str());
        message.unwrap()["payload"].get("ward").cloned()
    };
    assert_eq!(ward_for_analytics(&gateway).await, Some(json!("3B")));

    // A good change: a new rule, in force within a few seconds, with an
    // audit record.
    let rule = "wards stay inside the hospital";
    let good = format!(
        "{original}\nrule \"{rule}\" {{\n  when subscriber == \"analytics\"\n  strip payload.ward\n}}\n"
    );
    replace_rule_file(&policy, &good);
    let reloaded = eventually(Duration::from_secs(10), "a rules_loaded record", || async {
        let records = gateway.audit().await;
        (rules_loaded(&records) == 2).then_some(records)
    })
    .await;
    let record = reloaded
        .iter()
        .rfind(|r| r["kind"] == "rules_loaded")
        .unwrap();
    assert!(record["detail"].as_str().unwrap().contains("changed"));
    assert_eq!(ward_for_analytics(&gateway).await, None);
    let ingress = gateway.audit().await;
    let last = ingress.iter().rfind(|r| r["kind"] == "ingress").unwrap();
    assert!(
        last["rules"].as_array().unwrap().contains(&json!(rule)),
        "the new rule did not fire: {last}"
    );

    // A broken change: refused, the running set stays, the server answers.
    let broken = format!("{good}\nrule \"half written\" {{\n  when subscriber ==\n");
    replace_rule_file(&policy, &broken);
    eventually(Duration::from_secs(10), "a refused reload", || async {
        let failures = gateway.metric("phigate_rule_reload_failures_total").await;
        (failures == 1).then_some(())
    })
    .await;
    assert_eq!(gateway.get("/healthz", None).await.status, 200);
    assert_eq!(ward_for_analytics(&gateway).await, None);
    let records = gateway.audit().await;
    assert_eq!(rules_loaded(&records), 2);
    assert!(gateway.logs().contains("RulesReloadRefused"));

    // SIGHUP reloads too, once the set is good again.
    replace_rule_file(&policy, &original);
    let status = Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(
        Duration::from_secs(10),
        "the original rules again",
        || async { (rules_loaded(&gateway.audit().await) >= 3).then_some(()) },
    )
    .await;
    assert_eq!(ward_for_analytics(&gateway).await, Some(json!("3B")));
}

#[tokio::test]
async fn a_stripped_canary_reaches_no_log_audit_record_or_database_file() {
    // Debug logging, so that what the gateway logs only at debug is
    // searched too.
    let mut gateway = Gateway::start_with_log_level("canary", "", "debug").await;
    let canary = format!("CANARY{}SSN", std::process::id() * 7919);

    // Accepted: every recipient strips `$..ssn` (and the idempotency key
    // may name a patient too, so it carries the canary as well).
    let mut event = admission("3B");
    event["payload"]["ssn"] = json!(canary);
    let id = gateway
        .accepted("ehr", &event, Some(&format!("key-{canary}")))
        .await;
    // Refused ones: their error bodies must not echo it either.
    let refusals = [
        (
            422,
            json!({"topic": "patients.admitted", "payload": {"ward": "3B", "nickname": canary}}),
        ),
        (
            422,
            json!({"topic": "patients.admitted", "payload": {"ward": 3, "ssn": canary}}),
        ),
        (
            403,
            json!({"topic": "billing.invoices", "payload": {"mrn": canary}}),
        ),
    ];
    for (status, event) in &refusals {
        let answer = gateway.publish("ehr", event, None).await;
        assert_eq!(answer.status, *status, "{}", answer.text);
        assert!(!answer.text.contains(&canary), "echoed: {}", answer.text);
    }
    let malformed = format!(r#"{{"topic": "patients.admitted", "payload": {{"ssn": "{canary}""#);
    let answer = raw_publish(
        &gateway,
        gateway.token("ehr"),
        "application/json",
        &malformed,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(!answer.text.contains(&canary), "echoed: {}", answer.text);

    for plugin in ["scheduler", "analytics"] {
        let pulled = gateway.pull(plugin, 10, 0.0).await;
        assert_eq!(pulled[0]["message_id"], id.as_str());
        assert!(!pulled[0].to_string().contains(&canary), "{plugin} got it");
        let delivery = pulled[0]["delivery_id"].as_str().unwrap();
        assert_eq!(gateway.ack(plugin, &[delivery]).await, 1);
    }

    let records = gateway.audit().await;
    assert!(records.len() >= 7);
    assert!(!serde_json::to_string(&records).unwrap().contains(&canary));
    let metrics = gateway.get("/metrics", None).await;
    assert!(!metrics.text.contains(&canary));
    let export = gateway.phigate(&["audit", "export"]);
    assert_eq!(export.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&export.stdout).contains(&canary));

    let data = gateway.dir.join("data");
    let files_without_canary = |when: &str| {
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
                assert!(!found, "the canary rests in {} ({when})", path.display());
            }
        }
    };
    // The WAL holds every write while the server runs; after a graceful
    // stop, the checkpoint has moved it into the database file.
    assert!(gateway.dir.join("data/phigate.db-wal").is_file());
    files_without_canary("while running");
    gateway.terminate();
    files_without_canary("after the stop");

    let logs = gateway.logs();
    assert!(logs.contains("MessageAccepted"), "the logs are empty?");
    assert!(!logs.contains(&canary), "the canary is in the logs");
}
