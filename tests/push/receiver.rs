//! A webhook receiver for the push tests: HTTPS on a free loopback port,
//! with a certificate issued by a test CA that the gateway is told to
//! trust (`delivery.ca_file`). It records every request and answers as
//! its current behaviour says.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phigate::gateway::tls::{self, install_crypto_provider};
use serde_json::Value;
use warp::Filter as _;

/// A CA made for one test, in its folder.
pub struct TestCa {
    pub pem: PathBuf,
    dir: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "push test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join("receiver-ca.pem");
        std::fs::write(&pem, cert.pem()).unwrap();
        TestCa {
            pem,
            dir: dir.to_path_buf(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for 127.0.0.1 from this CA and its key, as PEM
    /// files named after `name`.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.join(format!("{name}-cert.pem"));
        let key_path = self.dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// Starts a receiver with a certificate for 127.0.0.1 from this CA.
    pub async fn receiver(&self, name: &str, behaviour: Behaviour) -> Receiver {
        install_crypto_provider();
        let (cert_path, key_path) = self.issue(name);
        let tls_config = tls::server_config(&cert_path, &key_path, None).unwrap();

        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let filter = {
            let log = Arc::clone(&log);
            let behaviour = Arc::clone(&behaviour);
            warp::post()
                .and(warp::path("hook"))
                .and(warp::header::headers_cloned())
                .and(warp::body::bytes())
                .and_then(
                    move |headers: warp::http::HeaderMap, body: warp::hyper::body::Bytes| {
                        let log = Arc::clone(&log);
                        let behaviour = Arc::clone(&behaviour);
                        async move {
                            let at = Instant::now();
                            let nth = log.lock().unwrap().len();
                            let reply = (behaviour.lock().unwrap())(nth);
                            log.lock().unwrap().push(Received {
                                at,
                                headers: headers
                                    .iter()
                                    .map(|(name, value)| {
                                        let value = value.to_str().unwrap_or("").to_string();
                                        (name.as_str().to_string(), value)
                                    })
                                    .collect(),
                                body: body.to_vec(),
                                status: reply.status,
                            });
                            tokio::time::sleep(reply.delay).await;
                            let mut response = warp::http::Response::builder().status(reply.status);
                            if let Some(seconds) = reply.retry_after {
                                response = response.header("Retry-After", seconds.to_string());
                            }
                            Ok::<_, Infallible>(response.body(String::new()).unwrap())
                        }
                    },
                )
        };

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tls::serve(listener, tls_config, filter, async move {
            let _ = stopped.await;
        }));
        Receiver {
            url: format!("https://127.0.0.1:{port}/hook"),
            log,
            behaviour,
            _stop: stop,
        }
    }
}

/// What the receiver answers to its request number `n` (from 0).
pub type Behaviour = Box<dyn Fn(usize) -> Reply + Send>;

#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

/// Always the same answer.
pub fn always(reply: Reply) -> Behaviour {
    Box::new(move |_| reply)
}

/// One request as the receiver saw it, and the status it answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or("", String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub struct Receiver {
    pub url: String,
    log: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    /// Dropped with the receiver, which stops its server.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}
