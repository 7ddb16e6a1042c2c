//! One plugin's push worker, and one attempt of one delivery.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::retry::{self, RetryPolicy};
use super::{CONCURRENCY, DRAIN, IDLE_POLL, PER_ATTEMPT_TIMEOUT};
use crate::gateway::metrics::AttemptOutcome;
use crate::gateway::state::AppState;
use crate::signing;
use crate::store::{Leased, PushOutcome};

/// How long past the attempt's timeout a delivery stays leased before it
/// is due again; covers recording the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Runs until shutdown begins, then waits up to `DRAIN` for the requests
/// in flight.
pub(crate) async fn run(
    state: Arc<AppState>,
    plugin: String,
    client: reqwest::Client,
    policy: RetryPolicy,
) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut in_flight = JoinSet::new();
    let secrets = signing::secrets_file(&state.config.tokens_file);

    while !state.is_stopping() {
        // Registered before the store is read, so that a publish between
        // the read and the wait still wakes the worker.
        let notified = state.new_messages.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let mut wait = IDLE_POLL;
        let free = permits.available_permits();
        if free > 0 {
            match state.store.next_push_due(&plugin).await {
                Ok(Some(due)) if due <= 0.0 => {
                    let batch = lease(&state, &plugin, free).await;
                    let leased_any = !batch.is_empty();
                    for delivery in batch {
                        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                            break;
                        };
                        let attempt = Attempt {
                            state: Arc::clone(&state),
                            plugin: plugin.clone(),
                            client: client.clone(),
                            policy,
                            secrets: secrets.clone(),
                        };
                        in_flight.spawn(attempt.run(delivery, permit));
                    }
                    if leased_any {
                        continue;
                    }
                }
                Ok(Some(due)) => wait = Duration::from_secs_f64(due).min(IDLE_POLL),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(plugin = %plugin, error = %error, "PushQueueUnreadable");
                }
            }
        }

        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(wait) => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            () = state.stopping() => break,
        }
    }

    let drained = tokio::time::timeout(DRAIN, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            plugin = %plugin,
            "PushAttemptsAbandoned: still in flight at shutdown; sent again after their lease"
        );
    }
}

async fn lease(state: &AppState, plugin: &str, free: usize) -> Vec<Leased> {
    let max = u32::try_from(free).unwrap_or(1);
    match state
        .store
        .lease_push(plugin, max, PER_ATTEMPT_TIMEOUT + LEASE_MARGIN)
        .await
    {
        Ok(batch) => batch,
        Err(error) => {
            tracing::warn!(plugin, error = %error, "PushLeaseFailed");
            Vec::new()
        }
    }
}

/// What one attempt needs.
struct Attempt {
    state: Arc<AppState>,
    plugin: String,
    client: reqwest::Client,
    policy: RetryPolicy,
    secrets: std::path::PathBuf,
}

impl Attempt {
    async fn run(self, delivery: Leased, _permit: OwnedSemaphorePermit) {
        let started = std::time::Instant::now();
        let result = self.send(&delivery).await;
        let elapsed = started.elapsed();
        let outcome = match result {
            Ok(detail) => {
                tracing::info!(
                    plugin = %self.plugin,
                    delivery_id = %delivery.delivery_id,
                    message_id = %delivery.message_id,
                    attempt = delivery.attempt,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "DeliveryPushed"
                );
                PushOutcome::Acknowledged(detail)
            }
            Err(failure) if delivery.attempt >= self.policy.max_attempts => {
                tracing::error!(
                    plugin = %self.plugin,
                    delivery_id = %delivery.delivery_id,
                    message_id = %delivery.message_id,
                    attempt = delivery.attempt,
                    error = %failure.error,
                    "DeliveryDead"
                );
                PushOutcome::Dead {
                    error: failure.error,
                }
            }
            Err(failure) => {
                let after = match failure.retry_after {
                    Some(asked) => self.policy.honour(asked),
                    None => self.policy.delay(delivery.attempt, retry::unit_random()),
                };
                tracing::warn!(
                    plugin = %self.plugin,
                    delivery_id = %delivery.delivery_id,
                    message_id = %delivery.message_id,
                    attempt = delivery.attempt,
                    error = %failure.error,
                    retry_in_ms = after.as_millis() as u64,
                    "DeliveryAttemptFailed"
                );
                PushOutcome::Retry {
                    error: failure.error,
                    after,
                }
            }
        };

        let metrics = &self.state.metrics;
        let (counter, label) = match &outcome {
            PushOutcome::Acknowledged(_) => (&metrics.pushed, AttemptOutcome::Ok),
            PushOutcome::Retry { .. } => (&metrics.push_retried, AttemptOutcome::Retry),
            PushOutcome::Dead { .. } => (&metrics.dead, AttemptOutcome::Dead),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics
            .delivery_latency
            .observe(&self.plugin, label, elapsed);

        let recorded = self
            .state
            .store
            .record_push(&self.plugin, &delivery.delivery_id, outcome)
            .await;
        if let Err(error) = recorded {
            // The lease runs out and the delivery is sent again.
            tracing::error!(
                plugin = %self.plugin,
                delivery_id = %delivery.delivery_id,
                error = %error,
                "PushOutcomeNotStored"
            );
        }
    }

    /// One signed `POST`; `Ok` with `HTTP nnn` on a 2xx.
    async fn send(&self, delivery: &Leased) -> Result<String, Failure> {
        let Some(endpoint) = self
            .state
            .engine()
            .endpoint(&self.plugin)
            .map(str::to_string)
        else {
            return Err(Failure::new(
                "the plugin has no endpoint in the rules in force",
            ));
        };
        let secret = signing::secret_for(&self.secrets, &self.plugin)
            .map_err(|error| Failure::new(format!("no signing secret: {error}")))?;
        let body = serde_json::to_vec(delivery)
            .map_err(|_| Failure::new("the delivery could not be serialized"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let signature = signing::signature(&secret, i64::try_from(now).unwrap_or(0), &body);

        let response = self
            .client
            .post(&endpoint)
            .timeout(PER_ATTEMPT_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Phigate-Delivery-Id", &delivery.delivery_id)
            .header("Phigate-Message-Id", &delivery.message_id)
            .header("Phigate-Attempt", delivery.attempt.to_string())
            .header("Phigate-Signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|error| Failure::new(describe(&error)))?;

        let status = response.status();
        if status.is_success() {
            return Ok(format!("HTTP {}", status.as_u16()));
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(retry::parse_retry_after);
        Err(Failure {
            error: format!("the endpoint answered HTTP {}", status.as_u16()),
            retry_after,
        })
    }
}

/// A failed attempt: value-free text, and the wait the endpoint asked for.
struct Failure {
    error: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retry_after: None,
        }
    }
}

/// A reqwest error as value-free text: its kind and the innermost cause
/// (a refused connection, an unknown issuer), without the URL.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if std::ptr::addr_eq(cause, error) {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}
