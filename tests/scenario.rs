//! A small simulated GPU cluster for the reporter's end-to-end tests: three nodes, ten jobs, five
//! users, four projects, October 2026 plus a margin on each side, scraped every 600 s. It writes
//! timestamped OpenMetrics (for `promtool tsdb create-blocks-from openmetrics`) and Prometheus
//! text with millisecond timestamps (for VictoriaMetrics), and keeps its own ground truth.
//!
//! Includes: a job crossing each month boundary, a job shorter than one scrape interval, a job on
//! two nodes, an exporter restart that resumes from its state file (counters dip a little) and
//! one that lost it (counters restart from zero), and hostile names (`<script>`, quotes, pipes,
//! newlines). Each node publishes the restart marker (`joulebook_counters_start_time_seconds`: a
//! week before the data, moved by the restart without state) unless made by
//! [`generate_without_marker`] (exporters older than it).

use joulebook_common as c;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const SCRAPE: i64 = 600;
/// 2026-09-30T00:00:00Z.
pub const T0: i64 = 1_790_726_400;
/// 2026-10-01T00:00:00Z and 2026-11-01T00:00:00Z.
pub const OCT_START: i64 = 1_790_812_800;
pub const OCT_END: i64 = 1_793_491_200;
/// End of the data, 2026-11-01T12:00:00Z.
pub const T1: i64 = OCT_END + 12 * 3600;
const STEP: i64 = 60;
const GRACE_SCRAPES: i64 = 2;
pub const CLUSTER: &str = "c1";
/// The exporter's port in every `instance` label, as Prometheus scrapes it (reports show the
/// node without it).
pub const PORT: u16 = 9977;

/// The `instance` label of a node.
pub fn instance(node: &str) -> String {
    format!("{node}:{PORT}")
}

const H: i64 = 3600;
const D: i64 = 86_400;

pub struct Node {
    pub name: &'static str,
    pub gpus: Vec<(&'static str, &'static str, f64)>, // uuid, model, power limit W
    pub cores: f64,
    pub tdp: f64,
    pub memory: f64,
    /// Idle power by component (cpu, dram, gpu per GPU, other), W.
    pub idle: c::PerComponent<f64>,
}

pub struct Job {
    pub id: &'static str,
    pub user: &'static str,
    pub account: &'static str,
    pub name: &'static str,
    pub nodes: Vec<&'static str>,
    pub start: i64,
    pub end: i64,
    pub cpus: f64,
    pub gpus: usize,
    pub mem: f64,
    /// Power per node by component (cpu, dram, gpu, other), W.
    pub power: c::PerComponent<f64>,
}

/// A restart of a node's exporter: down from `at` for `down` seconds; `keep_state` resumes
/// from totals saved `save_lag` seconds before the crash, otherwise every counter restarts at 0.
pub struct Restart {
    pub node: &'static str,
    pub at: i64,
    pub down: i64,
    pub keep_state: bool,
    pub save_lag: i64,
}

pub fn nodes() -> Vec<Node> {
    vec![
        Node {
            name: "n1",
            gpus: vec![
                ("GPU-aaaa-0001", "NVIDIA H100 80GB HBM3", 700.0),
                ("GPU-aaaa-0002", "NVIDIA H100 80GB HBM3", 700.0),
            ],
            cores: 64.0,
            tdp: 560.0,
            memory: 512e9,
            idle: [90.0, 15.0, 70.0, 0.0].into(),
        },
        Node {
            name: "n2",
            gpus: vec![
                ("GPU-bbbb-0001", "NVIDIA A100-SXM4-80GB", 400.0),
                ("GPU-bbbb-0002", "NVIDIA A100-SXM4-80GB", 400.0),
            ],
            cores: 32.0,
            tdp: 400.0,
            memory: 256e9,
            idle: [70.0, 10.0, 50.0, 0.0].into(),
        },
        Node {
            name: "n3",
            gpus: vec![],
            cores: 32.0,
            tdp: 360.0,
            memory: 128e9,
            idle: [60.0, 8.0, 0.0, 0.0].into(),
        },
    ]
}

pub fn jobs() -> Vec<Job> {
    // Power per node: W of cpu, dram, gpu, other.
    let j =
        |id, user, account, name, nodes: Vec<&'static str>, start, end, cpus, gpus, power| Job {
            id,
            user,
            account,
            name,
            nodes,
            start,
            end,
            cpus,
            gpus,
            mem: cpus * 4e9,
            power: c::PerComponent::from(power),
        };
    #[rustfmt::skip]
    let jobs = vec![
        j("1001", "alice", "proj-a", "train-final", vec!["n1"], OCT_START + 2 * D + 10 * H, OCT_START + 4 * D + 10 * H, 32.0, 2, [150.0, 20.0, 1100.0, 0.0]),
        j("1002", "alice", "proj-a", "dev-sweep", vec!["n1"], OCT_START + 5 * D + 123, OCT_START + 8 * D + 77, 16.0, 1, [80.0, 10.0, 300.0, 0.0]),
        j("1003", "bob", "proj-a", "dev", vec!["n2"], OCT_START + 9 * D, OCT_START + 11 * D + 5 * H, 8.0, 1, [60.0, 8.0, 250.0, 0.0]),
        j("1004", "<script>alert(1)</script>", "proj|pipe", "x|y\n<b>\"q\" *z*", vec!["n3"], OCT_START + D + 1800, OCT_START + 3 * D, 16.0, 0, [120.0, 12.0, 0.0, 0.0]),
        j("1005", "carol", "proj-b", "crossing-start", vec!["n3"], OCT_START - 4 * H - 300, OCT_START + 6 * H + 100, 8.0, 0, [70.0, 6.0, 0.0, 0.0]),
        j("1006", "carol", "proj-b", "crossing-end", vec!["n2"], OCT_END - 6 * H + 250, OCT_END + 4 * H, 8.0, 1, [60.0, 6.0, 200.0, 0.0]),
        j("1007", "dave", "proj-b", "short", vec!["n3"], OCT_START + 14 * D + 12 * H + 120, OCT_START + 14 * D + 12 * H + 360, 4.0, 0, [50.0, 4.0, 0.0, 0.0]),
        j("1008", "dave", "proj-b", "two-nodes", vec!["n1", "n2"], OCT_START + 22 * D, OCT_START + 23 * D, 16.0, 1, [90.0, 10.0, 280.0, 0.0]),
        j("1009", "erin", "proj-c", "final-run", vec!["n3"], OCT_START + 18 * D, OCT_START + 21 * D, 24.0, 0, [160.0, 15.0, 0.0, 0.0]),
        j("1010", "erin", "proj-c", "dev1", vec!["n3"], OCT_START + 24 * D, OCT_START + 25 * D, 8.0, 0, [50.0, 5.0, 0.0, 0.0]),
    ];
    jobs
}

pub fn restarts() -> Vec<Restart> {
    vec![
        // Crash 30 s after a scrape, state saved 90 s before the crash, back before the next
        // scrape: the first value after the restart is below the last one scraped.
        Restart {
            node: "n2",
            at: OCT_START + 10 * D + 6 * H + 30,
            down: 540,
            keep_state: true,
            save_lag: 90,
        },
        Restart {
            node: "n3",
            at: OCT_START + 19 * D + 12 * H + 30,
            down: 1200,
            keep_state: false,
            save_lag: 0,
        },
    ]
}

/// One exported series: name, labels (without cluster/instance/job), per-scrape values.
#[derive(Default)]
struct SeriesBuf {
    kind: &'static str,
    family: String,
    samples: Vec<(i64, f64)>,
}

/// Ground truth and the exposition text.
pub struct Scenario {
    /// OpenMetrics with second timestamps, ending in `# EOF`.
    pub openmetrics: String,
    /// Prometheus text with millisecond timestamps (VictoriaMetrics import).
    pub prom_text_ms: String,
    /// Per job: its energy inside October by the exporter's counters (joules), computed from the
    /// simulation's own segments (which restart lost its state), not from the samples' shape.
    pub job_energy_oct: BTreeMap<String, f64>,
    /// Per job: core-seconds inside October by the same rule.
    pub job_core_seconds_oct: BTreeMap<String, f64>,
    /// Cluster node energy inside October by the counters, joules.
    pub node_energy_oct: f64,
    /// The same by node (instance).
    pub node_energy_oct_by_node: BTreeMap<String, f64>,
    /// Physical (simulated) node energy inside October, joules, and the bound of the counters'
    /// difference from it (boundary scrapes and the restarts' losses), joules.
    pub node_energy_physical_oct: f64,
    pub node_energy_bound: f64,
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(node: &str, extra: &[(&str, &str)]) -> String {
    let mut s = format!(
        "cluster=\"{CLUSTER}\",instance=\"{}\",job=\"joulebook\"",
        instance(node)
    );
    for (k, v) in extra {
        let _ = write!(s, ",{k}=\"{}\"", esc(v));
    }
    s
}

/// Per-series counter state through the simulation.
#[derive(Default, Clone)]
struct Counter {
    /// What the exporter exports now.
    exported: f64,
    /// Saved state (for a resume).
    saved: f64,
    /// Segments of the counter: (value at last scrape ≤ S, value at last scrape ≤ E), and whether
    /// a scrape ≤ S exists in the segment.
    seg_start: Option<f64>,
    seg_end: Option<f64>,
    /// Energy inside October of finished segments.
    done: f64,
}

impl Counter {
    fn scraped(&mut self, t: i64) {
        if t <= OCT_START {
            self.seg_start = Some(self.exported);
        }
        if t <= OCT_END {
            self.seg_end = Some(self.exported);
        }
    }
    fn close_segment(&mut self) {
        if let Some(e) = self.seg_end {
            self.done += e - self.seg_start.unwrap_or(0.0);
        }
        self.seg_start = None;
        self.seg_end = None;
    }
    fn oct(&self) -> f64 {
        self.done
            + self
                .seg_end
                .map_or(0.0, |e| e - self.seg_start.unwrap_or(0.0))
    }
}

/// The scenario as today's exporter publishes it, with the restart marker.
pub fn generate() -> Scenario {
    generate_with(true)
}

/// The scenario as exporters older than the restart marker publish it.
pub fn generate_without_marker() -> Scenario {
    generate_with(false)
}

fn generate_with(marker: bool) -> Scenario {
    let nodes = nodes();
    let jobs = jobs();
    let restarts = restarts();
    let mut sim = Sim {
        marker,
        // When each node's counters last started from zero: a resume keeps it.
        counters_start: nodes.iter().map(|n| (n.name, T0 - 7 * D)).collect(),
        ..Sim::default()
    };
    let mut t = T0;
    while t <= T1 {
        sim.restarts_at(t, &restarts);
        for n in &nodes {
            sim.energy_of_step(t, n, &jobs);
        }
        let tn = t + STEP;
        sim.save_states(tn, &restarts);
        if tn % SCRAPE == 0 {
            for n in &nodes {
                if sim.is_down(n.name, tn) {
                    continue;
                }
                sim.scrape_counters(tn, n, &jobs);
                sim.scrape_node_gauges(tn, n);
                sim.scrape_job_gauges(tn, n, &jobs);
            }
        }
        t = tn;
    }
    sim.scenario(&nodes, &jobs)
}

/// The key of gauge `m` of `node` with the `extra` labels.
fn gauge(node: &str, m: &c::MetricDef, extra: &[(&str, &str)]) -> String {
    format!("{}{{{}}}", m.name(), labels(node, extra))
}

/// No BMC on this cluster: nothing measures `other`, and the exporter publishes no series of it
/// (the reports say so rather than show 0 kWh).
fn measured() -> &'static [c::Component] {
    &c::Component::ALL[..3]
}

fn push(
    series: &mut BTreeMap<String, SeriesBuf>,
    name: String,
    kind: &'static str,
    family: String,
    t: i64,
    v: f64,
) {
    let s = series.entry(name).or_insert_with(|| SeriesBuf {
        kind,
        family,
        samples: vec![],
    });
    s.samples.push((t, v));
}

/// The simulated exporters of the cluster, a step at a time: their counters (key → state), the
/// series they published, and the physical truth beside them.
#[derive(Default)]
struct Sim {
    series: BTreeMap<String, SeriesBuf>,
    counters: BTreeMap<String, Counter>,
    physical_oct: f64,
    max_node_power: BTreeMap<&'static str, f64>,
    lost: f64,
    down_until: BTreeMap<&'static str, i64>,
    /// Whether the exporters publish the restart marker, and when each node's counters last
    /// started from zero.
    marker: bool,
    counters_start: BTreeMap<&'static str, i64>,
}

impl Sim {
    /// Whether `node`'s exporter is down at `t` (restarting).
    fn is_down(&self, node: &str, t: i64) -> bool {
        self.down_until.get(node).is_some_and(|u| t < *u)
    }

    /// Step 1: the restarts starting at `t`.
    fn restarts_at(&mut self, t: i64, restarts: &[Restart]) {
        for r in restarts {
            if t == r.at - r.at.rem_euclid(STEP) {
                self.down_until.insert(r.node, r.at + r.down);
                if !r.keep_state {
                    self.counters_start.insert(r.node, r.at + r.down);
                }
                for (k, ctr) in self.counters.iter_mut() {
                    if !k.contains(&format!("instance=\"{}\"", instance(r.node))) {
                        continue;
                    }
                    if r.keep_state {
                        // The state file holds the total `save_lag` seconds before the crash:
                        // what the node used since is lost.
                        let before = ctr.exported;
                        ctr.exported = ctr.saved;
                        if k.starts_with(&c::NODE_ENERGY.name()) {
                            self.lost += before - ctr.saved;
                        }
                    } else {
                        if k.starts_with(&c::NODE_ENERGY.name()) {
                            self.lost += ctr.exported - ctr.seg_end.unwrap_or(0.0);
                        }
                        ctr.close_segment();
                        ctr.exported = 0.0;
                    }
                }
            }
        }
    }

    /// Step 2: the energy of node `n` in the step starting at `t`, by component: the jobs' and the
    /// unallocated idle power, counted by its exporter unless it is down.
    fn energy_of_step(&mut self, t: i64, n: &Node, jobs: &[Job]) {
        let comps = measured();
        let down = self.is_down(n.name, t);
        let running: Vec<&Job> = jobs
            .iter()
            .filter(|j| j.nodes.contains(&n.name) && t >= j.start && t < j.end)
            .collect();
        let used_cpus: f64 = running.iter().map(|j| j.cpus).sum();
        let used_gpus: usize = running.iter().map(|j| j.gpus).sum();
        let free = (1.0 - used_cpus / n.cores).max(0.0);
        let mut node_p = c::PerComponent::<f64>::default();
        for &comp in comps {
            let unalloc = if comp == c::Component::Gpu {
                n.idle[comp] * (n.gpus.len() - used_gpus) as f64
            } else {
                n.idle[comp] * free
            };
            node_p[comp] += unalloc;
            let key = format!(
                "{}{{{}}}",
                c::UNALLOCATED_ENERGY.name(),
                labels(n.name, &[(c::labels::COMPONENT, comp.as_str())])
            );
            if !down {
                self.counters.entry(key).or_default().exported += unalloc * STEP as f64;
            }
        }
        for j in &running {
            let idle_share = j.cpus / n.cores;
            for &comp in comps {
                let p = j.power[comp]
                    + if comp == c::Component::Gpu {
                        n.idle[comp] * j.gpus as f64
                    } else {
                        n.idle[comp] * idle_share
                    };
                node_p[comp] += p;
                let key = format!(
                    "{}{{{}}}",
                    c::JOB_ENERGY.name(),
                    labels(
                        n.name,
                        &[
                            (c::labels::JOB_ID, j.id),
                            (c::labels::COMPONENT, comp.as_str())
                        ]
                    )
                );
                if !down {
                    self.counters.entry(key).or_default().exported += p * STEP as f64;
                }
            }
            for (m, rate) in [
                (c::JOB_CORE_SECONDS, j.cpus),
                (c::JOB_GPU_SECONDS, j.gpus as f64),
                (c::JOB_CPU_SECONDS, j.cpus * 0.8),
            ] {
                let key = format!(
                    "{}{{{}}}",
                    m.name(),
                    labels(n.name, &[(c::labels::JOB_ID, j.id)])
                );
                if !down {
                    self.counters.entry(key).or_default().exported += rate * STEP as f64;
                }
            }
        }
        let total: f64 = node_p.values().sum();
        let mp = self.max_node_power.entry(n.name).or_default();
        *mp = mp.max(total);
        if (OCT_START..OCT_END).contains(&t) {
            self.physical_oct += total * STEP as f64;
        }
        for &comp in comps {
            let key = format!(
                "{}{{{}}}",
                c::NODE_ENERGY.name(),
                labels(n.name, &[(c::labels::COMPONENT, comp.as_str())])
            );
            let ctr = self.counters.entry(key).or_default();
            if !down {
                ctr.exported += node_p[comp] * STEP as f64;
            } else if (OCT_START..OCT_END).contains(&t) {
                self.lost += node_p[comp] * STEP as f64;
            }
        }
    }

    /// Step 3, state saves: each counter's saved value trails by the next restart's save lag.
    fn save_states(&mut self, tn: i64, restarts: &[Restart]) {
        for r in restarts {
            if r.keep_state && tn == (r.at - r.save_lag).div_euclid(STEP) * STEP {
                for (k, ctr) in self.counters.iter_mut() {
                    if k.contains(&format!("instance=\"{}\"", instance(r.node))) {
                        ctr.saved = ctr.exported;
                    }
                }
            }
        }
    }

    /// Step 4, a scrape: node `n`'s counters at `ts`.
    fn scrape_counters(&mut self, ts: i64, n: &Node, jobs: &[Job]) {
        let inst = format!("instance=\"{}\"", instance(n.name));
        for (k, ctr) in self.counters.iter_mut() {
            if !k.contains(&inst) {
                continue;
            }
            // A job's series exists from its start to a grace period after its end.
            if let Some(j) = jobs
                .iter()
                .find(|j| k.contains(&format!("job_id=\"{}\"", j.id)))
            {
                if ts <= j.start || ts > j.end + GRACE_SCRAPES * SCRAPE {
                    continue;
                }
            }
            ctr.scraped(ts);
            let family = k
                .split('{')
                .next()
                .unwrap_or_default()
                .trim_end_matches("_total")
                .to_string();
            push(
                &mut self.series,
                k.clone(),
                "counter",
                family,
                ts,
                ctr.exported,
            );
        }
    }

    /// Node `n`'s gauges: its hardware and GPUs.
    fn scrape_node_gauges(&mut self, ts: i64, n: &Node) {
        if self.marker {
            let m = c::COUNTERS_START_TIME;
            let v = self.counters_start.get(n.name).copied().unwrap_or(T0) as f64;
            push(
                &mut self.series,
                gauge(n.name, &m, &[]),
                "gauge",
                m.name(),
                ts,
                v,
            );
        }
        for (m, v) in [
            (c::NODE_PHYSICAL_CORES, n.cores),
            (c::NODE_CPU_TDP, n.tdp),
            (c::NODE_MEMORY, n.memory),
        ] {
            push(
                &mut self.series,
                gauge(n.name, &m, &[]),
                "gauge",
                m.name(),
                ts,
                v,
            );
        }
        for (i, (uuid, model, limit)) in n.gpus.iter().enumerate() {
            let idx = i.to_string();
            push(
                &mut self.series,
                gauge(
                    n.name,
                    &c::GPU_INFO,
                    &[
                        (c::labels::GPU_UUID, uuid),
                        (c::labels::INDEX, &idx),
                        (c::labels::MODEL, model),
                        (c::labels::PCI_BUS_ID, "0000:00:00.0"),
                    ],
                ),
                "gauge",
                c::GPU_INFO.name(),
                ts,
                1.0,
            );
            push(
                &mut self.series,
                gauge(n.name, &c::GPU_POWER_LIMIT, &[(c::labels::GPU_UUID, uuid)]),
                "gauge",
                c::GPU_POWER_LIMIT.name(),
                ts,
                *limit,
            );
        }
    }

    /// The gauges of the jobs on node `n` (from their start to the grace period after their end):
    /// info, allocation, GPUs.
    fn scrape_job_gauges(&mut self, ts: i64, n: &Node, jobs: &[Job]) {
        let mut gpu_next = 0;
        for j in jobs.iter().filter(|j| j.nodes.contains(&n.name)) {
            if ts <= j.start || ts > j.end + GRACE_SCRAPES * SCRAPE {
                continue;
            }
            let id = [(c::labels::JOB_ID, j.id)];
            push(
                &mut self.series,
                gauge(
                    n.name,
                    &c::JOB_INFO,
                    &[
                        (c::labels::JOB_ID, j.id),
                        (c::labels::SCHEDULER, "slurm"),
                        (c::labels::USER, j.user),
                        (c::labels::ACCOUNT, j.account),
                        (c::labels::PARTITION, "gpu"),
                        (c::labels::JOB_NAME, j.name),
                    ],
                ),
                "gauge",
                c::JOB_INFO.name(),
                ts,
                1.0,
            );
            push(
                &mut self.series,
                gauge(n.name, &c::JOB_ALLOCATED_CPUS, &id),
                "gauge",
                c::JOB_ALLOCATED_CPUS.name(),
                ts,
                j.cpus,
            );
            push(
                &mut self.series,
                gauge(n.name, &c::JOB_ALLOCATED_GPUS, &id),
                "gauge",
                c::JOB_ALLOCATED_GPUS.name(),
                ts,
                j.gpus as f64,
            );
            push(
                &mut self.series,
                gauge(n.name, &c::JOB_ALLOCATED_MEMORY, &id),
                "gauge",
                c::JOB_ALLOCATED_MEMORY.name(),
                ts,
                j.mem,
            );
            for k in 0..j.gpus {
                if let Some((uuid, _, _)) = n.gpus.get(gpu_next + k) {
                    push(
                        &mut self.series,
                        gauge(
                            n.name,
                            &c::JOB_GPU_INFO,
                            &[(c::labels::JOB_ID, j.id), (c::labels::GPU_UUID, uuid)],
                        ),
                        "gauge",
                        c::JOB_GPU_INFO.name(),
                        ts,
                        1.0,
                    );
                }
            }
            if ts <= j.end {
                gpu_next += j.gpus;
            }
        }
    }

    /// The ground truth and the exposition text.
    fn scenario(&self, nodes: &[Node], jobs: &[Job]) -> Scenario {
        // Ground truth per job and for the nodes.
        let mut job_energy_oct = BTreeMap::new();
        let mut job_core_seconds_oct = BTreeMap::new();
        let mut node_energy_oct = 0.0;
        let mut node_energy_oct_by_node = BTreeMap::new();
        for (k, ctr) in &self.counters {
            let v = ctr.oct();
            if k.starts_with(&c::NODE_ENERGY.name()) {
                node_energy_oct += v;
                for n in nodes {
                    if k.contains(&format!("instance=\"{}\"", instance(n.name))) {
                        *node_energy_oct_by_node
                            .entry(n.name.to_string())
                            .or_insert(0.0) += v;
                    }
                }
            }
            if let Some(j) = jobs
                .iter()
                .find(|j| k.contains(&format!("job_id=\"{}\"", j.id)))
            {
                if k.starts_with(&c::JOB_ENERGY.name()) {
                    *job_energy_oct.entry(j.id.to_string()).or_insert(0.0) += v;
                } else if k.starts_with(&c::JOB_CORE_SECONDS.name()) {
                    *job_core_seconds_oct.entry(j.id.to_string()).or_insert(0.0) += v;
                }
            }
        }
        let bound = self
            .max_node_power
            .values()
            .map(|p| 2.0 * p * SCRAPE as f64)
            .sum::<f64>()
            + self.lost;
        // Exposition, grouped by family.
        let mut by_family: BTreeMap<&str, Vec<(&String, &SeriesBuf)>> = BTreeMap::new();
        for (k, s) in &self.series {
            by_family.entry(s.family.as_str()).or_default().push((k, s));
        }
        let mut om = String::new();
        let mut pt = String::new();
        for (fam, list) in by_family {
            let _ = writeln!(om, "# TYPE {fam} {}", list[0].1.kind);
            for (k, s) in list {
                for (ts, v) in &s.samples {
                    let _ = writeln!(om, "{k} {v} {ts}");
                    let _ = writeln!(pt, "{k} {v} {}", ts * 1000);
                }
            }
        }
        om.push_str("# EOF\n");
        Scenario {
            openmetrics: om,
            prom_text_ms: pt,
            job_energy_oct,
            job_core_seconds_oct,
            node_energy_oct,
            node_energy_oct_by_node,
            node_energy_physical_oct: self.physical_oct,
            node_energy_bound: bound,
        }
    }
}
