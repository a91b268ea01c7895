//! Shared fixtures for the criterion benchmarks.

pub mod extender;
pub mod placement;
pub mod snapshot;

pub use snapshot::{FleetShape, Recording, heap};
