//! ecoplace: energy- and carbon-aware placement for Kubernetes and Open Cluster Management.
//!
//! This crate is the service and the command line: it maps `kepler-client` telemetry into
//! `optimizer` inputs and presents the results.

pub mod carbon_args;
pub mod commands;
pub mod config;
pub mod extender;
pub mod report;
pub mod server;
pub mod simulate;
