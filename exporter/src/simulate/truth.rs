//! The ground truth file (`--truth`): what the simulator knows, so the reporter and the tests can
//! be checked without Prometheus. The schema is documented in `docs/simulate.md`; its `schema`
//! field changes when a field changes meaning.
//!
//! Energies are joules by component (`cpu`, `dram`, `gpu`: the components the node has), each the
//! exporter's own integer microjoules divided by 10^6, so a job's `energy_j` equals, digit for
//! digit, the last value of its `joulebook_job_joules_total` series (summed over nodes for a
//! multi-node job). `hardware_j` and `model_energy_j` come from the hardware model alone, as an
//! independent check of the sampler and the attribution. Built here ([`build_truth`]) from the
//! run's job parts, nodes and daily sums once the run ends.

use super::scenario::{self, NodeSpec, Scenario};
use super::workload::SimJob;
use super::{io, Node, Part, SimError, MODELLED};
use joulebook_common::{Component, PerComponent};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::Path;

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

/// The ground truth as pretty JSON.
pub(super) fn write_truth(path: &Path, t: &Truth) -> Result<(), SimError> {
    let file = std::fs::File::create(path).map_err(io("cannot create", path))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, t)
        .map_err(|e| SimError::Run(format!("cannot write {}: {e}", path.display())))?;
    use std::io::Write;
    w.write_all(b"\n")
        .and_then(|_| w.flush())
        .map_err(io("cannot write", path))?;
    Ok(())
}

fn energy(uj: &PerComponent<u64>, components: &[Component]) -> Energy {
    components
        .iter()
        .map(|c| (c.as_str().to_string(), uj[*c] as f64 / 1e6))
        .collect()
}

fn energy_f(uj: &PerComponent<f64>, components: &[Component]) -> Energy {
    components
        .iter()
        .map(|c| (c.as_str().to_string(), uj[*c] / 1e6))
        .collect()
}

/// The components a node publishes: cpu always, dram with a DRAM zone, gpu with GPUs, other
/// with a BMC.
fn node_components(s: &Scenario, spec: &NodeSpec) -> Vec<Component> {
    let g = &s.node_groups[spec.group];
    MODELLED
        .into_iter()
        .filter(|c| match c {
            Component::Dram => g.dram_watts.is_some(),
            Component::Gpu => g.gpu_count() > 0,
            Component::Other => g.bmc.is_some(),
            _ => true,
        })
        .collect()
}

pub(super) fn build_truth(
    s: &Scenario,
    seed: u64,
    jobs: &[SimJob],
    parts: &[Vec<Part>],
    nodes: &[Node],
    days: &[(PerComponent<u64>, PerComponent<u64>)],
) -> Truth {
    let step = s.sample_interval();
    let start = s.start.0;
    let horizon = (s.duration.0 / step).round() as u64;
    let all: Vec<Component> = MODELLED
        .into_iter()
        .filter(|c| {
            nodes
                .iter()
                .any(|n| node_components(s, &n.spec).contains(c))
        })
        .collect();

    let mut totals = Totals::default();
    let node_truths = node_truths(s, parts, nodes, &all, &mut totals);
    totals.jobs_submitted = jobs.len() as u64;

    let mut accounts: BTreeMap<String, GroupTruth> = BTreeMap::new();
    let mut users: BTreeMap<String, GroupTruth> = BTreeMap::new();
    let mut account_uj: BTreeMap<String, PerComponent<u64>> = BTreeMap::new();
    let mut user_uj: BTreeMap<String, PerComponent<u64>> = BTreeMap::new();
    let mut job_truths = Vec::with_capacity(jobs.len());
    for (j, job) in jobs.iter().enumerate() {
        let (truth, uj) = job_truth(s, job, &parts[j], nodes, horizon);
        let started = job.start_tick.is_some();
        let finished = job.end_tick().is_some_and(|e| e <= horizon);
        if started {
            totals.jobs_started += 1;
            if finished {
                totals.jobs_finished += 1;
            } else {
                totals.jobs_running_at_end += 1;
            }
        } else {
            totals.jobs_never_started += 1;
        }
        for (map, key, sums) in [
            (&mut accounts, &truth.account, &mut account_uj),
            (&mut users, &job.user, &mut user_uj),
        ] {
            let g = map.entry(key.clone()).or_default();
            g.jobs += 1;
            g.core_seconds += truth.core_seconds;
            g.gpu_seconds += truth.gpu_seconds;
            add_uj(sums.entry(key.clone()).or_default(), &uj);
        }
        job_truths.push(truth);
    }
    for (map, sums) in [(&mut accounts, &account_uj), (&mut users, &user_uj)] {
        for (k, g) in map.iter_mut() {
            if let Some(uj) = sums.get(k) {
                g.energy_j = energy(uj, &all);
                g.total_j = uj.values().sum::<u64>() as f64 / 1e6;
            }
        }
    }
    let days = day_truths(s, days, &all);
    Truth {
        schema: SCHEMA,
        cluster: s.cluster.clone(),
        seed,
        start: scenario::rfc3339(start),
        start_unix: start as i64,
        end_unix: (start + s.duration.0) as i64,
        scrape_interval_s: s.scrape_interval.0,
        sample_interval_s: step,
        grace_period_s: s.grace_period(),
        components: all.iter().map(|c| c.as_str().to_string()).collect(),
        final_run_patterns: s
            .projects
            .iter()
            .filter_map(|p| {
                p.final_runs
                    .as_ref()
                    .map(|f| (p.name.clone(), f.pattern.clone()))
            })
            .collect(),
        totals,
        nodes: node_truths,
        accounts,
        users,
        days,
        jobs: job_truths,
    }
}

/// Each node's energy, and the cluster totals of node, unallocated, hardware and job energy.
fn node_truths(
    s: &Scenario,
    parts: &[Vec<Part>],
    nodes: &[Node],
    all: &[Component],
    totals: &mut Totals,
) -> Vec<NodeTruth> {
    let step = s.sample_interval();
    let start = s.start.0;
    let unix_of = |tick: u64| (start + tick as f64 * step) as i64;
    let [mut t_node, mut t_un, mut t_hw, mut t_jobs] = [PerComponent::<u64>::default(); 4];
    let mut node_jobs = vec![PerComponent::<u64>::default(); nodes.len()];
    for p in parts.iter().flatten() {
        add_uj(&mut node_jobs[p.node], &p.uj);
    }
    let mut node_truths = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let comps = node_components(s, &n.spec);
        let hw = n
            .model
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .totals_uj();
        add_uj(&mut t_node, &n.last_node);
        add_uj(&mut t_un, &n.last_unallocated);
        add_uj(&mut t_hw, &hw);
        add_uj(&mut t_jobs, &node_jobs[i]);
        node_truths.push(NodeTruth {
            name: n.spec.name.clone(),
            instance: format!("{}:{}", n.spec.name, joulebook_common::DEFAULT_PORT),
            group: s.node_groups[n.spec.group].name.clone(),
            partition: n.spec.partition.clone(),
            gpu_uuids: n.gpu_uuids.clone(),
            energy_j: energy(&n.last_node, &comps),
            unallocated_j: energy(&n.last_unallocated, &comps),
            jobs_j: energy(&node_jobs[i], &comps),
            hardware_j: energy(&hw, &comps),
            restarts: n
                .restarts
                .iter()
                .map(|(d, u)| RestartTruth {
                    down_unix: unix_of(*d),
                    up_unix: unix_of(*u),
                })
                .collect(),
        });
    }
    totals.node_j = energy(&t_node, all);
    totals.unallocated_j = energy(&t_un, all);
    totals.hardware_j = energy(&t_hw, all);
    totals.jobs_j = energy(&t_jobs, all);
    node_truths
}

/// One job's truth, and its energy per component, µJ.
fn job_truth(
    s: &Scenario,
    job: &SimJob,
    parts: &[Part],
    nodes: &[Node],
    horizon: u64,
) -> (JobTruth, PerComponent<u64>) {
    let step = s.sample_interval();
    let start = s.start.0;
    let unix_of = |tick: u64| (start + tick as f64 * step) as i64;
    let account = s.projects[job.project].name.clone();
    let mut uj = PerComponent::<u64>::default();
    let mut model = PerComponent::<f64>::default();
    let (mut core_s, mut gpu_s, mut cpu_s) = (0.0, 0.0, 0.0);
    let mut by_node = BTreeMap::new();
    let mut comps: Vec<Component> = Vec::new();
    let mut affected = false;
    for p in parts {
        let nc = node_components(s, &nodes[p.node].spec);
        for c in &nc {
            if !comps.contains(c) {
                comps.push(*c);
            }
        }
        add_uj(&mut uj, &p.uj);
        model = model.plus(&p.model_uj);
        core_s += p.core_s;
        gpu_s += p.gpu_s;
        cpu_s += p.cpu_s;
        by_node.insert(nodes[p.node].spec.name.clone(), energy(&p.uj, &nc));
        if let (Some(st), Some(en)) = (job.start_tick, job.end_tick()) {
            affected |= nodes[p.node]
                .restarts
                .iter()
                .any(|&(d, u)| st < u && en > d);
        }
    }
    comps.sort();
    let total_uj: u64 = uj.values().sum();
    let first = job.placement.first();
    let truth = JobTruth {
        id: job.id.to_string(),
        user: job.user.clone(),
        account,
        partition: job.partition.clone(),
        name: job.name.clone(),
        class: s.jobs.classes[job.class].name.clone(),
        final_run: job.final_run,
        submit_unix: start + job.submit_s,
        start_unix: job.start_tick.map(unix_of),
        end_unix: job.end_tick().filter(|e| *e <= horizon).map(unix_of),
        nodes: job
            .placement
            .iter()
            .map(|p| nodes[p.node].spec.name.clone())
            .collect(),
        cpus_per_node: first.map_or(0, |p| p.cpus.len() as u32),
        gpus_per_node: first.map_or(0, |p| p.gpus.len() as u32),
        energy_j: energy(&uj, &comps),
        total_j: total_uj as f64 / 1e6,
        core_seconds: core_s,
        gpu_seconds: gpu_s,
        cpu_seconds: cpu_s,
        by_node,
        model_energy_j: energy_f(&model, &comps),
        affected_by_restart: affected,
    };
    (truth, uj)
}

/// Node, job and unallocated energy of each day.
fn day_truths(
    s: &Scenario,
    days: &[(PerComponent<u64>, PerComponent<u64>)],
    all: &[Component],
) -> Vec<DayTruth> {
    let start = s.start.0;
    // Midnight (UTC) of the first day, Unix seconds.
    let day0 = (start / 86400.0).floor() * 86400.0;
    days.iter()
        .enumerate()
        .map(|(i, (node, un))| {
            let jobs_uj = node.zip_with(*un, u64::saturating_sub);
            DayTruth {
                date: scenario::date_of(day0 + i as f64 * 86400.0),
                node_j: energy(node, all),
                jobs_j: energy(&jobs_uj, all),
                unallocated_j: energy(un, all),
            }
        })
        .collect()
}
