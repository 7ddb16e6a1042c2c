//! Bearer tokens: the tokens file and the check of a presented token.
//!
//! The tokens file is TOML, one `[[token]]` table per token:
//!
//! ```toml
//! [[token]]
//! plugin = "billing"              # or: admin = "NAME"
//! sha256 = "9f86d0..."            # hex SHA-256 of the token text
//! created_at = "2026-12-03T17:45:00Z"
//! origin = "cli"                  # or "development"
//! ```
//!
//! Only hashes are stored, never a token: a token is shown once, when it
//! is created, and cannot be recovered from the file. A principal may have
//! several tokens (to rotate one, create the new token, then delete the
//! old entry). Deleting an entry revokes its token.
//!
//! A token is [`TOKEN_PREFIX`] followed by 32 random bytes in unpadded
//! base64url. It carries 256 bits of entropy, so an unsalted SHA-256 is
//! enough to keep it: there is no dictionary to run against it.
//!
//! Nothing here shows a token in a `Debug`, `Display` or error output.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

/// What every token starts with, so that a leaked one is recognisable
/// (by secret scanners, in logs) as a phigate token.
pub const TOKEN_PREFIX: &str = "phg_";

/// The principal name [`crate::gateway::bootstrap`] gives the admin token
/// it creates.
pub const DEFAULT_ADMIN: &str = "admin";

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// Who a token (or a client certificate) speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A plugin, by the name its contract has in the rule files.
    Plugin(String),
    /// An operator: may read the audit trail and any plugin's health.
    Admin(String),
}

/// Where a token came from, as recorded in the tokens file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Made at start-up by the development profile.
    Development,
    /// Made by `phigate token create`.
    Cli,
}

/// What can go wrong with the tokens file. No variant carries a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `reason` says where and what, never quoting more than names.
    #[error("malformed tokens file {}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("invalid name `{name}`: use 1 to 64 letters, digits, `_`, `-` and `.`")]
    InvalidName { name: String },
    #[error("the system's random number generator failed")]
    Random,
}

/// The entries of a tokens file, ready to authenticate against.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    principal: Principal,
    digest: [u8; 32],
}

impl Principal {
    /// The plugin or admin name.
    pub fn name(&self) -> &str {
        match self {
            Principal::Plugin(name) | Principal::Admin(name) => name,
        }
    }

    /// `"plugin"` or `"admin"`, the key of the tokens file.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Plugin(_) => "plugin",
            Principal::Admin(_) => "admin",
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind(), self.name())
    }
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Development => "development",
            Origin::Cli => "cli",
        }
    }
}

impl Tokens {
    /// Reads and validates a tokens file. A missing file is an error; see
    /// [`Tokens::load_or_empty`].
    pub fn load(path: &Path) -> Result<Tokens, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        parse(&text).map_err(|reason| AuthError::Malformed {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Like [`Tokens::load`], but a missing file holds no tokens.
    pub fn load_or_empty(path: &Path) -> Result<Tokens, AuthError> {
        match std::fs::metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Tokens::default()),
            _ => Tokens::load(path),
        }
    }

    /// Makes a new token for `principal`, stores its hash in the tokens
    /// file at `path` and returns the token, which nothing else will ever
    /// show again. The file (and its folders) are created when missing;
    /// otherwise the new entry is appended and the rest of the file, its
    /// comments included, is kept as it is. The file is replaced
    /// atomically and is readable by its owner only (0600).
    pub fn create(path: &Path, principal: Principal, origin: Origin) -> Result<String, AuthError> {
        let mut tokens = Tokens::create_all(path, &[principal], origin)?;
        match tokens.pop() {
            Some(token) => Ok(token),
            None => unreachable!("one principal gives one token"),
        }
    }

    /// [`Tokens::create`] for several principals in one write; the tokens
    /// come back in the order of `principals`. Nothing is written when
    /// `principals` is empty.
    ///
    /// FIXME: two processes creating tokens at the same moment both read
    /// the old file and the second rename drops the first one's entry.
    /// Tokens are created by hand or at a development start; a lock file
    /// would close the gap.
    pub fn create_all(
        path: &Path,
        principals: &[Principal],
        origin: Origin,
    ) -> Result<Vec<String>, AuthError> {
        if let Some(bad) = principals.iter().find(|p| !is_valid_name(p.name())) {
            return Err(AuthError::InvalidName {
                name: bad.name().to_string(),
            });
        }
        if principals.is_empty() {
            return Ok(Vec::new());
        }
        let io_error = |action: &'static str| {
            move |source| AuthError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        };

        // Validate what is there before adding to it, so that a broken
        // file is reported rather than extended.
        let existing = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(io_error("read")(source)),
        };
        parse(&existing).map_err(|reason| AuthError::Malformed {
            path: path.to_path_buf(),
            reason,
        })?;

        let created_at = now_rfc3339();
        let mut text = if existing.trim().is_empty() {
            FILE_HEADER.to_string()
        } else {
            existing
        };
        let mut tokens = Vec::with_capacity(principals.len());
        for principal in principals {
            let token = new_token()?;
            if !text.ends_with("\n\n") {
                text.push('\n');
            }
            text.push_str(&format!(
                "[[token]]\n{} = \"{}\"\nsha256 = \"{}\"\ncreated_at = \"{created_at}\"\norigin = \"{}\"\n",
                principal.kind(),
                principal.name(),
                hex(&digest(&token)),
                origin.as_str(),
            ));
            tokens.push(token);
        }

        crate::private_file::write_atomic(path, text.as_bytes(), crate::private_file::PRIVATE)
            .map_err(io_error("write"))?;
        Ok(tokens)
    }

    /// The principal a bearer token speaks for, or `None`.
    ///
    /// The token's SHA-256 is compared with every entry in constant time,
    /// and every entry is compared whatever matched before, so the time
    /// taken says nothing about which entry came close.
    pub fn authenticate(&self, bearer: &str) -> Option<Principal> {
        let presented = digest(bearer);
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(&presented, &entry.digest) {
                found = Some(&entry.principal);
            }
        }
        found.cloned()
    }

    /// Whether at least one token speaks for `principal`.
    pub fn has(&self, principal: &Principal) -> bool {
        self.entries
            .iter()
            .any(|entry| &entry.principal == principal)
    }

    /// Whether at least one admin token exists.
    pub fn has_admin(&self) -> bool {
        self.entries
            .iter()
            .any(|entry| matches!(entry.principal, Principal::Admin(_)))
    }

    /// The principal of each entry, in file order (one per token).
    pub fn principals(&self) -> impl Iterator<Item = &Principal> {
        self.entries.iter().map(|entry| &entry.principal)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("principals", &self.principals().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Whether `name` can name a plugin or an admin: the plugin names of the
/// rule language, 1 to 64 letters, digits, `_`, `-` and `.`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The start of a new tokens file.
const FILE_HEADER: &str = "\
# phigate tokens: the SHA-256 of each bearer token, never a token.
# A token is shown once, when `phigate token create` makes it; a lost one
# cannot be recovered. Delete an entry to revoke its token.
";

/// One `[[token]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    plugin: Option<String>,
    admin: Option<String>,
    sha256: String,
    created_at: String,
    origin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    token: Vec<RawEntry>,
}

/// Parses and validates a tokens file. Errors name the entry and the key,
/// and quote names only.
fn parse(text: &str) -> Result<Tokens, String> {
    let raw: RawFile = toml::from_str(text).map_err(|error| {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = error.message().trim_end_matches('\n');
        match line {
            Some(line) => format!("{message} (line {line})"),
            None => message.to_string(),
        }
    })?;

    let mut entries: Vec<Entry> = Vec::with_capacity(raw.token.len());
    for (index, entry) in raw.token.into_iter().enumerate() {
        let position = index + 1;
        let principal = match (entry.plugin, entry.admin) {
            (Some(name), None) => Principal::Plugin(name),
            (None, Some(name)) => Principal::Admin(name),
            _ => {
                return Err(format!(
                    "token {position}: give exactly one of `plugin` and `admin`"
                ));
            }
        };
        if !is_valid_name(principal.name()) {
            return Err(format!(
                "token {position}: `{}` must be 1 to 64 letters, digits, `_`, `-` or `.`",
                principal.kind()
            ));
        }
        let digest = parse_hex(&entry.sha256).ok_or_else(|| {
            format!("token {position} ({principal}): `sha256` must be 64 hex digits")
        })?;
        if entries.iter().any(|other| other.digest == digest) {
            return Err(format!(
                "token {position} ({principal}): the same `sha256` appears twice"
            ));
        }
        if time::OffsetDateTime::parse(&entry.created_at, &Rfc3339).is_err() {
            return Err(format!(
                "token {position} ({principal}): `created_at` must be an RFC 3339 time"
            ));
        }
        if !matches!(entry.origin.as_str(), "development" | "cli") {
            return Err(format!(
                "token {position} ({principal}): `origin` must be \"development\" or \"cli\""
            ));
        }
        entries.push(Entry { principal, digest });
    }
    Ok(Tokens { entries })
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn new_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| AuthError::Random)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = digest("x");
        assert_eq!(parse_hex(&hex(&bytes)), Some(bytes));
        assert_eq!(parse_hex(&hex(&bytes).to_uppercase()), Some(bytes));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn tokens_have_the_prefix_and_256_bits() {
        let token = new_token().unwrap();
        let body = token.strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), TOKEN_BYTES);
        assert_ne!(token, new_token().unwrap());
    }

    #[test]
    fn entries_need_exactly_one_principal() {
        let both = "[[token]]\nplugin = \"a\"\nadmin = \"b\"\nsha256 = \"00\"\ncreated_at = \"2026-01-01T00:00:00Z\"\norigin = \"cli\"\n";
        assert!(parse(both).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn errors_do_not_quote_hashes() {
        let text = format!(
            "[[token]]\nplugin = \"a\"\nsha256 = \"{}\"\ncreated_at = \"yesterday\"\norigin = \"cli\"\n",
            hex(&digest("x"))
        );
        let reason = parse(&text).unwrap_err();
        assert!(reason.contains("created_at"), "{reason}");
        assert!(!reason.contains(&hex(&digest("x"))), "{reason}");
        assert!(!reason.contains("yesterday"), "{reason}");
    }
}
