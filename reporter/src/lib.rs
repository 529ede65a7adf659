//! joulebook's reporter: queries a Prometheus-compatible engine for the exporter's counters and
//! renders a period's energy for a cluster, a project or a user (HTML, Markdown, JSON, mail).
//!
//! Code map: [`prom`] speaks the HTTP API; [`collect`] holds every PromQL query and returns a
//! [`data::Dataset`]; [`model`] turns it into a [`model::Report`] (all arithmetic, no I/O), with
//! [`methods`] (the estimation methods, constants and method notes); [`starts`] reads the restart
//! marker (which nodes' counters need no `resets` pass);
//! [`names`] names the nodes; [`render`] formats it; [`charts`] draws PNGs; [`mail`] sends it;
//! [`output`] writes files safely; [`cli`] wires the commands.

pub mod charts;
pub mod cli;
pub mod collect;
pub mod config;
pub mod counter;
pub mod data;
pub mod mail;
pub mod methods;
pub mod model;
pub mod names;
pub mod output;
pub mod period;
pub mod prom;
pub mod render;
pub mod sent;
pub mod starts;
pub mod stats;
pub mod trust;
