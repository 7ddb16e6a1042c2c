//! `phigate signing-secret --plugin NAME`: the plugin's webhook signing
//! secret, alone on stdout, created when missing.

use std::path::Path;

use clap::Args;

use super::{EXIT_OK, EXIT_USAGE};
use crate::signing;

#[derive(Debug, Args)]
pub struct SigningArgs {
    /// The plugin whose pushed requests the secret signs.
    #[arg(long, value_name = "NAME")]
    pub plugin: String,
}

pub fn run(config_arg: Option<&Path>, args: SigningArgs) -> u8 {
    let config = match super::configuration(config_arg) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return EXIT_USAGE;
        }
    };
    let path = signing::secrets_file(&config.tokens_file);
    match signing::secret_for(&path, &args.plugin) {
        Ok(secret) => {
            println!("{secret}");
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_USAGE
        }
    }
}
