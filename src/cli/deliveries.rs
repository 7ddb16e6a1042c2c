//! `phigate deliveries dead [--plugin P]` and `phigate deliveries replay
//! ID...`: the dead letters of push delivery, for operators.
//!
//! `dead` opens the database read-only. `replay` writes through its own
//! store writer beside a running gateway (SQLite serialises the two
//! writers; the audit chain is extended inside each transaction); the
//! gateway's worker picks the replayed deliveries up within a second.

use std::io::Write as _;
use std::path::Path;

use clap::{Args, Subcommand};

use super::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::store::{Store, StoreOptions};

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    pub command: DeliveriesCommand,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Print dead deliveries as JSON lines (id, plugin, topic, attempts,
    /// last error; never the payload), oldest first.
    Dead {
        /// Only this plugin's.
        #[arg(long, value_name = "NAME")]
        plugin: Option<String>,
    },
    /// Send dead deliveries back to their queue, attempts counted from
    /// zero; each replay is audited. Exit 1 when an id was not dead.
    Replay {
        /// Delivery ids, as `deliveries dead` prints them.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

/// Exit codes: 0 done, 1 an id that is unknown or not dead (the others
/// are replayed), 2 no configuration or database, or storage failed.
pub fn run(config_arg: Option<&Path>, args: DeliveriesArgs) -> u8 {
    let (config, runtime) = match super::database_command(config_arg) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let database = config.database;

    runtime.block_on(async {
        let store = match &args.command {
            DeliveriesCommand::Dead { .. } => Store::open_read_only(&database).await,
            DeliveriesCommand::Replay { .. } => {
                let options = StoreOptions {
                    audit_enabled: config.audit_enabled,
                };
                Store::open(&database, options).await
            }
        };
        let store = match store {
            Ok(store) => store,
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_USAGE;
            }
        };
        let code = match args.command {
            DeliveriesCommand::Dead { plugin } => dead(&store, plugin.as_deref()).await,
            DeliveriesCommand::Replay { ids } => replay(&store, &ids).await,
        };
        store.close().await;
        code
    })
}

async fn dead(store: &Store, plugin: Option<&str>) -> u8 {
    let dead = match store.dead_deliveries(plugin).await {
        Ok(dead) => dead,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let mut out = std::io::stdout().lock();
    for delivery in dead {
        let line = serde_json::json!({
            "id": delivery.id,
            "message_id": delivery.message_id,
            "plugin": delivery.plugin,
            "topic": delivery.topic,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "last_error_at": delivery.last_error_at,
        });
        if writeln!(out, "{line}").is_err() {
            return EXIT_USAGE;
        }
    }
    EXIT_OK
}

async fn replay(store: &Store, ids: &[String]) -> u8 {
    let replayed = match store.replay(ids).await {
        Ok(replayed) => replayed,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let mut code = EXIT_OK;
    for id in ids {
        if replayed.contains(id) {
            println!("replayed {id}");
        } else {
            eprintln!("error: no dead delivery `{id}`");
            code = EXIT_FINDINGS;
        }
    }
    code
}
