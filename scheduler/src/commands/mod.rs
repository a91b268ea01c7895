//! One module per `ecoplace` subcommand.

pub mod telemetry;
pub mod training;
