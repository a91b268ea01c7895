//! `ecoplace config`: print the configuration reference or the JSON Schema, or check a file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::{Config, reference};

/// Arguments of `ecoplace config`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum ConfigCommand {
    /// Print the Markdown reference of every key (docs/configuration.md).
    Reference,
    /// Print the JSON Schema of ecoplace.yaml.
    Schema,
    /// Validate a configuration file: types, unknown keys, semantic checks.
    Check {
        /// The file (ecoplace.yaml).
        file: PathBuf,
    },
}

/// Runs the subcommand; a failed check prints the error (file, field path, reason) on
/// stderr and exits with status 1.
pub fn run(args: ConfigArgs) -> Result<ExitCode> {
    match args.command {
        ConfigCommand::Reference => super::print_out(&reference::markdown())?,
        ConfigCommand::Schema => super::print_out(&format!("{:#}\n", reference::json_schema()))?,
        ConfigCommand::Check { file } => match Config::load(&file) {
            Ok(_) => super::print_out(&format!("{}: ok\n", file.display()))?,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
