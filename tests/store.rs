//! The store against real SQLite files: the outbox round trip, leases and
//! acks, idempotency, grouped commits, the audit chain and its triggers,
//! and where payload values may rest. The `audit` commands run through
//! the binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use phigate::store::{
    AuditKind, AuditRecord, Committed, NewAudit, NewDelivery, NewPublish, Store, StoreOptions,
};
use serde_json::{Map, Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};

const ENABLED: StoreOptions = StoreOptions {
    audit_enabled: true,
};

/// A fresh folder per test under the target directory.
fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("store")
        .join(format!("{name}-{}-{unique}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn open(dir: &Path, options: StoreOptions) -> Store {
    Store::open(&dir.join("data").join("phigate.db"), options)
        .await
        .unwrap()
}

fn delivery(plugin: &str, payload: Value) -> NewDelivery {
    NewDelivery {
        plugin: plugin.into(),
        payload,
        attributes: Map::from_iter([("priority".to_string(), json!("normal"))]),
        push: false,
    }
}

fn ingress(topic: &str, publisher: &str) -> NewAudit {
    NewAudit {
        kind: AuditKind::Ingress,
        message_id: None,
        topic: Some(topic.into()),
        publisher: Some(publisher.into()),
        subscriber: None,
        rules: Vec::new(),
        detail: "accepted".into(),
    }
}

/// A publish from `ehr` on `patients.admitted` with an ingress record.
fn event(deliveries: Vec<NewDelivery>) -> NewPublish {
    NewPublish {
        publisher: "ehr".into(),
        topic: "patients.admitted".into(),
        idempotency_key: None,
        deliveries,
        audit: vec![ingress("patients.admitted", "ehr")],
    }
}

fn stored(committed: Committed) -> String {
    match committed {
        Committed::Stored { message_id } => message_id,
        other => panic!("expected a stored event, got {other:?}"),
    }
}

/// A connection of its own, as a person with the database file would
/// open it.
async fn raw(dir: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(dir.join("data").join("phigate.db"))
        .connect()
        .await
        .unwrap()
}

async fn count(conn: &mut SqliteConnection, sql: &'static str) -> i64 {
    let (count,): (i64,) = sqlx::query_as(sql).fetch_one(conn).await.unwrap();
    count
}

fn kinds(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|record| record.kind.as_str()).collect()
}

#[tokio::test]
async fn publish_lease_ack_round_trip() {
    let dir = scratch("round-trip");
    let store = open(&dir, ENABLED).await;

    let mut push = delivery("inbox", json!({"ward": "3B"}));
    push.push = true;
    let message_id = stored(
        store
            .commit_publish(event(vec![
                delivery("scheduler", json!({"ward": "3B"})),
                push,
            ]))
            .await
            .unwrap(),
    );
    let health = store.health("scheduler").await.unwrap();
    assert_eq!((health.pending, health.leased, health.dead), (1, 0, 0));
    assert!(health.oldest_pending_age_s.is_some_and(|age| age >= 0.0));

    let leased = store
        .lease("scheduler", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    let first = &leased[0];
    assert_eq!(first.message_id, message_id);
    assert_eq!(first.topic, "patients.admitted");
    assert_eq!(first.payload, json!({"ward": "3B"}));
    assert_eq!(first.attributes["priority"], json!("normal"));
    assert_eq!(first.attempt, 1);
    assert_eq!(first.published_at.len(), "2026-12-03T17:45:00.000Z".len());
    assert!(first.published_at.ends_with('Z'));
    let health = store.health("scheduler").await.unwrap();
    assert_eq!((health.pending, health.leased), (0, 1));
    assert_eq!(health.oldest_pending_age_s, None);

    // A push delivery is the webhook worker's, never leased.
    let pushed = store.lease("inbox", 10, Duration::from_secs(30)).await;
    assert!(pushed.unwrap().is_empty());

    let acked = store
        .ack("scheduler", std::slice::from_ref(&first.delivery_id))
        .await
        .unwrap();
    assert_eq!(acked, 1);
    let health = store.health("scheduler").await.unwrap();
    assert_eq!((health.pending, health.leased, health.dead), (0, 0, 0));

    let records = store.audit_for_message(&message_id).await.unwrap();
    assert_eq!(kinds(&records), ["ingress", "egress", "processed"]);
    assert!(
        records
            .iter()
            .all(|r| r.message_id.as_deref() == Some(&*message_id))
    );
    assert_eq!(records[1].subscriber.as_deref(), Some("scheduler"));
    assert_eq!(records[1].publisher.as_deref(), Some("ehr"));
    assert_eq!(store.verify_audit().await.unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn leases_hand_out_the_oldest_first_up_to_max() {
    let dir = scratch("oldest-first");
    let store = open(&dir, ENABLED).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let publish = event(vec![delivery("scheduler", json!({"n": n}))]);
        ids.push(stored(store.commit_publish(publish).await.unwrap()));
    }

    let lease = Duration::from_secs(30);
    let first = store.lease("scheduler", 2, lease).await.unwrap();
    let second = store.lease("scheduler", 2, lease).await.unwrap();
    let third = store.lease("scheduler", 2, lease).await.unwrap();
    let handed: Vec<_> = [first, second, third]
        .iter()
        .flatten()
        .map(|leased| leased.message_id.clone())
        .collect();
    assert_eq!(handed, ids);
    assert!(store.lease("scheduler", 2, lease).await.unwrap().is_empty());
    assert!(store.lease("scheduler", 0, lease).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_expired_lease_comes_back_with_the_same_id_and_the_next_attempt() {
    let dir = scratch("expiry");
    let store = open(&dir, ENABLED).await;
    store
        .commit_publish(event(vec![delivery("scheduler", json!({"ward": "3B"}))]))
        .await
        .unwrap();

    let short = Duration::from_millis(300);
    let first = store.lease("scheduler", 10, short).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        store
            .lease("scheduler", 10, short)
            .await
            .unwrap()
            .is_empty(),
        "a running lease is not handed out twice"
    );

    tokio::time::sleep(Duration::from_millis(450)).await;
    let health = store.health("scheduler").await.unwrap();
    assert_eq!((health.pending, health.leased), (1, 0));
    let again = store.lease("scheduler", 10, short).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_id, first[0].delivery_id);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].payload, first[0].payload);

    let records = store.audit_for_message(&first[0].message_id).await.unwrap();
    assert_eq!(kinds(&records), ["ingress", "egress", "egress"]);
    assert!(records[2].detail.contains("attempt 2"));
}

#[tokio::test]
async fn acknowledged_deliveries_never_come_back() {
    let dir = scratch("acked");
    let store = open(&dir, ENABLED).await;
    store
        .commit_publish(event(vec![delivery("scheduler", json!({}))]))
        .await
        .unwrap();

    let short = Duration::from_millis(100);
    let leased = store.lease("scheduler", 10, short).await.unwrap();
    let ids: Vec<_> = leased.iter().map(|l| l.delivery_id.clone()).collect();
    assert_eq!(store.ack("scheduler", &ids).await.unwrap(), 1);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        store
            .lease("scheduler", 10, short)
            .await
            .unwrap()
            .is_empty()
    );
    let health = store.health("scheduler").await.unwrap();
    assert_eq!((health.pending, health.leased), (0, 0));
}

#[tokio::test]
async fn ack_is_idempotent_and_ignores_ids_of_other_plugins() {
    let dir = scratch("ack");
    let store = open(&dir, ENABLED).await;
    store
        .commit_publish(event(vec![
            delivery("scheduler", json!({})),
            delivery("analytics", json!({})),
        ]))
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let scheduler = store.lease("scheduler", 10, lease).await.unwrap();
    let analytics = store.lease("analytics", 10, lease).await.unwrap();
    let (mine, theirs) = (
        scheduler[0].delivery_id.clone(),
        analytics[0].delivery_id.clone(),
    );

    let foreign = store.ack("analytics", std::slice::from_ref(&mine)).await;
    assert_eq!(foreign.unwrap(), 0);
    let unknown = store.ack("scheduler", &["0".repeat(32)]).await;
    assert_eq!(unknown.unwrap(), 0);

    let twice_in_one_call = [mine.clone(), mine.clone(), theirs.clone()];
    assert_eq!(store.ack("scheduler", &twice_in_one_call).await.unwrap(), 1);
    assert_eq!(store.ack("scheduler", &twice_in_one_call).await.unwrap(), 0);
    assert_eq!(store.ack("scheduler", &[]).await.unwrap(), 0);

    // The other plugin's delivery is still leased to it.
    assert_eq!(store.health("analytics").await.unwrap().leased, 1);
    assert_eq!(store.ack("analytics", &[theirs]).await.unwrap(), 1);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_message_id_and_stores_nothing() {
    let dir = scratch("idempotency");
    let store = open(&dir, ENABLED).await;
    let keyed = |publisher: &str, key: &str| NewPublish {
        publisher: publisher.into(),
        idempotency_key: Some(key.into()),
        ..event(vec![delivery("scheduler", json!({"ward": "3B"}))])
    };

    let first = stored(store.commit_publish(keyed("ehr", "k-1")).await.unwrap());
    let again = store.commit_publish(keyed("ehr", "k-1")).await.unwrap();
    assert_eq!(
        again,
        Committed::Duplicate {
            message_id: first.clone()
        }
    );
    let other_publisher = store.commit_publish(keyed("lab", "k-1")).await.unwrap();
    assert!(matches!(&other_publisher, Committed::Stored { message_id } if *message_id != first));
    let other_key = store.commit_publish(keyed("ehr", "k-2")).await.unwrap();
    assert!(matches!(&other_key, Committed::Stored { message_id } if *message_id != first));

    // The same key twice in one batch: the first stores, the second
    // gets its id.
    let (a, b) = tokio::join!(
        store.commit_publish(keyed("ehr", "k-3")),
        store.commit_publish(keyed("ehr", "k-3")),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.message_id(), b.message_id());
    assert!(matches!(a, Committed::Stored { .. }) != matches!(b, Committed::Stored { .. }));

    let mut conn = raw(&dir).await;
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM deliveries").await, 4);
    let ingress = "SELECT COUNT(*) FROM audit WHERE kind = 'ingress'";
    assert_eq!(count(&mut conn, ingress).await, 4);
    assert_eq!(
        store
            .lease("scheduler", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_share_transactions() {
    let dir = scratch("grouped");
    let store = open(&dir, ENABLED).await;
    let before = store.stats();

    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let publish = event(vec![
                    delivery("scheduler", json!({"n": n})),
                    delivery("analytics", json!({"n": n})),
                ]);
                store.commit_publish(publish).await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        ids.insert(stored(task.await.unwrap().unwrap()));
    }
    assert_eq!(ids.len(), 200);

    let stats = store.stats();
    let transactions = stats.transactions - before.transactions;
    assert_eq!(stats.jobs - before.jobs, 200);
    assert_eq!(stats.failed_batches, 0);
    assert!(
        transactions <= 50,
        "200 publishes took {transactions} transactions"
    );

    let report = store.check_audit_chain().await.unwrap();
    assert_eq!((report.intact, report.broken_at), (200, None));
    let leased = store.lease("analytics", 500, Duration::from_secs(30)).await;
    assert_eq!(leased.unwrap().len(), 200);
}

#[tokio::test]
async fn the_database_refuses_updates_and_deletes_of_audit_rows() {
    let dir = scratch("triggers");
    let store = open(&dir, ENABLED).await;
    store
        .commit_publish(event(vec![delivery("scheduler", json!({}))]))
        .await
        .unwrap();

    let mut conn = raw(&dir).await;
    let update = sqlx::query("UPDATE audit SET detail = 'nothing happened' WHERE seq = 1")
        .execute(&mut conn)
        .await;
    let delete = sqlx::query("DELETE FROM audit").execute(&mut conn).await;
    for refused in [update.map(drop), delete.map(drop)] {
        let error = refused.expect_err("the trigger should refuse this");
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM audit").await, 1);
    assert_eq!(store.verify_audit().await.unwrap(), None);
}

#[tokio::test]
async fn tampering_behind_the_triggers_back_is_found() {
    let dir = scratch("tamper");
    let store = open(&dir, ENABLED).await;
    for n in 0..4 {
        store
            .commit_publish(event(vec![delivery("scheduler", json!({"n": n}))]))
            .await
            .unwrap();
    }
    let config = write_config(&dir);
    let intact = phigate(&config, &["audit", "verify"]);
    assert_eq!(intact.code, Some(0), "{intact:?}");
    assert_eq!(intact.stdout.trim(), "audit chain intact: 4 records");

    let mut conn = raw(&dir).await;
    sqlx::query("DROP TRIGGER audit_refuse_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET detail = 'rejected' WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    assert_eq!(store.verify_audit().await.unwrap(), Some(3));
    let report = store.check_audit_chain().await.unwrap();
    assert_eq!((report.intact, report.broken_at), (2, Some(3)));
    store.close().await;

    let broken = phigate(&config, &["audit", "verify"]);
    assert_eq!(broken.code, Some(1), "{broken:?}");
    assert_eq!(broken.stdout.trim(), "audit chain broken at seq 3");
}

#[tokio::test]
async fn a_removed_record_breaks_the_chain_at_the_next_one() {
    let dir = scratch("removed");
    let store = open(&dir, ENABLED).await;
    for _ in 0..3 {
        store.commit_publish(event(Vec::new())).await.unwrap();
    }
    let mut conn = raw(&dir).await;
    sqlx::query("DROP TRIGGER audit_refuse_delete")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Some(3));
}

#[tokio::test]
async fn audit_export_prints_json_lines_after_a_seq() {
    let dir = scratch("export");
    let store = open(&dir, ENABLED).await;
    for _ in 0..3 {
        store
            .commit_publish(event(vec![delivery("scheduler", json!({}))]))
            .await
            .unwrap();
    }
    store
        .lease("scheduler", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let expected = store.audit_after(2, 100).await.unwrap();
    store.close().await;

    let config = write_config(&dir);
    let export = phigate(&config, &["audit", "export", "--after", "2"]);
    assert_eq!(export.code, Some(0), "{export:?}");
    let records: Vec<AuditRecord> = export
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records, expected);
    assert_eq!(records.first().map(|r| r.seq), Some(3));
    assert_eq!(records.len(), 4, "3 ingress + 3 egress, after the first 2");

    let all = phigate(&config, &["audit", "export"]);
    assert_eq!(all.stdout.lines().count(), 6);
}

#[tokio::test]
async fn audit_verify_reads_a_database_left_by_a_crash() {
    let dir = scratch("crash");
    let store = open(&dir, ENABLED).await;
    for _ in 0..3 {
        store.commit_publish(event(Vec::new())).await.unwrap();
    }
    // What a SIGKILL leaves: the database and its WAL, the commits not
    // yet checkpointed, and no shared-memory index.
    let copy = scratch("crash-copy");
    std::fs::create_dir_all(copy.join("data")).unwrap();
    for file in ["phigate.db", "phigate.db-wal"] {
        std::fs::copy(dir.join("data").join(file), copy.join("data").join(file)).unwrap();
    }
    assert!(
        std::fs::metadata(copy.join("data/phigate.db-wal"))
            .unwrap()
            .len()
            > 0
    );

    let config = write_config(&copy);
    let verify = phigate(&config, &["audit", "verify"]);
    assert_eq!(verify.code, Some(0), "{verify:?}");
    assert_eq!(verify.stdout.trim(), "audit chain intact: 3 records");
}

#[test]
fn the_store_is_a_cheap_shared_handle() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Store>();
}

#[test]
fn audit_commands_without_a_database_exit_2() {
    let dir = scratch("no-database");
    let config = write_config(&dir);
    for command in [&["audit", "verify"][..], &["audit", "export"]] {
        let output = phigate(&config, command);
        assert_eq!(output.code, Some(2), "{output:?}");
        assert!(output.stderr.contains("no database"), "{output:?}");
    }
    assert!(!dir.join("data").exists(), "nothing is created");
}

#[tokio::test]
async fn audit_after_is_exclusive_and_limited() {
    let dir = scratch("after");
    let store = open(&dir, ENABLED).await;
    let records: Vec<_> = (0..5)
        .map(|n| NewAudit {
            kind: AuditKind::RulesLoaded,
            message_id: None,
            topic: None,
            publisher: None,
            subscriber: None,
            rules: vec![format!("rule {n}")],
            detail: format!("{n} rules"),
        })
        .collect();
    store.append_audit(records).await.unwrap();

    let page = store.audit_after(1, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(page[0].rules, ["rule 1"]);
    assert_eq!(page[0].kind, "rules_loaded");
    assert_eq!(page[0].message_id, None);
    assert_eq!(page[1].prev_hash, page[0].hash);
    assert!(store.audit_after(5, 10).await.unwrap().is_empty());
    assert!(store.audit_after(0, 0).await.unwrap().is_empty());
    let genesis = &store.audit_after(0, 1).await.unwrap()[0];
    assert_eq!(genesis.prev_hash, "0".repeat(64));
}

#[tokio::test]
async fn with_audit_disabled_no_audit_row_is_stored() {
    let dir = scratch("disabled");
    let store = open(
        &dir,
        StoreOptions {
            audit_enabled: false,
        },
    )
    .await;
    store
        .commit_publish(event(vec![delivery("scheduler", json!({}))]))
        .await
        .unwrap();
    store.append_audit(vec![ingress("t", "p")]).await.unwrap();
    let leased = store
        .lease("scheduler", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let ids: Vec<_> = leased.iter().map(|l| l.delivery_id.clone()).collect();
    assert_eq!(store.ack("scheduler", &ids).await.unwrap(), 1);

    let mut conn = raw(&dir).await;
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM audit").await, 0);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM deliveries").await, 1);
    assert_eq!(store.verify_audit().await.unwrap(), None);
}

#[tokio::test]
async fn a_payload_value_rests_only_in_the_delivery_it_was_given_for() {
    let dir = scratch("canary");
    let store = open(&dir, ENABLED).await;
    let canary = "MRN-CANARY-7731";
    let mut blocked = ingress("patients.admitted", "ehr");
    blocked.kind = AuditKind::Blocked;
    blocked.subscriber = Some("analytics".into());
    blocked.rules = vec!["no HIV status to analytics".into()];
    blocked.detail = "blocked by rule".into();
    let publish = NewPublish {
        // A careless publisher uses the record number as its key.
        idempotency_key: Some(canary.into()),
        audit: vec![ingress("patients.admitted", "ehr"), blocked],
        ..event(vec![
            delivery("scheduler", json!({"mrn": canary, "ward": "3B"})),
            delivery("inbox", json!({"ward": "3B"})),
        ])
    };
    store.commit_publish(publish).await.unwrap();
    let leased = store
        .lease("scheduler", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let ids: Vec<_> = leased.iter().map(|l| l.delivery_id.clone()).collect();
    store.ack("scheduler", &ids).await.unwrap();

    let mut conn = raw(&dir).await;
    let holders: Vec<(String,)> =
        sqlx::query_as("SELECT plugin FROM deliveries WHERE instr(payload, ?) > 0")
            .bind(canary)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(holders, [("scheduler".to_string(),)]);
    let elsewhere: (i64, i64) = sqlx::query_as(
        "SELECT \
             (SELECT COUNT(*) FROM deliveries WHERE instr(attributes, ?1) > 0), \
             (SELECT COUNT(*) FROM idempotency \
                WHERE instr(publisher || key_hash || message_id, ?1) > 0)",
    )
    .bind(canary)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(elsewhere, (0, 0));

    let records = store.audit_after(0, 100).await.unwrap();
    assert_eq!(
        kinds(&records),
        ["ingress", "blocked", "egress", "processed"]
    );
    for record in &records {
        let text = serde_json::to_string(record).unwrap();
        assert!(!text.contains(canary), "{text}");
    }
}

#[tokio::test]
async fn a_failed_batch_stores_nothing_of_any_job_in_it() {
    let dir = scratch("failed-batch");
    let store = open(&dir, ENABLED).await;
    store.commit_publish(event(Vec::new())).await.unwrap();

    // A trigger planted behind the store's back makes one delivery fail.
    let mut conn = raw(&dir).await;
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON deliveries WHEN NEW.plugin = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    // Queued together, so written in one transaction.
    let (good, bad, also_good) = tokio::join!(
        store.commit_publish(event(vec![delivery("scheduler", json!({}))])),
        store.commit_publish(event(vec![delivery("poison", json!({}))])),
        store.append_audit(vec![ingress("t", "p")]),
    );
    assert!(good.unwrap_err().is_unavailable());
    assert!(bad.unwrap_err().is_unavailable());
    assert!(also_good.unwrap_err().is_unavailable());
    assert_eq!(store.stats().failed_batches, 1);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM deliveries").await, 0);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM audit").await, 1);

    // The writer carries on, and the chain continues from the last
    // committed record.
    let next = store
        .commit_publish(event(vec![delivery("scheduler", json!({}))]))
        .await;
    stored(next.unwrap());
    let report = store.check_audit_chain().await.unwrap();
    assert_eq!((report.intact, report.broken_at), (2, None));
}

#[tokio::test]
async fn close_finishes_queued_work_and_the_data_survives_a_reopen() {
    let dir = scratch("close");
    let store = open(&dir, ENABLED).await;
    let queued: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .commit_publish(event(vec![delivery("scheduler", json!({"n": n}))]))
                    .await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    store.close().await;

    // Queued before the close: all stored.
    for task in queued {
        stored(task.await.unwrap().unwrap());
    }
    let late = store.commit_publish(event(Vec::new())).await;
    assert!(late.unwrap_err().is_unavailable());

    let reopened = open(&dir, ENABLED).await;
    let leased = reopened
        .lease("scheduler", 100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(leased.len(), 20);
    let report = reopened.check_audit_chain().await.unwrap();
    assert_eq!(report.broken_at, None);
    assert_eq!(report.intact, 20 + 20, "an ingress and an egress each");
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = scratch("private");
    let store = open(&dir, ENABLED).await;
    store.commit_publish(event(Vec::new())).await.unwrap();
    let mode = |path: PathBuf| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.join("data")), 0o700);
    assert_eq!(mode(dir.join("data").join("phigate.db")), 0o600);
    assert_eq!(mode(dir.join("data").join("phigate.db-wal")), 0o600);
}

/// A configuration whose database is `data/phigate.db` beside it.
fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("phigate.toml");
    std::fs::write(&path, "[storage]\nurl = \"sqlite://data/phigate.db\"\n").unwrap();
    path
}

#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn phigate(config: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_phigate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
