//! `phigate audit verify` and `phigate audit export [--after SEQ]`: check
//! and read the audit chain of the configured database.
//!
//! Both open the database read-only, so they can run beside a gateway
//! and never change the evidence they inspect.

use std::io::Write as _;
use std::path::Path;

use clap::{Args, Subcommand};

use super::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::store::{Store, StoreError};

/// Records read per query by `export`.
const EXPORT_PAGE: u32 = 1_000;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit 1 naming the first broken record.
    Verify,
    /// Print audit records as JSON lines, in `seq` order.
    Export {
        /// Only records with a `seq` greater than this.
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        after: i64,
    },
}

/// Exit codes: 0 intact (or exported), 1 a broken chain, 2 no
/// configuration, no database, or a database that cannot be read.
pub fn run(config_arg: Option<&Path>, args: AuditArgs) -> u8 {
    let (config, runtime) = match super::database_command(config_arg) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let database = config.database;

    runtime.block_on(async {
        let store = match Store::open_read_only(&database).await {
            Ok(store) => store,
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_USAGE;
            }
        };
        let code = match args.command {
            AuditCommand::Verify => verify(&store).await,
            AuditCommand::Export { after } => export(&store, after).await,
        };
        store.close().await;
        code
    })
}

async fn verify(store: &Store) -> u8 {
    match store.check_audit_chain().await {
        Ok(report) => match report.broken_at {
            None => {
                println!("audit chain intact: {} records", report.intact);
                EXIT_OK
            }
            Some(seq) => {
                println!("audit chain broken at seq {seq}");
                eprintln!(
                    "help: the record at seq {seq} was changed, or a record before it was \
                     removed; the {} records before it are intact",
                    report.intact
                );
                EXIT_FINDINGS
            }
        },
        Err(error) => read_failed(&error),
    }
}

async fn export(store: &Store, mut after: i64) -> u8 {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let records = match store.audit_after(after, EXPORT_PAGE).await {
            Ok(records) => records,
            Err(error) => return read_failed(&error),
        };
        let Some(last) = records.last() else {
            break;
        };
        after = last.seq;

        for record in &records {
            let written = serde_json::to_writer(&mut out, record)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(error) = written {
                return write_failed(&error);
            }
        }
    }
    match out.flush() {
        Ok(()) => EXIT_OK,
        Err(error) => write_failed(&error),
    }
}

fn read_failed(error: &StoreError) -> u8 {
    eprintln!("error: cannot read the audit records: {error}");
    EXIT_USAGE
}

/// A closed pipe (`phigate audit export | head`) ends the export quietly.
fn write_failed(error: &std::io::Error) -> u8 {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return EXIT_OK;
    }
    eprintln!("error: cannot write to stdout: {error}");
    EXIT_USAGE
}
