//! Push delivery end to end (SPEC §3 push, §6 at-least-once): the real
//! `phigate serve` pushing to real HTTPS receivers in the test process,
//! whose certificates come from a test CA the gateway trusts through
//! `delivery.ca_file`.

#[allow(dead_code, reason = "the harness serves tests/gateway.rs too")]
#[path = "gateway/harness.rs"]
mod harness;

#[path = "push/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use harness::{Gateway, eventually};
use receiver::{Receiver, Reply, TestCa, always};

/// A payload value that must never show up in errors, logs or listings.
const CANARY: &str = "canary-4417-payload-value";

/// A test's folder for its CA and receiver files.
fn folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("push")
        .join(format!("{name}-{}", std::process::id()))
}

/// Rules: `ehr` publishes `events.*`; each (plugin, url) subscribes to
/// `events.a` and receives everything at its endpoint.
fn rules(subscribers: &[(&str, &str)]) -> String {
    let mut text = String::from("plugin \"ehr\" {\n  publish \"events.*\"\n}\n");
    for (plugin, url) in subscribers {
        text.push_str(&format!(
            "plugin \"{plugin}\" {{\n  subscribe \"events.a\"\n  receive all\n  \
             endpoint \"{url}\"\n}}\n"
        ));
    }
    text
}

/// The `[delivery]` section.
fn delivery(ca: &TestCa, max_attempts: u32, base: &str, max: &str) -> String {
    format!(
        "[delivery]\nmax_attempts = {max_attempts}\nretry_base = \"{base}\"\n\
         retry_max = \"{max}\"\nca_file = \"{}\"\n",
        ca.pem.display()
    )
}

fn event(n: u32) -> Value {
    json!({
        "topic": "events.a",
        "attributes": {"source": "test"},
        "payload": {"n": n, "note": CANARY}
    })
}

/// Waits until `receiver` has seen at least `count` requests.
async fn requests(receiver: &Receiver, count: usize, limit: Duration) -> Vec<receiver::Received> {
    eventually(limit, &format!("{count} requests at the receiver"), || {
        let seen = receiver.received();
        async move { (seen.len() >= count).then_some(seen) }
    })
    .await
}

async fn health(gateway: &Gateway, plugin: &str) -> Value {
    let path = format!("/messaging/subscriptions/{plugin}/health");
    let answer = gateway.get(&path, Some(gateway.token("admin"))).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

/// The signing secret, as an operator gets it.
fn secret(gateway: &Gateway, plugin: &str) -> String {
    let output = gateway.phigate(&["signing-secret", "--plugin", plugin]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let secret = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(secret.len(), 64, "{secret}");
    secret
}

/// HMAC-SHA-256 over `t.body`, computed here without phigate's code.
fn expected_signature(secret: &str, header: &str, body: &[u8]) -> bool {
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("malformed signature header {header:?}"));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    hex == v1
}

#[tokio::test]
async fn a_push_is_signed_carries_the_pull_message_and_a_2xx_acknowledges_it() {
    let ca = TestCa::new(&folder("signed"));
    let hook = ca.receiver("hook", always(Reply::status(204))).await;
    let gateway = Gateway::start_with_rules(
        "push-signed",
        &delivery(&ca, 3, "100ms", "500ms"),
        &rules(&[("hook", &hook.url)]),
    )
    .await;

    let message_id = gateway.accepted("ehr", &event(1), None).await;
    let seen = requests(&hook, 1, Duration::from_secs(10)).await;
    let request = &seen[0];

    let body = request.json();
    let fields: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "delivery_id",
            "message_id",
            "topic",
            "attributes",
            "payload",
            "attempt",
            "published_at"
        ])
    );
    assert_eq!(body["message_id"], message_id.as_str());
    assert_eq!(body["topic"], "events.a");
    assert_eq!(body["payload"], json!({"n": 1, "note": CANARY}));
    assert_eq!(body["attributes"], json!({"source": "test"}));
    assert_eq!(body["attempt"], 1);
    assert_eq!(request.header("Phigate-Delivery-Id"), body["delivery_id"]);
    assert_eq!(request.header("Phigate-Message-Id"), message_id);
    assert_eq!(request.header("Phigate-Attempt"), "1");
    assert!(
        request
            .header("Content-Type")
            .starts_with("application/json")
    );

    let signature = request.header("Phigate-Signature");
    let secret = secret(&gateway, "hook");
    assert!(
        expected_signature(&secret, signature, &request.body),
        "{signature}"
    );
    assert!(phigate::signing::verify(&secret, signature, &request.body));
    assert!(!expected_signature(&secret, signature, b"{}"));
    let t: i64 = signature[2..].split(',').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - t).abs() < 60, "t={t} now={now}");

    // Done: nothing pending, a `processed` record after the `egress` one.
    eventually(
        Duration::from_secs(5),
        "the push recorded as done",
        || async {
            let health = health(&gateway, "hook").await;
            (health["pending"] == 0 && health["leased"] == 0).then_some(())
        },
    )
    .await;
    let kinds: Vec<String> = gateway
        .audit()
        .await
        .iter()
        .filter(|record| record["message_id"] == message_id.as_str())
        .map(|record| record["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["ingress", "egress", "processed"]);
    assert_eq!(gateway.metric("phigate_pushed_total").await, 1);
    assert!(hook.received().len() == 1, "sent once");
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_id_then_dead_and_replay_delivers_it() {
    let ca = TestCa::new(&folder("dead"));
    let hook = ca.receiver("hook", always(Reply::status(500))).await;
    let gateway = Gateway::start_with_rules(
        "push-dead",
        &delivery(&ca, 3, "100ms", "500ms"),
        &rules(&[("hook", &hook.url)]),
    )
    .await;

    let message_id = gateway.accepted("ehr", &event(2), None).await;
    let seen = requests(&hook, 3, Duration::from_secs(10)).await;
    let ids: BTreeSet<&str> = seen
        .iter()
        .map(|r| r.header("Phigate-Delivery-Id"))
        .collect();
    assert_eq!(ids.len(), 1, "one delivery id across attempts: {ids:?}");
    let delivery_id = ids.into_iter().next().unwrap().to_string();
    let attempts: Vec<&str> = seen.iter().map(|r| r.header("Phigate-Attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);

    // Backoff: each wait at least `retry_base`, at most its ceiling
    // (100 ms, then 200 ms), plus scheduling slack; and the waits grow.
    let gaps: Vec<Duration> = seen
        .windows(2)
        .map(|pair| pair[1].at - pair[0].at)
        .collect();
    for (n, gap) in gaps.iter().enumerate() {
        let ceiling = Duration::from_millis(100 << n);
        assert!(*gap >= Duration::from_millis(95), "gap {n}: {gap:?}");
        assert!(
            *gap <= ceiling + Duration::from_millis(400),
            "gap {n}: {gap:?}"
        );
    }
    assert!(
        gaps[1] + Duration::from_millis(50) >= gaps[0],
        "the second wait is not shorter than the first: {gaps:?}"
    );

    let dead_health = eventually(Duration::from_secs(5), "the delivery dead", || async {
        let health = health(&gateway, "hook").await;
        (health["dead"] == 1).then_some(health)
    })
    .await;
    assert_eq!(dead_health["pending"], 0);
    assert_eq!(dead_health["last_error"], "the endpoint answered HTTP 500");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(hook.received().len(), 3, "no attempt after the last one");
    assert_eq!(gateway.metric("phigate_dead_total").await, 1);
    assert_eq!(gateway.metric("phigate_push_retries_total").await, 2);

    let audit = gateway.audit().await;
    let dead: Vec<&Value> = audit.iter().filter(|r| r["kind"] == "dead").collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["message_id"], message_id.as_str());
    assert_eq!(dead[0]["subscriber"], "hook");

    // The operator's listing: ids and the error, never the payload.
    let listing = gateway.phigate(&["deliveries", "dead", "--plugin", "hook"]);
    assert_eq!(listing.status.code(), Some(0), "{listing:?}");
    let text = String::from_utf8(listing.stdout).unwrap();
    assert!(!text.contains(CANARY), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["id"], delivery_id.as_str());
    assert_eq!(lines[0]["plugin"], "hook");
    assert_eq!(lines[0]["topic"], "events.a");
    assert_eq!(lines[0]["attempts"], 3);
    assert_eq!(lines[0]["last_error"], "the endpoint answered HTTP 500");
    let other = gateway.phigate(&["deliveries", "dead", "--plugin", "nobody"]);
    assert!(other.stdout.is_empty());

    // Replay, now that the endpoint works: delivered under the same id.
    hook.set_behaviour(always(Reply::status(200)));
    let replay = gateway.phigate(&["deliveries", "replay", &delivery_id, "f00d"]);
    assert_eq!(
        replay.status.code(),
        Some(1),
        "f00d is not dead: {replay:?}"
    );
    assert!(String::from_utf8_lossy(&replay.stdout).contains(&delivery_id));
    let seen = requests(&hook, 4, Duration::from_secs(10)).await;
    assert_eq!(seen[3].header("Phigate-Delivery-Id"), delivery_id);
    assert_eq!(seen[3].header("Phigate-Attempt"), "1");
    eventually(
        Duration::from_secs(5),
        "the replayed delivery done",
        || async {
            let health = health(&gateway, "hook").await;
            (health["dead"] == 0 && health["pending"] == 0 && health["leased"] == 0).then_some(())
        },
    )
    .await;
    let kinds: Vec<String> = gateway
        .audit()
        .await
        .iter()
        .filter(|record| record["message_id"] == message_id.as_str())
        .map(|record| record["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "ingress",
            "egress",
            "egress",
            "egress",
            "dead",
            "replayed",
            "egress",
            "processed"
        ]
    );
    let verify = gateway.phigate(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
    assert!(
        !gateway.logs().contains(CANARY),
        "a payload value in the logs"
    );
}

/// `GET /metrics` as `name{labels}` to value; comments left out.
async fn scrape(gateway: &Gateway) -> BTreeMap<String, f64> {
    let answer = gateway.get("/metrics", None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(!answer.text.contains(CANARY), "a payload value in /metrics");
    answer
        .text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("malformed line {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {line:?}"));
            (key.to_string(), value)
        })
        .collect()
}

/// The three queue-depth gauges of a plugin: pending, leased, dead.
fn depth(metrics: &BTreeMap<String, f64>, plugin: &str) -> [f64; 3] {
    ["pending", "leased", "dead"].map(|state| {
        let key = format!("phigate_queue_depth{{plugin=\"{plugin}\",state=\"{state}\"}}");
        *metrics
            .get(&key)
            .unwrap_or_else(|| panic!("no `{key}` in {metrics:#?}"))
    })
}

#[tokio::test]
async fn metrics_reflect_publishes_blocks_pulls_retries_dead_and_queue_depth() {
    let ca = TestCa::new(&folder("metrics"));
    let hook = ca.receiver("hook", always(Reply::status(500))).await;
    let mut rules = rules(&[("hook", &hook.url)]);
    rules.push_str(
        "plugin \"puller\" {\n  subscribe \"events.a\"\n  receive all\n}\n\
         plugin \"muted\" {\n  subscribe \"events.a\"\n  receive all\n}\n\
         rule \"muted hears nothing\" {\n  when subscriber == \"muted\"\n  block\n}\n",
    );
    let gateway =
        Gateway::start_with_rules("push-metrics", &delivery(&ca, 2, "100ms", "200ms"), &rules)
            .await;

    gateway.accepted("ehr", &event(1), None).await;
    gateway.accepted("ehr", &event(2), None).await;
    let refused = gateway.publish("puller", &event(3), None).await;
    assert_eq!(refused.status, 403, "{}", refused.text);

    // Push: each delivery tried twice, then dead.
    requests(&hook, 4, Duration::from_secs(10)).await;
    eventually(Duration::from_secs(5), "both deliveries dead", || async {
        let health = health(&gateway, "hook").await;
        (health["dead"] == 2).then_some(())
    })
    .await;
    // Pull: one of the two leased, the other still pending.
    let pulled = gateway.pull("puller", 1, 0.0).await;
    assert_eq!(pulled.len(), 1);

    let metrics = scrape(&gateway).await;
    let value = |key: &str| {
        *metrics
            .get(key)
            .unwrap_or_else(|| panic!("no `{key}` in {metrics:#?}"))
    };
    assert_eq!(value("phigate_published_total"), 2.0);
    assert_eq!(value("phigate_rejected_total"), 1.0);
    assert_eq!(value("phigate_blocked_total"), 2.0);
    assert_eq!(value("phigate_delivered_total"), 1.0);
    assert_eq!(value("phigate_pushed_total"), 0.0);
    assert_eq!(value("phigate_push_retries_total"), 2.0);
    assert_eq!(value("phigate_dead_total"), 2.0);

    assert_eq!(depth(&metrics, "hook"), [0.0, 0.0, 2.0]);
    assert_eq!(depth(&metrics, "puller"), [1.0, 1.0, 0.0]);
    assert_eq!(depth(&metrics, "muted"), [0.0, 0.0, 0.0]);
    assert_eq!(depth(&metrics, "ehr"), [0.0, 0.0, 0.0]);

    // Histograms: the two 202s, and each push attempt by outcome.
    assert_eq!(value("phigate_publish_duration_seconds_count"), 2.0);
    assert_eq!(
        value("phigate_publish_duration_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    assert!(value("phigate_publish_duration_seconds_sum") > 0.0);
    let attempts = |outcome: &str| {
        value(&format!(
            "phigate_delivery_duration_seconds_count{{plugin=\"hook\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(attempts("retry"), 2.0);
    assert_eq!(attempts("dead"), 2.0);
    assert!(
        !metrics.contains_key(
            "phigate_delivery_duration_seconds_count{plugin=\"hook\",outcome=\"ok\"}"
        )
    );

    // Ack the pulled one; replay the dead ones to a working endpoint.
    let id = pulled[0]["delivery_id"].as_str().unwrap();
    assert_eq!(gateway.ack("puller", &[id]).await, 1);
    hook.set_behaviour(always(Reply::status(200)));
    let dead = gateway.phigate(&["deliveries", "dead", "--plugin", "hook"]);
    let ids: Vec<String> = String::from_utf8(dead.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            line["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 2);
    let mut replay = vec!["deliveries", "replay"];
    replay.extend(ids.iter().map(String::as_str));
    let replayed = gateway.phigate(&replay);
    assert_eq!(replayed.status.code(), Some(0), "{replayed:?}");
    let metrics = eventually(Duration::from_secs(10), "the replays pushed", || async {
        let metrics = scrape(&gateway).await;
        let done = metrics.get("phigate_pushed_total") == Some(&2.0)
            && depth(&metrics, "hook") == [0.0, 0.0, 0.0];
        done.then_some(metrics)
    })
    .await;
    assert_eq!(depth(&metrics, "puller"), [1.0, 0.0, 0.0]);
    assert_eq!(
        metrics.get("phigate_delivery_duration_seconds_count{plugin=\"hook\",outcome=\"ok\"}"),
        Some(&2.0)
    );
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_retry_max() {
    let ca = TestCa::new(&folder("retry-after"));
    let hook = ca
        .receiver(
            "hook",
            Box::new(|n| match n {
                0 => Reply {
                    retry_after: Some(2),
                    ..Reply::status(503)
                },
                1 => Reply {
                    retry_after: Some(60),
                    ..Reply::status(429)
                },
                _ => Reply::status(200),
            }),
        )
        .await;
    let gateway = Gateway::start_with_rules(
        "push-retry-after",
        &delivery(&ca, 5, "100ms", "3s"),
        &rules(&[("hook", &hook.url)]),
    )
    .await;

    gateway.accepted("ehr", &event(3), None).await;
    let seen = requests(&hook, 3, Duration::from_secs(15)).await;
    let asked = seen[1].at - seen[0].at;
    assert!(
        asked >= Duration::from_millis(1950),
        "waited {asked:?}, asked for 2 s"
    );
    assert!(asked <= Duration::from_millis(3000), "waited {asked:?}");
    let capped = seen[2].at - seen[1].at;
    assert!(
        capped >= Duration::from_millis(2950),
        "waited {capped:?}, retry_max 3 s"
    );
    assert!(
        capped <= Duration::from_millis(4500),
        "waited {capped:?}, retry_max 3 s"
    );
}

#[tokio::test]
async fn a_restart_in_the_middle_of_retries_loses_nothing() {
    let ca = TestCa::new(&folder("restart"));
    let hook = ca.receiver("hook", always(Reply::status(500))).await;
    let mut gateway = Gateway::start_with_rules(
        "push-restart",
        &delivery(&ca, 50, "200ms", "400ms"),
        &rules(&[("hook", &hook.url)]),
    )
    .await;

    let mut published = BTreeSet::new();
    for n in 0..3 {
        published.insert(gateway.accepted("ehr", &event(n), None).await);
    }
    let failed = requests(&hook, 6, Duration::from_secs(10)).await;
    let ids_before: BTreeSet<String> = failed
        .iter()
        .map(|r| r.header("Phigate-Delivery-Id").to_string())
        .collect();
    assert_eq!(ids_before.len(), 3);
    gateway.kill();

    hook.set_behaviour(always(Reply::status(200)));
    gateway.restart().await;

    // Every delivery acknowledged once the gateway is back, under the
    // ids it had before the restart. An attempt cut by the SIGKILL comes
    // back when its in-flight lease (15 s) ends.
    let acked = eventually(
        Duration::from_secs(30),
        "every delivery acknowledged",
        || {
            let seen = hook.received();
            async move {
                let acked: BTreeMap<String, String> = seen
                    .iter()
                    .filter(|r| r.status == 200)
                    .map(|r| {
                        (
                            r.header("Phigate-Delivery-Id").to_string(),
                            r.header("Phigate-Message-Id").to_string(),
                        )
                    })
                    .collect();
                (acked.len() == 3).then_some(acked)
            }
        },
    )
    .await;
    let ids_after: BTreeSet<String> = acked.keys().cloned().collect();
    assert_eq!(ids_after, ids_before);
    let messages: BTreeSet<String> = acked.values().cloned().collect();
    assert_eq!(messages, published);

    eventually(Duration::from_secs(5), "the queue empty", || async {
        let health = health(&gateway, "hook").await;
        (health["pending"] == 0 && health["leased"] == 0 && health["dead"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_slow_endpoint_does_not_hold_back_another_plugin() {
    let ca = TestCa::new(&folder("slow"));
    let slow = ca
        .receiver(
            "slow",
            always(Reply {
                delay: Duration::from_secs(5),
                ..Reply::status(200)
            }),
        )
        .await;
    let fast = ca.receiver("fast", always(Reply::status(200))).await;
    let gateway = Gateway::start_with_rules(
        "push-slow",
        &delivery(&ca, 3, "100ms", "500ms"),
        &rules(&[("slow", &slow.url), ("fast", &fast.url)]),
    )
    .await;

    let started = Instant::now();
    for n in 0..6 {
        gateway.accepted("ehr", &event(n), None).await;
    }
    requests(&fast, 6, Duration::from_secs(3)).await;
    let fast_done = started.elapsed();
    assert!(
        fast_done < Duration::from_secs(3),
        "fast took {fast_done:?}"
    );

    // The slow plugin has at most four requests in flight.
    let in_flight = slow.received().len();
    assert!(in_flight <= 4, "{in_flight} requests in flight at once");
    requests(&slow, 6, Duration::from_secs(15)).await;
    eventually(Duration::from_secs(10), "slow deliveries done", || async {
        let health = health(&gateway, "slow").await;
        (health["pending"] == 0 && health["leased"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_python_receiver_example_verifies_a_push() {
    let ca = TestCa::new(&folder("python"));
    let (cert, key) = ca.issue("python");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}/hook");
    let gateway = Gateway::start_with_rules(
        "push-python",
        &delivery(&ca, 20, "100ms", "300ms"),
        &rules(&[("hook", &url)]),
    )
    .await;
    let secret = secret(&gateway, "hook");

    let mut child = std::process::Command::new("python3")
        .arg(harness::repo().join("examples/webhook_receiver.py"))
        .arg("--once")
        .env("PHIGATE_SIGNING_SECRET", &secret)
        .env("RECEIVER_CERT", &cert)
        .env("RECEIVER_KEY", &key)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the example");
    eventually(Duration::from_secs(10), "the example listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(drop)
    })
    .await;

    // A forged request is refused before the real push arrives.
    let ca_pem = std::fs::read(&ca.pem).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem).unwrap()])
        .build()
        .unwrap();
    let forged = client
        .post(&url)
        .header("Phigate-Signature", "t=1,v1=00")
        .header("Phigate-Delivery-Id", "forged")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    gateway.accepted("ehr", &event(7), None).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the Python receiver got no verified delivery within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("delivered "), "{stdout}");
    assert!(stdout.contains("events.a attempt "), "{stdout}");
    assert!(!stdout.contains(CANARY), "{stdout}");
}

#[test]
fn an_unreadable_ca_file_stops_the_start() {
    let dir = folder("bad-ca");
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(
        dir.join("rules/test.rules"),
        rules(&[("hook", "https://127.0.0.1:9/hook")]),
    )
    .unwrap();
    std::fs::write(
        dir.join("phigate.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[delivery]\nca_file = \"missing.pem\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_phigate"))
        .args(["serve", "--config"])
        .arg(dir.join("phigate.toml"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("delivery.ca_file"), "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
