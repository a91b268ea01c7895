//! Integration test support for ecoplace: a real Prometheus and a Kepler-format exporter.

pub mod extender;
pub mod kepler;
pub mod prometheus;
