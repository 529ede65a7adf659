//! The scenario file: a cluster, its users and its workload over a period, in YAML.
//!
//! Parsed with serde-saphyr like the exporter's configuration (`crate::config`): unknown keys and
//! wrong types are errors with the file, line and column; values are then checked here, and an
//! error names the file, the line (where the key can be found in the text) and the dotted key
//! (`node_groups[1].gpus.max_watts`). `main` turns every such error into exit status 2.
//!
//! Every key is documented in `docs/simulate.md`; keep the two in step.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// A duration: seconds (`90`) or a number with a unit (`500ms`, `30s`, `5m`, `2h`, `30d`, `1w`).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "NumOrText")]
pub struct Span(pub f64);

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Number(f64),
    Text(String),
}

impl TryFrom<NumOrText> for Span {
    type Error = String;
    fn try_from(r: NumOrText) -> Result<Self, String> {
        match r {
            NumOrText::Number(n) if n.is_finite() && n >= 0.0 => Ok(Span(n)),
            NumOrText::Number(n) => Err(format!("invalid duration {n}: must be >= 0")),
            NumOrText::Text(t) => parse_span(&t).map(Span),
        }
    }
}

/// Parses `90`, `500ms`, `30s`, `5m`, `2h`, `30d`, `1w`.
pub fn parse_span(t: &str) -> Result<f64, String> {
    let t = t.trim();
    let units: [(&str, f64); 7] = [
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
        ("d", 86400.0),
        ("w", 7.0 * 86400.0),
        ("", 1.0),
    ];
    for (suffix, mult) in units {
        if let Some(n) = t.strip_suffix(suffix) {
            if let Ok(v) = n.trim().parse::<f64>() {
                if v.is_finite() && v >= 0.0 {
                    return Ok(v * mult);
                }
            }
        }
    }
    Err(format!(
        "invalid duration {t:?}: use seconds (90) or a unit (500ms, 30s, 5m, 2h, 30d, 1w)"
    ))
}

/// A point in time: Unix seconds (`1740787200`) or RFC 3339 (`2025-03-01T00:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "NumOrText")]
pub struct Instant(pub f64);

impl TryFrom<NumOrText> for Instant {
    type Error = String;
    fn try_from(r: NumOrText) -> Result<Self, String> {
        match r {
            NumOrText::Number(n) if n.is_finite() => Ok(Instant(n)),
            NumOrText::Number(n) => Err(format!("invalid time {n}")),
            NumOrText::Text(t) => match t.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Instant(n)),
                _ => parse_rfc3339(&t).map(Instant),
            },
        }
    }
}

/// A size in bytes: a number (`1073741824`) or with a unit (`512GiB`, `64G`, `1.5TiB`). `G`/`GB`
/// are read as GiB, as `free`, Slurm's `RealMemory` and `/proc/meminfo` mean them.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "NumOrText")]
pub struct Bytes(pub u64);

impl TryFrom<NumOrText> for Bytes {
    type Error = String;
    fn try_from(r: NumOrText) -> Result<Self, String> {
        let bad = |t: &str| format!("invalid size {t:?}: use bytes or a unit (64GiB, 512G, 1TiB)");
        match r {
            NumOrText::Number(n) if n.is_finite() && n >= 0.0 => Ok(Bytes(n as u64)),
            NumOrText::Number(n) => Err(bad(&n.to_string())),
            NumOrText::Text(t) => {
                let s = t.trim();
                let split = s
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(s.len());
                let (num, unit) = s.split_at(split);
                let mult: u64 = match unit.trim() {
                    "" | "B" => 1,
                    "K" | "KB" | "KiB" => 1 << 10,
                    "M" | "MB" | "MiB" => 1 << 20,
                    "G" | "GB" | "GiB" => 1 << 30,
                    "T" | "TB" | "TiB" => 1 << 40,
                    _ => return Err(bad(s)),
                };
                match num.parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Ok(Bytes((v * mult as f64) as u64)),
                    _ => Err(bad(s)),
                }
            }
        }
    }
}

/// One value or a list to draw from uniformly (`gpus: 4` or `gpus: [1, 2, 4]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Choice<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> Choice<T> {
    pub fn options(&self) -> Vec<T> {
        match self {
            Choice::One(v) => vec![v.clone()],
            Choice::Many(v) => v.clone(),
        }
    }
}

/// A fixed value or a `[low, high]` range to draw from uniformly (utilisation).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Range {
    Fixed(f64),
    Between(Vec<f64>),
}

impl Range {
    pub fn bounds(&self) -> (f64, f64) {
        match self {
            Range::Fixed(v) => (*v, *v),
            Range::Between(v) => (
                v.first().copied().unwrap_or(0.0),
                v.get(1).or(v.first()).copied().unwrap_or(0.0),
            ),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The `cluster` label added to every sample.
    pub cluster: String,
    pub start: Instant,
    pub duration: Span,
    /// Timestamps written: one scrape of every node every this often.
    pub scrape_interval: Span,
    /// The virtual sampler's cycle; default: the scrape interval.
    #[serde(default)]
    pub sample_interval: Option<Span>,
    /// Default seed (`--seed` overrides).
    #[serde(default)]
    pub seed: Option<u64>,
    /// The exporter's `jobs.grace_period`; default max(180 s, 2 scrape intervals).
    #[serde(default)]
    pub grace_period: Option<Span>,
    pub node_groups: Vec<NodeGroup>,
    pub projects: Vec<Project>,
    pub jobs: Jobs,
    #[serde(default)]
    pub arrivals: Arrivals,
    #[serde(default)]
    pub maintenance: Vec<Window>,
    #[serde(default)]
    pub restarts: Vec<Restart>,
    /// Load outside any job (a process started by hand, a GPU kept busy after its job ended).
    #[serde(default)]
    pub stray_load: Vec<StrayLoad>,
    /// Faults of the exporter's sources and sampler.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    pub name: String,
    pub count: u32,
    /// Node names are `<prefix><number>`; default: the group's name.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Slurm partition of the group's nodes; default: the group's name.
    #[serde(default)]
    pub partition: Option<String>,
    pub sockets: u32,
    pub cores_per_socket: u32,
    #[serde(default = "one")]
    pub threads_per_core: u32,
    pub memory: Bytes,
    pub cpu_model: String,
    /// Default: from the model name (Intel → GenuineIntel, AMD → AuthenticAMD).
    #[serde(default)]
    pub cpu_vendor: Option<String>,
    /// RAPL package power per socket, idle and at full load.
    pub package_watts: Power,
    /// RAPL DRAM power per socket; default: no DRAM zone (AMD).
    #[serde(default)]
    pub dram_watts: Option<Power>,
    /// `max_energy_range_uj` of every RAPL zone; small values force counter wraps.
    #[serde(default = "default_rapl_range")]
    pub rapl_range_uj: u64,
    /// `max_energy_range_uj` of the DRAM zones (their energy unit differs from the package's).
    #[serde(default = "default_rapl_dram_range")]
    pub rapl_dram_range_uj: u64,
    #[serde(default)]
    pub gpus: Option<Gpus>,
    /// A BMC (Redfish) measuring the whole node: RAPL + GPUs + what they miss.
    #[serde(default)]
    pub bmc: Option<Bmc>,
    /// RAPL zones besides package and DRAM that the node shows (`core`, `uncore`, `psys`), as on
    /// workstation-class CPUs. The exporter publishes them and adds none to the node.
    #[serde(default)]
    pub rapl_extra_zones: Vec<ExtraZone>,
}

/// The node's BMC: it measures what RAPL and NVML measure plus `other_watts` (fans, disks,
/// NICs, power-supply losses), which follows the node's CPU load between idle and max.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bmc {
    pub other_watts: Power,
}

/// A RAPL zone below the package (`core`: the cores, `uncore`: the integrated GPU) or above it
/// (`psys`: the platform).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExtraZone {
    Core,
    Uncore,
    Psys,
}

fn one() -> u32 {
    1
}

/// The `max_energy_range_uj` of Intel server packages: 2^32 counts of 61.035 µJ (the energy unit
/// 2^-14 J in MSR_RAPL_POWER_UNIT), as `/sys/class/powercap/intel-rapl:0/max_energy_range_uj`
/// shows on Xeon Scalable nodes.
pub const DEFAULT_RAPL_RANGE_UJ: u64 = 262_143_328_850;

fn default_rapl_range() -> u64 {
    DEFAULT_RAPL_RANGE_UJ
}

/// The DRAM zones' range on the same nodes: 2^32 counts of 15.3 µJ (DRAM energy unit 2^-16 J),
/// as `intel-rapl:0:2/max_energy_range_uj` shows (65712999613 µJ on a Xeon Gold 6248).
pub const DEFAULT_RAPL_DRAM_RANGE_UJ: u64 = 65_712_999_613;

fn default_rapl_dram_range() -> u64 {
    DEFAULT_RAPL_DRAM_RANGE_UJ
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    pub idle: f64,
    pub max: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpus {
    pub count: u32,
    pub model: String,
    /// UUIDs are `<uuid_prefix>-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, stable per node and index.
    #[serde(default = "gpu_prefix")]
    pub uuid_prefix: String,
    pub idle_watts: f64,
    pub max_watts: f64,
    /// Enforced power limit; default: `max_watts`. Power is capped at it.
    #[serde(default)]
    pub power_limit_watts: Option<f64>,
    /// `nvidia` (NVML, the default) or `amd` (the amdgpu driver's energy counter: ids are
    /// `unique_id`s, 16 hex digits).
    #[serde(default)]
    pub vendor: GpuMaker,
    /// MIG: every GPU is split into instances of these many slices of 7 (`[3, 4]`: a 3g and a
    /// 4g instance; 1, 2, 3, 4 or 7 each, at most 7 together; NVIDIA only). Jobs then hold
    /// instances (by MIG UUID), not whole GPUs; slices in no instance are held by no job.
    #[serde(default)]
    pub mig: Option<Vec<u32>>,
}

/// Who made a node's GPUs: which source measures them.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GpuMaker {
    #[default]
    Nvidia,
    Amd,
}

/// Slices of a MIG-capable GPU (A100, H100): an instance holds 1, 2, 3, 4 or all 7.
pub const MIG_SLICES: u32 = 7;

fn gpu_prefix() -> String {
    "GPU".into()
}

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

/// A maintenance window: no job runs in it (the scheduler holds jobs that would overlap it, as a
/// Slurm maintenance reservation does); nodes stay powered and idle.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: Instant,
    pub duration: Span,
}

/// The exporter of `node` stops at `at` and starts again `downtime` later, with its state file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    pub node: String,
    pub at: Instant,
    pub downtime: Span,
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

/// A scenario error: file, line where known, key and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// A node of the expanded cluster.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    /// Index into [`Scenario::node_groups`].
    pub group: usize,
    pub partition: String,
}

impl Scenario {
    /// Reads, parses and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ScenarioError(format!("cannot read scenario file {}: {e}", path.display()))
        })?;
        Scenario::parse(&text).map_err(|(line, key, msg)| {
            let line = line.map(|l| format!(" line {l}:")).unwrap_or_default();
            let key = if key.is_empty() {
                String::new()
            } else {
                format!(" {key}:")
            };
            ScenarioError(format!(
                "scenario file {}:{line}{key} {msg}",
                path.display()
            ))
        })
    }

    /// Parses and checks scenario text. Errors are (line, dotted key, message).
    pub fn parse(text: &str) -> Result<Scenario, (Option<usize>, String, String)> {
        let s: Scenario =
            serde_saphyr::from_str(text).map_err(|e| (None, String::new(), e.to_string()))?;
        s.validate()
            .map_err(|(key, msg)| (line_of_key(text, &key), key, msg))?;
        Ok(s)
    }

    pub fn sample_interval(&self) -> f64 {
        self.sample_interval.unwrap_or(self.scrape_interval).0
    }

    pub fn grace_period(&self) -> f64 {
        self.grace_period
            .map(|g| g.0)
            .unwrap_or_else(|| (2.0 * self.scrape_interval.0).max(180.0))
    }

    /// Every node, in order: groups as listed, numbers ascending.
    pub fn nodes(&self) -> Vec<NodeSpec> {
        let mut out = Vec::new();
        for (g, group) in self.node_groups.iter().enumerate() {
            let width = group.count.to_string().len().max(2);
            let prefix = group.prefix.as_deref().unwrap_or(&group.name);
            for i in 1..=group.count {
                out.push(NodeSpec {
                    name: format!("{prefix}{i:0width$}"),
                    group: g,
                    partition: group.partition().to_string(),
                });
            }
        }
        out
    }

    /// Checks values; returns the dotted key and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let (start, end) = self.validate_timing()?;
        let (names, nodes) = self.validate_nodes()?;
        self.validate_projects()?;
        self.validate_jobs(&nodes, start, end)?;
        self.validate_calendar(&names, start, end)?;
        self.validate_loads_and_faults(&names, &nodes, start, end)
    }

    /// The cluster name, intervals and period; returns the period (start, end), Unix seconds.
    fn validate_timing(&self) -> Result<(f64, f64), (String, String)> {
        check_name("cluster", &self.cluster)?;
        let step = self.sample_interval();
        let scrape = self.scrape_interval.0;
        if !(scrape >= 1.0 && scrape.fract() == 0.0) {
            return bad(
                "scrape_interval".into(),
                format!("{scrape} s: must be a whole number of seconds, at least 1 s"),
            );
        }
        if !(step >= 1.0 && step.fract() == 0.0 && (scrape / step).fract() == 0.0) {
            return bad(
                "sample_interval".into(),
                format!(
                    "{step} s: must be a whole number of seconds, at least 1 s, that divides the scrape interval ({scrape} s)"
                ),
            );
        }
        if self.start.0.fract() != 0.0 || self.start.0 < 0.0 {
            return bad(
                "start".into(),
                "must be a whole second at or after 1970-01-01".into(),
            );
        }
        let d = self.duration.0;
        if !(d >= scrape && d <= 400.0 * 86400.0) {
            return bad(
                "duration".into(),
                format!("{d} s: must be between one scrape interval and 400 days"),
            );
        }
        if self.grace_period() < scrape {
            return bad(
                "grace_period".into(),
                format!(
                    "{} s is shorter than the scrape interval ({scrape} s): a job's final counters would be dropped before they are scraped",
                    self.grace_period()
                ),
            );
        }
        Ok((self.start.0, self.start.0 + d))
    }

    /// Node groups; returns the node names and the nodes.
    fn validate_nodes(&self) -> Result<(BTreeSet<String>, Vec<NodeSpec>), (String, String)> {
        let step = self.sample_interval();
        if self.node_groups.is_empty() {
            return bad("node_groups".into(), "at least one node group".into());
        }
        let mut names = BTreeSet::new();
        for (i, g) in self.node_groups.iter().enumerate() {
            let k = |f: &str| format!("node_groups[{i}].{f}");
            check_name(&k("name"), &g.name)?;
            if let Some(p) = &g.prefix {
                check_name(&k("prefix"), p)?;
            }
            if let Some(p) = &g.partition {
                check_name(&k("partition"), p)?;
            }
            if g.count == 0 || g.count > 100_000 {
                return bad(k("count"), format!("{}: must be 1..100000", g.count));
            }
            for (f, v, max) in [
                ("sockets", g.sockets, 16),
                ("cores_per_socket", g.cores_per_socket, 1024),
                ("threads_per_core", g.threads_per_core, 8),
            ] {
                if v == 0 || v > max {
                    return bad(k(f), format!("{v}: must be 1..{max}"));
                }
            }
            if g.memory.0 == 0 {
                return bad(k("memory"), "must be more than 0 bytes".into());
            }
            check_power(&k("package_watts"), g.package_watts)?;
            let mut zones = vec![("rapl_range_uj", g.rapl_range_uj, g.package_watts.max)];
            if let Some(p) = g.dram_watts {
                check_power(&k("dram_watts"), p)?;
                zones.push(("rapl_dram_range_uj", g.rapl_dram_range_uj, p.max));
            }
            for (key, range, watts) in zones {
                // The exporter corrects one wrap per sample; two wraps between samples are
                // invisible to it (and to any reader of the counter).
                if range as f64 <= watts * step * 1e6 {
                    return bad(
                        k(key),
                        format!(
                            "{range} µJ wraps more than once per sample interval at {watts} W ({step} s): use a range above {:.0} µJ or a shorter sample_interval",
                            watts * step * 1e6
                        ),
                    );
                }
            }
            if let Some(b) = &g.bmc {
                check_power(&k("bmc.other_watts"), b.other_watts)?;
            }
            if let Some(gpu) = &g.gpus {
                if gpu.count == 0 || gpu.count > 64 {
                    return bad(k("gpus.count"), format!("{}: must be 1..64", gpu.count));
                }
                check_power(
                    &k("gpus.idle_watts"),
                    Power {
                        idle: gpu.idle_watts,
                        max: gpu.max_watts,
                    },
                )?;
                if let Some(l) = gpu.power_limit_watts {
                    if !(l.is_finite() && l > 0.0) {
                        return bad(k("gpus.power_limit_watts"), format!("{l}: must be > 0"));
                    }
                }
                if !gpu
                    .uuid_prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return bad(
                        k("gpus.uuid_prefix"),
                        "letters, digits, - and _ only".into(),
                    );
                }
                if let Some(mig) = &gpu.mig {
                    if gpu.vendor != GpuMaker::Nvidia {
                        return bad(k("gpus.mig"), "MIG is NVIDIA's: drop `vendor`".into());
                    }
                    if let Some(x) = mig.iter().find(|x| ![1, 2, 3, 4, 7].contains(*x)) {
                        return bad(
                            k("gpus.mig"),
                            format!("{x}: an instance is 1, 2, 3, 4 or 7 slices"),
                        );
                    }
                    let sum: u32 = mig.iter().sum();
                    if mig.is_empty() || sum > MIG_SLICES {
                        return bad(
                            k("gpus.mig"),
                            format!("{mig:?}: 1 to {MIG_SLICES} slices in all"),
                        );
                    }
                }
            }
        }
        let nodes = self.nodes();
        for n in &nodes {
            if !names.insert(n.name.clone()) {
                return bad(
                    "node_groups".into(),
                    format!(
                        "two nodes are named {:?}: give the groups distinct prefixes",
                        n.name
                    ),
                );
            }
        }
        Ok((names, nodes))
    }

    /// Projects and their users.
    fn validate_projects(&self) -> Result<(), (String, String)> {
        if self.projects.is_empty() {
            return bad("projects".into(), "at least one project".into());
        }
        let class_names: BTreeSet<&str> =
            self.jobs.classes.iter().map(|c| c.name.as_str()).collect();
        let mut projects = BTreeSet::new();
        let mut users = BTreeSet::new();
        for (i, p) in self.projects.iter().enumerate() {
            let k = |f: &str| format!("projects[{i}].{f}");
            check_name(&k("name"), &p.name)?;
            if !projects.insert(p.name.as_str()) {
                return bad(k("name"), format!("project {:?} listed twice", p.name));
            }
            if let Some(cs) = &p.classes {
                if cs.is_empty() {
                    return bad(k("classes"), "empty: leave it out for all classes".into());
                }
                for c in cs {
                    if !class_names.contains(c.as_str()) {
                        return bad(k("classes"), format!("no job class named {c:?}"));
                    }
                }
            }
            if let Some(f) = &p.final_runs {
                if f.pattern.matches('*').count() != 1 {
                    return bad(
                        k("final_runs.pattern"),
                        format!("{:?} must hold exactly one * (the job's name)", f.pattern),
                    );
                }
                if !(0.0..=1.0).contains(&f.share) {
                    return bad(k("final_runs.share"), format!("{}: must be 0..1", f.share));
                }
                if !(f.duration_factor.is_finite() && f.duration_factor > 0.0) {
                    return bad(
                        k("final_runs.duration_factor"),
                        format!("{}: must be > 0", f.duration_factor),
                    );
                }
            }
            let list = self.users_of(i);
            if list.is_empty() {
                return bad(
                    k("users"),
                    "at least one user (users or generated_users)".into(),
                );
            }
            for (j, (u, w)) in list.iter().enumerate() {
                check_name(&format!("projects[{i}].users[{j}].name"), u)?;
                if !(w.is_finite() && *w > 0.0) {
                    return bad(
                        format!("projects[{i}].users[{j}].weight"),
                        format!("{w}: must be > 0"),
                    );
                }
                if !users.insert(u.clone()) {
                    return bad(
                        format!("projects[{i}].users"),
                        format!("user {u:?} is in two projects (or listed twice)"),
                    );
                }
            }
        }
        Ok(())
    }

    /// The job mix: count or arrival rate, classes, explicit jobs.
    fn validate_jobs(
        &self,
        nodes: &[NodeSpec],
        start: f64,
        end: f64,
    ) -> Result<(), (String, String)> {
        let j = &self.jobs;
        match (j.count, j.arrivals_per_hour) {
            (Some(_), Some(_)) => {
                return bad(
                    "jobs.count".into(),
                    "give either count or arrivals_per_hour, not both".into(),
                )
            }
            (Some(c), None) if c > 10_000_000 => {
                return bad("jobs.count".into(), format!("{c}: at most 10,000,000"))
            }
            (None, Some(r)) if !(r.is_finite() && (0.0..=100_000.0).contains(&r)) => {
                return bad(
                    "jobs.arrivals_per_hour".into(),
                    format!("{r}: must be 0..100000"),
                )
            }
            (None, None) if j.explicit.is_empty() => {
                return bad(
                    "jobs.count".into(),
                    "give count or arrivals_per_hour (or explicit jobs)".into(),
                )
            }
            _ => {}
        }
        if j.classes.is_empty() {
            return bad("jobs.classes".into(), "at least one job class".into());
        }
        let mut seen = BTreeSet::new();
        for (i, c) in j.classes.iter().enumerate() {
            let k = |f: &str| format!("jobs.classes[{i}].{f}");
            if c.name.is_empty() || !seen.insert(c.name.as_str()) {
                return bad(k("name"), format!("{:?}: empty or listed twice", c.name));
            }
            if !(c.weight.is_finite() && c.weight >= 0.0) {
                return bad(k("weight"), format!("{}: must be >= 0", c.weight));
            }
            let members: Vec<&NodeSpec> = nodes
                .iter()
                .filter(|n| n.partition == c.partition)
                .collect();
            if members.is_empty() {
                return bad(
                    k("partition"),
                    format!("no node group has partition {:?}", c.partition),
                );
            }
            let max_cores = members
                .iter()
                .map(|n| self.node_groups[n.group].physical_cores())
                .max()
                .unwrap_or(0);
            let max_gpus = members
                .iter()
                .map(|n| self.node_groups[n.group].gpu_count())
                .max()
                .unwrap_or(0);
            for (f, opts, lo, hi) in [
                ("nodes", c.nodes.options(), 1, members.len() as u32),
                ("cores", c.cores.options(), 1, max_cores),
                ("gpus", c.gpus.options(), 0, max_gpus),
            ] {
                if opts.is_empty() {
                    return bad(k(f), "empty list".into());
                }
                if let Some(v) = opts.iter().find(|v| **v < lo || **v > hi) {
                    return bad(
                        k(f),
                        format!(
                            "{v} cannot run in partition {:?} (possible: {lo}..{hi})",
                            c.partition
                        ),
                    );
                }
            }
            let dd = &c.duration;
            let min = dd.min.map_or(0.0, |m| m.0);
            if !(dd.median.0 > 0.0 && dd.max.0 >= dd.median.0 && min <= dd.median.0) {
                return bad(
                    k("duration"),
                    "needs 0 < median, min <= median <= max".into(),
                );
            }
            if !(dd.sigma.is_finite() && (0.0..=5.0).contains(&dd.sigma)) {
                return bad(k("duration.sigma"), format!("{}: must be 0..5", dd.sigma));
            }
            for (f, r) in [("cpu_util", &c.cpu_util), ("gpu_util", &c.gpu_util)] {
                if let Range::Between(v) = r {
                    if v.len() != 2 {
                        return bad(k(f), "a number or [low, high]".into());
                    }
                }
                let (lo, hi) = r.bounds();
                if !(0.0 <= lo && lo <= hi && hi <= 1.0) {
                    return bad(k(f), format!("[{lo}, {hi}] must lie in 0..1, low <= high"));
                }
            }
        }
        if j.classes.iter().all(|c| c.weight == 0.0) && j.count.unwrap_or(1) > 0 {
            return bad("jobs.classes".into(), "every class has weight 0".into());
        }
        for i in 0..self.projects.len() {
            let allowed = self.classes_of(i);
            if allowed.iter().all(|c| self.jobs.classes[*c].weight == 0.0) {
                return bad(
                    format!("projects[{i}].classes"),
                    "the project's classes all have weight 0".into(),
                );
            }
        }
        for (i, e) in j.explicit.iter().enumerate() {
            let k = |f: &str| format!("jobs.explicit[{i}].{f}");
            if self.project_of_user(&e.user).is_none() {
                return bad(k("user"), format!("no project has user {:?}", e.user));
            }
            let Some(c) = j.classes.iter().find(|c| c.name == e.class) else {
                return bad(k("class"), format!("no job class named {:?}", e.class));
            };
            if !(start..end).contains(&e.submit.0) {
                return bad(k("submit"), "outside the simulated period".into());
            }
            if e.duration.0 <= 0.0 {
                return bad(k("duration"), "must be > 0".into());
            }
            let members: Vec<&NodeSpec> = nodes
                .iter()
                .filter(|n| n.partition == c.partition)
                .collect();
            let fits = members.iter().filter(|n| {
                let g = &self.node_groups[n.group];
                e.cores.unwrap_or(1) <= g.physical_cores() && e.gpus.unwrap_or(0) <= g.gpu_count()
            });
            let nodes = e.nodes.unwrap_or(1);
            if fits.count() < nodes as usize || nodes == 0 || e.cores == Some(0) {
                return bad(
                    k("cores"),
                    format!("the job cannot fit in partition {:?}", c.partition),
                );
            }
            for (f, v) in [("cpu_util", e.cpu_util), ("gpu_util", e.gpu_util)] {
                if let Some(v) = v {
                    if !(0.0..=1.0).contains(&v) {
                        return bad(k(f), format!("{v}: must be 0..1"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Arrival shape, maintenance windows and exporter restarts.
    fn validate_calendar(
        &self,
        names: &BTreeSet<String>,
        start: f64,
        end: f64,
    ) -> Result<(), (String, String)> {
        if let Some(n) = &self.arrivals.night {
            for (f, v) in [("from", &n.from), ("to", &n.to)] {
                if parse_hhmm(v).is_none() {
                    return bad(format!("arrivals.night.{f}"), format!("{v:?} is not HH:MM"));
                }
            }
            if !(0.0..=1.0).contains(&n.factor) {
                return bad("arrivals.night.factor".into(), "must be 0..1".into());
            }
        }
        if let Some(f) = self.arrivals.weekend_factor {
            if !(0.0..=1.0).contains(&f) {
                return bad("arrivals.weekend_factor".into(), "must be 0..1".into());
            }
        }
        for (i, w) in self.maintenance.iter().enumerate() {
            if w.duration.0 <= 0.0 || w.start.0 + w.duration.0 <= start || w.start.0 >= end {
                return bad(
                    format!("maintenance[{i}].start"),
                    "the window must have a duration and overlap the simulated period".into(),
                );
            }
        }
        for (i, r) in self.restarts.iter().enumerate() {
            if !names.contains(&r.node) {
                return bad(
                    format!("restarts[{i}].node"),
                    format!("no node named {:?}", r.node),
                );
            }
            if !(r.at.0 > start && r.at.0 + r.downtime.0 < end) {
                return bad(
                    format!("restarts[{i}].at"),
                    "the exporter must stop and start again inside the simulated period".into(),
                );
            }
            if r.downtime.0 <= 0.0 {
                return bad(format!("restarts[{i}].downtime"), "must be > 0".into());
            }
        }
        Ok(())
    }

    /// Load outside jobs and faults.
    fn validate_loads_and_faults(
        &self,
        names: &BTreeSet<String>,
        nodes: &[NodeSpec],
        start: f64,
        end: f64,
    ) -> Result<(), (String, String)> {
        let in_period = |at: f64, d: f64| d > 0.0 && at >= start && at + d <= end;
        for (i, l) in self.stray_load.iter().enumerate() {
            let k = |f: &str| format!("stray_load[{i}].{f}");
            if !names.contains(&l.node) {
                return bad(k("node"), format!("no node named {:?}", l.node));
            }
            if !in_period(l.start.0, l.duration.0) {
                return bad(
                    k("start"),
                    "the load must have a duration and lie inside the simulated period".into(),
                );
            }
            for (f, v) in [("cpu_util", l.cpu_util), ("gpu_util", l.gpu_util)] {
                if !(0.0..=1.0).contains(&v) {
                    return bad(k(f), format!("{v}: must be 0..1"));
                }
            }
        }
        let groups: BTreeMap<&str, &NodeGroup> = nodes
            .iter()
            .map(|n| (n.name.as_str(), &self.node_groups[n.group]))
            .collect();
        for (i, f) in self.faults.iter().enumerate() {
            let k = |x: &str| format!("faults[{i}].{x}");
            let Some(g) = groups.get(f.node.as_str()) else {
                return bad(k("node"), format!("no node named {:?}", f.node));
            };
            let d = f.duration.map_or(0.0, |d| d.0);
            match f.kind {
                FaultKind::GpuCounterJump => {
                    if g.gpu_count() == 0 {
                        return bad(k("node"), format!("{}: has no GPU", f.node));
                    }
                    if !(f.start.0 > start && f.start.0 < end) {
                        return bad(k("start"), "must lie inside the simulated period".into());
                    }
                }
                FaultKind::SourceDown | FaultKind::SamplerStall => {
                    if !in_period(f.start.0, d) {
                        return bad(
                            k("duration"),
                            "the fault needs a duration and must lie inside the simulated period"
                                .into(),
                        );
                    }
                }
            }
            if f.kind == FaultKind::SourceDown {
                let has = match f.source {
                    None => return bad(k("source"), "rapl, nvml or bmc".into()),
                    Some(FaultSource::Rapl) => true,
                    Some(FaultSource::Nvml) => g.gpu_count() > 0,
                    Some(FaultSource::Bmc) => g.bmc.is_some(),
                };
                if !has {
                    return bad(
                        k("source"),
                        format!("{}: the node has no such source", f.node),
                    );
                }
            }
        }
        Ok(())
    }

    /// (name, weight) of project `i`'s users.
    pub fn users_of(&self, i: usize) -> Vec<(String, f64)> {
        let p = &self.projects[i];
        let mut out: Vec<(String, f64)> =
            p.users.iter().map(|u| (u.name.clone(), u.weight)).collect();
        if let Some(g) = &p.generated_users {
            let prefix = g.prefix.clone().unwrap_or_else(|| format!("{}-u", p.name));
            let width = g.count.to_string().len().max(2);
            out.extend((1..=g.count).map(|n| {
                (
                    format!("{prefix}{n:0width$}"),
                    1.0 / (n as f64).powf(g.zipf),
                )
            }));
        }
        out
    }

    /// Indices of the job classes project `i` submits.
    pub fn classes_of(&self, i: usize) -> Vec<usize> {
        let all = self.jobs.classes.iter().enumerate();
        match &self.projects[i].classes {
            None => all.map(|(c, _)| c).collect(),
            Some(names) => all
                .filter(|(_, c)| names.contains(&c.name))
                .map(|(c, _)| c)
                .collect(),
        }
    }

    pub fn project_of_user(&self, user: &str) -> Option<usize> {
        (0..self.projects.len()).find(|i| self.users_of(*i).iter().any(|(u, _)| u == user))
    }
}

impl NodeGroup {
    pub fn partition(&self) -> &str {
        self.partition.as_deref().unwrap_or(&self.name)
    }
    pub fn physical_cores(&self) -> u32 {
        self.sockets * self.cores_per_socket
    }
    pub fn logical_cpus(&self) -> u32 {
        self.physical_cores() * self.threads_per_core
    }
    /// The GPUs jobs can hold: whole GPUs, or with `gpus.mig` every GPU's instances.
    pub fn gpu_count(&self) -> u32 {
        self.gpus.as_ref().map_or(0, |g| {
            g.count * g.mig.as_ref().map_or(1, |m| m.len() as u32)
        })
    }
    pub fn cpu_vendor(&self) -> String {
        if let Some(v) = &self.cpu_vendor {
            return v.clone();
        }
        if self.cpu_model.contains("AMD") {
            "AuthenticAMD".into()
        } else if self.cpu_model.contains("Intel") {
            "GenuineIntel".into()
        } else {
            String::new()
        }
    }
}

/// Names end up in label values and node names: keep them to a safe set so that no escaping is
/// ever needed where the simulator writes them itself.
fn bad<T>(key: String, msg: String) -> Result<T, (String, String)> {
    Err((key, msg))
}

fn check_name(key: &str, v: &str) -> Result<(), (String, String)> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("{v:?}: use 1 to 64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

fn check_power(key: &str, p: Power) -> Result<(), (String, String)> {
    if p.idle.is_finite() && p.max.is_finite() && 0.0 <= p.idle && p.idle <= p.max && p.max > 0.0 {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!(
                "idle {} W and max {} W: need 0 <= idle <= max, max > 0",
                p.idle, p.max
            ),
        ))
    }
}

/// `HH:MM` → seconds after midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 3600 + m * 60)
}

pub use crate::yaml_key::line_of_key;

pub use joulebook_common::calendar::{civil_from_days, days_from_civil};

/// `YYYY-MM-DD` of a Unix time (UTC).
pub fn date_of(unix: f64) -> String {
    let (y, m, d) = civil_from_days((unix / 86400.0).floor() as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) of a Unix time, in UTC, whole seconds.
pub fn rfc3339(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses RFC 3339 into Unix seconds.
pub fn parse_rfc3339(t: &str) -> Result<f64, String> {
    let bad = || format!("invalid time {t:?}: use Unix seconds or RFC 3339 (2025-03-01T00:00:00Z)");
    let t = t.trim();
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| t.get(r).and_then(|s| s.parse::<i64>().ok());
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return Err(bad());
    };
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    if h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut rest = &t[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        frac = format!("0.{}", &r[..digits]).parse().map_err(|_| bad())?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let (Some(oh), Some(om)) = (o[1..3].parse::<i64>().ok(), o[4..6].parse::<i64>().ok())
            else {
                return Err(bad());
            };
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Ok((days * 86400 + h * 3600 + mi * 60 + s - offset) as f64 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0.0));
        assert_eq!(parse_rfc3339("2025-03-01T00:00:00Z"), Ok(1_740_787_200.0));
        assert_eq!(
            parse_rfc3339("2025-03-01T01:00:00+01:00"),
            Ok(1_740_787_200.0)
        );
        assert_eq!(rfc3339(1_740_787_200.0), "2025-03-01T00:00:00Z");
        assert_eq!(date_of(1_740_787_199.0), "2025-02-28");
        assert!(parse_rfc3339("2025-13-01T00:00:00Z").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
        for days in [-1000i64, 0, 19_000, 20_513, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn spans_and_sizes() {
        assert_eq!(parse_span("30d"), Ok(30.0 * 86400.0));
        assert_eq!(parse_span("5m"), Ok(300.0));
        assert_eq!(parse_span("500ms"), Ok(0.5));
        assert_eq!(parse_span("90"), Ok(90.0));
        assert!(parse_span("5 parsecs").is_err());
        assert_eq!(
            Bytes::try_from(NumOrText::Text("512GiB".into())),
            Ok(Bytes(512 << 30))
        );
        assert!(Bytes::try_from(NumOrText::Text("12 bananas".into())).is_err());
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for f in [
            "deploy/demo/scenario.yaml",
            "bench/scenario-200.yaml",
            "tests/fixtures/simulate/small.yaml",
        ] {
            let s = Scenario::load(&root.join(f)).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.nodes().is_empty(), "{f}");
        }
        let demo = Scenario::load(&root.join("deploy/demo/scenario.yaml")).unwrap();
        assert_eq!(demo.nodes().len(), 15);
        let users: usize = (0..demo.projects.len())
            .map(|p| demo.users_of(p).len())
            .sum();
        assert_eq!((demo.projects.len(), users), (6, 25));
        let bench = Scenario::load(&root.join("bench/scenario-200.yaml")).unwrap();
        let users: usize = (0..bench.projects.len())
            .map(|p| bench.users_of(p).len())
            .sum();
        assert_eq!(
            (bench.nodes().len(), users, bench.jobs.count),
            (200, 300, Some(80_000))
        );
    }

    #[test]
    fn values_are_checked_with_their_key_and_line() {
        let base = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/simulate/small.yaml"),
        )
        .unwrap();
        let cases = [
            (
                "scrape_interval: 60s",
                "scrape_interval: 45s",
                "sample_interval",
            ),
            (
                "rapl_range_uj: 10000000000",
                "rapl_range_uj: 1000",
                "node_groups[0].rapl_range_uj",
            ),
            (
                "pattern: \"final-*\"",
                "pattern: \"final\"",
                "projects[0].final_runs.pattern",
            ),
            (
                "{from: \"20:00\"",
                "{from: \"25:00\"",
                "arrivals.night.from",
            ),
            (
                "count: 60",
                "count: 60\n  arrivals_per_hour: 3",
                "jobs.count",
            ),
        ];
        for (from, to, key) in cases {
            if key.is_empty() || !base.contains(from) {
                continue;
            }
            let text = base.replacen(from, to, 1);
            let (line, k, msg) = Scenario::parse(&text).unwrap_err();
            assert_eq!(k, key, "{msg}");
            assert!(line.is_some(), "{key}: {msg}");
        }
        let text = base.replacen("rapl_range_uj: 10000000000", "rapl_range_uj: 1000", 1);
        let (line, _, _) = Scenario::parse(&text).unwrap_err();
        assert_eq!(
            line,
            base.lines()
                .position(|l| l.contains("rapl_range_uj"))
                .map(|i| i + 1)
        );
    }
}
