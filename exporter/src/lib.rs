//! joulebook's per-node exporter: samples energy sources in the background, corrects counter
//! wraps, attributes node energy to jobs, and publishes monotonic `_joules_total` counters. See
//! ARCHITECTURE.md for the map.

pub mod accounting;
pub mod app;
pub mod attribution;
pub mod build_info;
pub mod config;
pub mod duration;
pub mod energy;
pub mod engine;
pub(crate) mod fileio;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod owners;
pub mod partition;
pub mod sampler;
pub mod server;
pub mod simulate;
pub mod snapshot;
pub mod sources;
pub mod state;
#[doc(hidden)]
pub mod testing;
pub mod tick;
pub mod webconfig;
pub mod yaml_key;

#[cfg(test)]
mod import_graph;
