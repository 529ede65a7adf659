//! Projects, their users and the job mix: classes, run times, explicit jobs, arrival shape.

use super::{Choice, Instant, Range, Span};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The Slurm account.
    pub name: String,
    /// Job classes this project submits; default: all.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    #[serde(default)]
    pub final_runs: Option<FinalRuns>,
    /// Users listed by name...
    #[serde(default)]
    pub users: Vec<User>,
    /// ...and/or generated (`<project>-u01`, ...) with Zipf-like weights.
    #[serde(default)]
    pub generated_users: Option<GeneratedUsers>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default = "weight_one")]
    pub weight: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedUsers {
    pub count: u32,
    /// Name prefix; default `<project>-u`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The i-th user (from 1) has weight 1/i^zipf: 0 gives equal weights; 1 gives a few heavy users,
    /// as in HPC accounting data.
    #[serde(default)]
    pub zipf: f64,
}

fn weight_one() -> f64 {
    1.0
}

/// The project's "final runs": a share of its jobs named by a glob with one `*` (replaced by the
/// class's job name), typically longer than its development runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalRuns {
    pub pattern: String,
    pub share: f64,
    #[serde(default = "weight_one")]
    pub duration_factor: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jobs {
    /// Total number of jobs submitted over the period (times drawn from the arrival profile)...
    #[serde(default)]
    pub count: Option<u64>,
    /// ...or a Poisson rate at full activity (scaled by the arrival profile).
    #[serde(default)]
    pub arrivals_per_hour: Option<f64>,
    pub classes: Vec<JobClass>,
    /// Jobs at given times, besides the random ones (e.g. one shorter than a scrape interval).
    #[serde(default)]
    pub explicit: Vec<ExplicitJob>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobClass {
    pub name: String,
    #[serde(default = "weight_one")]
    pub weight: f64,
    pub partition: String,
    /// Nodes per job.
    #[serde(default = "one_node")]
    pub nodes: Choice<u32>,
    /// Physical cores per node (all hardware threads of each core are allocated, as Slurm's
    /// CR_Core does).
    pub cores: Choice<u32>,
    /// GPUs per node.
    #[serde(default = "zero_gpus")]
    pub gpus: Choice<u32>,
    pub duration: DurationDist,
    /// Share of the allocated CPUs kept busy, 0–1.
    pub cpu_util: Range,
    /// GPU utilisation, 0–1.
    #[serde(default = "zero_range")]
    pub gpu_util: Range,
    /// Job names to draw from; default: the class name.
    #[serde(default)]
    pub names: Vec<String>,
}

fn one_node() -> Choice<u32> {
    Choice::One(1)
}

fn zero_gpus() -> Choice<u32> {
    Choice::One(0)
}

fn zero_range() -> Range {
    Range::Fixed(0.0)
}

/// Log-normal run time: median `exp(mu)`, shape `sigma`, clamped to `[min, max]` (jobs hitting
/// their time limit pile up at `max`, as they do in real accounting data).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationDist {
    pub median: Span,
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    #[serde(default)]
    pub min: Option<Span>,
    pub max: Span,
}

fn default_sigma() -> f64 {
    1.0
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitJob {
    pub user: String,
    pub class: String,
    pub submit: Instant,
    pub duration: Span,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cores: Option<u32>,
    #[serde(default)]
    pub gpus: Option<u32>,
    #[serde(default)]
    pub nodes: Option<u32>,
    #[serde(default)]
    pub cpu_util: Option<f64>,
    #[serde(default)]
    pub gpu_util: Option<f64>,
}

/// When people submit: a factor on the arrival rate at night and at weekends (UTC).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrivals {
    #[serde(default)]
    pub night: Option<Night>,
    #[serde(default)]
    pub weekend_factor: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Night {
    /// `HH:MM`, UTC.
    pub from: String,
    pub to: String,
    pub factor: f64,
}
