//! `ecoplace config`: print the configuration reference or the JSON Schema, or check a file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::{Config, reference};
use crate::preflight;

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
    /// Validate a configuration file as the verb that runs it would at start: types,
    /// unknown keys, ranges, the files and URLs it names; warnings for a configuration that
    /// starts but cannot decide.
    Check {
        /// The file (ecoplace.yaml).
        file: PathBuf,
        /// The verb the file is for.
        #[arg(long = "for", value_enum, default_value = "serve")]
        verb: preflight::Verb,
    },
}

/// Runs the subcommand; a failed check prints the error (file, field path, reason) on
/// stderr and exits with status 1.
pub fn run(args: ConfigArgs) -> Result<ExitCode> {
    match args.command {
        ConfigCommand::Reference => super::print_out(&reference::markdown())?,
        ConfigCommand::Schema => super::print_out(&format!("{:#}\n", reference::json_schema()))?,
        ConfigCommand::Check { file, verb } => {
            let name = file.display().to_string();
            let checked = Config::load(&file)
                .map_err(|e| e.to_string())
                .map(|c| match verb {
                    // As `serve --demo` runs it: with the demo fleet's topology.
                    preflight::Verb::Demo => {
                        crate::runtime::demo_config(c, &kepler_client::SimulatedFleet::embedded(42))
                    }
                    _ => c,
                })
                .and_then(|c| {
                    preflight::check(&c, &name, verb, chrono::Utc::now()).map_err(|e| e.to_string())
                });
            match checked {
                Ok(warnings) => {
                    for w in &warnings {
                        eprintln!("{name}: warning: {w}");
                    }
                    let note = match warnings.len() {
                        0 => String::new(),
                        1 => " (1 warning)".to_string(),
                        n => format!(" ({n} warnings)"),
                    };
                    super::print_out(&format!("{name}: ok{note}\n"))?;
                }
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
