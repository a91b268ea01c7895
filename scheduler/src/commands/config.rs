//! `ecoplace config`: print the configuration reference or the JSON Schema, or check a file.

use std::io::Write as _;
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
        ConfigCommand::Reference => emit(&reference::markdown())?,
        ConfigCommand::Schema => emit(&format!("{:#}\n", reference::json_schema()))?,
        ConfigCommand::Check { file } => match Config::load(&file) {
            Ok(_) => emit(&format!("{}: ok\n", file.display()))?,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`… | head`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
