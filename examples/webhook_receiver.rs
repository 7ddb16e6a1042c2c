//! A webhook receiver for phigate's push delivery that verifies each
//! request's signature before it trusts the body.
//!
//! ```text
//! PHIGATE_SIGNING_SECRET="$(phigate signing-secret --plugin inbox)" \
//! RECEIVER_CERT=cert.pem RECEIVER_KEY=key.pem PORT=9443 \
//!     cargo run --example webhook_receiver
//! ```
//!
//! Every push is a `POST` of one message with `Phigate-Delivery-Id`
//! (stable across retries: de-duplicate on it), `Phigate-Message-Id`,
//! `Phigate-Attempt` and `Phigate-Signature: t=UNIX,v1=HEX`, HEX being
//! the hex HMAC-SHA-256 of `"{t}.{raw body}"` keyed with the secret's
//! text exactly as `phigate signing-secret` prints it.
//!
//! Answer 2xx only once the message is safely yours; anything else makes
//! phigate try again later under the same delivery id (at least once).
//!
//! The TLS plumbing reuses phigate's own listener to stay short; in your
//! service, use whatever HTTPS server you already run. The part to copy
//! is [`verify`].

#![allow(
    clippy::print_stdout,
    reason = "an example that reports what it received"
)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac as _};
use sha2::Sha256;
use warp::Filter as _;
use warp::http::StatusCode;

/// How old a signature may be, in seconds: a captured request cannot be
/// replayed after that.
const TOLERANCE_S: u64 = 300;

/// Whether `header` (`t=...,v1=...`) signs `body` with `secret`, and is
/// recent. The MAC is compared in constant time (`verify_slice`).
fn verify(secret: &str, header: &str, body: &[u8], now: u64) -> bool {
    let mut time = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => time = value.parse::<u64>().ok(),
            Some(("v1", value)) => candidates.push(value),
            _ => {}
        }
    }
    let Some(time) = time else {
        return false;
    };
    if now.abs_diff(time) > TOLERANCE_S {
        return false;
    }
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("{time}.").as_bytes());
    mac.update(body);
    candidates.iter().any(|candidate| {
        from_hex(candidate).is_some_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
    })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("PHIGATE_SIGNING_SECRET")?.trim().to_string();
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "9443".into())
        .parse()?;
    let cert = std::env::var("RECEIVER_CERT")?;
    let key = std::env::var("RECEIVER_KEY")?;

    // In real life: a table written in the same transaction as your work.
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let hook = warp::post()
        .and(warp::header::optional::<String>("phigate-signature"))
        .and(warp::header::optional::<String>("phigate-delivery-id"))
        .and(warp::body::bytes())
        .and_then(
            move |signature: Option<String>,
                  delivery_id: Option<String>,
                  body: warp::hyper::body::Bytes| {
                let secret = secret.clone();
                let seen = Arc::clone(&seen);
                async move {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |since| since.as_secs());
                    let signed = signature
                        .as_deref()
                        .is_some_and(|header| verify(&secret, header, &body, now));
                    let status = match delivery_id {
                        Some(id) if signed => {
                            // Check first, parse after: only a verified body is read.
                            let message: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            if seen
                                .lock()
                                .map(|mut seen| seen.insert(id.clone()))
                                .unwrap_or(false)
                            {
                                // Print ids and names only: the payload may be PHI.
                                println!("delivered {id} {}", message["topic"]);
                            }
                            StatusCode::NO_CONTENT
                        }
                        _ => StatusCode::UNAUTHORIZED,
                    };
                    Ok::<_, Infallible>(warp::reply::with_status(warp::reply(), status))
                }
            },
        );

    phigate::gateway::tls::install_crypto_provider();
    let tls = phigate::gateway::tls::server_config(Path::new(&cert), Path::new(&key), None)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on https://127.0.0.1:{port}");
    phigate::gateway::tls::serve(listener, tls, hook, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_signature_verifies_and_an_old_one_does_not() {
        // Python: hmac.new(b"k", b"1000.x", hashlib.sha256).hexdigest()
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"k").unwrap();
        mac.update(b"1000.x");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let header = format!("t=1000,v1={hex}");
        assert!(verify("k", &header, b"x", 1010));
        assert!(!verify("k", &header, b"y", 1010));
        assert!(!verify("k", &header, b"x", 1000 + TOLERANCE_S + 1));
    }
}
