//! The files a start needs: made on demand in the development profile,
//! required as they are in production.
//!
//! In development, [`ensure_development_files`] creates what is missing
//! and never replaces a file that exists:
//!
//! - a local CA, `ca.pem` with its key `ca-key.pem` (0600), in the folder
//!   of `server.tls_cert` (`data/tls/` by default). Its certificate is the
//!   one to trust in clients.
//! - a server certificate signed by that CA for `localhost`, `127.0.0.1`
//!   and `::1`, at `server.tls_cert`, with its key at `server.tls_key`
//!   (0600).
//! - the key file, with a new default key, plus a key for each name the
//!   rules use that the file lacks.
//! - the tokens file, with a token for each declared plugin that has none
//!   and an `admin` token when no admin has one.
//!
//! [`check_production`] creates nothing: it lists every missing file and
//! every setting that production refuses.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::auth::{AuthError, DEFAULT_ADMIN, Origin, Principal, Tokens};
use crate::config::{Config, FilterMode, Profile};
use crate::keys::{KeyError, KeyRing};
use crate::private_file::{PRIVATE, PUBLIC, write_atomic};

/// The file name of the development CA's certificate, beside the server
/// certificate.
pub const CA_FILE: &str = "ca.pem";
/// The file name of the development CA's private key.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// The common name of the development CA. A CA re-read from disk is
/// rebuilt from this name, so it must never change.
const CA_NAME: &str = "phigate development CA";
/// How long the development CA is valid.
const CA_DAYS: i64 = 10 * 365;
/// How long a development server certificate is valid: under the 398 days
/// that some clients allow a server certificate.
const SERVER_DAYS: i64 = 397;

/// What a development start made.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bootstrap {
    /// The development CA certificate to trust, when it exists (made now
    /// or at an earlier start).
    pub ca_file: Option<PathBuf>,
    /// `(plugin or "admin", token)` for each token made by this call.
    /// These are the only copies: the tokens file keeps hashes, so print
    /// them now or they are lost (`phigate token create` makes new ones).
    pub tokens: Vec<(String, String)>,
    /// Every file this call created, in order.
    pub created: Vec<PathBuf>,
}

impl fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token_names: Vec<&str> = self.tokens.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Bootstrap")
            .field("ca_file", &self.ca_file)
            .field("tokens_for", &token_names)
            .field("created", &self.created)
            .finish()
    }
}

/// Why the development files could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("the production profile creates no files")]
    NotDevelopment,
    #[error("phigate serves HTTPS only: set `server.tls_cert` and `server.tls_key`")]
    NoTls,
    /// One file of a pair exists without the other. phigate does not
    /// replace a file that exists, so this needs a person.
    #[error(
        "{} exists but {} does not; restore it, or remove both to have new ones made",
        present.display(),
        missing.display()
    )]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("cannot read the development CA key {}: {reason}", path.display())]
    CaKey { path: PathBuf, reason: String },
    #[error("cannot make a development certificate: {0}")]
    Certificate(String),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Tokens(#[from] AuthError),
}

/// The development CA's certificate and key files for `config`.
pub fn ca_paths(config: &Config) -> Option<(PathBuf, PathBuf)> {
    let cert = config.tls_cert.as_deref()?;
    let dir = match cert.parent() {
        Some(parent) => parent.to_path_buf(),
        None => config.base_dir.clone(),
    };
    Some((dir.join(CA_FILE), dir.join(CA_KEY_FILE)))
}

/// Creates the missing development files (see the module docs): the CA
/// and server certificate, the key file with a key for each of
/// `key_names`, and tokens for each of `plugins` and for an admin.
/// Files that exist are left as they are; a second call creates nothing
/// and returns no tokens.
pub fn ensure_development_files(
    config: &Config,
    plugins: &[String],
    key_names: &[String],
) -> Result<Bootstrap, BootstrapError> {
    if config.profile != Profile::Development {
        return Err(BootstrapError::NotDevelopment);
    }
    let (Some(cert), Some(key), Some((ca_file, ca_key))) = (
        config.tls_cert.as_deref(),
        config.tls_key.as_deref(),
        ca_paths(config),
    ) else {
        return Err(BootstrapError::NoTls);
    };
    let mut bootstrap = Bootstrap::default();

    if both_missing(cert, key)? {
        let issuer = if both_missing(&ca_file, &ca_key)? {
            let (certificate_pem, issuer) = new_ca()?;
            write(&ca_key, issuer.key().serialize_pem().as_bytes(), PRIVATE)?;
            write(&ca_file, certificate_pem.as_bytes(), PUBLIC)?;
            bootstrap.created.extend([ca_key.clone(), ca_file.clone()]);
            issuer
        } else {
            load_ca(&ca_key)?
        };
        let (certificate_pem, key_pem) = server_certificate(&issuer)?;
        write(key, key_pem.as_bytes(), PRIVATE)?;
        write(cert, certificate_pem.as_bytes(), PUBLIC)?;
        bootstrap
            .created
            .extend([key.to_path_buf(), cert.to_path_buf()]);
    }
    bootstrap.ca_file = ca_file.is_file().then_some(ca_file);

    let keys_existed = config.keys_file.exists();
    if !keys_existed {
        KeyRing::generate_into(&config.keys_file)?;
    }
    let mut added_key = false;
    for name in key_names {
        added_key |= KeyRing::generate_named_into(&config.keys_file, name)?;
    }
    if !keys_existed || added_key {
        bootstrap.created.push(config.keys_file.clone());
    }

    let tokens = Tokens::load_or_empty(&config.tokens_file)?;
    let mut missing: Vec<Principal> = Vec::new();
    for plugin in plugins {
        let principal = Principal::Plugin(plugin.clone());
        if !tokens.has(&principal) && !missing.contains(&principal) {
            missing.push(principal);
        }
    }
    if !tokens.has_admin() {
        missing.push(Principal::Admin(DEFAULT_ADMIN.to_string()));
    }
    let created = Tokens::create_all(&config.tokens_file, &missing, Origin::Development)?;
    if !created.is_empty() {
        bootstrap.created.push(config.tokens_file.clone());
    }
    bootstrap.tokens = missing
        .iter()
        .map(|principal| principal.name().to_string())
        .zip(created)
        .collect();

    Ok(bootstrap)
}

/// What stops a production start: each missing file and each unsafe
/// setting, one sentence each. Looks only, creates nothing; `Ok` when
/// nothing is wrong. It does not read the files it finds.
pub fn check_production(config: &Config) -> Result<(), Vec<String>> {
    let missing = |key: &str, what: &str, path: &Path| {
        (!path.is_file()).then(|| {
            format!(
                "the {what} {} (`{key}`) does not exist; production creates no files",
                path.display()
            )
        })
    };
    let mut problems = Vec::new();

    match &config.tls_cert {
        Some(path) => problems.extend(missing("server.tls_cert", "TLS certificate", path)),
        None => problems.push("`server.tls_cert` is not set: phigate serves HTTPS only".into()),
    }
    match &config.tls_key {
        Some(path) => problems.extend(missing("server.tls_key", "TLS key", path)),
        None => problems.push("`server.tls_key` is not set: phigate serves HTTPS only".into()),
    }
    if let Some(path) = &config.client_ca {
        problems.extend(missing("server.client_ca", "client CA", path));
    }
    problems.extend(missing("keys.file", "key file", &config.keys_file));
    problems.extend(missing(
        "auth.tokens_file",
        "tokens file",
        &config.tokens_file,
    ));

    if !config.audit_enabled {
        problems
            .push("`messaging.audit_enabled` is false: production keeps the audit trail".into());
    }
    if config.filter_mode == FilterMode::FailOpen {
        problems.push(
            "`messaging.filter_mode` is \"fail-open\": production blocks a delivery whose filter fails"
                .into(),
        );
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Whether both files of a pair are missing (`true`: make them) or both
/// exist (`false`); one without the other is an error.
fn both_missing(first: &Path, second: &Path) -> Result<bool, BootstrapError> {
    match (first.exists(), second.exists()) {
        (false, false) => Ok(true),
        (true, true) => Ok(false),
        (true, false) => Err(BootstrapError::HalfPair {
            present: first.to_path_buf(),
            missing: second.to_path_buf(),
        }),
        (false, true) => Err(BootstrapError::HalfPair {
            present: second.to_path_buf(),
            missing: first.to_path_buf(),
        }),
    }
}

/// The development CA's parameters. An issuer needs only the name, key
/// usages and key-id method from them, so a CA read back from disk is
/// rebuilt from these and its key.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "phigate");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A new CA: its certificate (PEM) and an issuer holding its key.
fn new_ca() -> Result<(String, Issuer<'static, KeyPair>), BootstrapError> {
    let key = KeyPair::generate().map_err(certificate_error)?;
    let mut params = ca_params();
    (params.not_before, params.not_after) = validity(CA_DAYS);
    let certificate = params.self_signed(&key).map_err(certificate_error)?;
    Ok((certificate.pem(), Issuer::new(ca_params(), key)))
}

fn load_ca(key_path: &Path) -> Result<Issuer<'static, KeyPair>, BootstrapError> {
    let ca_key_error = |reason: String| BootstrapError::CaKey {
        path: key_path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read_to_string(key_path).map_err(|error| ca_key_error(error.to_string()))?;
    // rcgen's messages describe the format, never the key.
    let key = KeyPair::from_pem(&pem).map_err(|error| ca_key_error(error.to_string()))?;
    Ok(Issuer::new(ca_params(), key))
}

/// A server certificate signed by `issuer`: certificate and key, in PEM.
fn server_certificate(issuer: &Issuer<'_, KeyPair>) -> Result<(String, String), BootstrapError> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let mut params = CertificateParams::new(names).map_err(certificate_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "phigate development server");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity(SERVER_DAYS);

    let key = KeyPair::generate().map_err(certificate_error)?;
    let certificate = params.signed_by(&key, issuer).map_err(certificate_error)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// From a day ago (clocks differ) to `days` from now.
fn validity(days: i64) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::days(1), now + Duration::days(days))
}

fn certificate_error(error: rcgen::Error) -> BootstrapError {
    BootstrapError::Certificate(error.to_string())
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BootstrapError> {
    write_atomic(path, bytes, mode).map_err(|source| BootstrapError::Io {
        path: path.to_path_buf(),
        source,
    })
}
