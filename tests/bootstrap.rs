//! The development bootstrap and the production check.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use phigate::auth::{Principal, Tokens};
use phigate::config::{Config, RawConfig};
use phigate::gateway::bootstrap::{
    BootstrapError, CA_KEY_FILE, check_production, ensure_development_files,
};
use phigate::gateway::tls::server_config;
use phigate::keys::KeyRing;
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// A fresh, empty folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "phigate-bootstrap-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn production(dir: &Path, edit: impl FnOnce(&mut RawConfig)) -> Config {
    let mut raw = RawConfig::default();
    raw.server.profile = "production".into();
    edit(&mut raw);
    Config::from_raw(raw, dir).unwrap()
}

/// Whether the server certificate at `cert` chains to the CA at `ca` for
/// `name`, as a client would check it.
fn trusted(cert: &Path, ca: &Path, name: &str) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let leaf = CertificateDer::from_pem_file(cert).unwrap();
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_first_start_creates_everything_and_the_second_nothing() {
    let dir = temp_dir("once");
    let config = Config::defaults(&dir);
    let plugins = strings(&["billing", "lab"]);
    let keys = strings(&["patients"]);

    let first = ensure_development_files(&config, &plugins, &keys).unwrap();
    let tls = dir.join("data/tls");
    assert_eq!(first.ca_file, Some(tls.join("ca.pem")));
    for file in ["ca.pem", "ca-key.pem", "cert.pem", "key.pem"] {
        assert!(tls.join(file).is_file(), "{file}");
    }
    assert!(config.keys_file.is_file());
    assert!(config.tokens_file.is_file());
    assert_eq!(first.created.len(), 6, "{:?}", first.created);
    #[cfg(unix)]
    {
        assert_eq!(mode(&tls.join("ca-key.pem")), 0o600);
        assert_eq!(mode(&tls.join("key.pem")), 0o600);
        assert_eq!(mode(&config.tokens_file), 0o600);
        assert_eq!(mode(&config.keys_file), 0o600);
    }

    let names: Vec<&str> = first.tokens.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["billing", "lab", "admin"]);
    let tokens = Tokens::load(&config.tokens_file).unwrap();
    assert_eq!(
        tokens.authenticate(&first.tokens[0].1),
        Some(Principal::Plugin("billing".into()))
    );
    assert_eq!(
        tokens.authenticate(&first.tokens[2].1),
        Some(Principal::Admin("admin".into()))
    );
    let debug = format!("{first:?}");
    assert!(!debug.contains(&first.tokens[0].1), "{debug}");

    let cert = config.tls_cert.as_deref().unwrap();
    for name in ["localhost", "127.0.0.1", "::1"] {
        assert!(trusted(cert, &tls.join("ca.pem"), name), "{name}");
    }
    assert!(!trusted(cert, &tls.join("ca.pem"), "example.com"));
    server_config(cert, config.tls_key.as_deref().unwrap(), None).unwrap();

    let ring = KeyRing::load(&config.keys_file).unwrap();
    assert!(ring.contains("patients"));
    assert_ne!(ring.default_id(), Some("patients"));

    let before: Vec<Vec<u8>> = ["cert.pem", "key.pem", "ca.pem"]
        .iter()
        .map(|file| std::fs::read(tls.join(file)).unwrap())
        .collect();
    let second = ensure_development_files(&config, &plugins, &keys).unwrap();
    assert!(second.tokens.is_empty());
    assert!(second.created.is_empty(), "{:?}", second.created);
    assert_eq!(second.ca_file, first.ca_file);
    let after: Vec<Vec<u8>> = ["cert.pem", "key.pem", "ca.pem"]
        .iter()
        .map(|file| std::fs::read(tls.join(file)).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(Tokens::load(&config.tokens_file).unwrap().len(), 3);
}

#[test]
fn what_is_new_since_the_last_start_is_added() {
    let dir = temp_dir("additions");
    let config = Config::defaults(&dir);
    ensure_development_files(&config, &strings(&["billing"]), &[]).unwrap();
    let default_key = KeyRing::load(&config.keys_file)
        .unwrap()
        .default_id()
        .map(str::to_string);

    let later = ensure_development_files(
        &config,
        &strings(&["billing", "lab", "lab"]),
        &strings(&["patients", "billing-key"]),
    )
    .unwrap();
    let names: Vec<&str> = later.tokens.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["lab"]);
    assert_eq!(
        later.created,
        [config.keys_file.clone(), config.tokens_file.clone()]
    );

    let ring = KeyRing::load(&config.keys_file).unwrap();
    assert!(ring.contains("patients") && ring.contains("billing-key"));
    assert_eq!(ring.default_id().map(str::to_string), default_key);
}

#[test]
fn a_lost_server_certificate_is_issued_again_by_the_same_ca() {
    let dir = temp_dir("reissue");
    let config = Config::defaults(&dir);
    ensure_development_files(&config, &[], &[]).unwrap();
    let tls = dir.join("data/tls");
    let ca = std::fs::read(tls.join("ca.pem")).unwrap();
    let old_cert = std::fs::read(tls.join("cert.pem")).unwrap();

    std::fs::remove_file(tls.join("cert.pem")).unwrap();
    std::fs::remove_file(tls.join("key.pem")).unwrap();
    let again = ensure_development_files(&config, &[], &[]).unwrap();
    assert_eq!(again.created, [tls.join("key.pem"), tls.join("cert.pem")]);
    assert_eq!(std::fs::read(tls.join("ca.pem")).unwrap(), ca);
    assert_ne!(std::fs::read(tls.join("cert.pem")).unwrap(), old_cert);
    assert!(trusted(
        &tls.join("cert.pem"),
        &tls.join("ca.pem"),
        "localhost"
    ));
}

#[test]
fn half_a_pair_is_never_replaced() {
    let dir = temp_dir("half");
    let config = Config::defaults(&dir);
    ensure_development_files(&config, &[], &[]).unwrap();
    let tls = dir.join("data/tls");

    std::fs::remove_file(tls.join("key.pem")).unwrap();
    let cert = std::fs::read(tls.join("cert.pem")).unwrap();
    let error = ensure_development_files(&config, &[], &[]).unwrap_err();
    assert!(matches!(error, BootstrapError::HalfPair { .. }), "{error}");
    assert!(error.to_string().contains("key.pem"), "{error}");
    assert_eq!(std::fs::read(tls.join("cert.pem")).unwrap(), cert);

    // The CA key is needed to issue a new server certificate.
    std::fs::remove_file(tls.join("cert.pem")).unwrap();
    std::fs::remove_file(tls.join(CA_KEY_FILE)).unwrap();
    let error = ensure_development_files(&config, &[], &[]).unwrap_err();
    assert!(error.to_string().contains(CA_KEY_FILE), "{error}");
}

#[test]
fn production_creates_nothing_and_names_what_is_missing() {
    let dir = temp_dir("production");
    let config = production(&dir, |_| {});
    let error = ensure_development_files(&config, &strings(&["billing"]), &[]).unwrap_err();
    assert!(matches!(error, BootstrapError::NotDevelopment));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    let problems = check_production(&config).unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for key in [
        "server.tls_cert",
        "server.tls_key",
        "keys.file",
        "auth.tokens_file",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(&format!("`{key}`"))),
            "{key}: {problems:#?}"
        );
    }
    assert!(problems[0].contains(&dir.join("data/tls/cert.pem").display().to_string()));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn production_refuses_unsafe_settings() {
    let dir = temp_dir("unsafe");
    ensure_development_files(&Config::defaults(&dir), &[], &[]).unwrap();
    assert_eq!(check_production(&production(&dir, |_| {})), Ok(()));

    let config = production(&dir, |raw| {
        raw.messaging.audit_enabled = false;
        raw.messaging.filter_mode = "fail-open".into();
        raw.server.client_ca = "data/tls/clients.pem".into();
        raw.server.tls_key = String::new();
    });
    let problems = check_production(&config).unwrap_err();
    let mentions = |text: &str| problems.iter().filter(|p| p.contains(text)).count();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert_eq!(mentions("`messaging.audit_enabled`"), 1);
    assert_eq!(mentions("`messaging.filter_mode`"), 1);
    assert_eq!(mentions("`server.client_ca`"), 1);
    assert_eq!(mentions("`server.tls_key` is not set"), 1);
}

#[test]
fn no_tls_is_refused_in_development_too() {
    let dir = temp_dir("no-tls");
    let mut raw = RawConfig::default();
    raw.server.tls_cert = String::new();
    let config = Config::from_raw(raw, &dir).unwrap();
    let error = ensure_development_files(&config, &[], &[]).unwrap_err();
    assert!(matches!(error, BootstrapError::NoTls), "{error}");
}
