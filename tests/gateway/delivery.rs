//! SPEC §6 delivery: accepted means stored (SIGKILL, SIGTERM), pull
//! exactly once per ack, leases, idempotency keys, what the outbox
//! holds, and how long it keeps finished deliveries (retention).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::harness::{Gateway, admission, eventually};

#[tokio::test]
async fn an_event_answered_202_survives_a_sigkill_right_after() {
    let mut gateway = Gateway::start("sigkill", "").await;

    // Concurrent publishes (sharing transactions), then one more, and
    // SIGKILL the moment its 202 arrives.
    let mut publishes = tokio::task::JoinSet::new();
    for n in 0..12 {
        let event = admission(&format!("W{n}"));
        let request = gateway
            .client
            .post(format!("{}/messaging/publish", gateway.url))
            .bearer_auth(gateway.token("ehr"))
            .json(&event);
        publishes.spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202);
            let body: Value = response.json().await.unwrap();
            body["id"].as_str().unwrap().to_string()
        });
    }
    let mut accepted: BTreeSet<String> = publishes.join_all().await.into_iter().collect();
    accepted.insert(gateway.accepted("ehr", &admission("last"), None).await);
    gateway.kill();

    gateway.restart().await;
    let pulled = gateway.pull("scheduler", 100, 0.0).await;
    let found: BTreeSet<String> = pulled
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found, accepted);
    assert_eq!(gateway.pull("analytics", 100, 0.0).await.len(), 13);

    let verify = gateway.phigate(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
}

#[tokio::test]
async fn sigterm_ends_waiting_pulls_and_stops_promptly() {
    let mut gateway = Gateway::start("sigterm", "").await;
    let id = gateway.accepted("ehr", &admission("3B"), None).await;
    assert_eq!(gateway.pull("scheduler", 10, 0.0).await.len(), 1);

    let analytics = gateway.pull("analytics", 10, 0.0).await;
    assert_eq!(analytics[0]["message_id"], id.as_str());

    // A pull waiting 25 s used to hold the shutdown for all of it.
    let waiting = gateway
        .client
        .get(format!(
            "{}/messaging/subscriptions/analytics/messages?max=1&wait=25",
            gateway.url
        ))
        .bearer_auth(gateway.token("analytics"))
        .send();
    let waiting = tokio::spawn(waiting);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    gateway.terminate();
    let stopped = started.elapsed();
    assert!(
        stopped < Duration::from_secs(5),
        "stopped after {stopped:?}"
    );
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"messages": []}));

    // The leased, unacknowledged delivery is still there after the stop.
    gateway.restart().await;
    let health = gateway
        .get(
            "/messaging/subscriptions/scheduler/health",
            Some(gateway.token("admin")),
        )
        .await;
    assert_eq!(health.body["leased"], 1, "{}", health.text);
}

#[tokio::test]
async fn pull_hands_each_delivery_out_once_per_ack() {
    let gateway = Gateway::start("pull", "[delivery]\nlease = \"1s\"\n").await;
    let mut ids = Vec::new();
    for ward in ["1A", "2B", "3C"] {
        ids.push(gateway.accepted("ehr", &admission(ward), None).await);
    }

    // Oldest first, up to `max`; leased deliveries are not handed out
    // again while their lease runs.
    let first = gateway.pull("scheduler", 2, 0.0).await;
    let second = gateway.pull("scheduler", 10, 0.0).await;
    assert_eq!(
        gateway.pull("scheduler", 10, 0.0).await,
        Vec::<Value>::new()
    );
    let leased: Vec<&Value> = first.iter().chain(&second).collect();
    let message_ids: Vec<&str> = leased
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(message_ids, ids);
    for message in &leased {
        assert_eq!(message["attempt"], 1);
        assert_eq!(message["topic"], "patients.admitted");
        for field in ["delivery_id", "attributes", "payload", "published_at"] {
            assert!(message.get(field).is_some(), "no `{field}` in {message}");
        }
    }
    let delivery = |m: &Value| m["delivery_id"].as_str().unwrap().to_string();
    let (d1, d2, d3) = (
        delivery(leased[0]),
        delivery(leased[1]),
        delivery(leased[2]),
    );

    // Ack counts only what this call acknowledged: not again, not
    // unknown ids, not another plugin's deliveries.
    assert_eq!(gateway.ack("scheduler", &[&d1, &d2]).await, 2);
    assert_eq!(gateway.ack("scheduler", &[&d1, &d2]).await, 0);
    let theirs = gateway.pull("analytics", 1, 0.0).await;
    let theirs = delivery(&theirs[0]);
    assert_eq!(
        gateway
            .ack("scheduler", &[&d1, &d3, "no-such-delivery", &theirs])
            .await,
        1
    );
    assert_eq!(gateway.ack("scheduler", &[]).await, 0);

    // Past the lease, an acknowledged delivery never comes back; the
    // analytics delivery the scheduler tried to ack does.
    assert_eq!(
        gateway.pull("scheduler", 10, 1.5).await,
        Vec::<Value>::new()
    );
    let back = gateway.pull("analytics", 10, 0.0).await;
    assert_eq!(back.len(), 3);
    assert!(
        back.iter()
            .any(|m| delivery(m) == theirs && m["attempt"] == 2)
    );

    let health = gateway
        .get(
            "/messaging/subscriptions/scheduler/health",
            Some(gateway.token("scheduler")),
        )
        .await;
    assert_eq!(health.body["pending"], 0);
    assert_eq!(health.body["leased"], 0);

    // Long-poll: a waiting pull returns as soon as an event is stored.
    let waiting = {
        let request = gateway
            .client
            .get(format!(
                "{}/messaging/subscriptions/scheduler/messages?wait=10",
                gateway.url
            ))
            .bearer_auth(gateway.token("scheduler"));
        tokio::spawn(async move {
            let started = Instant::now();
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            (started.elapsed(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = gateway.accepted("ehr", &admission("4D"), None).await;
    let (waited, body) = waiting.await.unwrap();
    assert_eq!(body["messages"][0]["message_id"], late.as_str());
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn an_unacked_delivery_comes_back_after_its_lease_with_the_next_attempt() {
    let gateway = Gateway::start("lease", "[delivery]\nlease = \"1s\"\n").await;
    let id = gateway.accepted("ehr", &admission("3B"), None).await;

    let first = gateway.pull("scheduler", 10, 0.0).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["attempt"], 1);
    assert_eq!(gateway.pull("scheduler", 10, 0.0).await.len(), 0);

    // A long-poll returns once the lease has run out.
    let started = Instant::now();
    let second = gateway.pull("scheduler", 10, 5.0).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["delivery_id"], first[0]["delivery_id"]);
    assert_eq!(second[0]["message_id"], id.as_str());
    assert_eq!(second[0]["attempt"], 2);
    assert_eq!(second[0]["payload"], first[0]["payload"]);
    assert_eq!(second[0]["published_at"], first[0]["published_at"]);

    let third = gateway.pull("scheduler", 10, 5.0).await;
    assert_eq!(third[0]["delivery_id"], first[0]["delivery_id"]);
    assert_eq!(third[0]["attempt"], 3);

    let delivery_id = third[0]["delivery_id"].as_str().unwrap();
    assert_eq!(gateway.ack("scheduler", &[delivery_id]).await, 1);
    assert_eq!(gateway.pull("scheduler", 10, 1.5).await.len(), 0);
}

#[tokio::test]
async fn the_same_idempotency_key_yields_the_same_id_and_no_new_delivery() {
    let gateway = Gateway::start("idempotency", "").await;
    let first = gateway
        .accepted("ehr", &admission("3B"), Some("admission-42"))
        .await;
    let again = gateway
        .accepted("ehr", &admission("3B"), Some("admission-42"))
        .await;
    // The key, not the body, names the event.
    let changed = gateway
        .accepted("ehr", &admission("9Z"), Some("admission-42"))
        .await;
    assert_eq!(again, first);
    assert_eq!(changed, first);
    let other_key = gateway
        .accepted("ehr", &admission("3B"), Some("admission-43"))
        .await;
    assert_ne!(other_key, first);

    // Retries racing each other, likely in one transaction of the store:
    // one event, every answer 202 with its id.
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let request = gateway
            .client
            .post(format!("{}/messaging/publish", gateway.url))
            .bearer_auth(gateway.token("ehr"))
            .header("Idempotency-Key", "admission-44")
            .json(&admission("4D"));
        retries.spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202);
            let body: Value = response.json().await.unwrap();
            body["id"].as_str().unwrap().to_string()
        });
    }
    let raced: BTreeSet<String> = retries.join_all().await.into_iter().collect();
    assert_eq!(raced.len(), 1, "{raced:?}");
    let raced = raced.into_iter().next().unwrap();

    // Keys belong to their publisher: `lab` using the same one is new.
    let lab =
        json!({"topic": "labs.results.blood", "payload": {"test_code": "K", "flag": "normal"}});
    let from_ehr = gateway.accepted("ehr", &lab, Some("result-1")).await;
    let from_lab = gateway.accepted("lab", &lab, Some("result-1")).await;
    assert_ne!(from_ehr, from_lab);

    let pulled = gateway.pull("scheduler", 100, 0.0).await;
    let messages: Vec<&str> = pulled
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(messages, [first.as_str(), other_key.as_str(), &raced]);
    assert_eq!(pulled[0]["payload"]["ward"], "3B");
    assert_eq!(gateway.pull("clinician-app", 100, 0.0).await.len(), 2);

    let ingress = gateway
        .audit()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "ingress")
        .count();
    assert_eq!(ingress, 5);
}

#[tokio::test]
async fn the_outbox_holds_each_recipients_transformed_payload() {
    let gateway = Gateway::start("outbox", "").await;
    let mut event = admission("3B");
    event["payload"]["ssn"] = json!("123-45-6789");
    let id = gateway.accepted("ehr", &event, None).await;

    let mut db = SqliteConnectOptions::new()
        .filename(gateway.database())
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT plugin, payload FROM deliveries WHERE message_id = ? ORDER BY plugin",
    )
    .bind(&id)
    .fetch_all(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    let plugins: Vec<&str> = rows.iter().map(|(plugin, _)| plugin.as_str()).collect();
    assert_eq!(plugins, ["analytics", "scheduler"]);

    for (plugin, stored) in &rows {
        for original in ["MRN-0012345", "Ada L.", "123-45-6789", "J18"] {
            assert!(
                !stored.contains(original),
                "`{original}` rests in the delivery for {plugin}: {stored}"
            );
        }
        let pulled = gateway.pull(plugin, 10, 0.0).await;
        let stored: Value = serde_json::from_str(stored).unwrap();
        assert_eq!(pulled[0]["payload"], stored, "{plugin} gets what rests");
    }
    let scheduler: Value = serde_json::from_str(&rows[1].1).unwrap();
    assert_eq!(scheduler["ward"], "3B");
    assert!(scheduler["mrn"].as_str().unwrap().starts_with("hmac:v1:"));
    assert!(scheduler["name"].as_str().unwrap().starts_with("enc:v1:"));
    let fields: BTreeSet<&str> = scheduler
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["admitted_at", "mrn", "name", "ward"])
    );
    let analytics: Value = serde_json::from_str(&rows[0].1).unwrap();
    assert!(
        analytics["diagnosis"]
            .as_str()
            .unwrap()
            .starts_with("hmac:v1:")
    );
    assert!(analytics.get("name").is_none());
}

#[tokio::test]
async fn retention_purges_acknowledged_deliveries_and_old_audit_at_start() {
    let retention = "[retention]\ndeliveries = \"1s\"\naudit = \"1s\"\n";
    let mut gateway = Gateway::start("retention", retention).await;
    let id = gateway.accepted("ehr", &admission("9C"), None).await;
    let pulled = gateway.pull("scheduler", 10, 0.0).await;
    let delivery_id = pulled[0]["delivery_id"].as_str().unwrap();
    assert_eq!(gateway.ack("scheduler", &[delivery_id]).await, 1);

    // Acknowledged more than a second ago; `analytics` never pulled its
    // copy, which stays however old it is.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    gateway.terminate();
    gateway.restart().await;

    // The start-up purges run beside the listener: wait for both
    // records, the deliveries' and the audit's checkpoint.
    let purged: Vec<String> = eventually(Duration::from_secs(5), "two purged records", || async {
        let records = gateway.audit().await;
        let purged: Vec<String> = records
            .iter()
            .filter(|r| r["kind"] == "purged")
            .map(|r| r["detail"].as_str().unwrap().to_string())
            .collect();
        (purged.len() == 2).then_some(purged)
    })
    .await;
    assert!(
        purged[0].starts_with("retention: deleted 1 delivered and 0 dead deliveries"),
        "{purged:?}"
    );
    assert!(
        purged[1].starts_with("audit retention: deleted every record up to seq "),
        "{purged:?}"
    );
    let records = gateway.audit().await;
    assert!(
        records.iter().all(|r| r["message_id"] != id.as_str()),
        "the event's records were more than a second old: {records:#?}"
    );
    let analytics = gateway.pull("analytics", 10, 0.0).await;
    assert_eq!(analytics.len(), 1);
    assert_eq!(analytics[0]["message_id"], id.as_str());
    let verify = gateway.phigate(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
}
