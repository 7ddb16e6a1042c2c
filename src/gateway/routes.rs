//! The HTTP API of SPEC §3, as one warp filter.
//!
//! The filter captures the method, path, query, headers and body stream of
//! every request and hands them to [`handle`], which dispatches by hand.
//! Doing the routing here rather than in warp's combinators keeps every
//! status code, every error body and the order of checks in one readable
//! place: authenticate, then check the media type, then read the body
//! under its size limit, then parse, then decide, then store.
//!
//! Error bodies are short and fixed; they never echo payload values, and
//! the detail goes to the log with the request id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use warp::http::{HeaderMap, Method, StatusCode, header};
use warp::{Buf, Filter};

use super::state::AppState;
use super::tls::ConnectionInfo;
use crate::auth::Principal;
use crate::rules::{BlockReason, Event, Outcome, Rejection};
use crate::store::{AuditKind, Committed, NewAudit, NewDelivery, NewPublish};

/// The longest a pull may wait for messages.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// The most deliveries one pull leases.
pub const MAX_BATCH: u32 = 100;

/// The whole API as a warp filter.
pub fn api(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
+ Clone
+ Send
+ Sync
+ 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::any()
        .map(move || Arc::clone(&state))
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<ConnectionInfo>())
        .and(warp::body::stream())
        .then(
            |state: Arc<AppState>,
             method,
             path: warp::path::FullPath,
             query: String,
             headers,
             connection,
             body| async move {
                let request = Request {
                    id: state.next_request_id(),
                    started: Instant::now(),
                    method,
                    path: path.as_str().to_string(),
                    query,
                    headers,
                    connection,
                };
                let response = handle(&state, &request, body).await;
                tracing::debug!(
                    request_id = %request.id,
                    method = %request.method,
                    path = %request.path,
                    status = response.status().as_u16(),
                    elapsed_ms = request.started.elapsed().as_millis() as u64,
                    "RequestServed"
                );
                response
            },
        )
}

/// What a handler needs to know of a request, besides its body.
struct Request {
    id: String,
    /// When the request was captured, for the latency histograms.
    started: Instant,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    connection: Option<ConnectionInfo>,
}

/// A failed request: the status and the fixed, value-free message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authenticate with `Authorization: Bearer TOKEN` or a client certificate",
        )
    }

    fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    }

    fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the event could not be stored; nothing was accepted, retry later",
        )
    }

    fn into_response(self, request_id: &str) -> warp::reply::Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        json_response(self.status, &body, request_id)
    }
}

fn json_response(status: StatusCode, body: &Value, request_id: &str) -> warp::reply::Response {
    let mut response =
        warp::http::Response::new(serde_json::to_vec(body).unwrap_or_default().into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = header::HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

/// The routes, by path shape. `Subscription` carries the plugin name.
enum Route {
    Publish,
    Messages(String),
    Ack(String),
    Health(String),
    Audit,
    Healthz,
    Metrics,
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["messaging", "publish"] => Some(Route::Publish),
        ["messaging", "subscriptions", plugin, "messages"] => {
            Some(Route::Messages(decode(plugin)?))
        }
        ["messaging", "subscriptions", plugin, "ack"] => Some(Route::Ack(decode(plugin)?)),
        ["messaging", "subscriptions", plugin, "health"] => Some(Route::Health(decode(plugin)?)),
        ["audit"] => Some(Route::Audit),
        ["healthz"] => Some(Route::Healthz),
        ["metrics"] => Some(Route::Metrics),
        _ => None,
    }
}

/// Percent-decodes a path segment; `None` when it is not valid UTF-8.
fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn handle<S, B>(state: &AppState, request: &Request, body: S) -> warp::reply::Response
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: Buf,
{
    let Some(route) = route(&request.path) else {
        return ApiError::not_found().into_response(&request.id);
    };
    let allowed = match route {
        Route::Publish | Route::Ack(_) => Method::POST,
        _ => Method::GET,
    };
    if request.method != allowed {
        return ApiError::method_not_allowed().into_response(&request.id);
    }

    let result = match route {
        Route::Healthz => Ok(json_response(
            StatusCode::OK,
            &json!({"status": "ok"}),
            &request.id,
        )),
        Route::Metrics => Ok(metrics_response(state, request).await),
        Route::Publish => publish(state, request, body).await,
        Route::Messages(plugin) => messages(state, request, &plugin).await,
        Route::Ack(plugin) => ack(state, request, &plugin, body).await,
        Route::Health(plugin) => health(state, request, &plugin).await,
        Route::Audit => audit(state, request).await,
    };
    result.unwrap_or_else(|error| {
        tracing::debug!(request_id = %request.id, status = error.status.as_u16(), code = error.code, "RequestRefused");
        error.into_response(&request.id)
    })
}

/// Who is calling: a bearer token, else the client certificate.
fn principal(state: &AppState, request: &Request) -> Result<Principal, ApiError> {
    if let Some(value) = request.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        return state
            .authenticate(token.trim())
            .ok_or_else(ApiError::unauthorized);
    }
    let fingerprint = request
        .connection
        .as_ref()
        .and_then(|c| c.peer_plugin.clone());
    match fingerprint {
        Some(plugin) => Ok(Principal::Plugin(plugin)),
        None => Err(ApiError::unauthorized()),
    }
}

/// The caller must be the plugin named in the path.
fn require_plugin(state: &AppState, request: &Request, plugin: &str) -> Result<(), ApiError> {
    match principal(state, request)? {
        Principal::Plugin(name) if name == plugin => Ok(()),
        _ => Err(ApiError::forbidden(
            "only that plugin may use its subscription",
        )),
    }
}

fn require_json(request: &Request) -> Result<(), ApiError> {
    let content_type = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as `Content-Type: application/json`",
        ))
    }
}

/// Reads the body, refusing it as soon as it passes `limit` bytes: a huge
/// body is never buffered.
async fn read_body<S, B>(mut body: S, limit: u64) -> Result<Vec<u8>, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than messaging.max_payload_size ({limit} bytes)"),
        )
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| ApiError::bad_request("the body could not be read"))?;
        if (bytes.len() + chunk.remaining()) as u64 > limit {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            bytes.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(bytes)
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    // Only the position is reported: serde's message can quote the input.
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request(format!(
            "the body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ))
    })
}

async fn publish<S, B>(
    state: &AppState,
    request: &Request,
    body: S,
) -> Result<warp::reply::Response, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: Buf,
{
    let Principal::Plugin(publisher) = principal(state, request)? else {
        return Err(ApiError::forbidden(
            "an admin cannot publish; use a plugin's token",
        ));
    };
    require_json(request)?;
    if let Some(length) = request
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > state.config.max_payload_size
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is larger than messaging.max_payload_size ({} bytes)",
                state.config.max_payload_size
            ),
        ));
    }
    let bytes = read_body(body, state.config.max_payload_size).await?;
    let mut document = match parse_json(&bytes)? {
        Value::Object(document) => document,
        _ => {
            return Err(ApiError::bad_request(
                "the body must be a JSON object with `topic` and `payload`",
            ));
        }
    };
    let topic = match document.remove("topic") {
        Some(Value::String(topic)) => topic,
        Some(_) => return Err(ApiError::bad_request("`topic` must be a string")),
        None => return Err(ApiError::bad_request("missing field `topic`")),
    };
    let payload = document
        .remove("payload")
        .ok_or_else(|| ApiError::bad_request("missing field `payload`"))?;
    let attributes = match document.remove("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(attributes)) => attributes,
        Some(_) => return Err(ApiError::bad_request("`attributes` must be a JSON object")),
    };
    let idempotency_key = request
        .headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| ApiError::bad_request("`Idempotency-Key` must be visible ASCII"))?;
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 255)
    {
        return Err(ApiError::bad_request(
            "`Idempotency-Key` must be 1 to 255 characters",
        ));
    }

    let event = Event {
        topic,
        publisher,
        attributes,
        payload,
    };
    let engine = state.engine();
    let decision = match engine.decide(&event, &state.keys, state.config.filter_mode) {
        Ok(decision) => decision,
        Err(rejection) => return Err(reject(state, request, &event, rejection).await),
    };

    let mut deliveries = Vec::new();
    let mut audit = Vec::new();
    let mut blocked = 0;
    for delivery in &decision.deliveries {
        for error in &delivery.filter_errors {
            audit.push(NewAudit {
                kind: AuditKind::FilterError,
                message_id: None,
                topic: Some(event.topic.clone()),
                publisher: Some(event.publisher.clone()),
                subscriber: Some(delivery.plugin.clone()),
                rules: error.rule.iter().cloned().collect(),
                detail: format!(
                    "{} on `{}` failed: {}; {}",
                    error
                        .rule
                        .as_deref()
                        .map_or("a receive transform".to_string(), |r| format!("rule `{r}`")),
                    error.path,
                    error.reason,
                    match state.config.filter_mode {
                        crate::config::FilterMode::FailClosed => "delivery blocked (fail-closed)",
                        crate::config::FilterMode::FailOpen => "delivered without it (fail-open)",
                    }
                ),
            });
        }
        match &delivery.outcome {
            Outcome::Deliver {
                payload,
                attributes,
            } => deliveries.push(NewDelivery {
                plugin: delivery.plugin.clone(),
                payload: payload.clone(),
                attributes: attributes.clone(),
                push: engine.endpoint(&delivery.plugin).is_some(),
            }),
            Outcome::Blocked(reason) => {
                blocked += 1;
                let (rules, detail) = match reason {
                    BlockReason::Rules(rules) => (rules.clone(), "blocked by rule".to_string()),
                    BlockReason::FilterError => (
                        Vec::new(),
                        "blocked: a field action failed (fail-closed)".to_string(),
                    ),
                };
                audit.push(NewAudit {
                    kind: AuditKind::Blocked,
                    message_id: None,
                    topic: Some(event.topic.clone()),
                    publisher: Some(event.publisher.clone()),
                    subscriber: Some(delivery.plugin.clone()),
                    rules,
                    detail,
                });
            }
        }
    }
    let mut fired: Vec<String> = decision
        .deliveries
        .iter()
        .flat_map(|d| d.fired.iter().cloned())
        .collect();
    fired.sort();
    fired.dedup();
    audit.insert(
        0,
        NewAudit {
            kind: AuditKind::Ingress,
            message_id: None,
            topic: Some(event.topic.clone()),
            publisher: Some(event.publisher.clone()),
            subscriber: None,
            rules: fired,
            detail: format!(
                "{} recipients, {} deliveries, {blocked} blocked",
                decision.deliveries.len(),
                deliveries.len()
            ),
        },
    );

    let delivered = deliveries.len();
    let committed = state
        .store
        .commit_publish(NewPublish {
            publisher: event.publisher.clone(),
            topic: event.topic.clone(),
            idempotency_key,
            deliveries,
            audit,
        })
        .await
        .map_err(|error| {
            tracing::error!(request_id = %request.id, error = %error, "PublishNotStored");
            ApiError::unavailable()
        })?;
    let message_id = match committed {
        Committed::Stored { message_id } => {
            state.metrics.published.fetch_add(1, Ordering::Relaxed);
            state.metrics.blocked.fetch_add(blocked, Ordering::Relaxed);
            state.new_messages.notify_waiters();
            tracing::info!(
                request_id = %request.id,
                message_id = %message_id,
                topic = %event.topic,
                publisher = %event.publisher,
                deliveries = delivered,
                blocked,
                "MessageAccepted"
            );
            message_id
        }
        Committed::Duplicate { message_id } => {
            tracing::info!(request_id = %request.id, message_id = %message_id, "DuplicatePublish");
            message_id
        }
    };
    state
        .metrics
        .publish_latency
        .observe(request.started.elapsed());
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "id": message_id, "topic": event.topic }),
        &request.id,
    ))
}

/// Audits a rejected event and turns the rejection into its answer.
async fn reject(
    state: &AppState,
    request: &Request,
    event: &Event,
    rejection: Rejection,
) -> ApiError {
    state.metrics.rejected.fetch_add(1, Ordering::Relaxed);
    let (status, code) = match rejection {
        Rejection::NotAllowed { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        Rejection::InvalidTopic => (StatusCode::BAD_REQUEST, "bad_request"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "payload_breaks_model"),
    };
    // The Display text names rule-file things only, never payload keys.
    let message = rejection.to_string();
    let record = NewAudit {
        kind: AuditKind::Rejected,
        message_id: None,
        topic: (status != StatusCode::BAD_REQUEST).then(|| event.topic.clone()),
        publisher: Some(event.publisher.clone()),
        subscriber: None,
        rules: Vec::new(),
        detail: format!("{} {message}", status.as_u16()),
    };
    if let Err(error) = state.store.append_audit(vec![record]).await {
        tracing::error!(request_id = %request.id, error = %error, "AuditNotStored");
    }
    ApiError::new(status, code, message)
}

/// The query string's parameters. A pair that is not valid
/// percent-encoded UTF-8 is refused rather than skipped: skipping
/// `message_id=%ZZ` would answer with every audit record instead.
fn query_params(query: &str) -> Result<HashMap<String, String>, ApiError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            decode(key)
                .zip(decode(&value.replace('+', " ")))
                .ok_or_else(|| {
                    ApiError::bad_request("the query string is not valid percent-encoded UTF-8")
                })
        })
        .collect()
}

async fn messages(
    state: &AppState,
    request: &Request,
    plugin: &str,
) -> Result<warp::reply::Response, ApiError> {
    require_plugin(state, request, plugin)?;
    let params = query_params(&request.query)?;
    let max = match params.get("max") {
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_request("`max` must be a whole number from 1"))?
            .min(MAX_BATCH),
        None => 10,
    };
    // Clamped before the conversion: `Duration::from_secs_f64` panics on
    // a value as large as `1e300`.
    let wait = match params.get("wait") {
        Some(text) => Duration::from_secs_f64(
            text.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| ApiError::bad_request("`wait` must be a number of seconds"))?
                .min(MAX_WAIT.as_secs_f64()),
        ),
        None => Duration::ZERO,
    };

    let deadline = Instant::now() + wait;
    loop {
        let notified = state.new_messages.notified();
        let leased = state
            .store
            .lease(plugin, max, state.config.lease)
            .await
            .map_err(|error| {
                tracing::error!(request_id = %request.id, error = %error, "LeaseFailed");
                ApiError::unavailable()
            })?;
        let now = Instant::now();
        if !leased.is_empty() || now >= deadline || state.is_stopping() {
            state
                .metrics
                .delivered
                .fetch_add(leased.len() as u64, Ordering::Relaxed);
            let messages = serde_json::to_value(&leased).unwrap_or(Value::Array(Vec::new()));
            return Ok(json_response(
                StatusCode::OK,
                &json!({ "messages": messages }),
                &request.id,
            ));
        }
        // Woken by a new publish, or after a short while: leases of other
        // deliveries expire without a notification. A shutdown ends the
        // wait at once, so that waiting pulls do not hold it up.
        let nap = (deadline - now).min(Duration::from_millis(500));
        tokio::select! {
            _ = tokio::time::timeout(nap, notified) => {}
            () = state.stopping() => {}
        }
    }
}

async fn ack<S, B>(
    state: &AppState,
    request: &Request,
    plugin: &str,
    body: S,
) -> Result<warp::reply::Response, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: Buf,
{
    require_plugin(state, request, plugin)?;
    require_json(request)?;
    let bytes = read_body(body, state.config.max_payload_size).await?;
    let document = parse_json(&bytes)?;
    let ids: Vec<String> = match document.get("delivery_ids") {
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| id.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("`delivery_ids` must be an array of strings"))?,
        _ => return Err(ApiError::bad_request("missing field `delivery_ids`")),
    };
    let acked = state.store.ack(plugin, &ids).await.map_err(|error| {
        tracing::error!(request_id = %request.id, error = %error, "AckFailed");
        ApiError::unavailable()
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "acked": acked }),
        &request.id,
    ))
}

async fn health(
    state: &AppState,
    request: &Request,
    plugin: &str,
) -> Result<warp::reply::Response, ApiError> {
    match principal(state, request)? {
        Principal::Admin(_) => {}
        Principal::Plugin(name) if name == plugin => {}
        Principal::Plugin(_) => {
            return Err(ApiError::forbidden(
                "only that plugin or an admin may see its health",
            ));
        }
    }
    let health = state
        .store
        .health(plugin)
        .await
        .map_err(|_| ApiError::unavailable())?;
    let body = serde_json::to_value(&health).unwrap_or(Value::Null);
    Ok(json_response(StatusCode::OK, &body, &request.id))
}

async fn audit(state: &AppState, request: &Request) -> Result<warp::reply::Response, ApiError> {
    let Principal::Admin(_) = principal(state, request)? else {
        return Err(ApiError::forbidden("the audit trail is for admins"));
    };
    let params = query_params(&request.query)?;
    let records = if let Some(message_id) = params.get("message_id") {
        state.store.audit_for_message(message_id).await
    } else {
        let after = match params.get("after") {
            Some(text) => text
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("`after` must be a whole number"))?,
            None => 0,
        };
        let limit = match params.get("limit") {
            Some(text) => text
                .parse::<u32>()
                .map_err(|_| ApiError::bad_request("`limit` must be a whole number"))?
                .clamp(1, 1000),
            None => 100,
        };
        state.store.audit_after(after, limit).await
    }
    .map_err(|_| ApiError::unavailable())?;
    let records = serde_json::to_value(&records).unwrap_or(Value::Array(Vec::new()));
    Ok(json_response(
        StatusCode::OK,
        &json!({ "records": records }),
        &request.id,
    ))
}

/// The counters and histograms, then the queue depth per plugin and state,
/// read from the store now. When the store cannot be read, the gauge is
/// left out rather than shown as zero.
async fn metrics_response(state: &AppState, request: &Request) -> warp::reply::Response {
    let mut text = state.metrics.render();
    match state.store.queue_depths().await {
        Ok(depths) => {
            let engine = state.engine();
            super::metrics::render_queue_depth(engine.plugin_names(), &depths, &mut text);
        }
        Err(error) => {
            tracing::warn!(request_id = %request.id, error = %error, "QueueDepthUnreadable");
        }
    }
    let mut response = warp::http::Response::new(text.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
