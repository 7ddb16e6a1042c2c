//! The store's push-delivery operations on a real SQLite file: leasing due
//! deliveries, recording success, retry and death, listing and replaying
//! dead letters, and what health and queue depths show. Each state change
//! is audited in its own transaction and the chain stays intact. Also
//! retention: of finished deliveries, and of audit records behind a
//! checkpoint.

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

#[tokio::test]
async fn queue_depths_count_by_plugin_and_state() {
    let dir = scratch("depths");
    let store = open(&dir).await;
    assert!(store.queue_depths().await.unwrap().is_empty());
    publish(&store).await;
    publish(&store).await;
    publish(&store).await;

    let pushed = store.lease_push("hook", 2, IN_FLIGHT).await.unwrap();
    let dead = PushOutcome::Dead {
        error: "cannot connect".into(),
    };
    assert!(
        store
            .record_push("hook", &pushed[0].delivery_id, dead)
            .await
            .unwrap()
    );
    store.lease("puller", 1, IN_FLIGHT).await.unwrap();
    // A lease that already ran out counts as pending, as health says.
    store.lease("puller", 1, Duration::ZERO).await.unwrap();

    let depths: Vec<(String, u64, u64, u64)> = store
        .queue_depths()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.plugin, d.pending, d.leased, d.dead))
        .collect();
    assert_eq!(
        depths,
        [("hook".into(), 1, 1, 1), ("puller".into(), 2, 1, 0)]
    );
    store.close().await;
}

#[tokio::test]
async fn retention_purges_finished_deliveries_only_and_audits_it() {
    let dir = scratch("retention");
    let store = open(&dir).await;
    let first = publish(&store).await;
    publish(&store).await;
    publish(&store).await;

    // First event: both deliveries done (a 2xx, an ack).
    let pushed = store.lease_push("hook", 1, IN_FLIGHT).await.unwrap();
    assert_eq!(pushed[0].message_id, first);
    let acked = PushOutcome::Acknowledged("HTTP 200".into());
    assert!(
        store
            .record_push("hook", &pushed[0].delivery_id, acked)
            .await
            .unwrap()
    );
    let pulled = store.lease("puller", 1, IN_FLIGHT).await.unwrap();
    assert_eq!(
        store
            .ack("puller", std::slice::from_ref(&pulled[0].delivery_id))
            .await
            .unwrap(),
        1
    );
    // Second event: the push delivery dead, the pull one leased.
    let pushed = store.lease_push("hook", 1, IN_FLIGHT).await.unwrap();
    let dead = PushOutcome::Dead {
        error: "cannot connect".into(),
    };
    assert!(
        store
            .record_push("hook", &pushed[0].delivery_id, dead)
            .await
            .unwrap()
    );
    let leased = store.lease("puller", 1, IN_FLIGHT).await.unwrap();
    // Third event: both pending.

    // Nothing is old enough yet: nothing deleted, nothing audited.
    let kept = store
        .purge_deliveries(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((kept.done, kept.dead), (0, 0));
    let records = store.audit_after(0, 1000).await.unwrap();
    assert!(records.iter().all(|record| record.kind != "purged"));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let purged = store
        .purge_deliveries(Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!((purged.done, purged.dead), (2, 1));

    // Pending and leased deliveries stay, and can still be acknowledged.
    let hook = store.health("hook").await.unwrap();
    assert_eq!((hook.pending, hook.leased, hook.dead), (1, 0, 0));
    let puller = store.health("puller").await.unwrap();
    assert_eq!((puller.pending, puller.leased, puller.dead), (1, 1, 0));
    assert!(store.dead_deliveries(None).await.unwrap().is_empty());
    assert_eq!(
        store
            .ack("puller", std::slice::from_ref(&leased[0].delivery_id))
            .await
            .unwrap(),
        1
    );
    // Judged by when it finished (just now), not when it was published
    // (300 ms ago).
    let again = store
        .purge_deliveries(Duration::from_millis(250))
        .await
        .unwrap();
    assert_eq!((again.done, again.dead), (0, 0), "just acked: not old yet");

    // One `purged` record, with counts only; the chain stays intact.
    let records = store.audit_after(0, 1000).await.unwrap();
    let purges: Vec<_> = records
        .iter()
        .filter(|record| record.kind == "purged")
        .collect();
    assert_eq!(purges.len(), 1, "{purges:?}");
    assert!(
        purges[0]
            .detail
            .starts_with("retention: deleted 2 delivered and 1 dead deliveries finished before "),
        "{}",
        purges[0].detail
    );
    assert_eq!(purges[0].message_id, None);
    assert_eq!(store.verify_audit().await.unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn audit_retention_deletes_old_records_behind_a_checkpoint_that_verify_follows() {
    let dir = scratch("audit-retention");
    let store = open(&dir).await;
    publish(&store).await;
    publish(&store).await;
    assert_eq!(
        store.purge_audit(Duration::from_secs(3600)).await.unwrap(),
        0
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = publish(&store).await;
    let deleted = store.purge_audit(Duration::from_millis(200)).await.unwrap();
    assert_eq!(deleted, 2);

    // What is left: the young record, then the checkpoint naming the seq
    // and hash the chain now starts after.
    let records = store.audit_after(0, 1000).await.unwrap();
    let seqs: Vec<(i64, &str)> = records.iter().map(|r| (r.seq, r.kind.as_str())).collect();
    assert_eq!(seqs, [(3, "ingress"), (4, "purged")]);
    assert_eq!(records[0].message_id.as_deref(), Some(kept.as_str()));
    assert_eq!(
        records[1].detail,
        format!(
            "audit retention: deleted every record up to seq 2; the chain continues from hash {}",
            records[0].prev_hash
        )
    );
    let report = store.check_audit_chain().await.unwrap();
    assert_eq!((report.intact, report.broken_at), (2, None));
    assert_eq!(
        store.purge_audit(Duration::from_millis(200)).await.unwrap(),
        0,
        "nothing old enough now"
    );
    store.close().await;

    // A plain DELETE is still refused; one that gets past the trigger
    // without a checkpoint breaks the chain where it now starts.
    use sqlx::{ConnectOptions as _, Connection as _};
    let path = dir.join("phigate.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    let refused = sqlx::query("DELETE FROM audit WHERE seq = 3")
        .execute(&mut conn)
        .await;
    assert!(refused.is_err());
    for sql in [
        "INSERT INTO audit_purge (upto) VALUES (3)",
        "DELETE FROM audit WHERE seq = 3",
        "DELETE FROM audit_purge",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    let store = Store::open_read_only(&path).await.unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Some(4));
    store.close().await;
}
