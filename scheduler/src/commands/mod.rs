//! One module per `ecoplace` subcommand.

pub mod telemetry;
