//! The key file and the only holder of key bytes.
//!
//! A key file is JSON: `{"keys": [{"id", "created_at", "aes", "hmac"}]}`.
//! Each key has an id, a creation time (RFC 3339), a 32-byte AES-256 key
//! and a 32-byte HMAC key, both in standard base64. The newest key (latest
//! `created_at`; on a tie, the last in the file) is the default.
//!
//! Values are transformed into the formats of the product contract:
//!
//! - `enc:v1:KEY_ID:BASE64URL`: a random 96-bit nonce followed by the
//!   AES-256-GCM-SIV ciphertext of the value's JSON text, with the ASCII
//!   prefix `enc:v1:KEY_ID` as associated data. Any key of the ring
//!   decrypts what it encrypted, so older values stay readable after a new
//!   key is generated.
//! - `hmac:v1:KEY_ID:BASE64URL`: HMAC-SHA-256 of the value's JSON text.
//!   serde_json's `Map` keeps members sorted, so equal values have equal
//!   text and the same pseudonym.
//!
//! BASE64URL is the URL-safe alphabet without padding; decryption accepts
//! padding too. Key bytes and plaintexts never appear in a `Debug` or
//! `Display` output, nor in an error: `Debug` is written by hand and shows
//! ids only.

use std::fmt;
use std::path::{Path, PathBuf};

use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The prefix of an encrypted value, before its key id.
pub const ENCRYPTED_PREFIX: &str = "enc:v1:";
/// The prefix of a hashed value, before its key id.
pub const HASHED_PREFIX: &str = "hmac:v1:";

/// The id of the key made by [`KeyRing::ephemeral`].
pub const EPHEMERAL_ID: &str = "ephemeral";

/// Length of the AES-256 and HMAC keys, in bytes.
const KEY_LEN: usize = 32;
/// Length of the random AES-GCM-SIV nonce, in bytes.
const NONCE_LEN: usize = 12;
/// Length of the AES-GCM-SIV authentication tag, in bytes.
const TAG_LEN: usize = 16;

/// What can go wrong with keys or with the values they made. No variant
/// carries key material or a plaintext.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown key `{id}`")]
    UnknownKey { id: String },
    #[error("the key file holds no keys")]
    NoKeys,
    /// The key file is not what it should be; `reason` names the entry
    /// and the member, never their contents.
    #[error("malformed key file {}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not an encrypted value; the text itself is not quoted.
    #[error("not an encrypted value: {reason}")]
    BadFormat { reason: &'static str },
    /// Wrong key, or a value altered after encryption.
    #[error("the value could not be decrypted: wrong key or altered text")]
    DecryptionFailed,
    #[error("the value could not be encrypted")]
    EncryptionFailed,
    #[error("the system's random number generator failed")]
    Random,
}

/// Every key of a key file, ready to use.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<Key>,
    /// Index of the default key in `keys`.
    default: Option<usize>,
}

/// One named key: a prepared cipher and a keyed HMAC state.
#[derive(Clone)]
struct Key {
    id: String,
    created_at: Timestamp,
    cipher: Aes256GcmSiv,
    /// Keyed once; cloned for each value, which saves the key schedule.
    mac: Hmac<Sha256>,
}

impl KeyRing {
    /// Reads and validates a key file.
    pub fn load(path: &Path) -> Result<KeyRing, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let entries = parse_key_file(&text).map_err(|reason| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(KeyRing::from_entries(entries))
    }

    /// Adds a new key to the key file at `path`, creating the file and its
    /// folders when missing, and returns the new key's id. The new key is
    /// the default from now on.
    ///
    /// The file is replaced atomically (a temporary file in the same
    /// folder, then a rename) and is readable by its owner only (0600).
    ///
    /// FIXME: two processes generating at the same moment both read the
    /// old file and the second rename drops the first one's key. The
    /// command is run by hand; a lock file would close the gap.
    pub fn generate_into(path: &Path) -> Result<String, KeyError> {
        let existing = match std::fs::read_to_string(path) {
            Ok(text) => parse_key_file(&text).map_err(|reason| KeyError::Malformed {
                path: path.to_path_buf(),
                reason,
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(KeyError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };

        // INVARIANT: the new key must be the default, which is the newest,
        // last on a tie. A clock that went back must not break that.
        let newest = existing.iter().map(|entry| entry.created_at).max();
        let created_at = newest.map_or(Timestamp::now(), |newest| newest.max(Timestamp::now()));
        let id = new_id(created_at, &existing)?;
        let mut aes = [0u8; KEY_LEN];
        let mut mac = [0u8; KEY_LEN];
        random(&mut aes)?;
        random(&mut mac)?;

        let mut documents: Vec<Value> = existing.into_iter().map(|entry| entry.raw).collect();
        documents.push(key_document(&id, created_at, &aes, &mac));
        let mut file = Map::new();
        file.insert("keys".into(), Value::Array(documents));
        let mut text = match serde_json::to_string_pretty(&Value::Object(file)) {
            Ok(text) => text,
            Err(_) => unreachable!("a JSON value of strings always serializes"),
        };
        text.push('\n');

        write_private(path, text.as_bytes())?;
        Ok(id)
    }

    /// Adds a key named `id` to the key file at `path` unless the file
    /// already holds one, creating the file when missing. Returns whether
    /// a key was added. The default key stays the default: the new key is
    /// dated no later than it and written first. Same file handling (and
    /// FIXME) as [`KeyRing::generate_into`].
    pub fn generate_named_into(path: &Path, id: &str) -> Result<bool, KeyError> {
        if !is_valid_id(id) {
            return Err(KeyError::BadFormat {
                reason: "a key id is 1 to 64 letters, digits, `_`, `-` or `.`",
            });
        }
        let existing = match std::fs::read_to_string(path) {
            Ok(text) => parse_key_file(&text).map_err(|reason| KeyError::Malformed {
                path: path.to_path_buf(),
                reason,
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(KeyError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if existing.iter().any(|entry| entry.id == id) {
            return Ok(false);
        }

        let newest = existing.iter().map(|entry| entry.created_at).max();
        let created_at = newest.map_or(Timestamp::now(), |newest| newest.min(Timestamp::now()));
        let mut aes = [0u8; KEY_LEN];
        let mut mac = [0u8; KEY_LEN];
        random(&mut aes)?;
        random(&mut mac)?;

        let mut documents = vec![key_document(id, created_at, &aes, &mac)];
        documents.extend(existing.into_iter().map(|entry| entry.raw));
        let mut file = Map::new();
        file.insert("keys".into(), Value::Array(documents));
        let mut text = match serde_json::to_string_pretty(&Value::Object(file)) {
            Ok(text) => text,
            Err(_) => unreachable!("a JSON value of strings always serializes"),
        };
        text.push('\n');

        write_private(path, text.as_bytes())?;
        Ok(true)
    }

    /// A ring of one random key that lives in memory only, for `test` and
    /// `explain` when no key file exists. Its id is [`EPHEMERAL_ID`].
    pub fn ephemeral() -> KeyRing {
        KeyRing::ephemeral_with(&[])
    }

    /// Random in-memory keys: the default [`EPHEMERAL_ID`] plus one per
    /// named id, so that `phigate test` and `explain` can run rules that
    /// name keys without a key file.
    pub fn ephemeral_with(named: &[String]) -> KeyRing {
        let created_at = Timestamp::now();
        let mut entries = Vec::new();
        for id in named.iter().map(String::as_str).chain([EPHEMERAL_ID]) {
            let mut aes = [0u8; KEY_LEN];
            let mut mac = [0u8; KEY_LEN];
            // A failing system RNG is not something to recover from: there
            // is no safe key to fall back on.
            if random(&mut aes).and(random(&mut mac)).is_err() {
                panic!("the system's random number generator failed");
            }
            entries.push(KeyEntry {
                id: id.to_string(),
                created_at,
                aes,
                mac,
                raw: Value::Null,
            });
        }
        KeyRing::from_entries(entries)
    }

    /// The key ids, in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.id.as_str())
    }

    /// The id of the default key, `None` when the ring is empty.
    pub fn default_id(&self) -> Option<&str> {
        self.default.map(|index| self.keys[index].id.as_str())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.iter().any(|key| key.id == id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Encrypts a JSON value with the key `key`, or the default key, into
    /// `enc:v1:KEY_ID:BASE64URL`.
    pub fn encrypt(&self, key: Option<&str>, value: &Value) -> Result<String, KeyError> {
        let key = self.key(key)?;
        let plaintext = serde_json::to_vec(value).map_err(|_| KeyError::EncryptionFailed)?;
        let prefix = format!("{ENCRYPTED_PREFIX}{}", key.id);

        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let payload = Payload {
            msg: &plaintext,
            aad: prefix.as_bytes(),
        };
        let ciphertext = key
            .cipher
            .encrypt(&nonce.into(), payload)
            .map_err(|_| KeyError::EncryptionFailed)?;

        let mut body = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        Ok(format!("{prefix}:{}", BASE64URL.encode(body)))
    }

    /// The keyed pseudonym of a JSON value: `hmac:v1:KEY_ID:BASE64URL`.
    /// Equal values give equal pseudonyms under one key.
    pub fn hash(&self, key: Option<&str>, value: &Value) -> Result<String, KeyError> {
        let key = self.key(key)?;
        let text = serde_json::to_vec(value).map_err(|_| KeyError::EncryptionFailed)?;
        let mut mac = key.mac.clone();
        mac.update(&text);
        let digest = mac.finalize().into_bytes();
        Ok(format!(
            "{HASHED_PREFIX}{}:{}",
            key.id,
            BASE64URL.encode(digest)
        ))
    }

    /// Decrypts an `enc:v1:` value back into the JSON value it was made
    /// from, with whichever key of the ring its id names.
    pub fn decrypt(&self, text: &str) -> Result<Value, KeyError> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix(ENCRYPTED_PREFIX) else {
            let reason = if text.starts_with(HASHED_PREFIX) {
                "`hmac:v1:` values are one-way pseudonyms and cannot be decrypted"
            } else {
                "expected `enc:v1:KEY_ID:...`"
            };
            return Err(KeyError::BadFormat { reason });
        };
        let Some((id, body)) = rest.split_once(':') else {
            return Err(KeyError::BadFormat {
                reason: "expected `enc:v1:KEY_ID:...`",
            });
        };
        if !is_valid_id(id) {
            return Err(KeyError::BadFormat {
                reason: "the key id is not a valid id",
            });
        }
        let key = self.key(Some(id))?;

        let body = BASE64URL
            .decode(body)
            .map_err(|_| KeyError::DecryptionFailed)?;
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(KeyError::DecryptionFailed);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::DecryptionFailed)?;
        let prefix = &text[..ENCRYPTED_PREFIX.len() + id.len()];
        let payload = Payload {
            msg: ciphertext,
            aad: prefix.as_bytes(),
        };
        let plaintext = key
            .cipher
            .decrypt(&nonce.into(), payload)
            .map_err(|_| KeyError::DecryptionFailed)?;
        serde_json::from_slice(&plaintext).map_err(|_| KeyError::DecryptionFailed)
    }

    fn key(&self, id: Option<&str>) -> Result<&Key, KeyError> {
        match id {
            Some(id) => self
                .keys
                .iter()
                .find(|key| key.id == id)
                .ok_or_else(|| KeyError::UnknownKey { id: id.to_string() }),
            None => self
                .default
                .map(|index| &self.keys[index])
                .ok_or(KeyError::NoKeys),
        }
    }

    fn from_entries(entries: Vec<KeyEntry>) -> KeyRing {
        let keys: Vec<Key> = entries
            .into_iter()
            .map(|entry| Key {
                cipher: Aes256GcmSiv::new(&entry.aes.into()),
                mac: match <Hmac<Sha256> as KeyInit>::new_from_slice(&entry.mac) {
                    Ok(mac) => mac,
                    Err(_) => unreachable!("HMAC takes keys of any length"),
                },
                id: entry.id,
                created_at: entry.created_at,
            })
            .collect();
        // Newest wins; `max_by_key` returns the last of equal elements, so
        // a tie goes to the last key in the file.
        let default = keys
            .iter()
            .enumerate()
            .max_by_key(|(_, key)| key.created_at)
            .map(|(index, _)| index);
        KeyRing { keys, default }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys)
            .field("default", &self.default_id())
            .finish()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("created_at", &self.created_at.to_rfc3339())
            .finish_non_exhaustive()
    }
}

/// The URL-safe base64 of the value formats: no padding written, padding
/// accepted.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One entry of a key file, validated, with the document it was read from
/// (kept so that `generate_into` rewrites existing entries unchanged).
struct KeyEntry {
    id: String,
    created_at: Timestamp,
    aes: [u8; KEY_LEN],
    mac: [u8; KEY_LEN],
    raw: Value,
}

/// Parses a key file. Errors describe where the problem is, never what
/// the file holds there: serde's own messages can quote values.
fn parse_key_file(text: &str) -> Result<Vec<KeyEntry>, String> {
    let document: Value = serde_json::from_str(text).map_err(|error| {
        format!(
            "not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        )
    })?;
    let Some(keys) = document.get("keys").and_then(Value::as_array) else {
        return Err("expected an object with a `keys` array".into());
    };

    let mut entries: Vec<KeyEntry> = Vec::with_capacity(keys.len());
    for (index, raw) in keys.iter().enumerate() {
        let position = index + 1;
        let member = |name: &str| -> Result<&str, String> {
            raw.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("key {position}: `{name}` must be a string"))
        };
        let id = member("id")?;
        if !is_valid_id(id) {
            return Err(format!(
                "key {position}: `id` must be 1 to 64 letters, digits, `_`, `-` or `.`"
            ));
        }
        if entries.iter().any(|entry| entry.id == id) {
            return Err(format!("key {position}: the id `{id}` is used twice"));
        }
        let created_at = Timestamp::parse(member("created_at")?).ok_or_else(|| {
            format!("key {position} (`{id}`): `created_at` must be an RFC 3339 time")
        })?;
        let bytes = |name: &str| -> Result<[u8; KEY_LEN], String> {
            STANDARD
                .decode(member(name)?)
                .ok()
                .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
                .ok_or_else(|| {
                    format!("key {position} (`{id}`): `{name}` must be 32 bytes in base64")
                })
        };
        let aes = bytes("aes")?;
        let mac = bytes("hmac")?;
        entries.push(KeyEntry {
            id: id.to_string(),
            created_at,
            aes,
            mac,
            raw: raw.clone(),
        });
    }
    Ok(entries)
}

fn key_document(id: &str, created_at: Timestamp, aes: &[u8], mac: &[u8]) -> Value {
    let mut entry = Map::new();
    entry.insert("id".into(), Value::String(id.to_string()));
    entry.insert("created_at".into(), Value::String(created_at.to_rfc3339()));
    entry.insert("aes".into(), Value::String(STANDARD.encode(aes)));
    entry.insert("hmac".into(), Value::String(STANDARD.encode(mac)));
    Value::Object(entry)
}

/// `k20261203T174500Z`, with a short random suffix when a key of the same
/// second exists.
fn new_id(created_at: Timestamp, existing: &[KeyEntry]) -> Result<String, KeyError> {
    let base = format!("k{}", created_at.compact());
    let taken = |id: &str| existing.iter().any(|entry| entry.id == id);
    if !taken(&base) {
        return Ok(base);
    }
    loop {
        let mut suffix = [0u8; 3];
        random(&mut suffix)?;
        let id = format!("{base}-{}", general_purpose::URL_SAFE_NO_PAD.encode(suffix));
        if !taken(&id) {
            return Ok(id);
        }
    }
}

/// Ids appear inside `enc:v1:KEY_ID:...`, so they hold no `:`.
fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn random(buffer: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buffer).map_err(|_| KeyError::Random)
}

/// Writes `bytes` to `path` atomically, readable by the owner only,
/// creating missing folders (0700).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    crate::private_file::write_atomic(path, bytes, crate::private_file::PRIVATE).map_err(|source| {
        KeyError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A UTC instant, enough to order keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timestamp(time::OffsetDateTime);

impl Timestamp {
    /// Now, to the second: key ids are made from it.
    fn now() -> Timestamp {
        let now = time::OffsetDateTime::now_utc();
        Timestamp(now.replace_nanosecond(0).unwrap_or(now))
    }

    /// Parses RFC 3339: `2026-12-03T17:45:00Z`, with optional fractional
    /// seconds and a `Z` or `±HH:MM` offset.
    fn parse(text: &str) -> Option<Timestamp> {
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .ok()?;
        Some(Timestamp(parsed.to_offset(time::UtcOffset::UTC)))
    }

    /// `2026-12-03T17:45:00Z`.
    fn to_rfc3339(self) -> String {
        let at = self.0;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )
    }

    /// `20261203T174500Z`, as in key ids.
    fn compact(self) -> String {
        self.to_rfc3339().replace(['-', ':'], "")
    }
}

#[cfg(test)]
mod tests;
