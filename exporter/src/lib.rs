//! joulebook's per-node exporter: samples energy sources in the background, corrects counter
//! wraps, and publishes monotonic `_joules_total` counters. See ARCHITECTURE.md for the map.

pub mod energy;
pub mod jobs;
pub mod sources;
