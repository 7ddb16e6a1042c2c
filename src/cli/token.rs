//! `phigate token create`: a new bearer token for a plugin or an admin.

use std::path::Path;

use clap::{ArgGroup, Args, Subcommand};

use super::{EXIT_OK, EXIT_USAGE};
use crate::auth::{Origin, Principal, Tokens};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new token, print it alone on stdout and store only its hash
    /// in the tokens file (creating the file). The token is shown once.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("principal").required(true).args(["plugin", "admin"])))]
pub struct CreateArgs {
    /// The plugin the token speaks for, by its name in the rule files.
    #[arg(long, value_name = "NAME")]
    pub plugin: Option<String>,
    /// An operator name; admin tokens may read the audit trail and any
    /// plugin's health.
    #[arg(long, value_name = "NAME")]
    pub admin: Option<String>,
}

pub fn run(config_arg: Option<&Path>, args: TokenArgs) -> u8 {
    let config = match super::configuration(config_arg) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return EXIT_USAGE;
        }
    };
    match args.command {
        TokenCommand::Create(create_args) => create(&config.tokens_file, create_args),
    }
}

fn create(path: &Path, args: CreateArgs) -> u8 {
    let principal = match (args.plugin, args.admin) {
        (Some(plugin), None) => Principal::Plugin(plugin),
        (None, Some(admin)) => Principal::Admin(admin),
        _ => unreachable!("clap requires exactly one of --plugin and --admin"),
    };
    match Tokens::create(path, principal.clone(), Origin::Cli) {
        Ok(token) => {
            println!("{token}");
            eprintln!(
                "stored the hash of a new token for {principal} in {}; \
                 the token above is shown only this once",
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
