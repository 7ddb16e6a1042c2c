//! Publishes committed per second: one at a time (each waits for its own
//! fsync) against many concurrent publishers sharing the writer's
//! transactions.
//!
//! A plain program rather than a criterion group: each run is seconds of
//! fsyncs, and the figure wanted is a rate. Run with
//! `cargo bench --bench store`; `-- --quick` runs fewer publishes. The
//! database lives under the target directory.

#![allow(clippy::print_stdout, reason = "a benchmark program reports on stdout")]

use std::path::Path;
use std::time::{Duration, Instant};

use phigate::store::{AuditKind, NewAudit, NewDelivery, NewPublish, Store, StoreOptions};
use serde_json::{Map, json};

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(quick));
}

async fn run(quick: bool) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-store");
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir.join("bench.db"), StoreOptions::default())
        .await
        .expect("the benchmark database opens");

    // Warm up: file growth, statement caches.
    measure(&store, 1, 50).await;

    let (sequential, grouped) = if quick { (100, 2_000) } else { (300, 10_000) };
    println!("each publish: 2 deliveries (~120 B payload each) and 2 audit records");
    println!(
        "{:>12} {:>10} {:>10} {:>12} {:>14} {:>10}",
        "publishers", "publishes", "seconds", "publishes/s", "transactions", "per txn"
    );
    for (publishers, count) in [
        (1, sequential),
        (8, grouped / 4),
        (64, grouped),
        (256, grouped),
    ] {
        let result = measure(&store, publishers, count).await;
        println!(
            "{:>12} {:>10} {:>10.2} {:>12.0} {:>14} {:>10.1}",
            publishers,
            count,
            result.elapsed.as_secs_f64(),
            count as f64 / result.elapsed.as_secs_f64(),
            result.transactions,
            count as f64 / result.transactions as f64,
        );
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

struct Measured {
    elapsed: Duration,
    transactions: u64,
}

/// `count` publishes spread over `publishers` tasks, each waiting for its
/// answer before sending the next.
async fn measure(store: &Store, publishers: usize, count: usize) -> Measured {
    let before = store.stats().transactions;
    let started = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|task| {
            let store = store.clone();
            let share = count / publishers + usize::from(task < count % publishers);
            tokio::spawn(async move {
                for n in 0..share {
                    store
                        .commit_publish(publish(task * 1_000_000 + n))
                        .await
                        .expect("the publish is stored");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a publisher task");
    }
    Measured {
        elapsed: started.elapsed(),
        transactions: store.stats().transactions - before,
    }
}

fn publish(n: usize) -> NewPublish {
    let delivery = |plugin: &str| NewDelivery {
        plugin: plugin.into(),
        payload: json!({
            "mrn": format!("hmac:v1:k1:{n:032}"),
            "ward": "3B",
            "diagnosis": {"code": "I10", "text": "essential hypertension"},
        }),
        attributes: Map::from_iter([("priority".to_string(), json!("normal"))]),
        push: false,
    };
    let record = |kind: AuditKind, subscriber: Option<&str>| NewAudit {
        kind,
        message_id: None,
        topic: Some("patients.admitted".into()),
        publisher: Some("ehr".into()),
        subscriber: subscriber.map(str::to_string),
        rules: vec!["no HIV status to analytics".into()],
        detail: "accepted".into(),
    };
    NewPublish {
        publisher: "ehr".into(),
        topic: "patients.admitted".into(),
        idempotency_key: Some(format!("key-{n}")),
        deliveries: vec![delivery("scheduler"), delivery("analytics")],
        audit: vec![
            record(AuditKind::Ingress, None),
            record(AuditKind::Blocked, Some("inbox")),
        ],
    }
}
