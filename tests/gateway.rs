//! The gateway end to end: the real `phigate serve` binary over HTTPS,
//! one server per test in its own folder (see `harness`), driven with
//! reqwest, a bare TLS client where the request's framing is the subject,
//! the `phigate` commands, SQLite opened behind the gateway's back, and
//! the examples under `examples/` as their users run them.
//!
//! Together they cover SPEC §3 (every status code and its JSON body) and
//! §6 (accepted means stored, pull exactly once per ack, idempotency,
//! transformed payloads at rest, the audit chain, reloads, no PHI in logs,
//! audit records or database files).

#[path = "gateway/harness.rs"]
mod harness;

#[path = "gateway/api.rs"]
mod api;
#[path = "gateway/audit.rs"]
mod audit;
#[path = "gateway/delivery.rs"]
mod delivery;
#[path = "gateway/examples.rs"]
mod examples;
