//! The writer task: the one owner of the write connection.
//!
//! It takes every job queued (up to `MAX_BATCH`), runs them in order in
//! one `BEGIN IMMEDIATE` transaction, commits, and only then answers. Rows
//! of publishes are buffered and written as multi-row inserts; a lease or
//! an ack first writes what is buffered, so each job sees the ones before
//! it. Audit records are sealed into the chain in job order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions};
use sqlx::{ConnectOptions as _, Connection as _, QueryBuilder, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::audit::{self, AuditRow, Head};
use super::time::Millis;
use super::{
    AuditKind, Committed, IDEMPOTENCY_WINDOW, Leased, MAX_BATCH, NewAudit, NewPublish, Purged,
    StoreError, StoreStats,
};

/// Rows per multi-row INSERT: about 1,000 bound values, far below
/// SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 100;

/// Ids per `IN (...)` list.
const IDS_PER_STATEMENT: usize = 500;

/// How often expired idempotency keys are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

pub(crate) enum Job {
    Work(Request, oneshot::Sender<Result<Outcome, StoreError>>),
    /// Finish the queued jobs, then stop; answered once the connection is
    /// closed.
    Close(oneshot::Sender<()>),
}

pub(crate) enum Request {
    Publish(PreparedPublish),
    Audit(Vec<NewAudit>),
    Lease(LeaseRequest),
    Ack(AckRequest),
    PushLease(LeaseRequest),
    PushSent(PushSent),
    PushFailed(PushFailed),
    Replay(Vec<String>),
    /// Delete finished deliveries older than this (retention).
    Purge(Duration),
    /// Delete audit records older than this, behind a checkpoint.
    PurgeAudit(Duration),
}

/// What a committed job produced; each request kind has its own.
pub(crate) enum Outcome {
    Committed(Committed),
    Done,
    Leased(Vec<LeasedRow>),
    Acked(u64),
    /// Whether the delivery was still leased, and so was changed.
    Changed(bool),
    /// The ids that went back to pending.
    Replayed(Vec<String>),
    Purged(Purged),
    /// Audit records deleted.
    AuditPurged(u64),
}

/// A publish with ids drawn and JSON serialized, done by the caller so
/// that the writer only writes.
pub(crate) struct PreparedPublish {
    message_id: String,
    publisher: String,
    topic: String,
    key_hash: Option<String>,
    deliveries: Vec<PreparedDelivery>,
    audit: Vec<NewAudit>,
}

struct PreparedDelivery {
    id: String,
    plugin: String,
    payload: String,
    attributes: String,
    push: bool,
}

impl PreparedPublish {
    pub(crate) fn new(
        publish: NewPublish,
        audit_enabled: bool,
    ) -> Result<PreparedPublish, StoreError> {
        let message_id = random_id()?;
        let deliveries = publish
            .deliveries
            .into_iter()
            .map(|delivery| {
                Ok(PreparedDelivery {
                    id: random_id()?,
                    plugin: delivery.plugin,
                    payload: delivery.payload.to_string(),
                    attributes: serde_json::Value::Object(delivery.attributes).to_string(),
                    push: delivery.push,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let audit = if audit_enabled {
            let mut records = publish.audit;
            for record in &mut records {
                record.message_id.get_or_insert_with(|| message_id.clone());
            }
            records
        } else {
            Vec::new()
        };

        Ok(PreparedPublish {
            message_id,
            key_hash: publish.idempotency_key.as_deref().map(key_hash),
            publisher: publish.publisher,
            topic: publish.topic,
            deliveries,
            audit,
        })
    }
}

pub(crate) struct LeaseRequest {
    pub plugin: String,
    pub max: u32,
    pub lease: Duration,
}

/// A push attempt that the endpoint acknowledged (a 2xx).
pub(crate) struct PushSent {
    pub plugin: String,
    pub delivery_id: String,
    pub detail: String,
}

/// A push attempt that failed: retried at `retry_in` from now, or dead
/// when that is `None`. `error` is value-free text.
pub(crate) struct PushFailed {
    pub plugin: String,
    pub delivery_id: String,
    pub error: String,
    pub retry_in: Option<Duration>,
}

pub(crate) struct AckRequest {
    pub plugin: String,
    pub delivery_ids: Vec<String>,
}

/// A leased delivery as read in the writer; the caller parses the JSON.
#[derive(sqlx::FromRow)]
pub(crate) struct LeasedRow {
    seq: i64,
    id: String,
    message_id: String,
    topic: String,
    publisher: String,
    attributes: String,
    payload: String,
    attempt: i64,
    published_at: String,
}

impl LeasedRow {
    pub(crate) fn into_leased(self) -> Result<Leased, StoreError> {
        let corrupt = || StoreError::CorruptDelivery {
            delivery_id: self.id.clone(),
        };
        let payload = serde_json::from_str(&self.payload).map_err(|_| corrupt())?;
        let attributes = serde_json::from_str(&self.attributes).map_err(|_| corrupt())?;
        Ok(Leased {
            attempt: u32::try_from(self.attempt).map_err(|_| corrupt())?,
            delivery_id: self.id,
            message_id: self.message_id,
            topic: self.topic,
            attributes,
            payload,
            published_at: self.published_at,
        })
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    jobs: AtomicU64,
    failed_batches: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            jobs: self.jobs.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct Writer {
    conn: SqliteConnection,
    options: SqliteConnectOptions,
    audit_enabled: bool,
    counters: Arc<Counters>,
    last_purge: Option<Instant>,
    /// The last batch failed: check the connection before the next one.
    suspect: bool,
}

impl Writer {
    pub(crate) fn new(
        conn: SqliteConnection,
        options: SqliteConnectOptions,
        audit_enabled: bool,
        counters: &Arc<Counters>,
    ) -> Writer {
        Writer {
            conn,
            options,
            audit_enabled,
            counters: Arc::clone(counters),
            last_purge: None,
            suspect: false,
        }
    }

    /// Runs until every `Store` is dropped or one asks to close.
    pub(crate) async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        let mut closers = Vec::new();
        while closers.is_empty() {
            if queue.recv_many(&mut jobs, MAX_BATCH).await == 0 {
                break;
            }
            self.write(&mut jobs, &mut closers).await;
        }

        // Closing: refuse new jobs, but finish those already queued.
        queue.close();
        while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
            self.write(&mut jobs, &mut closers).await;
        }
        let _ = self.conn.close().await;
        for closer in closers {
            let _ = closer.send(());
        }
    }

    /// Writes one batch and answers its jobs, draining `jobs`.
    async fn write(&mut self, jobs: &mut Vec<Job>, closers: &mut Vec<oneshot::Sender<()>>) {
        let mut requests = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            match job {
                Job::Work(request, reply) => {
                    requests.push(request);
                    replies.push(reply);
                }
                Job::Close(closer) => closers.push(closer),
            }
        }
        if requests.is_empty() {
            return;
        }
        if self.suspect {
            self.reconnect_if_broken().await;
        }

        match self.transaction(requests).await {
            Ok(outcomes) => {
                self.suspect = false;
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .jobs
                    .fetch_add(replies.len() as u64, Ordering::Relaxed);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                self.suspect = true;
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                let reason = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                }
            }
        }
    }

    /// Runs every request in one transaction. An error anywhere rolls the
    /// whole batch back (the transaction is dropped uncommitted).
    async fn transaction(&mut self, requests: Vec<Request>) -> Result<Vec<Outcome>, sqlx::Error> {
        let now = Millis::now();
        let at = now.to_rfc3339();
        let purge = self
            .last_purge
            .is_none_or(|last| last.elapsed() >= PURGE_EVERY);

        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut chain = if self.audit_enabled {
            Some(Head::read(&mut tx).await?)
        } else {
            None
        };
        let cutoff = now.minus(IDEMPOTENCY_WINDOW).to_rfc3339();
        let mut known_keys = known_keys(&mut tx, &requests, &cutoff).await?;
        let mut rows = Rows::default();

        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            let outcome = match request {
                Request::Publish(publish) => {
                    let committed = rows.publish(publish, &mut known_keys);
                    Outcome::Committed(committed)
                }
                Request::Audit(records) => {
                    rows.audit.extend(records);
                    Outcome::Done
                }
                Request::Lease(request) => {
                    rows.flush(&mut tx, &mut chain, &at).await?;
                    let leased = lease(&mut tx, &request, now).await?;
                    rows.audit
                        .extend(leased.iter().map(|row| egress(row, &request)));
                    Outcome::Leased(leased)
                }
                Request::Ack(request) => {
                    rows.flush(&mut tx, &mut chain, &at).await?;
                    let acked = ack(&mut tx, &request, &at).await?;
                    let count = acked.len() as u64;
                    rows.audit.extend(acked.into_iter().map(processed));
                    Outcome::Acked(count)
                }
                Request::PushLease(request) => {
                    rows.flush(&mut tx, &mut chain, &at).await?;
                    let leased = push_lease(&mut tx, &request, now).await?;
                    rows.audit
                        .extend(leased.iter().map(|row| egress(row, &request)));
                    Outcome::Leased(leased)
                }
                Request::PushSent(sent) => {
                    rows.flush(&mut tx, &mut chain, &at).await?;
                    let done = push_sent(&mut tx, &sent, &at).await?;
                    let changed = done.is_some();
                    rows.audit.extend(done.map(|row| pushed(row, &sent)));
                    Outcome::Changed(changed)
                }
                Request::PushFailed(failed) => {
                    rows.flush(&mut tx, &mut chain, &at).await?;
                    let row = push_failed(&mut tx, &failed, now).await?;
                    let changed = row.is_some();
                    if failed.retry_in.is_none() {
                        rows.audit.extend(row.map(|row| dead(row, &failed.error)));
                    }
                    Outcome::Changed(changed)
                }
                Request::Replay(ids) => {
                    rows.flush(&mut tx, &mut chain, &at).await?;
                    let replayed = replay(&mut tx, &ids, now).await?;
                    let replayed_ids = replayed.iter().map(|row| row.id.clone()).collect();
                    rows.audit.extend(replayed.into_iter().map(replayed_audit));
                    Outcome::Replayed(replayed_ids)
                }
                Request::Purge(older_than) => {
                    rows.flush(&mut tx, &mut chain, &at).await?;
                    let cutoff = now.minus(older_than).to_rfc3339();
                    let purged = purge_finished(&mut tx, &cutoff).await?;
                    if purged != Purged::default() {
                        rows.audit.push(purged_audit(purged, &cutoff));
                    }
                    Outcome::Purged(purged)
                }
                Request::PurgeAudit(older_than) => {
                    rows.flush(&mut tx, &mut chain, &at).await?;
                    let cutoff = now.minus(older_than).to_rfc3339();
                    let deleted = match chain.as_mut() {
                        Some(head) => purge_audit(&mut tx, head, &cutoff, &at).await?,
                        None => 0,
                    };
                    Outcome::AuditPurged(deleted)
                }
            };
            outcomes.push(outcome);
        }
        rows.flush(&mut tx, &mut chain, &at).await?;

        if purge {
            sqlx::query("DELETE FROM idempotency WHERE created_at <= ?")
                .bind(&cutoff)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;

        if purge {
            self.last_purge = Some(Instant::now());
        }
        Ok(outcomes)
    }

    /// After a failed batch: a connection that no longer answers is
    /// replaced; one that does keeps going (the failure was the disk, a
    /// lock or a constraint, and the next batch may succeed).
    async fn reconnect_if_broken(&mut self) {
        if self.conn.ping().await.is_ok() {
            return;
        }
        if let Ok(conn) = self.options.connect().await {
            self.conn = conn;
        }
    }
}

/// Rows buffered for multi-row inserts, and audit records not yet sealed.
#[derive(Default)]
struct Rows {
    deliveries: Vec<DeliveryRow>,
    idempotency: Vec<(String, String, String)>,
    audit: Vec<NewAudit>,
}

struct DeliveryRow {
    id: String,
    message_id: String,
    plugin: String,
    topic: String,
    publisher: String,
    payload: String,
    attributes: String,
    push: bool,
}

impl Rows {
    /// Buffers a publish, or answers with the earlier message id when its
    /// key is known (from the table or from earlier in this batch).
    fn publish(
        &mut self,
        publish: PreparedPublish,
        known_keys: &mut HashMap<(String, String), String>,
    ) -> Committed {
        if let Some(key_hash) = publish.key_hash {
            let key = (publish.publisher.clone(), key_hash);
            if let Some(earlier) = known_keys.get(&key) {
                return Committed::Duplicate {
                    message_id: earlier.clone(),
                };
            }
            known_keys.insert(key.clone(), publish.message_id.clone());
            self.idempotency
                .push((key.0, key.1, publish.message_id.clone()));
        }

        for delivery in publish.deliveries {
            self.deliveries.push(DeliveryRow {
                id: delivery.id,
                message_id: publish.message_id.clone(),
                plugin: delivery.plugin,
                topic: publish.topic.clone(),
                publisher: publish.publisher.clone(),
                payload: delivery.payload,
                attributes: delivery.attributes,
                push: delivery.push,
            });
        }
        self.audit.extend(publish.audit);
        Committed::Stored {
            message_id: publish.message_id,
        }
    }

    /// Writes what is buffered. Audit records are sealed here, in the
    /// order they were buffered; with audit disabled they are dropped.
    async fn flush(
        &mut self,
        conn: &mut SqliteConnection,
        chain: &mut Option<Head>,
        at: &str,
    ) -> Result<(), sqlx::Error> {
        for chunk in self.deliveries.chunks(ROWS_PER_INSERT) {
            insert_deliveries(conn, chunk, at).await?;
        }
        self.deliveries.clear();

        for chunk in self.idempotency.chunks(ROWS_PER_INSERT) {
            insert_keys(conn, chunk, at).await?;
        }
        self.idempotency.clear();

        let records = std::mem::take(&mut self.audit);
        if let Some(head) = chain {
            let sealed: Vec<AuditRow> = records
                .into_iter()
                .map(|record| head.seal(at, record))
                .collect();
            for chunk in sealed.chunks(ROWS_PER_INSERT) {
                insert_audit(conn, chunk).await?;
            }
        }
        Ok(())
    }
}

/// The message ids of the batch's idempotency keys that are already
/// stored and younger than the window.
async fn known_keys(
    conn: &mut SqliteConnection,
    requests: &[Request],
    cutoff: &str,
) -> Result<HashMap<(String, String), String>, sqlx::Error> {
    let keyed: Vec<(&str, &str)> = requests
        .iter()
        .filter_map(|request| match request {
            Request::Publish(publish) => publish
                .key_hash
                .as_deref()
                .map(|key| (publish.publisher.as_str(), key)),
            _ => None,
        })
        .collect();

    let mut known = HashMap::new();
    for chunk in keyed.chunks(ROWS_PER_INSERT) {
        // A join on the primary key: SQLite does not use an index for a
        // row value `IN (VALUES ...)`. The `+` keeps it off the
        // `created_at` index, which would scan a whole day of keys.
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT stored.publisher, stored.key_hash, stored.message_id FROM (",
        );
        query.push_values(chunk, |mut tuple, (publisher, key)| {
            tuple.push_bind(publisher.to_string());
            tuple.push_bind(key.to_string());
        });
        query.push(
            ") AS wanted JOIN idempotency AS stored \
             ON stored.publisher = wanted.column1 AND stored.key_hash = wanted.column2 \
             WHERE +stored.created_at > ",
        );
        query.push_bind(cutoff.to_string());
        let found: Vec<(String, String, String)> =
            query.build_query_as().fetch_all(&mut *conn).await?;
        for (publisher, key, message_id) in found {
            known.insert((publisher, key), message_id);
        }
    }
    Ok(known)
}

async fn insert_deliveries(
    conn: &mut SqliteConnection,
    rows: &[DeliveryRow],
    at: &str,
) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::<Sqlite>::new(
        "INSERT INTO deliveries (id, message_id, plugin, topic, publisher, payload, \
         attributes, push, published_at, next_attempt_at) ",
    );
    query.push_values(rows, |mut row, delivery| {
        row.push_bind(delivery.id.clone())
            .push_bind(delivery.message_id.clone())
            .push_bind(delivery.plugin.clone())
            .push_bind(delivery.topic.clone())
            .push_bind(delivery.publisher.clone())
            .push_bind(delivery.payload.clone())
            .push_bind(delivery.attributes.clone())
            .push_bind(delivery.push)
            .push_bind(at.to_string())
            .push_bind(delivery.push.then(|| at.to_string()));
    });
    query.build().execute(conn).await?;
    Ok(())
}

async fn insert_keys(
    conn: &mut SqliteConnection,
    rows: &[(String, String, String)],
    at: &str,
) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::<Sqlite>::new(
        "INSERT INTO idempotency (publisher, key_hash, message_id, created_at) ",
    );
    query.push_values(rows, |mut row, (publisher, key, message_id)| {
        row.push_bind(publisher.clone())
            .push_bind(key.clone())
            .push_bind(message_id.clone())
            .push_bind(at.to_string());
    });
    // A key older than the window is reused: it now names the new message.
    query.push(
        " ON CONFLICT (publisher, key_hash) DO UPDATE SET \
         message_id = excluded.message_id, created_at = excluded.created_at",
    );
    query.build().execute(conn).await?;
    Ok(())
}

async fn insert_audit(conn: &mut SqliteConnection, rows: &[AuditRow]) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::<Sqlite>::new(concat!(
        "INSERT INTO audit (",
        audit::audit_columns!(),
        ") "
    ));
    query.push_values(rows, |mut row, record| {
        row.push_bind(record.seq)
            .push_bind(record.at.clone())
            .push_bind(record.kind.clone())
            .push_bind(record.message_id.clone())
            .push_bind(record.topic.clone())
            .push_bind(record.publisher.clone())
            .push_bind(record.subscriber.clone())
            .push_bind(record.rules.clone())
            .push_bind(record.detail.clone())
            .push_bind(record.prev_hash.clone())
            .push_bind(record.hash.clone());
    });
    query.build().execute(conn).await?;
    Ok(())
}

/// Leases the oldest deliveries of a pull plugin that are pending or
/// whose lease ran out, in one UPDATE.
const PULL_LEASE: &str = "UPDATE deliveries \
     SET state = 'leased', attempt = attempt + 1, leased_until = ?1 \
     WHERE seq IN ( \
         SELECT seq FROM deliveries \
         WHERE plugin = ?2 AND push = 0 AND state IN ('pending', 'leased') \
           AND (state = 'pending' OR leased_until <= ?3) \
         ORDER BY seq LIMIT ?4) \
     RETURNING seq, id, message_id, topic, publisher, attributes, payload, attempt, \
               published_at";

/// Leases the oldest push deliveries of a plugin that are due: pending
/// with `next_attempt_at` passed, or leased (in flight) by a gateway that
/// stopped before it answered, once that lease ran out.
const PUSH_LEASE: &str = "UPDATE deliveries \
     SET state = 'leased', attempt = attempt + 1, leased_until = ?1 \
     WHERE seq IN ( \
         SELECT seq FROM deliveries \
         WHERE plugin = ?2 AND push = 1 AND state IN ('pending', 'leased') \
           AND ((state = 'pending' AND next_attempt_at <= ?3) \
                OR (state = 'leased' AND leased_until <= ?3)) \
         ORDER BY seq LIMIT ?4) \
     RETURNING seq, id, message_id, topic, publisher, attributes, payload, attempt, \
               published_at";

async fn lease(
    conn: &mut SqliteConnection,
    request: &LeaseRequest,
    now: Millis,
) -> Result<Vec<LeasedRow>, sqlx::Error> {
    lease_with(conn, PULL_LEASE, request, now).await
}

async fn push_lease(
    conn: &mut SqliteConnection,
    request: &LeaseRequest,
    now: Millis,
) -> Result<Vec<LeasedRow>, sqlx::Error> {
    lease_with(conn, PUSH_LEASE, request, now).await
}

/// Runs one of the lease statements above for `request`.
async fn lease_with(
    conn: &mut SqliteConnection,
    statement: &'static str,
    request: &LeaseRequest,
    now: Millis,
) -> Result<Vec<LeasedRow>, sqlx::Error> {
    let mut rows: Vec<LeasedRow> = sqlx::query_as(statement)
        .bind(now.plus(request.lease).to_rfc3339())
        .bind(&request.plugin)
        .bind(now.to_rfc3339())
        .bind(i64::from(request.max))
        .fetch_all(conn)
        .await?;

    // RETURNING does not promise an order.
    rows.sort_unstable_by_key(|row| row.seq);
    Ok(rows)
}

/// A delivery that an ack moved to `done`.
#[derive(sqlx::FromRow)]
struct AckedRow {
    seq: i64,
    id: String,
    message_id: String,
    topic: String,
    publisher: String,
    plugin: String,
}

async fn ack(
    conn: &mut SqliteConnection,
    request: &AckRequest,
    at: &str,
) -> Result<Vec<AckedRow>, sqlx::Error> {
    let mut acked = Vec::new();
    for chunk in request.delivery_ids.chunks(IDS_PER_STATEMENT) {
        // Found by id; the `+` keep SQLite from walking the plugin's whole
        // backlog in the `deliveries_open` index instead.
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE deliveries SET state = 'done', leased_until = NULL, finished_at = ",
        );
        query.push_bind(at.to_string());
        query.push(" WHERE id IN (");
        let mut ids = query.separated(", ");
        for id in chunk {
            ids.push_bind(id.clone());
        }
        query.push(") AND +plugin = ");
        query.push_bind(request.plugin.clone());
        query.push(
            " AND +state IN ('pending', 'leased') \
             RETURNING seq, id, message_id, topic, publisher, plugin",
        );
        let rows: Vec<AckedRow> = query.build_query_as().fetch_all(&mut *conn).await?;
        acked.extend(rows);
    }
    // RETURNING does not promise an order; records follow the outbox's.
    acked.sort_unstable_by_key(|row| row.seq);
    Ok(acked)
}

/// A delivery that a push attempt, or a replay, changed.
#[derive(sqlx::FromRow)]
struct ChangedRow {
    id: String,
    message_id: String,
    topic: String,
    publisher: String,
    plugin: String,
    attempt: i64,
}

async fn push_sent(
    conn: &mut SqliteConnection,
    sent: &PushSent,
    at: &str,
) -> Result<Option<ChangedRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE deliveries SET state = 'done', leased_until = NULL, finished_at = ?3 \
         WHERE id = ?1 AND +plugin = ?2 AND +state = 'leased' AND push = 1 \
         RETURNING id, message_id, topic, publisher, plugin, attempt",
    )
    .bind(&sent.delivery_id)
    .bind(&sent.plugin)
    .bind(at)
    .fetch_optional(conn)
    .await
}

async fn push_failed(
    conn: &mut SqliteConnection,
    failed: &PushFailed,
    now: Millis,
) -> Result<Option<ChangedRow>, sqlx::Error> {
    let (state, next) = match failed.retry_in {
        Some(delay) => ("pending", Some(now.plus(delay).to_rfc3339())),
        None => ("dead", None),
    };
    sqlx::query_as(
        "UPDATE deliveries \
         SET state = ?1, next_attempt_at = ?2, leased_until = NULL, \
             last_error = ?3, last_error_at = ?4, \
             finished_at = CASE WHEN ?1 = 'dead' THEN ?4 END \
         WHERE id = ?5 AND +plugin = ?6 AND +state = 'leased' AND push = 1 \
         RETURNING id, message_id, topic, publisher, plugin, attempt",
    )
    .bind(state)
    .bind(next)
    .bind(&failed.error)
    .bind(now.to_rfc3339())
    .bind(&failed.delivery_id)
    .bind(&failed.plugin)
    .fetch_optional(conn)
    .await
}

/// Dead deliveries back to pending, due now, attempts counted from zero.
async fn replay(
    conn: &mut SqliteConnection,
    ids: &[String],
    now: Millis,
) -> Result<Vec<ChangedRow>, sqlx::Error> {
    let mut replayed = Vec::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE deliveries SET state = 'pending', attempt = 0, leased_until = NULL, \
             finished_at = NULL, next_attempt_at = CASE WHEN push = 1 THEN ",
        );
        query.push_bind(now.to_rfc3339());
        query.push(" END WHERE id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id.clone());
        }
        query.push(
            ") AND +state = 'dead' \
             RETURNING id, message_id, topic, publisher, plugin, attempt",
        );
        let rows: Vec<ChangedRow> = query.build_query_as().fetch_all(&mut *conn).await?;
        replayed.extend(rows);
    }
    Ok(replayed)
}

/// Deletes the `done` and `dead` deliveries that finished before
/// `cutoff`. Open deliveries are never matched: the state is part of the
/// condition. The `state IN (...)` term repeats the partial index's
/// condition, so that SQLite can walk `deliveries_finished`.
async fn purge_finished(conn: &mut SqliteConnection, cutoff: &str) -> Result<Purged, sqlx::Error> {
    let mut purged = Purged::default();
    let statements = [
        (
            "DELETE FROM deliveries WHERE state IN ('done', 'dead') AND finished_at < ?1 \
             AND state = 'done'",
            &mut purged.done,
        ),
        (
            "DELETE FROM deliveries WHERE state IN ('done', 'dead') AND finished_at < ?1 \
             AND state = 'dead'",
            &mut purged.dead,
        ),
    ];
    for (sql, count) in statements {
        *count = sqlx::query(sql)
            .bind(cutoff)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(purged)
}

/// Deletes every audit record up to the last one written before
/// `cutoff`, after appending the `purged` checkpoint that names that
/// record's seq and hash, so that a walk of what is left can start there
/// (see `read::check_chain`). The checkpoint is never among the deleted.
/// The trigger refuses the DELETE unless `audit_purge` permits it, which
/// only this transaction does, and only until it ends.
async fn purge_audit(
    conn: &mut SqliteConnection,
    head: &mut Head,
    cutoff: &str,
    at: &str,
) -> Result<u64, sqlx::Error> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit WHERE at < ? ORDER BY seq DESC LIMIT 1")
            .bind(cutoff)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((upto, hash)) = last else {
        return Ok(0);
    };
    // Only the checkpoint itself would go: nothing worth a new record.
    let (oldest,): (i64,) = sqlx::query_as("SELECT MIN(seq) FROM audit")
        .fetch_one(&mut *conn)
        .await?;
    let (kind,): (String,) = sqlx::query_as("SELECT kind FROM audit WHERE seq = ?")
        .bind(upto)
        .fetch_one(&mut *conn)
        .await?;
    if oldest == upto && kind == AuditKind::Purged.as_str() {
        return Ok(0);
    }

    let checkpoint = NewAudit {
        kind: AuditKind::Purged,
        message_id: None,
        topic: None,
        publisher: None,
        subscriber: None,
        rules: Vec::new(),
        detail: audit::checkpoint_detail(upto, &hash),
    };
    insert_audit(conn, &[head.seal(at, checkpoint)]).await?;

    sqlx::query("INSERT INTO audit_purge (upto) VALUES (?)")
        .bind(upto)
        .execute(&mut *conn)
        .await?;
    let deleted = sqlx::query("DELETE FROM audit WHERE seq <= ?")
        .bind(upto)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM audit_purge")
        .execute(&mut *conn)
        .await?;
    Ok(deleted)
}

/// The record of a purge: counts and the cutoff, no ids and no values.
fn purged_audit(purged: Purged, cutoff: &str) -> NewAudit {
    NewAudit {
        kind: AuditKind::Purged,
        message_id: None,
        topic: None,
        publisher: None,
        subscriber: None,
        rules: Vec::new(),
        detail: format!(
            "retention: deleted {} delivered and {} dead deliveries finished before {cutoff}",
            purged.done, purged.dead
        ),
    }
}

fn pushed(row: ChangedRow, sent: &PushSent) -> NewAudit {
    NewAudit {
        kind: AuditKind::Processed,
        message_id: Some(row.message_id),
        topic: Some(row.topic),
        publisher: Some(row.publisher),
        subscriber: Some(row.plugin),
        rules: Vec::new(),
        detail: format!(
            "delivery `{}` acknowledged by the endpoint ({}), attempt {}",
            row.id, sent.detail, row.attempt
        ),
    }
}

fn dead(row: ChangedRow, error: &str) -> NewAudit {
    NewAudit {
        kind: AuditKind::Dead,
        message_id: Some(row.message_id),
        topic: Some(row.topic),
        publisher: Some(row.publisher),
        subscriber: Some(row.plugin),
        rules: Vec::new(),
        detail: format!(
            "delivery `{}` dead after {} attempts; last error: {error}",
            row.id, row.attempt
        ),
    }
}

fn replayed_audit(row: ChangedRow) -> NewAudit {
    NewAudit {
        kind: AuditKind::Replayed,
        message_id: Some(row.message_id),
        topic: Some(row.topic),
        publisher: Some(row.publisher),
        subscriber: Some(row.plugin),
        rules: Vec::new(),
        detail: format!("dead delivery `{}` replayed: pending again", row.id),
    }
}

fn egress(row: &LeasedRow, request: &LeaseRequest) -> NewAudit {
    NewAudit {
        kind: AuditKind::Egress,
        message_id: Some(row.message_id.clone()),
        topic: Some(row.topic.clone()),
        publisher: Some(row.publisher.clone()),
        subscriber: Some(request.plugin.clone()),
        rules: Vec::new(),
        detail: format!("delivery `{}` leased, attempt {}", row.id, row.attempt),
    }
}

fn processed(row: AckedRow) -> NewAudit {
    NewAudit {
        kind: AuditKind::Processed,
        message_id: Some(row.message_id),
        topic: Some(row.topic),
        publisher: Some(row.publisher),
        subscriber: Some(row.plugin),
        rules: Vec::new(),
        detail: format!("delivery `{}` acknowledged", row.id),
    }
}

/// 128 random bits in hex.
fn random_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| StoreError::Unavailable("no random numbers for an id".into()))?;
    Ok(audit::hex(&bytes))
}

/// Idempotency keys are stored hashed: a publisher may have put an
/// identifier of a patient in one.
fn key_hash(key: &str) -> String {
    audit::hex(&Sha256::digest(key.as_bytes()))
}
