//! SPEC §3 status codes and error bodies, the body limit, and storage
//! that cannot be written.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Gateway, admission, assert_error, raw_publish, sqlite};

/// A config with a body limit of 1 KiB.
const SMALL_BODIES: &str = "[messaging]\nmax_payload_size = \"1KB\"\n";

const JSON: &str = "application/json";

#[tokio::test]
async fn an_accepted_event_is_answered_202_and_the_other_routes_200() {
    let gateway = Gateway::start("status-2xx", "").await;

    let accepted = gateway.publish("ehr", &admission("3B"), None).await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert!(accepted.content_type.starts_with(JSON));
    assert_eq!(accepted.body["topic"], "patients.admitted");
    let id = accepted.body["id"].as_str().unwrap();
    assert!(!id.is_empty());

    // A plugin's health, for itself and for the admin.
    let health = "/messaging/subscriptions/scheduler/health";
    for token in [gateway.token("scheduler"), gateway.token("admin")] {
        let answer = gateway.get(health, Some(token)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        for field in [
            "pending",
            "leased",
            "dead",
            "oldest_pending_age_s",
            "last_error",
        ] {
            assert!(answer.body.get(field).is_some(), "no `{field}` in health");
        }
        assert_eq!(answer.body["pending"], 1);
    }

    // Liveness and metrics, for anyone on the listener.
    assert_eq!(gateway.get("/healthz", None).await.status, 200);
    let metrics = gateway.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type.starts_with("text/plain"));
    assert_eq!(gateway.metric("phigate_published_total").await, 1);
}

#[tokio::test]
async fn malformed_json_and_missing_or_mistyped_fields_are_400() {
    let gateway = Gateway::start("status-400", "").await;
    let ehr = gateway.token("ehr");
    for body in [
        r#"{"topic": "patients.admitted", "payload": {"ward": "3B"}"#,
        "",
        r#"["patients.admitted"]"#,
        r#"{"payload": {"ward": "3B"}}"#,
        r#"{"topic": "patients.admitted"}"#,
        r#"{"topic": 7, "payload": {}}"#,
        r#"{"topic": "patients.admitted", "payload": {}, "attributes": 3}"#,
        r#"{"topic": "patients.admitted", "payload": {}, "attributes": ["a"]}"#,
        r#"{"topic": "patients.admitted", "payload": {}, "attributes": "a=b"}"#,
    ] {
        let answer = raw_publish(&gateway, ehr, JSON, body).await;
        assert_error(&answer, 400, "bad_request");
    }

    let scheduler = Some(gateway.token("scheduler"));
    let ack = "/messaging/subscriptions/scheduler/ack";
    let answer = gateway
        .send(Method::POST, ack, scheduler, Some(&json!({"ids": []})))
        .await;
    assert_error(&answer, 400, "bad_request");
    for query in ["max=0", "max=ten", "wait=-1", "wait=1e400"] {
        let path = format!("/messaging/subscriptions/scheduler/messages?{query}");
        assert_error(&gateway.get(&path, scheduler).await, 400, "bad_request");
    }
    let admin = Some(gateway.token("admin"));
    for query in ["after=x", "limit=-1"] {
        let path = format!("/audit?{query}");
        assert_error(&gateway.get(&path, admin).await, 400, "bad_request");
    }
}

#[tokio::test]
async fn a_query_that_is_not_percent_encoded_utf8_is_400_not_skipped() {
    // Undecodable pairs used to be dropped: `/audit?message_id=%ZZ`
    // answered with the first page of every audit record.
    let gateway = Gateway::start("status-query", "").await;
    for (path, token) in [
        ("/audit?message_id=%ZZ", "admin"),
        ("/audit?message_id=%FF", "admin"),
        ("/audit?after=%", "admin"),
        (
            "/messaging/subscriptions/scheduler/messages?max=%ZZ",
            "scheduler",
        ),
    ] {
        let answer = gateway.get(path, Some(gateway.token(token))).await;
        assert_error(&answer, 400, "bad_request");
    }
}

#[tokio::test]
async fn a_wait_beyond_the_longest_is_cut_to_it_rather_than_panicking() {
    // `Duration::from_secs_f64(1e300)` used to panic the connection's
    // task: the client got no answer at all.
    let gateway = Gateway::start("status-wait", "").await;
    let id = gateway.accepted("ehr", &admission("3B"), None).await;
    let path = "/messaging/subscriptions/scheduler/messages?wait=1e300";
    let pulled = gateway.get(path, Some(gateway.token("scheduler"))).await;
    assert_eq!(pulled.status, 200, "{}", pulled.text);
    assert_eq!(pulled.body["messages"][0]["message_id"], id.as_str());
    assert!(!gateway.logs().contains("panicked"));
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_401() {
    let gateway = Gateway::start("status-401", "").await;
    let event = admission("3B");
    for token in [None, Some("phg_not-a-token"), Some("")] {
        let answer = gateway
            .send(Method::POST, "/messaging/publish", token, Some(&event))
            .await;
        assert_error(&answer, 401, "unauthorized");
    }
    let basic = gateway
        .client
        .post(format!("{}/messaging/publish", gateway.url))
        .header("Authorization", "Basic ZWhyOmVocg==")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);

    // Every route that needs a caller.
    for path in [
        "/messaging/subscriptions/scheduler/messages",
        "/messaging/subscriptions/scheduler/health",
        "/audit",
    ] {
        assert_error(&gateway.get(path, None).await, 401, "unauthorized");
    }
    let ack = "/messaging/subscriptions/scheduler/ack";
    let answer = gateway
        .send(Method::POST, ack, None, Some(&json!({"delivery_ids": []})))
        .await;
    assert_error(&answer, 401, "unauthorized");
}

#[tokio::test]
async fn what_a_contract_does_not_allow_is_403() {
    let gateway = Gateway::start("status-403", "").await;
    let ehr = gateway.token("ehr");
    let admin = gateway.token("admin");

    // Publishing outside the contract, or as the admin.
    let billing = json!({"topic": "billing.invoices", "payload": {"invoice_id": "INV-1"}});
    let answer = gateway.publish("ehr", &billing, None).await;
    assert_error(&answer, 403, "forbidden");
    let event = admission("3B");
    let answer = gateway
        .send(
            Method::POST,
            "/messaging/publish",
            Some(admin),
            Some(&event),
        )
        .await;
    assert_error(&answer, 403, "forbidden");

    // Another plugin's queue, whether that plugin exists or not.
    for plugin in ["scheduler", "no-such-plugin"] {
        for route in ["messages", "health"] {
            let path = format!("/messaging/subscriptions/{plugin}/{route}");
            assert_error(&gateway.get(&path, Some(ehr)).await, 403, "forbidden");
        }
        let path = format!("/messaging/subscriptions/{plugin}/ack");
        let ids = json!({"delivery_ids": []});
        let answer = gateway
            .send(Method::POST, &path, Some(ehr), Some(&ids))
            .await;
        assert_error(&answer, 403, "forbidden");
    }

    // The admin reads queues' health but pulls none; plugins read no
    // audit trail.
    let pull = "/messaging/subscriptions/scheduler/messages";
    assert_error(&gateway.get(pull, Some(admin)).await, 403, "forbidden");
    let audit = "/audit?after=0";
    assert_error(&gateway.get(audit, Some(ehr)).await, 403, "forbidden");
}

#[tokio::test]
async fn unknown_routes_are_404_and_unknown_methods_405() {
    let gateway = Gateway::start("status-404", "").await;
    let ehr = Some(gateway.token("ehr"));
    for path in [
        "/",
        "/nope",
        "/messaging",
        "/messaging/subscriptions/scheduler/other",
    ] {
        assert_error(&gateway.get(path, ehr).await, 404, "not_found");
    }
    assert_error(&gateway.get("/nope", None).await, 404, "not_found");
    for (method, path) in [
        (Method::GET, "/messaging/publish"),
        (Method::PUT, "/messaging/publish"),
        (Method::DELETE, "/audit"),
        (Method::POST, "/messaging/subscriptions/scheduler/messages"),
        (Method::GET, "/messaging/subscriptions/scheduler/ack"),
        (Method::POST, "/healthz"),
    ] {
        let answer = gateway.send(method, path, ehr, None).await;
        assert_error(&answer, 405, "method_not_allowed");
    }
}

#[tokio::test]
async fn a_body_over_max_payload_size_is_413_from_one_byte_over() {
    let gateway = Gateway::start("status-413", SMALL_BODIES).await;
    let ehr = gateway.token("ehr");

    // "1KB" is 1024 bytes: a body of exactly that size is read, one more
    // byte is not.
    let sized = |size: usize| {
        let frame = r#"{"topic": "patients.admitted", "payload": {"ward": ""}}"#;
        let ward = "x".repeat(size - frame.len());
        format!(r#"{{"topic": "patients.admitted", "payload": {{"ward": "{ward}"}}}}"#)
    };
    let answer = raw_publish(&gateway, ehr, JSON, &sized(1024)).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let answer = raw_publish(&gateway, ehr, JSON, &sized(1025)).await;
    assert_error(&answer, 413, "payload_too_large");

    // Acks are bodies too.
    let ids: Vec<String> = (0..100).map(|n| format!("delivery-{n:04}")).collect();
    let answer = gateway
        .send(
            Method::POST,
            "/messaging/subscriptions/scheduler/ack",
            Some(gateway.token("scheduler")),
            Some(&json!({ "delivery_ids": ids })),
        )
        .await;
    assert_error(&answer, 413, "payload_too_large");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let gateway = Gateway::start("status-415", "").await;
    let ehr = gateway.token("ehr");
    let body = admission("3B").to_string();
    for media in ["text/plain", "application/x-www-form-urlencoded"] {
        let answer = raw_publish(&gateway, ehr, media, &body).await;
        assert_error(&answer, 415, "unsupported_media_type");
    }
    let untyped = gateway
        .client
        .post(format!("{}/messaging/publish", gateway.url))
        .bearer_auth(ehr)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(untyped.status(), 415);
}

#[tokio::test]
async fn a_payload_that_breaks_its_model_is_422() {
    let gateway = Gateway::start("status-422", "").await;
    for payload in [
        json!({"ward": "3B", "favourite_colour": "green"}),
        json!({"ward": 3}),
        json!("3B"),
    ] {
        let event = json!({"topic": "patients.admitted", "payload": payload});
        let answer = gateway.publish("ehr", &event, None).await;
        assert_error(&answer, 422, "payload_breaks_model");
    }
    assert_eq!(gateway.metric("phigate_published_total").await, 0);
}

/// A TLS connection to the gateway, outside reqwest, for requests whose
/// framing is the point.
async fn tls_connect(gateway: &Gateway) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&gateway.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr: SocketAddr = gateway.url.trim_start_matches("https://").parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Reads a response's status line and headers, then as much body as its
/// `Content-Length` says; the status and the body.
async fn read_response<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) -> (u16, Value) {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = reader.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the connection closed before a response");
        bytes.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = reader.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the connection closed inside the body");
        bytes.extend_from_slice(&buffer[..n]);
    }
    let body = serde_json::from_slice(&bytes[head_end..head_end + length]).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_without_being_buffered() {
    let gateway = Gateway::start("body-limit", SMALL_BODIES).await;
    let token = gateway.token("ehr").to_string();
    let peak_before = gateway.peak_rss_kib();

    // A length of 1 GiB is refused on the headers alone: no byte of the
    // body is ever sent.
    let mut stream = tls_connect(&gateway).await;
    let head = format!(
        "POST /messaging/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: 1073741824\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
        .await
        .expect("a 413 before any body was sent");
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    drop(stream);

    // 50 MB in chunks, without a length: the answer comes while the body
    // is still being sent, and the server's memory does not grow by it.
    const TOTAL: u64 = 50 * 1024 * 1024;
    let stream = tls_connect(&gateway).await;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let sent = Arc::new(AtomicU64::new(0));
    let sending = {
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            let head = format!(
                "POST /messaging/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            );
            writer.write_all(head.as_bytes()).await?;
            let opening = br#"{"topic": "patients.admitted", "payload": {"ward": ""#;
            writer
                .write_all(format!("{:x}\r\n", opening.len()).as_bytes())
                .await?;
            writer.write_all(opening).await?;
            writer.write_all(b"\r\n").await?;
            let chunk = vec![b'x'; 64 * 1024];
            while sent.load(Ordering::Relaxed) < TOTAL {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                writer.write_all(&chunk).await?;
                writer.write_all(b"\r\n").await?;
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            writer.write_all(b"0\r\n\r\n").await?;
            writer.flush().await
        })
    };
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), read_response(&mut reader))
        .await
        .expect("an answer to the chunked body");
    let sent_at_answer = sent.load(Ordering::Relaxed);
    sending.abort();
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(
        sent_at_answer < TOTAL,
        "the answer waited for the whole body ({sent_at_answer} bytes)"
    );

    if let (Some(before), Some(after)) = (peak_before, gateway.peak_rss_kib()) {
        assert!(
            after < before + 20 * 1024,
            "peak memory grew from {before} KiB to {after} KiB"
        );
    }
    assert_eq!(gateway.get("/healthz", None).await.status, 200);
    assert_eq!(gateway.metric("phigate_published_total").await, 0);
}

#[tokio::test]
async fn a_publish_that_cannot_be_stored_is_answered_503_and_leaves_nothing() {
    let gateway = Gateway::start("unavailable", "").await;
    let before = gateway.accepted("ehr", &admission("1A"), None).await;

    // Another process holds the database's write lock past the
    // gateway's busy timeout: the transaction cannot happen.
    let mut locker = sqlite(&gateway).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let refused = gateway.publish("ehr", &admission("2B"), None).await;
    assert_error(&refused, 503, "storage_unavailable");
    assert_eq!(gateway.get("/healthz", None).await.status, 200);
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();

    // The gateway recovers, and of the refused event nothing was kept:
    // no delivery, no ingress record.
    let after = gateway.accepted("ehr", &admission("3C"), None).await;
    let pulled = gateway.pull("scheduler", 100, 0.0).await;
    let wards: Vec<&str> = pulled
        .iter()
        .map(|m| m["payload"]["ward"].as_str().unwrap())
        .collect();
    assert_eq!(wards, ["1A", "3C"]);
    let ingress: Vec<Value> = gateway
        .audit()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "ingress")
        .map(|r| r["message_id"].clone())
        .collect();
    assert_eq!(ingress, [json!(before), json!(after)]);
}
