-- The outbox, the idempotency keys and the audit chain.
--
-- Every time is an RFC 3339 UTC string of fixed width with milliseconds
-- (`2026-12-03T17:45:00.123Z`), so that text order is time order and
-- comparisons such as `leased_until <= ?` work on the strings.
-- Tables are STRICT: a value of the wrong type is refused, not coerced.

-- One row per recipient of an accepted event. `payload` and `attributes`
-- are what that recipient may see (already transformed by the rules),
-- never the published original.
CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    message_id      TEXT    NOT NULL,
    plugin          TEXT    NOT NULL,
    topic           TEXT    NOT NULL,
    publisher       TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    attributes      TEXT    NOT NULL,
    push            INTEGER NOT NULL CHECK (push IN (0, 1)),
    state           TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'leased', 'done', 'dead')),
    attempt         INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    leased_until    TEXT,
    published_at    TEXT    NOT NULL,
    next_attempt_at TEXT,
    last_error      TEXT,
    last_error_at   TEXT
) STRICT;

-- What a pull or a push worker may still hand out, oldest first. Partial,
-- so acknowledged deliveries leave the index.
CREATE INDEX deliveries_open ON deliveries (plugin, seq)
    WHERE state IN ('pending', 'leased');
CREATE INDEX deliveries_dead ON deliveries (plugin)
    WHERE state = 'dead';
CREATE INDEX deliveries_errors ON deliveries (plugin, last_error_at)
    WHERE last_error IS NOT NULL;

-- The message id first given to an `Idempotency-Key` of a publisher. The
-- key is stored as its SHA-256, in case a publisher puts an identifier of
-- a patient in it.
CREATE TABLE idempotency (
    publisher  TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (publisher, key_hash)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created_at);

-- The audit chain: each record's `hash` covers its fields and the hash of
-- the record before it (`prev_hash`). Records carry names, ids, rule names
-- and value-free detail text, never a payload value.
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY CHECK (seq > 0),
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message_id TEXT,
    topic      TEXT,
    publisher  TEXT,
    subscriber TEXT,
    rules      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
) STRICT;
CREATE INDEX audit_message ON audit (message_id) WHERE message_id IS NOT NULL;

CREATE TRIGGER audit_refuse_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;

CREATE TRIGGER audit_refuse_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
