//! The command line: clap fills plain structs, each command validates its
//! own arguments and runs. This is the only layer that prints.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line is the one layer that writes to the terminal"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command ran and found errors (or failing tests).
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
}

/// The default configuration file, used when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "phigate.toml";

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => check::run(cli.config.as_deref(), args),
    };
    ExitCode::from(code)
}
