//! The HTTPS listener: rustls over tokio, serving a warp filter through
//! hyper.
//!
//! warp 0.4 has no TLS of its own, so [`serve`] accepts TCP connections,
//! runs the TLS handshake in a task per connection (under a timeout, so a
//! slow client never holds up the accept loop), and serves HTTP/1.1 on
//! the result with hyper, calling the filter through `warp::service`.
//!
//! Filters cannot see the TLS session, and `warp::addr::remote()` is
//! `None` under this glue. Instead every request carries a
//! [`ConnectionInfo`] in its extensions: read it with
//! `warp::ext::get::<ConnectionInfo>()` (or `warp::ext::optional`).
//!
//! Only TLS 1.2 and 1.3 are offered, with the `ring` provider, and ALPN
//! `http/1.1`. With a client CA, every client must present a certificate
//! that CA issued; under TLS 1.3 a client refused that way sees only a
//! closed connection, not a certificate error.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use warp::{Filter, Reply};

/// The protocol versions the listener speaks: TLS 1.3, then 1.2.
pub const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one application protocol offered.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// What a filter knows about the connection a request came on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// Lowercase hex SHA-256 of the DER of the client's leaf certificate,
    /// when mTLS is on (see [`certificate_fingerprint`]).
    pub peer_fingerprint: Option<String>,
    /// The plugin the client certificate names: the subject's common name
    /// (CN) of a certificate the configured client CA issued. `None`
    /// without mTLS, and for a certificate with no CN, with several, or
    /// with one that is not a valid plugin name.
    ///
    /// INVARIANT: only set for a certificate rustls verified against the
    /// client CA, so that CA must issue certificates for phigate plugins
    /// only: whatever it signs may speak for the plugin its CN names.
    pub peer_plugin: Option<String>,
}

/// The time limits of [`serve_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// From accept to the end of the TLS handshake.
    pub handshake_timeout: Duration,
    /// To read a request's headers (and so, the idle time between
    /// requests on one connection).
    pub header_read_timeout: Duration,
    /// After shutdown, how long in-flight requests may take to finish
    /// before their connections are cut.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// What can go wrong building the TLS configuration. Messages name files,
/// never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {}: {source}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("the {what} {} holds no certificate", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("cannot use the certificate {} with the key {}: {source}", cert.display(), key.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot use the client CA {}: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("the TLS provider refused the protocol versions: {0}")]
    Provider(rustls::Error),
}

/// Installs rustls' `ring` provider as the process default, for clients
/// (reqwest) that look for one. Calling it again, or after another
/// provider was installed, does nothing. [`server_config`] does not need
/// it: it names its provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The server's TLS configuration: the certificate chain in `cert` (PEM,
/// leaf first), its private key in `key` (PEM: PKCS#8, PKCS#1 or SEC1),
/// TLS 1.2 and 1.3 only, ALPN `http/1.1`. With `client_ca` (PEM, one or
/// more CA certificates), clients must present a certificate issued by
/// one of them.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(cert, "certificate")?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
        what: "private key",
        path: key.to_path_buf(),
        source,
    })?;

    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Provider)?;
    let builder = match client_ca {
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, private_key)
        .map_err(|source| TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// Serves `filter` over TLS on `listener` until `shutdown` resolves, with
/// the default [`ServeOptions`]. See [`serve_with`].
pub async fn serve<F>(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    filter: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    serve_with(listener, tls, filter, shutdown, ServeOptions::default()).await;
}

/// Serves `filter` over TLS on `listener` until `shutdown` resolves.
///
/// Each connection gets its own task: the TLS handshake (bounded by
/// `handshake_timeout`), then HTTP/1.1 with every request carrying the
/// connection's [`ConnectionInfo`]. A failed handshake or a broken
/// connection is logged at debug and ends that task only.
///
/// On shutdown the listener is closed at once, connections finish the
/// request in flight and close, and after `drain_timeout` the ones left
/// are cut. The function returns when every connection task has ended.
pub async fn serve_with<F>(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    filter: F,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let acceptor = TlsAcceptor::from(tls);
    let (stop_sender, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    connections.spawn(connection(
                        stream,
                        remote,
                        acceptor.clone(),
                        filter.clone(),
                        stop.clone(),
                        options,
                    ));
                }
                Err(error) => accept_failed(error).await,
            },
            // Reap finished tasks so that the set does not grow with
            // every connection ever accepted.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                connection_ended(joined);
            }
        }
    }

    drop(listener);
    let _ = stop_sender.send(true);
    tracing::info!(open = connections.len(), "ListenerClosed");
    let drained = tokio::time::timeout(options.drain_timeout, async {
        while let Some(joined) = connections.join_next().await {
            connection_ended(joined);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            cut = connections.len(),
            drain_timeout_s = options.drain_timeout.as_secs(),
            "ConnectionsCutAtShutdown"
        );
        connections.shutdown().await;
    }
}

/// Lowercase hex SHA-256 of a certificate's DER: the fingerprint that
/// `openssl x509 -noout -fingerprint -sha256` prints, without colons.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The subject's common name (CN) of a DER certificate, when there is
/// exactly one and it is a UTF8String, PrintableString or IA5String.
/// Never panics, whatever the input.
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const VERSION: u8 = 0xa0;
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

    let (SEQUENCE, certificate, _) = der_element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der_element(certificate)? else {
        return None;
    };
    // TBSCertificate: [0] version (optional), serial, signature
    // algorithm, issuer, validity, subject, ...
    let (tag, _, after_version) = der_element(tbs)?;
    let mut rest = if tag == VERSION { after_version } else { tbs };
    for _ in 0..4 {
        rest = der_element(rest)?.2;
    }
    let (SEQUENCE, mut names, _) = der_element(rest)? else {
        return None;
    };

    // Name: a SEQUENCE OF SET OF SEQUENCE { type OID, value }.
    let mut found = None;
    while !names.is_empty() {
        let (SET, mut attributes, next) = der_element(names)? else {
            return None;
        };
        names = next;
        while !attributes.is_empty() {
            let (SEQUENCE, attribute, next) = der_element(attributes)? else {
                return None;
            };
            attributes = next;
            let (OID, oid, value) = der_element(attribute)? else {
                return None;
            };
            if oid != COMMON_NAME {
                continue;
            }
            let (tag, text, _) = der_element(value)?;
            if found.is_some() || !matches!(tag, 0x0c | 0x13 | 0x16) {
                return None;
            }
            found = Some(std::str::from_utf8(text).ok()?.to_string());
        }
    }
    found
}

/// One connection: handshake, then HTTP/1.1 until the client leaves or
/// the server stops.
async fn connection<F>(
    stream: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    filter: F,
    mut stop: watch::Receiver<bool>,
    options: ServeOptions,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(options.handshake_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        outcome = handshake => match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%remote, %error, "TlsHandshakeFailed");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "TlsHandshakeTimedOut");
                return;
            }
        },
        () = stopped(&mut stop) => return,
    };

    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[CertificateDer<'_>]>::first);
    let info = ConnectionInfo {
        remote,
        peer_fingerprint: leaf.map(|der| certificate_fingerprint(der)),
        peer_plugin: leaf
            .and_then(|der| subject_common_name(der))
            .filter(|name| crate::auth::is_valid_name(name)),
    };

    let warp_service = TowerToHyperService::new(warp::service(filter));
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(info.clone());
        warp_service.call(request)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let served = http.serve_connection(TokioIo::new(stream), service);
    let mut served = std::pin::pin!(served);

    let result = tokio::select! {
        result = served.as_mut() => result,
        () = stopped(&mut stop) => {
            // Finish the request in flight, if any, then close.
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%remote, %error, "ConnectionEndedWithError");
    }
}

/// Resolves once the server stops (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// An accept that failed. Most such errors concern one connection that
/// the client already gave up; running out of file descriptors concerns
/// them all, so the loop pauses briefly rather than spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted => {
            tracing::debug!(%error, "AcceptFailed");
        }
        _ => {
            tracing::warn!(%error, "AcceptFailed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn connection_ended(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "ConnectionTaskPanicked");
    }
}

fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

fn client_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let client_ca_error = |reason: String| TlsError::ClientCa {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path, "client CA")? {
        roots
            .add(certificate)
            .map_err(|error| client_ca_error(error.to_string()))?;
    }
    // Without `allow_unauthenticated`, a client certificate is required.
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|error| client_ca_error(error.to_string()))
}

/// Splits one DER element off `input`: its tag, its contents and what
/// follows it. Definite lengths up to 4 bytes only; `None` when the input
/// is short.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, rest)
    };
    if rest.len() < length {
        return None;
    }
    let (contents, rest) = rest.split_at(length);
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(common_names: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "phigate tests");
        for name in common_names {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, *name);
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_common_name_is_read_from_the_subject() {
        assert_eq!(
            subject_common_name(&certificate(&["billing"])),
            Some("billing".to_string())
        );
        assert_eq!(subject_common_name(&certificate(&[])), None);
    }

    #[test]
    fn truncated_or_garbage_input_gives_none() {
        let der = certificate(&["billing"]);
        for end in 0..der.len() {
            let _ = subject_common_name(&der[..end]);
        }
        assert_eq!(subject_common_name(b""), None);
        assert_eq!(
            subject_common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }

    #[test]
    fn fingerprints_are_lowercase_hex_sha256() {
        let fingerprint = certificate_fingerprint(b"abc");
        assert_eq!(
            fingerprint,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
