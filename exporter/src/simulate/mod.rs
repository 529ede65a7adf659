//! `joulebook-exporter simulate`: a month of a cluster in minutes, through the exporter's own code.
//!
//! A scenario (`scenario`) describes nodes, users and a job mix. The workload (`workload`) draws
//! the jobs and places them with a first-fit scheduler. Then a virtual clock ticks every sample
//! interval; at each tick, each node's hardware model (`hardware`) advances with the jobs it runs,
//! and the node's [`Engine`] — the live exporter's sampler, wrap correction, attribution and
//! accounting, fed by synthetic [`crate::sources::Source`]s — runs one cycle with those jobs.
//! At every scrape interval each node's snapshot is encoded by [`crate::metrics`] as `/metrics`
//! would serve it and written with its timestamp (`output`). Exporter restarts go through the real
//! state file. The simulator also keeps the ground truth (`truth`).
//!
//! Everything is deterministic for a seed: one ChaCha8 stream for the workload, one per node for
//! its counters' offsets and utilisation noise, and no wall-clock value reaches the output
//! (sample durations, which the live exporter measures, are published as 0).
//!
//! Memory stays small whatever the period: the output is streamed scrape by scrape; what is kept
//! is per job (a few numbers) and per node.

pub mod hardware;
pub mod output;
pub mod scenario;
pub mod truth;
pub mod workload;

use crate::accounting::AccountingOptions;
use crate::engine::Engine;
use crate::jobs::{GpuMappingSource, Job, MetadataSource, Scheduler};
use crate::node::NodeInfo;
use crate::sampler::Sampler;
use crate::snapshot::Snapshot;
use crate::sources::estimate::TdpOrigin;
use crate::sources::{Source, SourceKind};
use crate::state::{self, LoadOutcome};
use joulebook_common::{Component, PerComponent};
use output::{OutFormat, Writer};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use scenario::{NodeSpec, Scenario, ScenarioError};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use workload::SimJob;

/// What `simulate` is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    pub scenario: PathBuf,
    pub out: PathBuf,
    pub truth: Option<PathBuf>,
    pub seed: Option<u64>,
    pub format: OutFormat,
}

/// How it went.
#[derive(Clone, Debug)]
pub struct Summary {
    pub seed: u64,
    pub nodes: usize,
    pub jobs_submitted: usize,
    pub jobs_started: usize,
    pub scrapes: u64,
    pub samples: u64,
    pub bytes: u64,
}

#[derive(Debug)]
pub enum SimError {
    /// The scenario is wrong (exit status 2).
    Scenario(ScenarioError),
    /// Writing failed, or the simulation could not go on (exit status 1).
    Run(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Scenario(e) => write!(f, "{e}"),
            SimError::Run(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for SimError {}

/// The components the simulator models, as the exporter indexes them.
const MODELLED: [Component; 4] = [
    Component::Cpu,
    Component::Dram,
    Component::Gpu,
    Component::Other,
];

/// How far every GPU counter jumps in a `gpu_counter_jump` fault, mJ: 1 MJ, thousands of times
/// what a GPU can draw in a sample interval, so the exporter must discard it.
const GPU_COUNTER_JUMP_MJ: u64 = 1_000_000_000;

/// What Prometheus itself stores with every scrape: `up` is 1 when the target answered, 0 when it
/// did not (the simulated exporter is down during a restart). Not a joulebook metric.
const UP_HELP: &str =
    "# HELP up Whether the target answered the scrape (written by Prometheus).\n# TYPE up gauge\n";

/// Relative standard deviation of a job's utilisation from one sample interval to the next, so
/// power curves look measured rather than flat. 5 % is an arbitrary, visible choice; it has no
/// effect on any invariant.
const UTIL_NOISE: f64 = 0.05;

/// The simulated exporters' state files live in one boot: a restart of the exporter, not of the
/// node, so raw counter baselines are reused as on a real node.
const BOOT_ID: &str = "simulated-boot";

/// First uid of the simulated users (Debian's first regular uid is 1000; 10000 leaves room).
const FIRST_UID: u32 = 10_000;

/// A job's run on one node, while it runs.
struct Active {
    job: usize,
    part: usize,
    end_tick: u64,
    /// Logical CPUs of the job on each socket.
    cpus_on_socket: Vec<u32>,
    gpus: Vec<u32>,
    memory: u64,
    cpu_ns: f64,
}

/// What the truth keeps of a job's run on one node.
#[derive(Clone, Debug, Default)]
struct Part {
    node: usize,
    /// The exporter's counters for the job on this node, µJ.
    uj: PerComponent<u64>,
    core_s: f64,
    gpu_s: f64,
    cpu_s: f64,
    /// The model's share, µJ (floats).
    model_uj: PerComponent<f64>,
}

struct Node {
    spec: NodeSpec,
    target: String,
    info: NodeInfo,
    tdp: f64,
    gpu_uuids: Vec<String>,
    /// Per entry of `gpu_uuids`: its physical GPU and its share of it (MIG instances).
    slots: Vec<(usize, f64)>,
    model: hardware::Shared,
    engine: Option<Engine>,
    shared: crate::snapshot::Shared,
    registry: prometheus_client::registry::Registry,
    /// (start tick, job, placement index), by start tick.
    timeline: Vec<(u64, usize, usize)>,
    next: usize,
    active: Vec<Active>,
    /// The exporter's view of `active`, same order.
    jobs: Vec<Job>,
    /// (tick of the last cycle before the stop, tick of the first cycle after).
    restarts: Vec<(u64, u64)>,
    /// The ticks of `restarts` after which the exporter starts without its state file.
    fresh_starts: BTreeSet<u64>,
    /// Load outside jobs: (first tick, last tick, cpu busy share, gpu utilisation).
    stray: Vec<(u64, u64, f64, f64)>,
    /// Faults: (first tick, last tick, what).
    faults: Vec<(u64, u64, scenario::FaultKind, Option<SourceKind>)>,
    next_restart: usize,
    rng: ChaCha8Rng,
    last_node: PerComponent<u64>,
    last_unallocated: PerComponent<u64>,
    /// Unix time of the exporter's last sampling cycle (what a scrape shows as
    /// `joulebook_last_sample_timestamp_seconds`; older than the scrape while the sampler stalls).
    last_cycle_unix: f64,
}

/// Removes the simulated state files however the run ends.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn node_info(name: &str, g: &scenario::NodeGroup) -> NodeInfo {
    let mut info = NodeInfo {
        hostname: name.to_string(),
        cpu_model: g.cpu_model.clone(),
        cpu_vendor: g.cpu_vendor(),
        physical_cores: g.physical_cores(),
        logical_cpus: g.logical_cpus(),
        memory_bytes: g.memory.0,
        ..Default::default()
    };
    let per_thread = g.physical_cores();
    for s in 0..g.sockets {
        let mut cpus: Vec<u32> = (0..g.threads_per_core)
            .flat_map(|t| {
                (0..g.cores_per_socket).map(move |c| t * per_thread + s * g.cores_per_socket + c)
            })
            .collect();
        cpus.sort_unstable();
        info.cpus_by_socket.insert(s, cpus);
    }
    info
}

/// Seeds of independent streams derived from the run's seed (SplitMix64's increment keeps them
/// apart).
fn sub_seed(seed: u64, stream: u64) -> u64 {
    seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(stream.wrapping_add(1))
}

impl Node {
    fn new_engine(&self, s: &Scenario) -> Engine {
        let mut sources: Vec<Box<dyn Source>> = vec![Box::new(hardware::RaplSim {
            model: self.model.clone(),
        })];
        let mut disabled = vec![SourceKind::Estimate];
        if self.gpu_uuids.is_empty() {
            // A CPU node's exporter finds no NVIDIA driver: nvml is disabled, as in `auto` mode.
            disabled.push(SourceKind::Nvml);
        } else {
            let model = self.model.clone();
            let gpus: Box<dyn Source> = match s.node_groups[self.spec.group].gpu_maker() {
                None | Some(scenario::GpuMaker::Nvidia) => Box::new(hardware::NvmlSim { model }),
                // AMD and Intel nodes: the amdgpu or intel_gpu source; no NVIDIA driver.
                Some(scenario::GpuMaker::Amd) => Box::new(hardware::AmdGpuSim { model }),
                Some(scenario::GpuMaker::Intel) => Box::new(hardware::IntelGpuSim { model }),
            };
            if gpus.kind() != SourceKind::Nvml {
                disabled.push(SourceKind::Nvml);
            }
            sources.push(gpus);
        }
        if s.node_groups[self.spec.group].bmc.is_some() {
            sources.push(Box::new(hardware::BmcSim::new(self.model.clone())));
        } else {
            disabled.push(SourceKind::Bmc);
        }
        let sampler = Sampler::new(
            sources,
            disabled,
            self.info.clone(),
            Some((self.tdp, TdpOrigin::Configured.as_str())),
            s.sample_interval(),
        );
        Engine::new(
            sampler,
            None,
            Some(AccountingOptions {
                grace_s: s.grace_period(),
                ..Default::default()
            }),
        )
    }

    /// Copies the accounting's running totals of this node's active jobs into their parts.
    fn record_parts(&self, parts: &mut [Vec<Part>]) {
        let Some(acc) = self.engine.as_ref().and_then(|e| e.accounting()) else {
            return;
        };
        for (job, a) in self.jobs.iter().zip(&self.active) {
            if let Some(r) = acc.jobs().get(job.id.as_str()) {
                let part = &mut parts[a.job][a.part];
                part.uj = r.uj;
                part.core_s = r.core_seconds;
                part.gpu_s = r.gpu_seconds;
                part.cpu_s = r.cpu_seconds;
            }
        }
    }

    /// Adds this cycle's node and unallocated energy to the day's (node, unallocated) sums.
    fn add_day(&mut self, day: &mut (PerComponent<u64>, PerComponent<u64>)) {
        let (node_uj, un_uj) = self.node_totals();
        for c in Component::ALL {
            day.0[c] += node_uj[c].saturating_sub(self.last_node[c]);
            day.1[c] += un_uj[c].saturating_sub(self.last_unallocated[c]);
        }
        self.last_node = node_uj;
        self.last_unallocated = un_uj;
    }

    fn node_totals(&self) -> (PerComponent<u64>, PerComponent<u64>) {
        let mut node = PerComponent::<u64>::default();
        let mut un = PerComponent::<u64>::default();
        if let Some(e) = &self.engine {
            for (c, _, _, uj) in e.sampler.node_totals() {
                node[c] = uj;
            }
            if let Some(acc) = e.accounting() {
                un = acc.unallocated_uj();
            }
        }
        (node, un)
    }
}

/// Runs a simulation.
pub fn run(opts: &Options) -> Result<Summary, SimError> {
    let s = Scenario::load(&opts.scenario).map_err(SimError::Scenario)?;
    let seed = opts.seed.or(s.seed).unwrap_or(0);

    let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, 0));
    let mut jobs = workload::generate(&s, &mut rng);
    workload::schedule(&s, &mut jobs);

    let step = s.sample_interval();
    let per_scrape = (s.scrape_interval.0 / step).round() as u64;
    let horizon = (s.duration.0 / step).round() as u64;
    let start = s.start.0;

    let mut parts = new_parts(&jobs);
    let state_dir = state_dir(&s, seed)?;
    let mut nodes = new_nodes(&s, seed, step, &jobs);
    let projects: Vec<String> = s.projects.iter().map(|p| p.name.clone()).collect();
    let uids = uids(&s);

    // Midnight (UTC) of the first day, Unix seconds.
    let day0 = (start / 86400.0).floor() * 86400.0;
    let last_day = ((start + s.duration.0 - step / 2.0 - day0) / 86400.0).floor() as usize;
    let mut days = vec![
        (
            PerComponent::<u64>::default(),
            PerComponent::<u64>::default()
        );
        last_day + 1
    ];

    let file = std::fs::File::create(&opts.out).map_err(io("cannot create", &opts.out))?;
    let mut writer = Writer::new(BufWriter::with_capacity(1 << 20, file), opts.format);
    let write_err = io("cannot write", &opts.out);
    let mut scrapes = 0u64;

    for k in 0..=horizon {
        let t = k as f64 * step;
        let unix = start + t;
        let day = (((unix - step / 2.0 - day0) / 86400.0).floor().max(0.0) as usize).min(last_day);
        for n in nodes.iter_mut() {
            admit_jobs(n, k, &jobs, &s, &uids, &projects);
            if k > 0 {
                advance(n, k, &jobs, &mut parts, &s, step);
            }
            let stalled = apply_faults(n, k);
            resume_if_due(n, k, &s, &state_dir, unix, t)?;
            let Some(engine) = n.engine.as_mut() else {
                if k % per_scrape == 0 {
                    writer
                        .scrape(&format!("{UP_HELP}up 0\n"), &n.target, unix as i64)
                        .map_err(&write_err)?;
                }
                continue;
            };
            for (job, a) in n.jobs.iter_mut().zip(&n.active) {
                job.cpu_usage_ns = Some(a.cpu_ns as u64);
            }
            if !stalled {
                engine.cycle_with_jobs(t, unix, &n.jobs);
                n.last_cycle_unix = unix;
            }
            n.record_parts(&mut parts);
            n.add_day(&mut days[day]);
            if k % per_scrape == 0 {
                write_scrape(n, &mut writer, unix, opts.format).map_err(&write_err)?;
            }
            stop_if_due(n, k, &state_dir, unix)?;
        }
        if k % per_scrape == 0 {
            scrapes += 1;
        }
    }
    let bytes = writer.bytes;
    let samples = writer.samples;
    writer.finish().map_err(&write_err)?;

    if let Some(path) = &opts.truth {
        let t = truth::build_truth(&s, seed, &jobs, &parts, &nodes, &days);
        truth::write_truth(path, &t)?;
    }
    Ok(Summary {
        seed,
        nodes: nodes.len(),
        jobs_submitted: jobs.len(),
        jobs_started: jobs.iter().filter(|j| j.start_tick.is_some()).count(),
        scrapes,
        samples,
        bytes,
    })
}

/// The parts of each job: one per node it runs on.
fn new_parts(jobs: &[SimJob]) -> Vec<Vec<Part>> {
    jobs.iter()
        .map(|j| {
            j.placement
                .iter()
                .map(|p| Part {
                    node: p.node,
                    ..Default::default()
                })
                .collect()
        })
        .collect()
}

/// Each user's uid, numbered from [`FIRST_UID`] in the order of the projects' users.
fn uids(s: &Scenario) -> BTreeMap<String, u32> {
    (0..s.projects.len())
        .flat_map(|p| s.users_of(p).into_iter().map(|(u, _)| u))
        .enumerate()
        .map(|(i, u)| (u, FIRST_UID + i as u32))
        .collect()
}

/// The folder of the state files, when the scenario restarts exporters (removed on drop).
fn state_dir(s: &Scenario, seed: u64) -> Result<TempDir, SimError> {
    let mut state_dir = TempDir(None);
    if !s.restarts.is_empty() {
        let dir = std::env::temp_dir().join(format!(
            "joulebook-simulate-{}-{}",
            std::process::id(),
            seed
        ));
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        state_dir.0 = Some(dir);
    }
    Ok(state_dir)
}

/// The scenario's nodes, each with its engine and its timeline of job starts (sorted).
fn new_nodes(s: &Scenario, seed: u64, step: f64, jobs: &[SimJob]) -> Vec<Node> {
    let mut nodes: Vec<Node> = s
        .nodes()
        .into_iter()
        .enumerate()
        .map(|(i, spec)| new_node(s, seed, i, spec, step))
        .collect();
    for n in &mut nodes {
        n.engine = Some(n.new_engine(s));
    }
    for (j, job) in jobs.iter().enumerate() {
        if let Some(st) = job.start_tick {
            for (pi, p) in job.placement.iter().enumerate() {
                nodes[p.node].timeline.push((st, j, pi));
            }
        }
    }
    for n in &mut nodes {
        n.timeline.sort_unstable();
    }
    nodes
}

/// At a restart's tick the exporter stops after this cycle; what it saved is what it published.
fn stop_if_due(n: &mut Node, k: u64, state_dir: &TempDir, unix: f64) -> Result<(), SimError> {
    if n.restarts.get(n.next_restart).is_some_and(|r| r.0 == k) {
        let path = state_path(state_dir, n);
        if let Some(e) = n.engine.take() {
            let st = e.to_state(&n.spec.name, Some(BOOT_ID.into()), unix);
            state::save_atomic(&path, &st).map_err(|e| SimError::Run(e.to_string()))?;
        }
    }
    Ok(())
}

/// An I/O error as a run error: `WHAT PATH: ERROR`.
fn io(what: &str, p: &Path) -> impl Fn(std::io::Error) -> SimError {
    let p = p.display().to_string();
    let what = what.to_string();
    move |e: std::io::Error| SimError::Run(format!("{what} {p}: {e}"))
}

/// One node of the scenario: its hardware model (seeded by its index), exporter target,
/// restarts, load outside jobs and faults in ticks. Its engine is made by the caller.
fn new_node(s: &Scenario, seed: u64, i: usize, spec: NodeSpec, step: f64) -> Node {
    let start = s.start.0;
    let port = joulebook_common::DEFAULT_PORT;
    let g = &s.node_groups[spec.group];
    let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, 1 + i as u64));
    let model = hardware::NodeModel::new(g, &s.cluster, &spec.name, || rng.random::<u64>());
    let (gpu_uuids, slots) = model
        .slots()
        .into_iter()
        .map(|s| (s.id, (s.gpu, s.share)))
        .unzip();
    let shared: crate::snapshot::Shared = Arc::new(RwLock::new(Arc::new(Snapshot::default())));
    let registry = crate::metrics::registry(shared.clone());
    let mut fresh_starts = BTreeSet::new();
    let mut restarts: Vec<(u64, u64)> = s
        .restarts
        .iter()
        .filter(|r| r.node == spec.name)
        .map(|r| {
            let down = ((r.at.0 - start) / step).floor() as u64;
            let up = ((r.at.0 + r.downtime.0 - start) / step).ceil() as u64;
            let up = up.max(down + 1);
            if r.lose_state {
                fresh_starts.insert(up);
            }
            (down, up)
        })
        .collect();
    restarts.sort_unstable();
    // Ticks whose interval (ending at the tick) lies in [at, at + d).
    let ticks = |at: f64, d: f64| {
        let first = ((at - start) / step).floor() as u64 + 1;
        let last = (((at + d - start) / step).ceil() as u64).max(first);
        (first, last)
    };
    let stray = s
        .stray_load
        .iter()
        .filter(|l| l.node == spec.name)
        .map(|l| {
            let (a, b) = ticks(l.start.0, l.duration.0);
            (a, b, l.cpu_util, l.gpu_util)
        })
        .collect();
    let faults = s
        .faults
        .iter()
        .filter(|f| f.node == spec.name)
        .map(|f| {
            let (a, b) = ticks(f.start.0, f.duration.map_or(0.0, |d| d.0));
            let source = f.source.map(|x| match x {
                scenario::FaultSource::Rapl => SourceKind::Rapl,
                scenario::FaultSource::Nvml => SourceKind::Nvml,
                scenario::FaultSource::Amdgpu => SourceKind::AmdGpu,
                scenario::FaultSource::IntelGpu => SourceKind::IntelGpu,
                scenario::FaultSource::Bmc => SourceKind::Bmc,
            });
            (a, b, f.kind, source)
        })
        .collect();
    Node {
        target: format!(
            "instance=\"{}:{port}\",job=\"joulebook\",cluster=\"{}\"",
            spec.name, s.cluster
        ),
        info: node_info(&spec.name, g),
        tdp: g.package_watts.max * f64::from(g.sockets),
        gpu_uuids,
        slots,
        model: Arc::new(Mutex::new(model)),
        engine: None,
        shared,
        registry,
        timeline: Vec::new(),
        next: 0,
        active: Vec::new(),
        jobs: Vec::new(),
        restarts,
        fresh_starts,
        stray,
        faults,
        next_restart: 0,
        rng,
        last_node: PerComponent::default(),
        last_unallocated: PerComponent::default(),
        last_cycle_unix: start,
        spec,
    }
}

/// The jobs running during the interval that ends at tick `k`.
fn admit_jobs(
    n: &mut Node,
    k: u64,
    jobs: &[SimJob],
    s: &Scenario,
    uids: &BTreeMap<String, u32>,
    projects: &[String],
) {
    // Jobs that ran through the previous tick leave; jobs that started before this one
    // join, so the set is the jobs running during the interval that ends now.
    if n.active.iter().any(|a| a.end_tick < k) {
        let mut i = 0;
        while i < n.active.len() {
            if n.active[i].end_tick < k {
                n.active.remove(i);
                n.jobs.remove(i);
            } else {
                i += 1;
            }
        }
    }
    while n.next < n.timeline.len() && n.timeline[n.next].0 < k {
        let (_, j, pi) = n.timeline[n.next];
        n.next += 1;
        let job = &jobs[j];
        let p = &job.placement[pi];
        let g = &s.node_groups[n.spec.group];
        let mut cpus_on_socket = vec![0u32; g.sockets as usize];
        for (sock, cpus) in &n.info.cpus_by_socket {
            cpus_on_socket[*sock as usize] = p
                .cpus
                .iter()
                .filter(|c| cpus.binary_search(c).is_ok())
                .count() as u32;
        }
        // Memory per CPU, as Slurm's DefMemPerCPU: never more than the node together.
        let memory = (u128::from(g.memory.0) * p.cpus.len() as u128
            / u128::from(g.logical_cpus().max(1))) as u64;
        let mut gpus: Vec<String> = p
            .gpus
            .iter()
            .map(|i| n.gpu_uuids[*i as usize].clone())
            .collect();
        gpus.sort();
        n.jobs.push(Job {
            id: job.id.to_string(),
            scheduler: Scheduler::Slurm,
            uid: uids.get(&job.user).copied(),
            user: Some(job.user.clone()),
            account: Some(projects[job.project].clone()),
            partition: Some(job.partition.clone()),
            job_name: Some(job.name.clone()),
            sluid: None,
            // The scenario is the scheduler's own word.
            metadata: MetadataSource::Prolog,
            cpus: p.cpus.clone(),
            cpu_usage_ns: Some(0),
            memory_limit_bytes: Some(memory),
            gpu_source: (!gpus.is_empty()).then_some(GpuMappingSource::MappingDir),
            gpus,
            revision: 0,
        });
        n.active.push(Active {
            job: j,
            part: pi,
            end_tick: job.end_tick().unwrap_or(u64::MAX),
            cpus_on_socket,
            gpus: p.gpus.clone(),
            memory,
            cpu_ns: 0.0,
        });
    }
}

/// Applies the node's faults at tick `k` to its hardware; true while its sampler stalls.
fn apply_faults(n: &Node, k: u64) -> bool {
    let mut stalled = false;
    {
        let mut m = n.model.lock().unwrap_or_else(|p| p.into_inner());
        m.down.clear();
        for &(a, b, kind, source) in &n.faults {
            match kind {
                scenario::FaultKind::SourceDown if (a..=b).contains(&k) => {
                    m.down.extend(source);
                }
                scenario::FaultKind::SamplerStall => stalled |= (a..=b).contains(&k),
                scenario::FaultKind::GpuCounterJump if a == k => {
                    m.gpu_jump_mj += GPU_COUNTER_JUMP_MJ;
                }
                _ => {}
            }
        }
    }
    stalled
}

/// The exporter comes back at its restart's tick: a new process resumes from its state file.
fn resume_if_due(
    n: &mut Node,
    k: u64,
    s: &Scenario,
    state_dir: &TempDir,
    unix: f64,
    t: f64,
) -> Result<(), SimError> {
    if n.engine.is_none() {
        if let Some(&(_, up)) = n.restarts.get(n.next_restart) {
            if k == up {
                let mut e = n.new_engine(s);
                let path = state_path(state_dir, n);
                match state::load(&path, &n.spec.name) {
                    _ if n.fresh_starts.contains(&up) => {}
                    LoadOutcome::Loaded(st) => e.resume(&st, unix, t, Some(BOOT_ID)),
                    other => {
                        return Err(SimError::Run(format!(
                            "the state file of {} could not be loaded: {other:?}",
                            n.spec.name
                        )))
                    }
                }
                n.engine = Some(e);
                n.next_restart += 1;
            }
        }
    }
    Ok(())
}

fn state_path(dir: &TempDir, n: &Node) -> PathBuf {
    dir.0
        .as_deref()
        .unwrap_or(Path::new("."))
        .join(format!("{}.json", n.spec.name))
}

/// Advances a node's hardware by one interval with its running jobs, and the model's share of
/// each job.
fn advance(n: &mut Node, k: u64, jobs: &[SimJob], parts: &mut [Vec<Part>], s: &Scenario, dt: f64) {
    let mut model = n.model.lock().unwrap_or_else(|p| p.into_inner());
    let per_socket = f64::from(model.cpus_per_socket.max(1));
    let mut busy = vec![0.0; model.sockets];
    let slots = &n.slots;
    // Utilisation of what each job holds (a GPU or a MIG instance).
    let mut slot_util: Vec<Option<f64>> = vec![None; slots.len()];
    let mut cpu_eff = Vec::with_capacity(n.active.len());
    for a in &n.active {
        let job = &jobs[a.job];
        let mut jitter =
            |u: f64| (u * (1.0 + UTIL_NOISE * workload::normal(&mut n.rng))).clamp(0.0, 1.0);
        let cu = jitter(job.cpu_util);
        let gu = jitter(job.gpu_util);
        for (s, c) in a.cpus_on_socket.iter().enumerate() {
            busy[s] += f64::from(*c) / per_socket * cu;
        }
        for g in &a.gpus {
            if let Some(slot) = slot_util.get_mut(*g as usize) {
                *slot = Some(gu);
            }
        }
        cpu_eff.push(cu);
    }
    for &(a, b, cpu, gpu) in &n.stray {
        if (a..=b).contains(&k) {
            for x in &mut busy {
                *x += cpu;
            }
            for slot in slot_util.iter_mut().filter(|g| g.is_none()) {
                *slot = Some(gpu);
            }
        }
    }
    // A GPU's utilisation: its instances' by their share; `None` while no job holds any part.
    let mut gpu_util: Vec<Option<f64>> = vec![None; model.gpus.len()];
    for (&(g, share), u) in slots.iter().zip(&slot_util) {
        if let (Some(u), Some(slot)) = (u, gpu_util.get_mut(g)) {
            *slot.get_or_insert(0.0) += share * u;
        }
    }
    model.step(dt, &busy, &gpu_util);
    let (pkg, dram, gpu) = model.last_deltas();
    let other = model.last_other_uj() as f64;
    let has_dram = model.has_dram();
    drop(model);
    let node_memory = s.node_groups[n.spec.group].memory.0 as f64;
    for (a, cu) in n.active.iter_mut().zip(cpu_eff) {
        let part = &mut parts[a.job][a.part];
        for (sock, c) in a.cpus_on_socket.iter().enumerate() {
            let share = f64::from(*c) / per_socket;
            part.model_uj.cpu += pkg[sock] as f64 * share;
            if has_dram {
                part.model_uj.dram += dram[sock] as f64 * a.memory as f64 / node_memory;
            }
        }
        for g in &a.gpus {
            if let Some(&(g, share)) = slots.get(*g as usize) {
                part.model_uj.gpu += gpu[g] as f64 * share;
            }
        }
        // Other: by allocated CPUs of the whole node, as the exporter splits it.
        let node_cpus = per_socket * a.cpus_on_socket.len() as f64;
        part.model_uj.other += other * f64::from(a.cpus_on_socket.iter().sum::<u32>()) / node_cpus;
        let logical: u32 = a.cpus_on_socket.iter().sum();
        a.cpu_ns += f64::from(logical) * cu * dt * 1e9;
    }
}

fn write_scrape<W: std::io::Write>(
    n: &mut Node,
    writer: &mut Writer<W>,
    unix: f64,
    format: OutFormat,
) -> std::io::Result<()> {
    let Some(engine) = &n.engine else {
        return Ok(());
    };
    let mut snap = engine.snapshot(n.last_cycle_unix);
    // The live exporter measures how long each source took; a simulation has nothing real to
    // measure, and a wall-clock value would make the output differ from run to run.
    for (_, h) in &mut snap.health {
        h.duration_s = 0.0;
    }
    match n.shared.write() {
        Ok(mut g) => *g = Arc::new(snap),
        Err(p) => *p.into_inner() = Arc::new(snap),
    }
    let text = crate::metrics::encode(&n.registry, format.exposition())
        .map_err(|_| std::io::Error::other("encoding the snapshot failed"))?;
    writer.scrape(&format!("{UP_HELP}up 1\n"), &n.target, unix as i64)?;
    writer.scrape(&text, &n.target, unix as i64)
}
