//! Push delivery: a worker per plugin with an `endpoint`, sending its due
//! deliveries as signed HTTPS `POST`s and recording each outcome in the
//! store (done, retried later, or dead).
//!
//! Each worker leases due deliveries from the store (oldest first), keeps
//! at most [`CONCURRENCY`] requests of its plugin in flight, and sleeps
//! until the next delivery is due, a publish wakes it, or
//! [`IDLE_POLL`] passes (which also finds replays made by another
//! process). Workers share nothing but the store and the HTTP client's
//! connection pool, so a slow endpoint holds back only its own plugin.
//!
//! Delivery is at least once: a delivery is marked done only after its
//! endpoint answered 2xx, so a gateway stopped between the answer and the
//! commit sends it again, under the same delivery id. A delivery whose
//! attempt never reported back (the gateway stopped mid-request) is due
//! again when its in-flight lease ([`PER_ATTEMPT_TIMEOUT`] plus a margin)
//! ends.

mod retry;
mod worker;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

pub use retry::{RetryPolicy, parse_retry_after};

use crate::gateway::state::AppState;

/// Requests in flight per plugin.
pub const CONCURRENCY: usize = 4;

/// The longest one attempt may take, from connecting to the status line.
pub const PER_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a worker sleeps at most before looking at the store again.
pub const IDLE_POLL: Duration = Duration::from_secs(1);

/// How often the set of push plugins is compared with the rules in force.
const RESCAN: Duration = Duration::from_secs(2);

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(3);

/// Why the push client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot read `delivery.ca_file` {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot build the push client: {0}")]
    Client(String),
}

/// The HTTPS client of every worker: rustls (the process's ring
/// provider), the system's roots plus those of `ca_file`, no redirects
/// (a redirect would carry the payload somewhere the rules never named),
/// no proxy from the environment.
pub fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, DeliveryError> {
    let mut roots = Vec::new();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|error| DeliveryError::CaFile {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        roots =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| DeliveryError::CaFile {
                path: path.display().to_string(),
                reason: error.to_string(),
            })?;
    }
    let builder = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(PER_ATTEMPT_TIMEOUT)
            .user_agent(concat!("phigate/", env!("CARGO_PKG_VERSION")))
    };
    match builder().tls_certs_merge(roots.clone()).build() {
        Ok(client) => Ok(client),
        // The system has no roots to load (a minimal container): the
        // CA file's alone still serve the endpoints it issued for.
        Err(error) if !roots.is_empty() => {
            tracing::warn!(
                error = %worker::describe(&error),
                "SystemRootsUnavailable: push endpoints are trusted through `delivery.ca_file` only"
            );
            builder()
                .tls_certs_only(roots)
                .build()
                .map_err(|error| DeliveryError::Client(worker::describe(&error)))
        }
        Err(error) => Err(DeliveryError::Client(worker::describe(&error))),
    }
}

/// The running workers, one per push plugin.
pub struct Workers {
    supervisor: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// Starts a worker for each plugin of the rules in force that has an
    /// endpoint, and keeps that set in step with rule reloads. The worker
    /// of a plugin that loses its endpoint keeps running: its attempts
    /// fail (no endpoint) until the deliveries are dead.
    ///
    /// Without a client (none could be built: see [`client`]), no worker
    /// starts; each push plugin is logged at error once, and its
    /// deliveries wait in the outbox.
    pub fn start(state: Arc<AppState>, client: Option<reqwest::Client>) -> Workers {
        let policy = RetryPolicy {
            max_attempts: state.config.max_attempts,
            base: state.config.retry_base,
            max: state.config.retry_max,
        };
        let supervisor = tokio::spawn(supervise(state, client, policy));
        Workers { supervisor }
    }

    /// Waits for the workers to stop after shutdown began (see
    /// [`AppState::begin_shutdown`]): requests in flight get [`DRAIN`] to
    /// finish and be recorded; the rest come back after their lease.
    pub async fn stop(self) {
        let _ = self.supervisor.await;
    }
}

async fn supervise(state: Arc<AppState>, client: Option<reqwest::Client>, policy: RetryPolicy) {
    let mut workers = JoinSet::new();
    let mut running = HashSet::new();
    loop {
        let engine = state.engine();
        for plugin in engine.plugin_names() {
            if engine.endpoint(plugin).is_some() && running.insert(plugin.to_string()) {
                let Some(client) = &client else {
                    tracing::error!(
                        plugin,
                        "PushUnavailable: no HTTPS client (see the start-up log); \
                         deliveries wait in the outbox"
                    );
                    continue;
                };
                tracing::info!(plugin, "PushWorkerStarted");
                workers.spawn(worker::run(
                    Arc::clone(&state),
                    plugin.to_string(),
                    client.clone(),
                    policy,
                ));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RESCAN) => {}
            () = state.stopping() => break,
        }
    }
    while workers.join_next().await.is_some() {}
}
