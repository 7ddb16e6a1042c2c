//! `phigate decrypt VALUE`: print the plaintext JSON of an `enc:v1:` value
//! made with a key of the configured key file.

use std::path::Path;

use clap::Args;

use super::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::keys::{KeyError, KeyRing};

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// An encrypted value, `enc:v1:KEY_ID:...`.
    #[arg(value_name = "VALUE")]
    pub value: String,
}

pub fn run(config_arg: Option<&Path>, args: DecryptArgs) -> u8 {
    let config = match super::configuration(config_arg) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return EXIT_USAGE;
        }
    };
    let keys = match KeyRing::load(&config.keys_file) {
        Ok(keys) => keys,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };

    // Neither the value nor its plaintext is ever part of a message.
    match keys.decrypt(&args.value) {
        Ok(plaintext) => {
            println!("{plaintext}");
            EXIT_OK
        }
        Err(error @ KeyError::UnknownKey { .. }) => {
            eprintln!("error: {error}");
            eprintln!(
                "help: {} holds no such key; was the value made with another key file?",
                config.keys_file.display()
            );
            EXIT_FINDINGS
        }
        Err(error @ KeyError::DecryptionFailed) => {
            eprintln!("error: {error}");
            EXIT_FINDINGS
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_USAGE
        }
    }
}
