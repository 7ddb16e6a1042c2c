//! `phigate serve`: start-up, reloads and shutdown around the listener.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::state::AppState;
use crate::config::{Config, Profile};
use crate::load::{self, RuleSetError};
use crate::rules::CheckOptions;
use crate::store::{AuditKind, NewAudit};

/// How often the rule files are looked at for changes.
const RULE_POLL: Duration = Duration::from_secs(2);

/// How often retention purges finished deliveries and old audit records
/// (and once at start).
pub const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Re-reads the rule set and swaps the engine in when it checks clean;
/// otherwise the running set stays and the refusal is logged.
pub async fn reload(state: &AppState, why: &'static str) {
    let options = CheckOptions {
        key_ids: Some(state.keys.ids().map(str::to_string).collect()),
    };
    match load::load_rule_set(&state.config.rule_paths, &options) {
        Ok(rule_set) => {
            let rules = rule_set.engine.rule_count();
            let files = rule_set.files.len();
            for warning in &rule_set.warnings {
                tracing::warn!(code = warning.code.id, message = %warning.message, "RuleWarning");
            }
            state.replace_engine(rule_set.engine);
            state.metrics.reloads.fetch_add(1, Ordering::Relaxed);
            tracing::info!(reason = why, files, rules, "RulesReloaded");
            audit_rules_loaded(state, format!("{files} rule files, {rules} rules ({why})")).await;
        }
        Err(RuleSetError::Io(error)) => {
            state
                .metrics
                .reload_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(reason = why, error = %error, "RulesReloadRefused");
        }
        Err(RuleSetError::Findings { findings, sources }) => {
            state
                .metrics
                .reload_failures
                .fetch_add(1, Ordering::Relaxed);
            let errors = findings
                .iter()
                .filter(|d| d.severity() == crate::rules::Severity::Error)
                .count();
            for finding in findings
                .iter()
                .filter(|d| d.severity() == crate::rules::Severity::Error)
            {
                let (file, line, column) = sources.locate(finding.span);
                tracing::error!(
                    code = finding.code.id,
                    file = %file.path().display(),
                    line,
                    column,
                    message = %finding.message,
                    "RuleError"
                );
            }
            tracing::error!(
                reason = why,
                errors,
                "RulesReloadRefused: the running rule set stays"
            );
        }
    }
}

pub async fn audit_rules_loaded(state: &AppState, detail: String) {
    let record = NewAudit {
        kind: AuditKind::RulesLoaded,
        message_id: None,
        topic: None,
        publisher: None,
        subscriber: None,
        rules: Vec::new(),
        detail,
    };
    if let Err(error) = state.store.append_audit(vec![record]).await {
        tracing::error!(error = %error, "AuditNotStored");
    }
}

/// What identifies the rule files as they are now: paths, sizes and
/// modification times.
pub fn rule_files_stamp(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let files = load::find_rule_files(paths).unwrap_or_default();
    files
        .into_iter()
        .map(|path| {
            let metadata = std::fs::metadata(&path).ok();
            let len = metadata.as_ref().map_or(0, |m| m.len());
            let modified = metadata.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}

/// Reloads on SIGHUP and when the rule files change, until the process
/// ends.
pub fn spawn_reloader(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut stamp = rule_files_stamp(&state.config.rule_paths);
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hangup.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<()>();
            tokio::select! {
                _ = signalled => {
                    stamp = rule_files_stamp(&state.config.rule_paths);
                    reload(&state, "SIGHUP").await;
                }
                _ = tokio::time::sleep(RULE_POLL) => {
                    let now = rule_files_stamp(&state.config.rule_paths);
                    if now != stamp {
                        stamp = now;
                        reload(&state, "rule files changed").await;
                    }
                }
            }
        }
    });
}

/// Purges finished deliveries older than `retention.deliveries` and audit
/// records older than `retention.audit`, at start and every
/// [`RETENTION_EVERY`], through the store's writer, until shutdown
/// begins. Does nothing when both are off.
pub fn spawn_retention(state: Arc<AppState>) {
    let deliveries = state.config.delivery_retention;
    let audit = state.config.audit_retention;
    if deliveries.is_none() && audit.is_none() {
        return;
    }
    tokio::spawn(async move {
        loop {
            if let Some(period) = deliveries {
                match state.store.purge_deliveries(period).await {
                    Ok(purged) if purged.done + purged.dead > 0 => {
                        tracing::info!(done = purged.done, dead = purged.dead, "DeliveriesPurged");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(error = %error, "DeliveriesNotPurged"),
                }
            }
            if let Some(period) = audit {
                match state.store.purge_audit(period).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "AuditRecordsPurged"),
                    Err(error) => tracing::warn!(error = %error, "AuditRecordsNotPurged"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETENTION_EVERY) => {}
                () = state.stopping() => break,
            }
        }
    });
}

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("ShutdownRequested: finishing in-flight requests");
}

/// Problems that stop a production start, each named.
pub fn production_problems(config: &Config) -> Vec<String> {
    if config.profile != Profile::Production {
        return Vec::new();
    }
    super::bootstrap::check_production(config)
        .err()
        .unwrap_or_default()
}
