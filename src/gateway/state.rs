//! What every request shares: the current engine, the store, keys, tokens,
//! configuration and counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::metrics::{DeliveryHistograms, Histogram};
use crate::auth::{Principal, Tokens};
use crate::config::Config;
use crate::keys::KeyRing;
use crate::rules::Engine;
use crate::store::Store;

pub struct AppState {
    engine: RwLock<Arc<Engine>>,
    pub store: Store,
    pub keys: KeyRing,
    pub config: Config,
    tokens: RwLock<TokenFile>,
    /// Woken after each stored publish, for long-polling pulls.
    pub new_messages: tokio::sync::Notify,
    /// Flips to `true` when shutdown begins; long-polling pulls stop
    /// waiting then.
    stopping: tokio::sync::watch::Sender<bool>,
    pub metrics: Metrics,
    requests: AtomicU64,
    request_prefix: String,
}

/// The tokens file as last read, and when it was modified then.
struct TokenFile {
    tokens: Tokens,
    modified: Option<SystemTime>,
}

impl AppState {
    pub fn new(
        engine: Engine,
        store: Store,
        keys: KeyRing,
        tokens: Tokens,
        config: Config,
    ) -> Self {
        let modified = modified(&config);
        let mut prefix = [0u8; 4];
        let _ = getrandom::fill(&mut prefix);
        AppState {
            engine: RwLock::new(Arc::new(engine)),
            store,
            keys,
            tokens: RwLock::new(TokenFile { tokens, modified }),
            config,
            new_messages: tokio::sync::Notify::new(),
            stopping: tokio::sync::watch::Sender::new(false),
            metrics: Metrics::default(),
            requests: AtomicU64::new(0),
            request_prefix: prefix.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The engine in force; a reload swaps it without stopping requests.
    pub fn engine(&self) -> Arc<Engine> {
        match self.engine.read() {
            Ok(engine) => Arc::clone(&engine),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn replace_engine(&self, engine: Engine) {
        let engine = Arc::new(engine);
        match self.engine.write() {
            Ok(mut current) => *current = engine,
            Err(poisoned) => *poisoned.into_inner() = engine,
        }
    }

    /// The principal a bearer token names. The tokens file is read again
    /// when it changed since the last read, so `phigate token create`
    /// takes effect without a restart.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let now = modified(&self.config);
        let stale = self
            .tokens
            .read()
            .map(|file| file.modified != now)
            .unwrap_or(true);
        if stale {
            match Tokens::load(&self.config.tokens_file) {
                Ok(tokens) => {
                    if let Ok(mut file) = self.tokens.write() {
                        *file = TokenFile {
                            tokens,
                            modified: now,
                        };
                    }
                }
                Err(error) => tracing::warn!(error = %error, "TokensNotReloaded"),
            }
        }
        self.tokens.read().ok()?.tokens.authenticate(token)
    }

    /// Marks the start of shutdown: waiting pulls answer with what they
    /// have.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once shutdown has begun.
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    pub fn next_request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:06}", self.request_prefix)
    }
}

fn modified(config: &Config) -> Option<SystemTime> {
    std::fs::metadata(&config.tokens_file)
        .and_then(|m| m.modified())
        .ok()
}

/// Counters and histograms for `GET /metrics` (the queue depth is read
/// from the store when scraped). Labels never come from payloads.
#[derive(Default)]
pub struct Metrics {
    pub published: AtomicU64,
    pub rejected: AtomicU64,
    pub blocked: AtomicU64,
    pub delivered: AtomicU64,
    /// Push deliveries acknowledged by their endpoint.
    pub pushed: AtomicU64,
    /// Push attempts that failed and will be tried again.
    pub push_retried: AtomicU64,
    /// Push deliveries that ran out of attempts.
    pub dead: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// From the start of a publish request to its 202.
    pub publish_latency: Histogram,
    /// Push attempts, by plugin and outcome.
    pub delivery_latency: DeliveryHistograms,
}

impl Metrics {
    /// The Prometheus text exposition of the counters and histograms.
    pub fn render(&self) -> String {
        let counters = [
            (
                "phigate_published_total",
                "Events accepted and stored.",
                &self.published,
            ),
            (
                "phigate_rejected_total",
                "Events refused by a plugin contract or a model.",
                &self.rejected,
            ),
            (
                "phigate_blocked_total",
                "Deliveries blocked by rules or filter errors.",
                &self.blocked,
            ),
            (
                "phigate_delivered_total",
                "Deliveries handed to pull subscribers.",
                &self.delivered,
            ),
            (
                "phigate_pushed_total",
                "Push deliveries acknowledged by their endpoint.",
                &self.pushed,
            ),
            (
                "phigate_push_retries_total",
                "Push attempts that failed and are tried again.",
                &self.push_retried,
            ),
            (
                "phigate_dead_total",
                "Push deliveries that ran out of attempts.",
                &self.dead,
            ),
            (
                "phigate_rule_reloads_total",
                "Rule sets loaded after a change.",
                &self.reloads,
            ),
            (
                "phigate_rule_reload_failures_total",
                "Changed rule sets refused.",
                &self.reload_failures,
            ),
        ];
        let mut out = String::new();
        for (name, help, counter) in counters {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                counter.load(Ordering::Relaxed)
            ));
        }
        super::metrics::render_publish(&self.publish_latency, &mut out);
        self.delivery_latency.render(&mut out);
        out
    }
}
