//! Durable storage in one SQLite file: the outbox of deliveries, the
//! idempotency keys and the audit hash chain. The only module that speaks
//! SQL.
//!
//! Every write goes through one writer task that owns the write
//! connection. It takes whatever jobs are queued (up to [`MAX_BATCH`]),
//! writes them in one transaction with multi-row inserts, commits with
//! fsync (WAL, `synchronous=FULL`) and only then answers them all, so one
//! fsync serves many publishes. A batch is all or nothing: when its commit
//! fails, every job in it gets [`StoreError::Unavailable`]. Reads go
//! through a small pool of read-only connections and never wait for the
//! writer.
//!
//! What rests here: each recipient's transformed payload and attributes
//! (never the published original), and audit records made of names, ids,
//! rule names and value-free detail text. Errors never carry payloads.

mod audit;
mod read;
mod time;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::ConnectOptions as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use writer::{Job, Outcome, Request};

/// The most jobs the writer puts in one transaction.
pub const MAX_BATCH: usize = 500;

/// How long an `Idempotency-Key` keeps answering with its message id.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a statement waits for a lock held by another connection
/// before the store reports itself unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Jobs that may wait for the writer; senders wait beyond that.
const QUEUE: usize = 4 * MAX_BATCH;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for a store opened read-only.
    jobs: Option<mpsc::Sender<Job>>,
    reads: SqlitePool,
    audit_enabled: bool,
    counters: Arc<writer::Counters>,
}

/// How a store behaves.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Persist audit records; when false, nothing is appended to the audit
    /// table (`messaging.audit_enabled`).
    pub audit_enabled: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            audit_enabled: true,
        }
    }
}

/// Why a store operation failed. Messages name files, ids and sequence
/// numbers, never payloads.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be written or read right now: I/O error, disk
    /// full, locked by another process, or the store is closed. Nothing of
    /// the failed operation was stored. The gateway answers 503.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database file could not be opened, created or migrated.
    #[error("cannot open the database `{path}`: {reason}")]
    Open { path: PathBuf, reason: String },
    /// An audit row that the store cannot read back: written by someone
    /// other than the store.
    #[error("the audit record at seq {seq} is unreadable")]
    CorruptAudit { seq: i64 },
    /// A delivery row whose payload or attributes are not JSON.
    #[error("the stored delivery `{delivery_id}` is unreadable")]
    CorruptDelivery { delivery_id: String },
}

impl StoreError {
    /// Whether the gateway should answer 503 (storage unavailable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    fn closed() -> StoreError {
        StoreError::Unavailable("the store is closed".into())
    }
}

impl From<sqlx::Error> for StoreError {
    /// sqlx errors name SQL, columns and codes; bound values never appear
    /// in them.
    fn from(error: sqlx::Error) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

/// An accepted event to store: one delivery per recipient, plus its audit
/// records (typically `ingress`, and `blocked` or `filter_error` ones).
pub struct NewPublish {
    pub publisher: String,
    pub topic: String,
    pub idempotency_key: Option<String>,
    pub deliveries: Vec<NewDelivery>,
    /// Records whose `message_id` is `None` get the new message id.
    pub audit: Vec<NewAudit>,
}

/// One recipient's copy of an event.
pub struct NewDelivery {
    pub plugin: String,
    /// The recipient's payload, already transformed by the rules. Never
    /// the published original.
    pub payload: Value,
    pub attributes: Map<String, Value>,
    /// Delivered by webhook (the plugin has an `endpoint`), else pulled.
    pub push: bool,
}

/// The result of [`Store::commit_publish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Stored now, under a new message id.
    Stored { message_id: String },
    /// The idempotency key was seen from this publisher within
    /// [`IDEMPOTENCY_WINDOW`]: nothing was stored; the earlier id.
    Duplicate { message_id: String },
}

impl Committed {
    pub fn message_id(&self) -> &str {
        match self {
            Committed::Stored { message_id } | Committed::Duplicate { message_id } => message_id,
        }
    }
}

/// An audit record to append. The store adds `seq`, `at` and the hashes.
///
/// Every field is a name, an id, a rule name or text written by phigate
/// itself. `detail` in particular must never contain a payload or
/// attribute value: write "action `mask` cannot apply to an object at
/// `payload.name`", not the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAudit {
    pub kind: AuditKind,
    pub message_id: Option<String>,
    pub topic: Option<String>,
    pub publisher: Option<String>,
    pub subscriber: Option<String>,
    /// Names of the rules involved.
    pub rules: Vec<String>,
    pub detail: String,
}

/// What an audit record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// An event was accepted.
    Ingress,
    /// An event was refused (contract, model, size, ...).
    Rejected,
    /// A delivery was blocked by a rule or a filter error.
    Blocked,
    /// A delivery was handed to its recipient (leased or pushed).
    Egress,
    /// The recipient acknowledged a delivery.
    Processed,
    /// A delivery ran out of attempts.
    Dead,
    /// An action could not be applied (under either filter mode).
    FilterError,
    /// A rule set was loaded or reloaded.
    RulesLoaded,
    /// An operator sent a dead delivery back to pending
    /// (`phigate deliveries replay`).
    Replayed,
    /// Retention deleted finished deliveries (counts only).
    Purged,
}

impl AuditKind {
    pub const ALL: [AuditKind; 10] = [
        AuditKind::Ingress,
        AuditKind::Rejected,
        AuditKind::Blocked,
        AuditKind::Egress,
        AuditKind::Processed,
        AuditKind::Dead,
        AuditKind::FilterError,
        AuditKind::RulesLoaded,
        AuditKind::Replayed,
        AuditKind::Purged,
    ];

    /// The name stored and shown: `ingress`, ..., `filter_error`,
    /// `rules_loaded`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Ingress => "ingress",
            AuditKind::Rejected => "rejected",
            AuditKind::Blocked => "blocked",
            AuditKind::Egress => "egress",
            AuditKind::Processed => "processed",
            AuditKind::Dead => "dead",
            AuditKind::FilterError => "filter_error",
            AuditKind::RulesLoaded => "rules_loaded",
            AuditKind::Replayed => "replayed",
            AuditKind::Purged => "purged",
        }
    }

    /// The kind named by [`AuditKind::as_str`].
    pub fn from_name(name: &str) -> Option<AuditKind> {
        AuditKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored audit record, as `GET /audit` and `audit export` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    /// RFC 3339 UTC with milliseconds.
    pub at: String,
    pub kind: String,
    pub message_id: Option<String>,
    pub topic: Option<String>,
    pub publisher: Option<String>,
    pub subscriber: Option<String>,
    pub rules: Vec<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A delivery handed to a pull subscriber, as the API shows it.
#[derive(Clone, PartialEq, Serialize)]
pub struct Leased {
    pub delivery_id: String,
    pub message_id: String,
    pub topic: String,
    pub attributes: Map<String, Value>,
    pub payload: Value,
    /// 1 on the first lease, one more on each lease after an expiry.
    pub attempt: u32,
    /// RFC 3339 UTC with milliseconds: when the event was accepted.
    pub published_at: String,
}

/// A plugin's queue, as `GET .../health` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Health {
    /// Waiting to be handed out: never leased, or the lease expired.
    pub pending: u64,
    /// Handed out, lease still running.
    pub leased: u64,
    pub dead: u64,
    /// Seconds since the oldest pending delivery was accepted.
    pub oldest_pending_age_s: Option<f64>,
    /// The most recent delivery error recorded for the plugin.
    pub last_error: Option<String>,
}

/// The deliveries of one plugin by state, as the `phigate_queue_depth`
/// gauge shows them. A lease that ran out counts as pending, as in
/// [`Health`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    pub plugin: String,
    pub pending: u64,
    pub leased: u64,
    pub dead: u64,
}

/// What a retention purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Deliveries acknowledged (pulled and acked, or pushed and answered
    /// 2xx).
    pub done: u64,
    pub dead: u64,
}

/// A delivery that ran out of attempts, as `phigate deliveries dead`
/// lists it: ids and names, never the payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeadDelivery {
    pub id: String,
    pub message_id: String,
    pub plugin: String,
    pub topic: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// RFC 3339 UTC with milliseconds, when the last error was recorded.
    pub last_error_at: Option<String>,
}

/// How a push attempt ended, as the delivery worker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The endpoint answered 2xx: done, audited `processed`. The text says
    /// how (`HTTP 200`).
    Acknowledged(String),
    /// Failed; tried again after the delay. The text is value-free.
    Retry { error: String, after: Duration },
    /// Failed for the last time: dead, audited `dead`.
    Dead { error: String },
}

/// What the writer has done since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Jobs (publishes, audit appends, leases, acks) those carried.
    pub jobs: u64,
    /// Batches whose transaction failed; their jobs were answered
    /// `Unavailable`.
    pub failed_batches: u64,
}

/// The result of walking the audit chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// Records checked and found intact, from the first one on.
    pub intact: u64,
    /// The first record whose hash or `prev_hash` does not match.
    pub broken_at: Option<i64>,
}

impl Store {
    /// Opens or creates the SQLite file (and its folder, 0700 on Unix; the
    /// file is 0600): WAL, `synchronous=FULL`, foreign keys, migrations,
    /// and the triggers that make audit rows refuse UPDATE and DELETE.
    /// Starts the writer task on the current tokio runtime.
    pub async fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        prepare_file(path).map_err(|error| open_error(error.to_string()))?;

        let write_options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .statement_cache_capacity(256);
        let mut conn = write_options
            .connect()
            .await
            .map_err(|error| open_error(error.to_string()))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|error| open_error(format!("migration failed: {error}")))?;
        let reads = read_pool(path)
            .await
            .map_err(|error| open_error(error.to_string()))?;

        let counters = Arc::new(writer::Counters::default());
        let (jobs, queue) = mpsc::channel(QUEUE);
        let writer = writer::Writer::new(conn, write_options, options.audit_enabled, &counters);
        tokio::spawn(writer.run(queue));

        Ok(Store {
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                reads,
                audit_enabled: options.audit_enabled,
                counters,
            }),
        })
    }

    /// Opens an existing database for reading only, as `audit verify` and
    /// `audit export` do: no migration, no writer; writes answer
    /// `Unavailable`. Safe beside a running gateway.
    pub async fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let reads = read_pool(path).await.map_err(|error| StoreError::Open {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        Ok(Store {
            inner: Arc::new(Inner {
                jobs: None,
                reads,
                audit_enabled: true,
                counters: Arc::default(),
            }),
        })
    }

    /// Stores an accepted event: one row per delivery (the recipient's
    /// transformed payload and attributes) and the given audit records,
    /// in one transaction committed with fsync before this returns.
    /// Concurrent calls share transactions. With an idempotency key seen
    /// from the same publisher within [`IDEMPOTENCY_WINDOW`], stores
    /// nothing and returns the earlier message id.
    pub async fn commit_publish(&self, publish: NewPublish) -> Result<Committed, StoreError> {
        let prepared = writer::PreparedPublish::new(publish, self.inner.audit_enabled)?;
        match self.submit(Request::Publish(prepared)).await? {
            Outcome::Committed(committed) => Ok(committed),
            _ => Err(mismatched()),
        }
    }

    /// Appends audit records (`rejected`, `rules_loaded`, ...) through the
    /// writer. Does nothing when audit is disabled.
    pub async fn append_audit(&self, records: Vec<NewAudit>) -> Result<(), StoreError> {
        if !self.inner.audit_enabled || records.is_empty() {
            return Ok(());
        }
        match self.submit(Request::Audit(records)).await? {
            Outcome::Done => Ok(()),
            _ => Err(mismatched()),
        }
    }

    /// Leases up to `max` deliveries of a pull plugin: pending ones and
    /// those whose lease expired, oldest first. Each gets `attempt` + 1, a
    /// lease until now + `lease`, and an `egress` audit record.
    ///
    /// An empty queue is seen on the read pool, without a write, so
    /// polling subscribers cost the writer nothing while idle.
    pub async fn lease(
        &self,
        plugin: &str,
        max: u32,
        lease: Duration,
    ) -> Result<Vec<Leased>, StoreError> {
        if max == 0 || !read::has_leasable(&self.inner.reads, plugin).await? {
            return Ok(Vec::new());
        }
        let request = writer::LeaseRequest {
            plugin: plugin.to_string(),
            max,
            lease,
        };
        let rows = match self.submit(Request::Lease(request)).await? {
            Outcome::Leased(rows) => rows,
            _ => return Err(mismatched()),
        };
        rows.into_iter()
            .map(writer::LeasedRow::into_leased)
            .collect()
    }

    /// Acknowledges deliveries of `plugin`: marks them done and appends a
    /// `processed` record each. Ids of other plugins, unknown ids and ids
    /// already acknowledged (or dead) are ignored. Returns how many this
    /// call acknowledged.
    pub async fn ack(&self, plugin: &str, delivery_ids: &[String]) -> Result<u64, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(0);
        }
        let request = writer::AckRequest {
            plugin: plugin.to_string(),
            delivery_ids: delivery_ids.to_vec(),
        };
        match self.submit(Request::Ack(request)).await? {
            Outcome::Acked(count) => Ok(count),
            _ => Err(mismatched()),
        }
    }

    /// Leases up to `max` push deliveries of `plugin` that are due (see
    /// [`Store::next_push_due`]), oldest first, each with `attempt` + 1, a
    /// lease of `in_flight` (after which a delivery whose attempt never
    /// reported back is due again: a gateway that stopped mid-request),
    /// and an `egress` record.
    pub async fn lease_push(
        &self,
        plugin: &str,
        max: u32,
        in_flight: Duration,
    ) -> Result<Vec<Leased>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let request = writer::LeaseRequest {
            plugin: plugin.to_string(),
            max,
            lease: in_flight,
        };
        let rows = match self.submit(Request::PushLease(request)).await? {
            Outcome::Leased(rows) => rows,
            _ => return Err(mismatched()),
        };
        rows.into_iter()
            .map(writer::LeasedRow::into_leased)
            .collect()
    }

    /// Records how a push attempt of a leased delivery ended. Returns
    /// false when the delivery was no longer leased (replayed or finished
    /// meanwhile), in which case nothing changed.
    pub async fn record_push(
        &self,
        plugin: &str,
        delivery_id: &str,
        outcome: PushOutcome,
    ) -> Result<bool, StoreError> {
        let request = match outcome {
            PushOutcome::Acknowledged(detail) => Request::PushSent(writer::PushSent {
                plugin: plugin.to_string(),
                delivery_id: delivery_id.to_string(),
                detail,
            }),
            PushOutcome::Retry { error, after } => Request::PushFailed(writer::PushFailed {
                plugin: plugin.to_string(),
                delivery_id: delivery_id.to_string(),
                error,
                retry_in: Some(after),
            }),
            PushOutcome::Dead { error } => Request::PushFailed(writer::PushFailed {
                plugin: plugin.to_string(),
                delivery_id: delivery_id.to_string(),
                error,
                retry_in: None,
            }),
        };
        match self.submit(request).await? {
            Outcome::Changed(changed) => Ok(changed),
            _ => Err(mismatched()),
        }
    }

    /// Seconds until the next push delivery of `plugin` is due (zero or
    /// less: due now), or `None` when it has none open. Read-only.
    pub async fn next_push_due(&self, plugin: &str) -> Result<Option<f64>, StoreError> {
        read::next_push_due(&self.inner.reads, plugin).await
    }

    /// Dead deliveries, of one plugin or all, oldest first.
    pub async fn dead_deliveries(
        &self,
        plugin: Option<&str>,
    ) -> Result<Vec<DeadDelivery>, StoreError> {
        read::dead_deliveries(&self.inner.reads, plugin).await
    }

    /// Sends dead deliveries back to pending (attempt 0, due now), each
    /// with a `replayed` record. Ids that are unknown or not dead are
    /// ignored; returns the ids replayed.
    pub async fn replay(&self, delivery_ids: &[String]) -> Result<Vec<String>, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.submit(Request::Replay(delivery_ids.to_vec())).await? {
            Outcome::Replayed(ids) => Ok(ids),
            _ => Err(mismatched()),
        }
    }

    /// Pending, leased and dead deliveries of every plugin that has any,
    /// by plugin name. Read-only.
    pub async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        read::queue_depths(&self.inner.reads).await
    }

    /// Deletes the deliveries that finished (`done` or `dead`) more than
    /// `older_than` ago. Pending and leased deliveries are never touched;
    /// a replayed one counts from its new finish. When anything was deleted, a
    /// `purged` audit record with the counts is appended in the same
    /// transaction.
    pub async fn purge_deliveries(&self, older_than: Duration) -> Result<Purged, StoreError> {
        match self.submit(Request::Purge(older_than)).await? {
            Outcome::Purged(purged) => Ok(purged),
            _ => Err(mismatched()),
        }
    }

    /// Deletes the audit records written more than `older_than` ago,
    /// oldest first, after appending a `purged` checkpoint that names the
    /// seq and hash of the last one deleted; `verify` starts the walk from
    /// there. Returns how many were deleted. Does nothing when audit is
    /// disabled.
    pub async fn purge_audit(&self, older_than: Duration) -> Result<u64, StoreError> {
        match self.submit(Request::PurgeAudit(older_than)).await? {
            Outcome::AuditPurged(deleted) => Ok(deleted),
            _ => Err(mismatched()),
        }
    }

    /// The state of a plugin's queue. An unknown plugin has an empty one.
    pub async fn health(&self, plugin: &str) -> Result<Health, StoreError> {
        read::health(&self.inner.reads, plugin).await
    }

    /// Up to `limit` audit records with `seq` greater than `after`, in
    /// `seq` order.
    pub async fn audit_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        read::audit_after(&self.inner.reads, after, limit).await
    }

    /// Every audit record of a message, in `seq` order.
    pub async fn audit_for_message(
        &self,
        message_id: &str,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        read::audit_for_message(&self.inner.reads, message_id).await
    }

    /// Walks the chain: `None` when intact, else the `seq` of the first
    /// record whose hash or `prev_hash` does not match.
    pub async fn verify_audit(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.check_audit_chain().await?.broken_at)
    }

    /// Walks the chain, counting the intact records.
    pub async fn check_audit_chain(&self) -> Result<ChainReport, StoreError> {
        read::check_chain(&self.inner.reads).await
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> StoreStats {
        self.inner.counters.snapshot()
    }

    /// Finishes the queued jobs, closes the read pool and the write
    /// connection. Later calls answer `Unavailable`. Used on SIGTERM.
    ///
    /// The write connection closes last, so that it can checkpoint the
    /// WAL into the database file and remove it.
    pub async fn close(&self) {
        self.inner.reads.close().await;
        if let Some(jobs) = &self.inner.jobs {
            let (done, closed) = oneshot::channel();
            if jobs.send(Job::Close(done)).await.is_ok() {
                let _ = closed.await;
            }
        }
    }

    async fn submit(&self, request: Request) -> Result<Outcome, StoreError> {
        let jobs = self
            .inner
            .jobs
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the store is open read-only".into()))?;
        let (reply, answer) = oneshot::channel();
        jobs.send(Job::Work(request, reply))
            .await
            .map_err(|_| StoreError::closed())?;
        answer.await.map_err(|_| StoreError::closed())?
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("read_only", &self.inner.jobs.is_none())
            .field("audit_enabled", &self.inner.audit_enabled)
            .finish_non_exhaustive()
    }
}

// Payload-bearing types show names and ids only, so that a `{:?}` in a
// log line cannot leak PHI.

impl std::fmt::Debug for NewPublish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPublish")
            .field("publisher", &self.publisher)
            .field("topic", &self.topic)
            .field(
                "idempotency_key",
                &self.idempotency_key.as_ref().map(|_| ".."),
            )
            .field("deliveries", &self.deliveries)
            .field("audit", &self.audit)
            .finish()
    }
}

impl std::fmt::Debug for NewDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDelivery")
            .field("plugin", &self.plugin)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased")
            .field("delivery_id", &self.delivery_id)
            .field("message_id", &self.message_id)
            .field("topic", &self.topic)
            .field("attempt", &self.attempt)
            .field("published_at", &self.published_at)
            .finish_non_exhaustive()
    }
}

/// The writer answered a job with the outcome of another kind of job.
/// Cannot happen: each request has one outcome kind.
fn mismatched() -> StoreError {
    StoreError::Unavailable("internal error: the writer answered another kind of job".into())
}

/// Creates the folder (0700) and an empty file (0600) before SQLite does,
/// so that the database, and the WAL and shared-memory files that SQLite
/// creates with the database's permissions, are private to the owner.
fn prepare_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent)?;
    }

    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    file.open(path).map(drop)
}

/// Read-only connections: they cannot write even by mistake, and under
/// WAL they read the last committed state without blocking the writer.
async fn read_pool(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(0)
        .connect_with(options)
        .await
}
