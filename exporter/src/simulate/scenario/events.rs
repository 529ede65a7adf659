//! What happens to the cluster besides its jobs: maintenance windows, exporter restarts, load
//! outside jobs and faults of the exporter's sources.

use super::{Instant, Span};
use serde::Deserialize;

/// A maintenance window: no job runs in it (the scheduler holds jobs that would overlap it, as a
/// Slurm maintenance reservation does); nodes stay powered and idle.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: Instant,
    pub duration: Span,
}

/// The exporter of `node` stops at `at` and starts again `downtime` later, with its state file
/// unless `lose_state`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    pub node: String,
    pub at: Instant,
    pub downtime: Span,
    /// The state file is lost meanwhile: the exporter starts again from zero, its counters and
    /// `joulebook_counters_start_time_seconds` with it (and the truth's figures of the node and
    /// its jobs are its counters since).
    #[serde(default)]
    pub lose_state: bool,
}

/// Load on `node` outside any job from `start` for `duration`: every socket busier by
/// `cpu_util` (a share of its CPUs), and every GPU that no job holds at `gpu_util`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrayLoad {
    pub node: String,
    pub start: Instant,
    pub duration: Span,
    #[serde(default)]
    pub cpu_util: f64,
    #[serde(default)]
    pub gpu_util: f64,
}

/// What goes wrong in a [`Fault`].
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `source` fails every sample in the window (a driver unloaded, a BMC unreachable).
    SourceDown,
    /// The sampler runs no cycle in the window while scrapes go on (a read hung on a file).
    SamplerStall,
    /// Every GPU's energy counter jumps forward at `start` by far more than the GPU could have
    /// drawn, as NVML counters have been seen to: the exporter discards that sample.
    GpuCounterJump,
}

/// A source of the simulated exporter, as named in `joulebook_source_up`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FaultSource {
    Rapl,
    Nvml,
    Amdgpu,
    #[serde(rename = "intel_gpu")]
    IntelGpu,
    Bmc,
}

/// A fault on `node` from `start` for `duration` (not used by `gpu_counter_jump`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub node: String,
    pub kind: FaultKind,
    #[serde(default)]
    pub source: Option<FaultSource>,
    pub start: Instant,
    #[serde(default)]
    pub duration: Option<Span>,
}
