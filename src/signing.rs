//! Webhook signing secrets: one per push plugin, kept in a private file
//! beside the tokens file (`signing.toml`), created on first use.
//!
//! A push request carries `Phigate-Signature: t=UNIX,v1=HEX`, HEX being
//! the lowercase hex HMAC-SHA-256 of `"{t}.{body}"`, keyed with the
//! secret's text as printed (64 hex characters, used as they are, not
//! decoded). A receiver recomputes it and compares in constant time, and
//! refuses a `t` too far from its clock.
//!
//! The file holds secrets, not hashes (the gateway must sign with them),
//! so it is written owner-only through `private_file`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::private_file::{PRIVATE, write_atomic};

/// The file name, in the folder of the tokens file.
pub const FILE_NAME: &str = "signing.toml";

/// Why a secret could not be read or made. Messages name the file and the
/// plugin, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("no random numbers for a signing secret")]
    Random,
}

/// The file as stored: plugin name to secret.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

/// The secrets file beside `tokens_file`.
pub fn secrets_file(tokens_file: &Path) -> PathBuf {
    match tokens_file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(FILE_NAME),
        _ => PathBuf::from(FILE_NAME),
    }
}

/// The signing secret of `plugin`, made and stored (0600) when the file
/// or the plugin's entry is missing.
///
/// Two processes creating the first secret of the same plugin at the same
/// moment could each store their own; the file ends with the later one.
/// The gateway reads the file again before every request it signs, so
/// it follows; a receiver configured with the earlier one would need the
/// command run again.
pub fn secret_for(path: &Path, plugin: &str) -> Result<String, SigningError> {
    let mut file = read(path)?;
    if let Some(secret) = file.secrets.get(plugin) {
        return Ok(secret.clone());
    }

    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| SigningError::Random)?;
    let secret = hex(&bytes);
    file.secrets.insert(plugin.to_string(), secret.clone());

    let text = toml::to_string(&file).map_err(|error| SigningError::Write {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    let text = format!(
        "# Webhook signing secrets, one per plugin (`phigate signing-secret`).\n\
         # Secrets, not hashes: keep this file private.\n{text}"
    );
    write_atomic(path, text.as_bytes(), PRIVATE).map_err(|error| SigningError::Write {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    Ok(secret)
}

/// The `Phigate-Signature` value for `body` sent at `unix_time`.
pub fn signature(secret: &str, unix_time: i64, body: &[u8]) -> String {
    format!("t={unix_time},v1={}", hex(&mac(secret, unix_time, body)))
}

/// Whether `header` is a valid signature of `body` by `secret`. Checks the
/// MAC only (in constant time); the caller judges the age of `t`.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut time = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => time = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value.to_string()),
            _ => {}
        }
    }
    let Some(time) = time else {
        return false;
    };
    let mut checker = keyed(secret);
    checker.update(format!("{time}.").as_bytes());
    checker.update(body);
    signatures.iter().any(|signature| {
        unhex(signature).is_some_and(|bytes| checker.clone().verify_slice(&bytes).is_ok())
    })
}

fn mac(secret: &str, unix_time: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = keyed(secret);
    mac.update(format!("{unix_time}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn keyed(secret: &str) -> Hmac<Sha256> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

fn read(path: &Path) -> Result<SecretsFile, SigningError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SecretsFile::default());
        }
        Err(error) => {
            return Err(SigningError::Read {
                path: path.to_path_buf(),
                reason: error.to_string(),
            });
        }
    };
    // A TOML error quotes the offending line, which may hold a secret:
    // keep only its position.
    toml::from_str(&text).map_err(|error| SigningError::Read {
        path: path.to_path_buf(),
        reason: match error.span() {
            Some(span) => format!("not a valid secrets file (byte {})", span.start),
            None => "not a valid secrets file".into(),
        },
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_does_not() {
        let header = signature("secret", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify("secret", &header, b"{\"a\":1}"));
        assert!(!verify("secret", &header, b"{\"a\":2}"));
        assert!(!verify("other", &header, b"{\"a\":1}"));
        assert!(!verify("secret", "v1=00", b"{\"a\":1}"));
    }

    #[test]
    fn the_mac_is_hmac_sha256_of_time_dot_body() {
        // Python: hmac.new(b"k", b"1.x", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("k", 1, b"x"),
            "t=1,v1=976cb87e4f568d1c0f03f32859e90af8597cf00b978ba37c229c97d3a15b8449"
        );
    }

    #[test]
    fn secrets_are_created_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("phigate-signing-{}", std::process::id()));
        let path = dir.join(FILE_NAME);
        let first = secret_for(&path, "inbox").unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(secret_for(&path, "inbox").unwrap(), first);
        assert_ne!(secret_for(&path, "pager").unwrap(), first);
        assert_eq!(secret_for(&path, "inbox").unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
