//! `phigate keys generate`: add a new default key to the key file.

use std::path::Path;

use clap::{Args, Subcommand};

use super::{EXIT_OK, EXIT_USAGE};
use crate::keys::KeyRing;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new key to the configured key file (creating the file) and
    /// make it the default. Prints the new key's id alone on stdout.
    Generate,
}

pub fn run(config_arg: Option<&Path>, args: KeysArgs) -> u8 {
    let config = match super::configuration(config_arg) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return EXIT_USAGE;
        }
    };
    match args.command {
        KeysCommand::Generate => generate(&config.keys_file),
    }
}

fn generate(path: &Path) -> u8 {
    match KeyRing::generate_into(path) {
        Ok(id) => {
            println!("{id}");
            eprintln!(
                "added key `{id}` to {}; it is now the default",
                path.display()
            );
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_USAGE
        }
    }
}
