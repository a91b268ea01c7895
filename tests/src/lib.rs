//! Integration test support for ecoplace: a real Prometheus, a Kepler-format exporter, and
//! fakes of the live carbon APIs.

pub mod carbon_apis;
pub mod extender;
pub mod kepler;
pub mod prometheus;
