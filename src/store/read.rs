//! Reads, on the pool of read-only connections. Under WAL they see the
//! last committed state and never wait for the writer.

use std::collections::BTreeMap;

use sqlx::SqlitePool;

use super::audit::{AuditRow, Walk, audit_columns, checkpoint_detail};
use super::time::Millis;
use super::{AuditRecord, ChainReport, DeadDelivery, Health, QueueDepth, StoreError};

/// Audit rows read per query when walking the chain.
const PAGE: i64 = 1_000;

pub(crate) async fn health(reads: &SqlitePool, plugin: &str) -> Result<Health, StoreError> {
    let now = Millis::now().to_rfc3339();

    // Served by the partial index on open deliveries: acknowledged rows
    // are not scanned. A lease that ran out counts as pending again.
    let (pending, leased, oldest_age): (i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT \
             COALESCE(SUM(state = 'pending' OR leased_until <= ?1), 0), \
             COALESCE(SUM(state = 'leased' AND leased_until > ?1), 0), \
             (julianday(?1) - julianday(MIN(CASE WHEN state = 'pending' \
                 OR leased_until <= ?1 THEN published_at END))) * 86400.0 \
         FROM deliveries \
         WHERE plugin = ?2 AND state IN ('pending', 'leased')",
    )
    .bind(&now)
    .bind(plugin)
    .fetch_one(reads)
    .await?;
    let (dead,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM deliveries WHERE plugin = ? AND state = 'dead'")
            .bind(plugin)
            .fetch_one(reads)
            .await?;
    let last_error: Option<(String,)> = sqlx::query_as(
        "SELECT last_error FROM deliveries \
         WHERE plugin = ? AND last_error IS NOT NULL \
         ORDER BY last_error_at DESC LIMIT 1",
    )
    .bind(plugin)
    .fetch_optional(reads)
    .await?;

    Ok(Health {
        pending: count(pending),
        leased: count(leased),
        dead: count(dead),
        // Millisecond precision; never negative, even if the clock stepped
        // back since the delivery was stored.
        oldest_pending_age_s: oldest_age.map(|age| (age.max(0.0) * 1000.0).round() / 1000.0),
        last_error: last_error.map(|(error,)| error),
    })
}

/// Open and dead deliveries by plugin, counted as [`health`] counts them.
/// Two queries, each on a partial index (`deliveries_open`,
/// `deliveries_dead`), so acknowledged rows are never read.
pub(crate) async fn queue_depths(reads: &SqlitePool) -> Result<Vec<QueueDepth>, StoreError> {
    let now = Millis::now().to_rfc3339();
    let open: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT plugin, \
             COALESCE(SUM(state = 'pending' OR leased_until <= ?1), 0), \
             COALESCE(SUM(state = 'leased' AND leased_until > ?1), 0) \
         FROM deliveries WHERE state IN ('pending', 'leased') GROUP BY plugin",
    )
    .bind(&now)
    .fetch_all(reads)
    .await?;
    let dead: Vec<(String, i64)> = sqlx::query_as(
        "SELECT plugin, COUNT(*) FROM deliveries WHERE state = 'dead' GROUP BY plugin",
    )
    .fetch_all(reads)
    .await?;

    let empty = |plugin: &str| QueueDepth {
        plugin: plugin.to_string(),
        pending: 0,
        leased: 0,
        dead: 0,
    };
    let mut depths: BTreeMap<String, QueueDepth> = BTreeMap::new();
    for (plugin, pending, leased) in open {
        let depth = depths.entry(plugin).or_insert_with_key(|p| empty(p));
        depth.pending = count(pending);
        depth.leased = count(leased);
    }
    for (plugin, dead) in dead {
        depths.entry(plugin).or_insert_with_key(|p| empty(p)).dead = count(dead);
    }
    Ok(depths.into_values().collect())
}

/// Whether `plugin` has a delivery that a lease would hand out now. Lets
/// an idle long-poll skip the writer.
pub(crate) async fn has_leasable(reads: &SqlitePool, plugin: &str) -> Result<bool, StoreError> {
    let now = Millis::now().to_rfc3339();
    let found: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM deliveries \
         WHERE plugin = ?1 AND push = 0 AND state IN ('pending', 'leased') \
           AND (state = 'pending' OR leased_until <= ?2) \
         LIMIT 1",
    )
    .bind(plugin)
    .bind(now)
    .fetch_optional(reads)
    .await?;
    Ok(found.is_some())
}

/// Seconds until the first open push delivery of `plugin` is due: a
/// pending one at its `next_attempt_at`, a leased one when its lease ends.
pub(crate) async fn next_push_due(
    reads: &SqlitePool,
    plugin: &str,
) -> Result<Option<f64>, StoreError> {
    let now = Millis::now().to_rfc3339();
    let (due,): (Option<f64>,) = sqlx::query_as(
        "SELECT (julianday(MIN(CASE WHEN state = 'pending' THEN next_attempt_at \
                 ELSE leased_until END)) - julianday(?1)) * 86400.0 \
         FROM deliveries \
         WHERE plugin = ?2 AND push = 1 AND state IN ('pending', 'leased')",
    )
    .bind(now)
    .bind(plugin)
    .fetch_one(reads)
    .await?;
    Ok(due)
}

pub(crate) async fn dead_deliveries(
    reads: &SqlitePool,
    plugin: Option<&str>,
) -> Result<Vec<DeadDelivery>, StoreError> {
    let rows = match plugin {
        Some(plugin) => {
            sqlx::query_as(
                "SELECT id, message_id, plugin, topic, attempt AS attempts, last_error, \
                 last_error_at FROM deliveries WHERE plugin = ? AND state = 'dead' ORDER BY seq",
            )
            .bind(plugin)
            .fetch_all(reads)
            .await?
        }
        None => {
            sqlx::query_as(
                "SELECT id, message_id, plugin, topic, attempt AS attempts, last_error, \
                 last_error_at FROM deliveries WHERE state = 'dead' ORDER BY seq",
            )
            .fetch_all(reads)
            .await?
        }
    };
    Ok(rows)
}

pub(crate) async fn audit_after(
    reads: &SqlitePool,
    after: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    page(reads, after, i64::from(limit))
        .await?
        .into_iter()
        .map(AuditRow::into_record)
        .collect()
}

pub(crate) async fn audit_for_message(
    reads: &SqlitePool,
    message_id: &str,
) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit WHERE message_id = ? ORDER BY seq"
    );
    let rows: Vec<AuditRow> = sqlx::query_as(sql)
        .bind(message_id)
        .fetch_all(reads)
        .await?;
    rows.into_iter().map(AuditRow::into_record).collect()
}

/// Walks the whole chain a page at a time. Records appended during the
/// walk are checked too when they land on a later page.
///
/// When retention deleted the oldest records, the first one left must
/// link to the hash that a `purged` checkpoint later in the chain names,
/// with the seq just before its own; otherwise it is reported broken.
pub(crate) async fn check_chain(reads: &SqlitePool) -> Result<ChainReport, StoreError> {
    let first = page(reads, 0, 1).await?;
    let mut walk = match first.first() {
        Some(row) if row.seq != 1 => {
            let detail = checkpoint_detail(row.seq - 1, &row.prev_hash);
            let checkpoint: Option<(i64,)> = sqlx::query_as(
                "SELECT seq FROM audit WHERE kind = 'purged' AND detail = ? AND seq >= ? LIMIT 1",
            )
            .bind(&detail)
            .bind(row.seq)
            .fetch_optional(reads)
            .await?;
            if checkpoint.is_none() {
                return Ok(ChainReport {
                    intact: 0,
                    broken_at: Some(row.seq),
                });
            }
            Walk::after(row.prev_hash.clone())
        }
        _ => Walk::new(),
    };
    let mut after = 0;
    loop {
        let rows = page(reads, after, PAGE).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.seq;
        if let Some(broken) = rows.iter().find(|row| !walk.step(row)) {
            return Ok(ChainReport {
                intact: walk.records(),
                broken_at: Some(broken.seq),
            });
        }
    }
    Ok(ChainReport {
        intact: walk.records(),
        broken_at: None,
    })
}

async fn page(reads: &SqlitePool, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
    let sql = concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"
    );
    let rows = sqlx::query_as(sql)
        .bind(after)
        .bind(limit)
        .fetch_all(reads)
        .await?;
    Ok(rows)
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
