//! The ground truth file (`--truth`): what the simulator knows, so the reporter and the tests can
//! be checked without Prometheus. The schema is documented in `docs/simulate.md`; its `schema`
//! field changes when a field changes meaning.
//!
//! Energies are joules by component (`cpu`, `dram`, `gpu`: the components the node has), each the
//! exporter's own integer microjoules divided by 10^6, so a job's `energy_j` equals, digit for
//! digit, the last value of its `joulebook_job_joules_total` series (summed over nodes for a
//! multi-node job). `hardware_j` and `model_energy_j` come from the hardware model alone, as an
//! independent check of the sampler and the attribution.

use joulebook_common::PerComponent;
use serde::Serialize;
use std::collections::BTreeMap;

pub const SCHEMA: &str = "joulebook-simulate-truth/1";

/// Joules by component name.
pub type Energy = BTreeMap<String, f64>;

#[derive(Serialize)]
pub struct Truth {
    pub schema: &'static str,
    pub cluster: String,
    pub seed: u64,
    pub start: String,
    pub start_unix: i64,
    pub end_unix: i64,
    pub scrape_interval_s: f64,
    pub sample_interval_s: f64,
    pub grace_period_s: f64,
    /// The components any node has, in the exporter's order.
    pub components: Vec<String>,
    /// Account → glob of its final runs' job names.
    pub final_run_patterns: BTreeMap<String, String>,
    pub totals: Totals,
    pub nodes: Vec<NodeTruth>,
    pub accounts: BTreeMap<String, GroupTruth>,
    pub users: BTreeMap<String, GroupTruth>,
    pub days: Vec<DayTruth>,
    pub jobs: Vec<JobTruth>,
}

#[derive(Serialize, Default)]
pub struct Totals {
    /// Σ over nodes of `joulebook_node_joules_total` at the end.
    pub node_j: Energy,
    /// Σ over jobs of their final `joulebook_job_joules_total`.
    pub jobs_j: Energy,
    /// Σ over nodes of `joulebook_unallocated_joules_total` at the end.
    pub unallocated_j: Energy,
    /// What the synthetic counters advanced by, from the first sample on.
    pub hardware_j: Energy,
    pub jobs_submitted: u64,
    pub jobs_started: u64,
    pub jobs_finished: u64,
    pub jobs_running_at_end: u64,
    pub jobs_never_started: u64,
}

#[derive(Serialize)]
pub struct NodeTruth {
    pub name: String,
    pub instance: String,
    pub group: String,
    pub partition: String,
    pub gpu_uuids: Vec<String>,
    pub energy_j: Energy,
    pub unallocated_j: Energy,
    pub jobs_j: Energy,
    pub hardware_j: Energy,
    pub restarts: Vec<RestartTruth>,
}

#[derive(Serialize)]
pub struct RestartTruth {
    /// Last cycle before the exporter stopped (its state file holds this cycle).
    pub down_unix: i64,
    /// First cycle after it started again.
    pub up_unix: i64,
}

#[derive(Serialize)]
pub struct JobTruth {
    pub id: String,
    pub user: String,
    pub account: String,
    pub partition: String,
    pub name: String,
    pub class: String,
    pub final_run: bool,
    pub submit_unix: f64,
    /// `None` when the job never started (still queued at the end).
    pub start_unix: Option<i64>,
    /// `None` while running at the end of the period.
    pub end_unix: Option<i64>,
    pub nodes: Vec<String>,
    /// Logical CPUs and GPUs per node.
    pub cpus_per_node: u32,
    pub gpus_per_node: u32,
    pub energy_j: Energy,
    pub total_j: f64,
    pub core_seconds: f64,
    pub gpu_seconds: f64,
    pub cpu_seconds: f64,
    pub by_node: BTreeMap<String, Energy>,
    /// The job's share of the modelled hardware energy over its run (allocation rule, floats).
    pub model_energy_j: Energy,
    /// An exporter on one of its nodes was down during the job: the downtime energy went to
    /// the jobs running when it came back, so `energy_j` and `model_energy_j` differ.
    pub affected_by_restart: bool,
}

#[derive(Serialize, Default)]
pub struct GroupTruth {
    pub jobs: u64,
    pub energy_j: Energy,
    pub total_j: f64,
    pub core_seconds: f64,
    pub gpu_seconds: f64,
}

#[derive(Serialize)]
pub struct DayTruth {
    /// UTC date.
    pub date: String,
    /// Energy counted in the sample intervals ending that day.
    pub node_j: Energy,
    pub jobs_j: Energy,
    pub unallocated_j: Energy,
}

/// Adds `add` (µJ by component) into `into` (µJ).
pub fn add_uj(into: &mut PerComponent<u64>, add: &PerComponent<u64>) {
    *into = into.zip_with(*add, |a, b| a + b);
}
