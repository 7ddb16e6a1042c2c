//! The store's push-delivery operations on a real SQLite file: leasing due
//! deliveries, recording success, retry and death, listing and replaying
//! dead letters, and what health shows. Each state change is audited in
//! its own transaction and the chain stays intact.

use std::path::{Path, PathBuf};
use std::time::Duration;

use phigate::store::{
    AuditKind, Committed, NewAudit, NewDelivery, NewPublish, PushOutcome, Store, StoreOptions,
};
use serde_json::{Map, json};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("store-push")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn open(dir: &Path) -> Store {
    Store::open(&dir.join("phigate.db"), StoreOptions::default())
        .await
        .unwrap()
}

/// One event with a push delivery to `hook` and a pull one to `puller`.
async fn publish(store: &Store) -> String {
    let delivery = |plugin: &str, push| NewDelivery {
        plugin: plugin.into(),
        payload: json!({"note": "canary-store-push"}),
        attributes: Map::new(),
        push,
    };
    let committed = store
        .commit_publish(NewPublish {
            publisher: "ehr".into(),
            topic: "events.a".into(),
            idempotency_key: None,
            deliveries: vec![delivery("hook", true), delivery("puller", false)],
            audit: vec![NewAudit {
                kind: AuditKind::Ingress,
                message_id: None,
                topic: Some("events.a".into()),
                publisher: Some("ehr".into()),
                subscriber: None,
                rules: Vec::new(),
                detail: "accepted".into(),
            }],
        })
        .await
        .unwrap();
    match committed {
        Committed::Stored { message_id } => message_id,
        other => panic!("{other:?}"),
    }
}

const IN_FLIGHT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn push_leases_only_due_push_deliveries_and_records_each_outcome() {
    let dir = scratch("outcomes");
    let store = open(&dir).await;
    assert_eq!(store.next_push_due("hook").await.unwrap(), None);
    let message_id = publish(&store).await;

    // Due at once; the pull delivery is not a push one.
    assert!(store.next_push_due("hook").await.unwrap().unwrap() <= 0.0);
    assert_eq!(store.next_push_due("puller").await.unwrap(), None);
    assert!(
        store
            .lease_push("puller", 4, IN_FLIGHT)
            .await
            .unwrap()
            .is_empty()
    );
    let leased = store.lease_push("hook", 4, IN_FLIGHT).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].attempt, 1);
    assert_eq!(leased[0].message_id, message_id);
    let id = leased[0].delivery_id.clone();
    assert!(
        store
            .lease_push("hook", 4, IN_FLIGHT)
            .await
            .unwrap()
            .is_empty()
    );

    // A retry: pending again, due later, the error kept.
    let retry = PushOutcome::Retry {
        error: "the endpoint answered HTTP 500".into(),
        after: Duration::from_secs(60),
    };
    assert!(store.record_push("hook", &id, retry.clone()).await.unwrap());
    assert!(
        !store.record_push("hook", &id, retry).await.unwrap(),
        "not leased now"
    );
    let due = store.next_push_due("hook").await.unwrap().unwrap();
    assert!((55.0..=60.5).contains(&due), "{due}");
    assert!(
        store
            .lease_push("hook", 4, IN_FLIGHT)
            .await
            .unwrap()
            .is_empty()
    );
    let health = store.health("hook").await.unwrap();
    assert_eq!(health.pending, 1);
    assert_eq!(
        health.last_error.as_deref(),
        Some("the endpoint answered HTTP 500")
    );
    store.close().await;
}

#[tokio::test]
async fn a_dead_delivery_is_listed_replayed_and_then_acknowledged() {
    let dir = scratch("dead");
    let store = open(&dir).await;
    let message_id = publish(&store).await;
    let id = store.lease_push("hook", 1, IN_FLIGHT).await.unwrap()[0]
        .delivery_id
        .clone();
    let dead = PushOutcome::Dead {
        error: "cannot connect".into(),
    };
    assert!(store.record_push("hook", &id, dead).await.unwrap());

    let health = store.health("hook").await.unwrap();
    assert_eq!((health.pending, health.leased, health.dead), (0, 0, 1));
    let listed = store.dead_deliveries(Some("hook")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].attempts, 1);
    assert_eq!(listed[0].last_error.as_deref(), Some("cannot connect"));
    assert_eq!(store.dead_deliveries(None).await.unwrap().len(), 1);
    assert!(
        store
            .dead_deliveries(Some("puller"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_push_due("hook").await.unwrap(), None);

    // Replay: unknown and live ids are ignored; attempts start again.
    let replayed = store
        .replay(&[id.clone(), "unknown".into(), id.clone()])
        .await
        .unwrap();
    assert_eq!(replayed, vec![id.clone()]);
    assert!(
        store
            .replay(std::slice::from_ref(&id))
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.lease_push("hook", 1, IN_FLIGHT).await.unwrap();
    assert_eq!(
        (again[0].delivery_id.as_str(), again[0].attempt),
        (id.as_str(), 1)
    );
    let acked = PushOutcome::Acknowledged("HTTP 200".into());
    assert!(store.record_push("hook", &id, acked).await.unwrap());
    let health = store.health("hook").await.unwrap();
    assert_eq!((health.pending, health.leased, health.dead), (0, 0, 0));

    let kinds: Vec<String> = store
        .audit_for_message(&message_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.subscriber.as_deref() == Some("hook"))
        .map(|record| record.kind)
        .collect();
    assert_eq!(kinds, ["egress", "dead", "replayed", "egress", "processed"]);
    assert_eq!(store.verify_audit().await.unwrap(), None);
    store.close().await;

    // No payload value in the audit or the error texts.
    let store = Store::open_read_only(&dir.join("phigate.db"))
        .await
        .unwrap();
    let records = store.audit_after(0, 1000).await.unwrap();
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains("canary-store-push"));
    store.close().await;
}

#[tokio::test]
async fn an_attempt_that_never_reported_back_is_due_again_after_its_lease() {
    let dir = scratch("in-flight");
    let store = open(&dir).await;
    publish(&store).await;
    let first = store
        .lease_push("hook", 1, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(first[0].attempt, 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let second = store.lease_push("hook", 1, IN_FLIGHT).await.unwrap();
    assert_eq!(second[0].delivery_id, first[0].delivery_id);
    assert_eq!(second[0].attempt, 2);
    store.close().await;
}
