//! A real `phigate serve` for the gateway tests: its own folder (a copy
//! of the repository's rules, a config file naming a free port), its
//! stdout and stderr in files, an HTTPS client that trusts the CA the
//! development profile made, and the tokens it printed. Dropping it kills
//! the process. Below it, the helpers the tests share.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use phigate::gateway::tls::install_crypto_provider;
use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, SqliteConnection};

/// The longest a start may take, from spawn to `/healthz` answering.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running gateway and what a test needs to talk to it.
pub struct Gateway {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub url: String,
    pub ca: PathBuf,
    pub client: reqwest::Client,
    tokens: HashMap<String, String>,
    port: u16,
    log_level: String,
    child: Option<Child>,
    /// Bumped on each start, so that a restart does not overwrite the
    /// logs of the run before it.
    run: u32,
}

/// A response: status, media type and the body, parsed when it is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub body: Value,
}

impl Gateway {
    /// Starts a gateway in a fresh folder named after the test, with the
    /// repository's rules and a config file holding `[server] listen` on
    /// a free port followed by `extra_toml` (which must not open
    /// `[server]` again).
    pub async fn start(name: &str, extra_toml: &str) -> Gateway {
        Gateway::start_with_log_level(name, extra_toml, "info").await
    }

    /// As [`Gateway::start`], with `RUST_LOG` set to `log_level`.
    pub async fn start_with_log_level(name: &str, extra_toml: &str, log_level: &str) -> Gateway {
        Gateway::launch(name, extra_toml, log_level, None).await
    }

    /// As [`Gateway::start`], with one rule file holding `rules` instead
    /// of the repository's rules.
    #[allow(
        dead_code,
        reason = "used by tests/push.rs, which includes this file too"
    )]
    pub async fn start_with_rules(name: &str, extra_toml: &str, rules: &str) -> Gateway {
        Gateway::launch(name, extra_toml, "info", Some(rules)).await
    }

    async fn launch(name: &str, extra_toml: &str, log_level: &str, rules: Option<&str>) -> Gateway {
        install_crypto_provider();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("gateway")
            .join(format!("{name}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        match rules {
            Some(text) => {
                std::fs::create_dir_all(dir.join("rules")).unwrap();
                std::fs::write(dir.join("rules/test.rules"), text).unwrap();
            }
            None => copy_dir(&repo().join("rules"), &dir.join("rules")),
        }

        // Another process may take the port between the probe and the
        // start; a few attempts make that harmless.
        for _ in 0..3 {
            let port = free_port();
            let config = dir.join("phigate.toml");
            let text = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n\n{extra_toml}\n");
            std::fs::write(&config, text).unwrap();
            let mut gateway = Gateway {
                url: format!("https://127.0.0.1:{port}"),
                ca: dir.join("data/tls/ca.pem"),
                dir: dir.clone(),
                config,
                client: reqwest::Client::new(),
                tokens: HashMap::new(),
                port,
                log_level: log_level.to_string(),
                child: None,
                run: 0,
            };
            match gateway.spawn().await {
                Ok(()) => return gateway,
                Err(stderr) if stderr.contains("cannot listen") => continue,
                Err(stderr) => panic!("phigate serve did not start:\n{stderr}"),
            }
        }
        panic!("phigate serve found no free port in three attempts");
    }

    /// Starts the server again on the same folder and port, after
    /// [`Gateway::kill`] or [`Gateway::terminate`]. The tokens stay those
    /// of the first start.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the gateway is still running");
        if let Err(stderr) = self.spawn().await {
            panic!("phigate serve did not restart:\n{stderr}");
        }
    }

    /// SIGKILL: no shutdown, no checkpoint.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the process to end (graceful shutdown).
    pub fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "phigate serve exited with {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("phigate serve did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the gateway is running").id()
    }

    /// The token the first start printed for a plugin or the admin.
    pub fn token(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .unwrap_or_else(|| panic!("no token printed for `{name}`"))
    }

    pub fn database(&self) -> PathBuf {
        self.dir.join("data/phigate.db")
    }

    /// Everything every run of the server wrote on stdout and stderr.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for run in 1..=self.run {
            for stream in ["stdout", "stderr"] {
                let path = self.dir.join(format!("{stream}.{run}.log"));
                logs.push_str(&std::fs::read_to_string(path).unwrap_or_default());
            }
        }
        logs
    }

    /// Runs another `phigate` command on this gateway's config file.
    pub fn phigate(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_phigate"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    /// Sends a request as `token` (none when `None`) with a JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// `POST /messaging/publish` as `plugin`.
    pub async fn publish(&self, plugin: &str, event: &Value, key: Option<&str>) -> Answer {
        let mut request = self
            .client
            .post(format!("{}/messaging/publish", self.url))
            .bearer_auth(self.token(plugin))
            .json(event);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        answer(request.send().await.unwrap()).await
    }

    /// Publishes and expects a 202; the message id.
    pub async fn accepted(&self, plugin: &str, event: &Value, key: Option<&str>) -> String {
        let answer = self.publish(plugin, event, key).await;
        assert_eq!(answer.status, 202, "publish refused: {}", answer.text);
        answer.body["id"].as_str().unwrap().to_string()
    }

    /// Leases up to `max` deliveries of `plugin`, waiting up to `wait`
    /// seconds for the first.
    pub async fn pull(&self, plugin: &str, max: u32, wait: f64) -> Vec<Value> {
        let path = format!("/messaging/subscriptions/{plugin}/messages?max={max}&wait={wait}");
        let answer = self.get(&path, Some(self.token(plugin))).await;
        assert_eq!(answer.status, 200, "pull refused: {}", answer.text);
        answer.body["messages"].as_array().unwrap().clone()
    }

    /// Acknowledges delivery ids as `plugin`; how many this call acked.
    pub async fn ack(&self, plugin: &str, ids: &[&str]) -> u64 {
        let path = format!("/messaging/subscriptions/{plugin}/ack");
        let body = serde_json::json!({ "delivery_ids": ids });
        let answer = self
            .send(
                reqwest::Method::POST,
                &path,
                Some(self.token(plugin)),
                Some(&body),
            )
            .await;
        assert_eq!(answer.status, 200, "ack refused: {}", answer.text);
        answer.body["acked"].as_u64().unwrap()
    }

    /// Every audit record, through `GET /audit` as the admin.
    pub async fn audit(&self) -> Vec<Value> {
        let mut records = Vec::new();
        let mut after = 0;
        loop {
            let path = format!("/audit?after={after}&limit=1000");
            let answer = self.get(&path, Some(self.token("admin"))).await;
            assert_eq!(answer.status, 200, "audit refused: {}", answer.text);
            let page = answer.body["records"].as_array().unwrap().clone();
            let Some(last) = page.last() else {
                return records;
            };
            after = last["seq"].as_i64().unwrap();
            records.extend(page);
        }
    }

    /// A counter of `GET /metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let answer = self.get("/metrics", None).await;
        assert_eq!(answer.status, 200);
        answer
            .text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric `{name}` in:\n{}", answer.text))
    }

    /// The peak resident memory of the server, in KiB (Linux only).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Spawns `phigate serve` and waits until `/healthz` answers. On
    /// failure, the process is gone and the error is its stderr.
    async fn spawn(&mut self) -> Result<(), String> {
        self.run += 1;
        let stdout_path = self.dir.join(format!("stdout.{}.log", self.run));
        let stderr_path = self.dir.join(format!("stderr.{}.log", self.run));
        let child = Command::new(env!("CARGO_BIN_EXE_phigate"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .env("RUST_LOG", &self.log_level)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).unwrap())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);

        let deadline = Instant::now() + START_LIMIT;
        loop {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() {
                self.child = None;
                return Err(std::fs::read_to_string(&stderr_path).unwrap_or_default());
            }
            // The CA exists once the listening line is out; the client
            // can only be built then.
            let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
            if stdout.contains("phigate listening on") && self.ready().await {
                break;
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "no answer on /healthz within {START_LIMIT:?}; stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }

        // Every start-up line is printed before the first request is
        // served, so the tokens are all there now.
        let stdout = std::fs::read_to_string(&stdout_path).unwrap();
        assert!(
            stdout.starts_with(&format!("phigate listening on {}", self.url)),
            "unexpected first line:\n{stdout}"
        );
        for line in stdout.lines() {
            let Some(rest) = line
                .strip_prefix("token for plugin `")
                .or_else(|| line.strip_prefix("token for admin `"))
            else {
                continue;
            };
            let (name, token) = rest.split_once("`: ").unwrap();
            self.tokens.insert(name.to_string(), token.to_string());
        }
        Ok(())
    }

    /// Whether `/healthz` answers 200, building the client on first use.
    async fn ready(&mut self) -> bool {
        let Ok(pem) = std::fs::read(&self.ca) else {
            return false;
        };
        let ca = reqwest::Certificate::from_pem(&pem).unwrap();
        self.client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let probe = self
            .client
            .get(format!("{}/healthz", self.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        matches!(probe, Ok(response) if response.status() == 200)
    }
}

impl Drop for Gateway {
    #[expect(
        clippy::print_stderr,
        reason = "a failing test shows the server's logs"
    )]
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- logs of the gateway in {} (port {}):\n{}",
                self.dir.display(),
                self.port,
                self.logs()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `probe` every 50 ms until it returns `Some`, or panics with
/// `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An admission the example rules accept from `ehr`: `scheduler` and
/// `analytics` receive it.
pub fn admission(ward: &str) -> Value {
    json!({
        "topic": "patients.admitted",
        "payload": {
            "mrn": "MRN-0012345",
            "name": "Ada L.",
            "ward": ward,
            "admitted_at": "2026-12-03T09:00:00Z",
            "diagnosis": {"code": "J18"}
        }
    })
}

/// An error answer: the status, `application/json`, and the body
/// `{"error": {"code", "message"}}` with a non-empty message.
#[track_caller]
pub fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{status} without a JSON media type: {:?}",
        answer.content_type
    );
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.text);
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "{status} without a message");
    assert_eq!(
        answer.body.as_object().unwrap().len(),
        1,
        "only `error` in {}",
        answer.text
    );
}

/// `POST /messaging/publish` with a body and media type as given.
pub async fn raw_publish(gateway: &Gateway, token: &str, media: &str, body: &str) -> Answer {
    let response = gateway
        .client
        .post(format!("{}/messaging/publish", gateway.url))
        .bearer_auth(token)
        .header("Content-Type", media)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// A read-write connection to the gateway's database, behind its back.
pub async fn sqlite(gateway: &Gateway) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(gateway.database())
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        text,
        body,
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
