//! The command line: clap fills plain structs, each command validates its
//! own arguments and runs. This is the only layer that prints.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line is the one layer that writes to the terminal"
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

mod audit;
mod check;
mod decrypt;
mod deliveries;
mod explain;
mod keys;
mod serve;
mod signing;
mod test;
mod token;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command ran and found errors (or failing tests, or a
/// value that `decrypt` cannot decrypt: wrong key or altered text).
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: bad usage, or a file that could not be read or written.
pub const EXIT_USAGE: u8 = 2;

/// The messaging gateway for healthcare plugins.
#[derive(Debug, Parser)]
#[command(name = "phigate", version, about, propagate_version = true)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check rule files (and, with --config, the configuration).
    Check(check::CheckArgs),
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Run the `test` blocks of rule files.
    Test(test::TestArgs),
    /// Show what each recipient of one event would get, and why.
    Explain(explain::ExplainArgs),
    /// Manage the key file.
    Keys(keys::KeysArgs),
    /// Print the plaintext JSON of an encrypted (`enc:v1:`) value.
    Decrypt(decrypt::DecryptArgs),
    /// Manage bearer tokens.
    Token(token::TokenArgs),
    /// Verify or export the audit chain.
    Audit(audit::AuditArgs),
    /// List or replay dead push deliveries.
    Deliveries(deliveries::DeliveriesArgs),
    /// Print a plugin's webhook signing secret, creating it if missing.
    SigningSecret(signing::SigningArgs),
}

/// The default configuration file, used when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "phigate.toml";

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => check::run(cli.config.as_deref(), args),
        Command::Serve(args) => serve::run(cli.config.as_deref(), args),
        Command::Test(args) => test::run(cli.config.as_deref(), args),
        Command::Explain(args) => explain::run(cli.config.as_deref(), args),
        Command::Keys(args) => keys::run(cli.config.as_deref(), args),
        Command::Decrypt(args) => decrypt::run(cli.config.as_deref(), args),
        Command::Token(args) => token::run(cli.config.as_deref(), args),
        Command::Audit(args) => audit::run(cli.config.as_deref(), args),
        Command::Deliveries(args) => deliveries::run(cli.config.as_deref(), args),
        Command::SigningSecret(args) => signing::run(cli.config.as_deref(), args),
    };
    ExitCode::from(code)
}

/// The configuration for commands that need one: `--config FILE`, else
/// `phigate.toml` when it exists, else the defaults (relative to the
/// current folder). The error is ready to print, one problem per line.
pub(crate) fn configuration(config_arg: Option<&Path>) -> Result<Config, String> {
    let path = match config_arg {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).is_file() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(Config::defaults(Path::new("."))),
    };
    Config::load(&path).map_err(|problems| {
        problems
            .iter()
            .map(|problem| format!("error: {}: {problem}", path.display()))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// What `test` and `explain` work with: a rule set that checks clean, the
/// keys to transform with, and the configured filter mode.
pub(crate) struct RuleContext {
    pub rule_set: crate::load::RuleSet,
    pub keys: crate::keys::KeyRing,
    pub filter_mode: crate::config::FilterMode,
}

impl RuleContext {
    /// Loads the configuration and the rule set; on failure prints why and
    /// returns the exit code. Rules come from `paths`, else from the
    /// configuration. Without a key file, random in-memory keys stand in,
    /// one per key the rules name.
    pub(crate) fn open(config_arg: Option<&Path>, paths: &[PathBuf]) -> Result<RuleContext, u8> {
        let config = configuration(config_arg).map_err(|message| {
            eprintln!("{message}");
            EXIT_USAGE
        })?;
        let rule_paths = if paths.is_empty() {
            config.rule_paths.clone()
        } else {
            paths.to_vec()
        };

        let key_file = config
            .keys_file
            .is_file()
            .then(|| crate::keys::KeyRing::load(&config.keys_file));
        let file_keys = match key_file {
            Some(Ok(keys)) => Some(keys),
            Some(Err(error)) => {
                eprintln!("error: {error}");
                return Err(EXIT_USAGE);
            }
            None => None,
        };
        let options = crate::rules::CheckOptions {
            key_ids: file_keys
                .as_ref()
                .map(|keys| keys.ids().map(str::to_string).collect()),
        };

        let rule_set = match crate::load::load_rule_set(&rule_paths, &options) {
            Ok(rule_set) => rule_set,
            Err(crate::load::RuleSetError::Io(error)) => {
                eprintln!("error: {error}");
                return Err(EXIT_USAGE);
            }
            Err(crate::load::RuleSetError::Findings { sources, findings }) => {
                let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
                eprint!(
                    "{}",
                    crate::rules::render::human(&sources, &findings, color)
                );
                eprintln!("error: the rule set has errors; run `phigate check` for details");
                return Err(EXIT_FINDINGS);
            }
        };
        let keys = match file_keys {
            Some(keys) => keys,
            None => crate::keys::KeyRing::ephemeral_with(&rule_set.key_names()),
        };
        Ok(RuleContext {
            rule_set,
            keys,
            filter_mode: config.filter_mode,
        })
    }
}

/// For commands that work on an existing database (`audit`,
/// `deliveries`): the configuration, whose database must exist, and a
/// single-threaded runtime. On failure, says why and gives the exit code.
pub(crate) fn database_command(
    config_arg: Option<&Path>,
) -> Result<(Config, tokio::runtime::Runtime), u8> {
    let config = configuration(config_arg).map_err(|message| {
        eprintln!("{message}");
        EXIT_USAGE
    })?;
    if !config.database.is_file() {
        eprintln!("error: no database at {}", config.database.display());
        eprintln!("help: `phigate serve` creates it; check `storage.url` in the configuration");
        return Err(EXIT_USAGE);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("error: cannot start the async runtime: {error}");
            EXIT_USAGE
        })?;
    Ok((config, runtime))
}
