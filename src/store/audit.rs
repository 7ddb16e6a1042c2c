//! The audit hash chain: sealing new records and checking stored ones.
//!
//! A record's `hash` is the hex SHA-256 of a JSON array holding a format
//! tag and every other field of the record, `prev_hash` included, in a
//! fixed order:
//!
//! ```text
//! ["phigate.audit.v1", seq, at, kind, message_id, topic, publisher,
//!  subscriber, [rules...], detail, prev_hash]
//! ```
//!
//! JSON keeps this unambiguous: strings are quoted and escaped, `null` is
//! not `""`, and the list of rules is delimited. The text is compact (no
//! spaces) with non-ASCII characters as they are, which Python's
//! `json.dumps(fields, separators=(",", ":"), ensure_ascii=False)` also
//! writes: an auditor can recompute every hash from `audit export` without
//! phigate. The first record's `prev_hash` is 64 zeros.
//!
//! What a walk finds: changing, inserting, removing or reordering a record
//! breaks the chain at that record or the one after it. What it cannot
//! find, since no secret goes into the hash: records removed from the end,
//! or a chain recomputed from the first changed record on. An auditor who
//! keeps the last `hash` of an earlier export (`audit export`) can check
//! that it is still in the chain.
//!
//! Audit retention deletes a prefix of the chain after appending a
//! `purged` checkpoint whose detail ([`checkpoint_detail`]) names the seq
//! and hash of the last record deleted. A walk whose first record is not
//! seq 1 starts from that hash, and only when such a checkpoint exists.

use sha2::{Digest as _, Sha256};
use sqlx::SqliteConnection;

use super::{AuditRecord, NewAudit, StoreError};

/// The `prev_hash` of the first record.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The tag that starts every hashed text; a new serialization gets a new
/// tag.
const FORMAT: &str = "phigate.audit.v1";

/// An audit row as stored: `rules` is a JSON array of strings.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub message_id: Option<String>,
    pub topic: Option<String>,
    pub publisher: Option<String>,
    pub subscriber: Option<String>,
    pub rules: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The columns of [`AuditRow`], as a literal for `concat!`, so that
/// queries stay `&'static str`.
macro_rules! audit_columns {
    () => {
        "seq, at, kind, message_id, topic, publisher, subscriber, rules, detail, prev_hash, hash"
    };
}
pub(crate) use audit_columns;

impl AuditRow {
    /// The record the API returns; a `rules` column that is not a JSON
    /// list of strings was written by someone other than the store.
    pub(crate) fn into_record(self) -> Result<AuditRecord, StoreError> {
        let rules = parse_rules(&self.rules).ok_or(StoreError::CorruptAudit { seq: self.seq })?;
        Ok(AuditRecord {
            seq: self.seq,
            at: self.at,
            kind: self.kind,
            message_id: self.message_id,
            topic: self.topic,
            publisher: self.publisher,
            subscriber: self.subscriber,
            rules,
            detail: self.detail,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The end of the chain that the next record links to.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    /// Reads the last record. Called inside the writer's transaction, so
    /// the chain stays whole even if another process appended since.
    pub(crate) async fn read(conn: &mut SqliteConnection) -> Result<Head, sqlx::Error> {
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(conn)
                .await?;
        Ok(match last {
            Some((seq, hash)) => Head { seq, hash },
            None => Head {
                seq: 0,
                hash: GENESIS.to_string(),
            },
        })
    }

    /// Links `record` to the chain at time `at` and moves the head to it.
    pub(crate) fn seal(&mut self, at: &str, record: NewAudit) -> AuditRow {
        let rules = serde_json::Value::from(record.rules);
        let mut row = AuditRow {
            seq: self.seq + 1,
            at: at.to_string(),
            kind: record.kind.as_str().to_string(),
            message_id: record.message_id,
            topic: record.topic,
            publisher: record.publisher,
            subscriber: record.subscriber,
            rules: rules.to_string(),
            detail: record.detail,
            prev_hash: std::mem::take(&mut self.hash),
            hash: String::new(),
        };
        row.hash = hash_of(&row, &rules);

        self.seq = row.seq;
        self.hash = row.hash.clone();
        row
    }
}

/// Checks stored records in `seq` order, one at a time, so that a chain
/// of any length is walked in bounded memory.
#[derive(Debug)]
pub(crate) struct Walk {
    prev_hash: String,
    records: u64,
}

impl Walk {
    pub(crate) fn new() -> Walk {
        Walk::after(GENESIS.to_string())
    }

    /// A walk that starts after a record deleted by retention, whose hash
    /// a `purged` checkpoint names.
    pub(crate) fn after(prev_hash: String) -> Walk {
        Walk {
            prev_hash,
            records: 0,
        }
    }

    /// Whether `row` links to the record before it and its hash covers
    /// its fields.
    pub(crate) fn step(&mut self, row: &AuditRow) -> bool {
        let Some(rules) = parse_rules(&row.rules) else {
            return false;
        };
        let intact = row.prev_hash == self.prev_hash
            && row.hash == hash_of(row, &serde_json::Value::from(rules));
        if intact {
            self.prev_hash.clone_from(&row.hash);
            self.records += 1;
        }
        intact
    }

    pub(crate) fn records(&self) -> u64 {
        self.records
    }
}

/// The detail of the `purged` checkpoint that audit retention appends
/// before deleting every record up to `seq`, whose hash was `hash`. A
/// walk that finds the first record's `prev_hash` is not the genesis
/// looks for exactly this text in the chain.
pub(crate) fn checkpoint_detail(seq: i64, hash: &str) -> String {
    format!(
        "audit retention: deleted every record up to seq {seq}; \
         the chain continues from hash {hash}"
    )
}

/// The hex SHA-256 of the record's hashed text (see the module docs).
/// `rules` is the parsed `rules` column, so that its JSON spelling in the
/// table does not matter, only its content.
fn hash_of(row: &AuditRow, rules: &serde_json::Value) -> String {
    let text = serde_json::json!([
        FORMAT,
        row.seq,
        row.at,
        row.kind,
        row.message_id,
        row.topic,
        row.publisher,
        row.subscriber,
        rules,
        row.detail,
        row.prev_hash,
    ])
    .to_string();
    hex(&Sha256::digest(text.as_bytes()))
}

fn parse_rules(text: &str) -> Option<Vec<String>> {
    serde_json::from_str(text).ok()
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditKind;

    fn record(detail: &str) -> NewAudit {
        NewAudit {
            kind: AuditKind::Ingress,
            message_id: Some("m1".into()),
            topic: Some("patients.admitted".into()),
            publisher: Some("ehr".into()),
            subscriber: None,
            rules: vec!["no SSN leaves the gateway".into()],
            detail: detail.into(),
        }
    }

    fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }

    #[test]
    fn sealed_records_walk_intact() {
        let mut head = genesis();
        let rows: Vec<_> = (0..3)
            .map(|n| head.seal("2026-12-03T17:45:00.000Z", record(&format!("n{n}"))))
            .collect();
        assert_eq!(rows[0].prev_hash, GENESIS);
        assert_eq!(rows[1].prev_hash, rows[0].hash);
        assert_eq!((head.seq, &head.hash), (3, &rows[2].hash));

        let mut walk = Walk::new();
        assert!(rows.iter().all(|row| walk.step(row)));
        assert_eq!(walk.records(), 3);
    }

    #[test]
    fn any_changed_field_breaks_the_record() {
        let sealed = genesis().seal("2026-12-03T17:45:00.000Z", record("accepted"));
        let changes: [fn(&mut AuditRow); 9] = [
            |row| row.seq = 2,
            |row| row.at = "2026-12-03T17:45:00.001Z".into(),
            |row| row.kind = "rejected".into(),
            |row| row.message_id = None,
            |row| row.topic = Some(String::new()),
            |row| row.subscriber = Some("ehr".into()),
            |row| row.rules = "[]".into(),
            |row| row.detail = "accepted ".into(),
            |row| row.rules = "not json".into(),
        ];
        for (index, change) in changes.iter().enumerate() {
            let mut row = sealed.clone();
            change(&mut row);
            assert!(!Walk::new().step(&row), "change {index} went unnoticed");
        }
    }

    #[test]
    fn the_rules_spelling_does_not_matter() {
        let mut row = genesis().seal("2026-12-03T17:45:00.000Z", record("accepted"));
        row.rules = "[ \"no SSN leaves the gateway\" ]".into();
        assert!(Walk::new().step(&row));
    }

    /// Pins the hashed text: computed independently with Python's
    /// `json.dumps(fields, separators=(",", ":"), ensure_ascii=False)`, so
    /// an auditor can recompute hashes without phigate, and a change in
    /// how the text is written cannot slip by.
    #[test]
    fn the_hash_matches_an_independent_computation() {
        let row = AuditRow {
            seq: 7,
            at: "2026-12-03T17:45:00.123Z".into(),
            kind: "filter_error".into(),
            message_id: Some("m1".into()),
            topic: None,
            publisher: Some("ehr".into()),
            subscriber: Some("analytics".into()),
            rules: r#"["redact \"chat\"","rule \u00fc"]"#.into(),
            detail: "line\nbreak\ttab \u{1} \u{2028} / \\ end".into(),
            prev_hash: "a".repeat(64),
            hash: String::new(),
        };
        let rules = serde_json::Value::from(parse_rules(&row.rules).unwrap());
        assert_eq!(
            hash_of(&row, &rules),
            "3d3b88b5586082bc094c27d8b1a9dae14209c77bbe9b2c95064c56ab927a6453"
        );
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
