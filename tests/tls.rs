//! The HTTPS listener, against real clients: reqwest for HTTP, and a
//! bare tokio-rustls client where the handshake itself is the subject.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use phigate::config::Config;
use phigate::gateway::bootstrap::ensure_development_files;
use phigate::gateway::tls::{
    ConnectionInfo, PROTOCOL_VERSIONS, ServeOptions, certificate_fingerprint,
    install_crypto_provider, serve_with, server_config,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::Filter;

/// A fresh, empty folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("phigate-tls-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The development files in `dir`: server certificate and key, and the
/// CA that signed them.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

fn development_files(dir: &Path) -> Files {
    let config = Config::defaults(dir);
    let bootstrap = ensure_development_files(&config, &[], &[]).unwrap();
    Files {
        cert: config.tls_cert.unwrap(),
        key: config.tls_key.unwrap(),
        ca: bootstrap.ca_file.unwrap(),
    }
}

/// `GET /info`: the request's `ConnectionInfo` as JSON.
/// `GET /slow/MS`: "done" after MS milliseconds.
fn app()
-> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    let info = warp::path("info")
        .and(warp::ext::get::<ConnectionInfo>())
        .map(|info: ConnectionInfo| {
            warp::reply::json(&json!({
                "remote": info.remote.to_string(),
                "fingerprint": info.peer_fingerprint,
                "plugin": info.peer_plugin,
            }))
        });
    let slow = warp::path!("slow" / u64).and_then(|millis: u64| async move {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok::<_, warp::Rejection>("done")
    });
    info.or(slow)
}

/// A running server: its address, the trigger that stops it, and the
/// task that ends when it has stopped.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(tls: Arc<rustls::ServerConfig>, options: ServeOptions) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve_with(listener, tls, app(), shutdown, options));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Stops the server and waits (at most `limit`) for `serve` to return.
    async fn stop(mut self, limit: Duration) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(limit, self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }
}

fn client(ca: &Path, identity: Option<reqwest::Identity>) -> reqwest::Client {
    install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A client CA in `dir` (ca.pem) and a client identity it issued whose
/// common name is `plugin`: the identity PEM and the certificate's DER.
fn client_ca_and_identity(dir: &Path, plugin: &str) -> (PathBuf, String, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test client CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("client-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();

    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, plugin);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let identity = format!("{}{}", key.serialize_pem(), cert.pem());
    (ca_path, identity, cert.der().to_vec())
}

/// A bare TLS client that offers only `version`, trusting `ca`.
async fn handshake(
    addr: SocketAddr,
    ca: &Path,
    version: &'static rustls::SupportedProtocolVersion,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), stream)
        .await
}

#[tokio::test]
async fn https_serves_the_filter_with_the_connection_info() {
    let dir = temp_dir("https");
    let files = development_files(&dir);
    let tls = server_config(&files.cert, &files.key, None).unwrap();
    let server = Server::start(tls, ServeOptions::default()).await;

    let client = client(&files.ca, None);
    let info = get_json(&client, &server.url("/info")).await;
    assert!(
        info["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{info}"
    );
    assert_eq!(info["fingerprint"], Value::Null);
    assert_eq!(info["plugin"], Value::Null);

    // Unknown routes go through warp's own rejection handling.
    let missing = client.get(server.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn plain_http_is_refused_and_the_server_carries_on() {
    let dir = temp_dir("plain");
    let files = development_files(&dir);
    let tls = server_config(&files.cert, &files.key, None).unwrap();
    let server = Server::start(tls, ServeOptions::default()).await;

    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{}/info", server.addr.port());
    assert!(plain.get(&url).send().await.is_err());

    // Nothing HTTP comes back on the raw socket either.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    let info = get_json(&client(&files.ca, None), &server.url("/info")).await;
    assert!(info["remote"].is_string());
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn tls_1_2_and_1_3_only_with_http_1_1() {
    let versions: Vec<_> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
    assert_eq!(
        versions,
        [
            rustls::ProtocolVersion::TLSv1_3,
            rustls::ProtocolVersion::TLSv1_2
        ]
    );

    let dir = temp_dir("versions");
    let files = development_files(&dir);
    let tls = server_config(&files.cert, &files.key, None).unwrap();
    assert_eq!(tls.alpn_protocols, [b"http/1.1".to_vec()]);
    let server = Server::start(tls, ServeOptions::default()).await;

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let stream = handshake(server.addr, &files.ca, version).await.unwrap();
        let (_, session) = stream.get_ref();
        assert_eq!(session.protocol_version(), Some(version.version));
        // h2 was offered first; the server picks HTTP/1.1.
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    }
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn with_a_client_ca_a_certificate_names_the_plugin() {
    let dir = temp_dir("mtls");
    let files = development_files(&dir);
    let (client_ca, identity, client_der) = client_ca_and_identity(&dir, "billing");
    let tls = server_config(&files.cert, &files.key, Some(&client_ca)).unwrap();
    let server = Server::start(tls, ServeOptions::default()).await;

    let identity = reqwest::Identity::from_pem(identity.as_bytes()).unwrap();
    let info = get_json(&client(&files.ca, Some(identity)), &server.url("/info")).await;
    assert_eq!(info["plugin"], "billing");
    assert_eq!(info["fingerprint"], certificate_fingerprint(&client_der));

    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn with_a_client_ca_a_client_without_a_certificate_is_refused() {
    let dir = temp_dir("mtls-refused");
    let files = development_files(&dir);
    let (client_ca, _, _) = client_ca_and_identity(&dir, "billing");
    let tls = server_config(&files.cert, &files.key, Some(&client_ca)).unwrap();
    let server = Server::start(tls, ServeOptions::default()).await;

    let refused = client(&files.ca, None)
        .get(server.url("/info"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // A certificate from another CA is refused as well.
    let (_, stranger, _) = client_ca_and_identity(&temp_dir("stranger"), "billing");
    let stranger = reqwest::Identity::from_pem(stranger.as_bytes()).unwrap();
    let refused = client(&files.ca, Some(stranger))
        .get(server.url("/info"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_without_holding_up_others() {
    let dir = temp_dir("silent");
    let files = development_files(&dir);
    let tls = server_config(&files.cert, &files.key, None).unwrap();
    let options = ServeOptions {
        handshake_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let server = Server::start(tls, options).await;

    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Others are served while the silent one waits.
    get_json(&client(&files.ca, None), &server.url("/info")).await;

    let started = Instant::now();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buffer))
        .await
        .expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_then_refuses_connections() {
    let dir = temp_dir("graceful");
    let files = development_files(&dir);
    let tls = server_config(&files.cert, &files.key, None).unwrap();
    let server = Server::start(tls, ServeOptions::default()).await;
    let addr = server.addr;

    let client = client(&files.ca, None);
    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = server.url("/slow/600");
        async move { client.get(url).send().await?.text().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop(Duration::from_secs(5)).await;

    assert_eq!(in_flight.await.unwrap().unwrap(), "done");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_cuts_what_outlasts_the_drain_bound() {
    let dir = temp_dir("drain");
    let files = development_files(&dir);
    let tls = server_config(&files.cert, &files.key, None).unwrap();
    let options = ServeOptions {
        drain_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let server = Server::start(tls, options).await;

    let client = client(&files.ca, None);
    let in_flight = tokio::spawn({
        let url = server.url("/slow/60000");
        async move { client.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.stop(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(in_flight.await.unwrap().is_err());
}

#[test]
fn configuration_errors_name_the_file() {
    let dir = temp_dir("errors");
    let missing = dir.join("missing.pem");
    let error = server_config(&missing, &missing, None).unwrap_err();
    assert!(error.to_string().contains("missing.pem"), "{error}");

    let files = development_files(&dir);
    let error = server_config(&files.cert, &files.key, Some(&files.key)).unwrap_err();
    assert!(error.to_string().contains("client CA"), "{error}");

    // The CA's key does not go with the server's certificate.
    let ca_key = files.ca.with_file_name("ca-key.pem");
    let error = server_config(&files.cert, &ca_key, None).unwrap_err();
    assert!(error.to_string().contains("key.pem"), "{error}");
}
