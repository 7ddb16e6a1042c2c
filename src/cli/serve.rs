//! `phigate serve`: run the gateway.

use std::path::Path;
use std::sync::Arc;

use clap::Args;

use super::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::auth::Tokens;
use crate::config::{Config, Profile};
use crate::gateway::state::AppState;
use crate::gateway::{bootstrap, routes, serve, tls};
use crate::keys::KeyRing;
use crate::load::{self, RuleSetError};
use crate::rules::CheckOptions;
use crate::store::{Store, StoreOptions};

#[derive(Debug, Args)]
pub struct ServeArgs {}

pub fn run(config_arg: Option<&Path>, _args: ServeArgs) -> u8 {
    init_logging();
    let config = match super::configuration(config_arg) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return EXIT_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return EXIT_USAGE;
        }
    };
    runtime.block_on(serve_until_stopped(config))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

async fn serve_until_stopped(config: Config) -> u8 {
    tls::install_crypto_provider();

    // The rules come first: the development profile makes a token for
    // each plugin they declare and a key for each key they name.
    let key_file_ids = KeyRing::load(&config.keys_file)
        .ok()
        .map(|keys| keys.ids().map(str::to_string).collect());
    let rule_set = match load::load_rule_set(
        &config.rule_paths,
        &CheckOptions {
            key_ids: key_file_ids,
        },
    ) {
        Ok(rule_set) => rule_set,
        Err(RuleSetError::Io(error)) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
        Err(RuleSetError::Findings { sources, findings }) => {
            eprint!(
                "{}",
                crate::rules::render::human(&sources, &findings, false)
            );
            eprintln!("error: the rule set has errors; the gateway does not start");
            return EXIT_FINDINGS;
        }
    };
    for warning in &rule_set.warnings {
        tracing::warn!(code = warning.code.id, message = %warning.message, "RuleWarning");
    }

    let mut created_tokens = Vec::new();
    let mut ca_file = None;
    match config.profile {
        Profile::Development => {
            let plugins: Vec<String> = rule_set.engine.plugin_names().map(str::to_string).collect();
            match bootstrap::ensure_development_files(&config, &plugins, &rule_set.key_names()) {
                Ok(made) => {
                    created_tokens = made.tokens;
                    ca_file = made.ca_file;
                }
                Err(error) => {
                    eprintln!("error: cannot prepare the development files: {error}");
                    return EXIT_USAGE;
                }
            }
        }
        Profile::Production => {
            let problems = serve::production_problems(&config);
            if !problems.is_empty() {
                for problem in problems {
                    eprintln!("error: {problem}");
                }
                eprintln!("error: the production profile refuses to start");
                return EXIT_FINDINGS;
            }
        }
    }
    if !config.audit_enabled {
        tracing::warn!("AuditDisabled: no audit record will be persisted");
    }

    let keys = match KeyRing::load(&config.keys_file) {
        Ok(keys) => keys,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let tokens = match Tokens::load_or_empty(&config.tokens_file) {
        Ok(tokens) => tokens,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let (Some(cert), Some(key)) = (config.tls_cert.as_deref(), config.tls_key.as_deref()) else {
        eprintln!(
            "error: `server.tls_cert` and `server.tls_key` are required: phigate serves HTTPS only"
        );
        return EXIT_USAGE;
    };
    let tls_config = match tls::server_config(cert, key, config.client_ca.as_deref()) {
        Ok(tls_config) => tls_config,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let store = match Store::open(
        &config.database,
        StoreOptions {
            audit_enabled: config.audit_enabled,
        },
    )
    .await
    {
        Ok(store) => store,
        Err(error) => {
            eprintln!(
                "error: cannot open the database {}: {error}",
                config.database.display()
            );
            return EXIT_USAGE;
        }
    };
    // A CA file that cannot be read stops the start; a system without
    // roots of its own (and no CA file) only stops push delivery.
    let push_client = match crate::delivery::client(config.delivery_ca_file.as_deref()) {
        Ok(client) => Some(client),
        Err(error @ crate::delivery::DeliveryError::CaFile { .. }) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
        Err(error) => {
            tracing::error!(
                error = %error,
                "PushClientUnavailable: install the system's CA certificates or set `delivery.ca_file`"
            );
            None
        }
    };
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", config.listen);
            return EXIT_USAGE;
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.listen.clone());

    let files = rule_set.files.len();
    let rules = rule_set.engine.rule_count();
    let state = Arc::new(AppState::new(
        rule_set.engine,
        store.clone(),
        keys,
        tokens,
        config,
    ));
    serve::audit_rules_loaded(&state, format!("{files} rule files, {rules} rules (start)")).await;

    println!("phigate listening on https://{address}");
    if let Some(ca_file) = &ca_file {
        println!("trust this CA file: {}", ca_file.display());
    }
    for (principal, token) in &created_tokens {
        println!(
            "token for {} `{}`: {token}",
            principal_kind(principal),
            principal
        );
    }
    if created_tokens.is_empty() && state.config.profile == Profile::Development {
        println!(
            "tokens: already created earlier (`phigate token create --plugin NAME` makes another)"
        );
    }
    tracing::info!(address = %address, files, rules, "GatewayStarted");

    serve::spawn_reloader(Arc::clone(&state));
    serve::spawn_retention(Arc::clone(&state));
    let workers = crate::delivery::Workers::start(Arc::clone(&state), push_client);
    let stopping = Arc::clone(&state);
    let shutdown = async move {
        serve::shutdown_signal().await;
        stopping.begin_shutdown();
    };
    tls::serve(
        listener,
        tls_config,
        routes::api(Arc::clone(&state)),
        shutdown,
    )
    .await;
    workers.stop().await;
    store.close().await;
    tracing::info!("GatewayStopped");
    EXIT_OK
}

/// How the start-up lines name a principal: the admin, or a plugin.
fn principal_kind(name: &str) -> &'static str {
    if name == crate::auth::DEFAULT_ADMIN {
        "admin"
    } else {
        "plugin"
    }
}
