//! Pure placement decisions: no network, no clock, no Kubernetes types.
//!
//! Today this crate holds the objective weights and their named presets; power models,
//! per-pod scoring and the placement MILP build on them.

pub mod weights;

pub use weights::{Weights, WeightsError};
