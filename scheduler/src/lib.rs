//! ecoplace: energy- and carbon-aware placement for Kubernetes and Open Cluster Management.
//!
//! This crate is the service and the command line: it maps `kepler-client` telemetry into
//! `optimizer` inputs and presents the results.

pub mod carbon_window;
pub mod commands;
pub mod config;
pub mod extender;
pub mod fleet;
pub mod lease;
pub mod node_rebalance;
pub mod ocm;
pub mod placement;
pub mod preflight;
pub mod report;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod simulate;

/// The process allocator of every binary linking this crate (`ecoplace`, its benches and
/// tests): jemalloc. A 5 000-node extender call allocates a few hundred KiB-sized buffers;
/// glibc's malloc hands those back to the kernel on free and page-faults them in again on
/// the next call (~15 % of the call), while jemalloc keeps freed pages for 10 s and returns
/// them from its own background thread, not on a request's allocation path.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
