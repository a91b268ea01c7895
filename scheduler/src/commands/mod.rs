//! One module per `ecoplace` subcommand.

pub mod config;
pub mod ocm_scores;
pub mod place;
pub mod rebalance;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod telemetry;
pub mod training;
