//! The estimation methods compared with the measurement (Green Algorithms, ML CO2 Impact,
//! CodeCarbon-style) for one job, and the constants and method notes every report prints with
//! their sources. Joules in, joules out; no I/O.

use crate::config::Config;
use crate::data::{Dataset, JobData, NodeData, OwnerData};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct Constant {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub source: String,
}

/// Per-job estimates, joules.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JobEstimates {
    pub green_algorithms: f64,
    pub ml_co2: f64,
    pub codecarbon: f64,
}

/// What the estimation methods take from a dataset: its nodes' facts and energy, their GPUs'
/// power limits, the site's constants, and `period_s`, the window over which the nodes' energy
/// was collected. A node's mean power over the days on which it reported
/// ([`NodeData::seconds_over`]) stands for its power during a job.
pub struct Estimator<'a> {
    nodes: BTreeMap<(&'a str, &'a str), &'a NodeData>,
    gpu_watts: BTreeMap<(&'a str, &'a str), f64>,
    cfg: &'a Config,
    period_s: f64,
}

/// What the estimates charge per unit of use on one node.
struct Rates {
    /// Green Algorithms' power per allocated core, watts.
    core_w: f64,
    /// Power per allocated GPU, watts.
    gpu_w: f64,
    /// The CodeCarbon-style power per second of elapsed time (the node's mean CPU and GPU
    /// power plus its memory's), watts; `None` for a node without facts.
    codecarbon_w: Option<f64>,
}

impl<'a> Estimator<'a> {
    pub fn new(ds: &'a Dataset, cfg: &'a Config, period_s: f64) -> Estimator<'a> {
        Estimator {
            nodes: ds
                .nodes
                .iter()
                .map(|n| ((n.cluster.as_str(), n.instance.as_str()), n))
                .collect(),
            gpu_watts: gpu_watts_by_node(ds),
            cfg,
            period_s,
        }
    }

    fn rates(&self, cluster: &str, instance: &str) -> Rates {
        let e = &self.cfg.estimation;
        let node = self.nodes.get(&(cluster, instance));
        let core_w = node
            .and_then(|n| match (n.cpu_tdp_watts, n.physical_cores) {
                (Some(t), Some(c)) if c > 0.0 && t > 0.0 => Some(t / c),
                _ => None,
            })
            .unwrap_or(e.ga_core_w_default.value);
        let gpu_w = self
            .gpu_watts
            .get(&(cluster, instance))
            .copied()
            .unwrap_or(e.gpu_w_default.value);
        let codecarbon_w = node.map(|n| {
            let seconds = n.seconds_over(self.period_s);
            let node_power = if seconds > 0.0 {
                (n.energy.cpu + n.energy.gpu) / seconds
            } else {
                0.0
            };
            let node_mem_gb = n.memory_bytes.unwrap_or(0.0) / 1e9;
            node_power + node_mem_gb * e.codecarbon_memory_w_per_gb.value
        });
        Rates {
            core_w,
            gpu_w,
            codecarbon_w,
        }
    }

    /// The methods for one job, on the nodes it ran on.
    pub fn job(&self, job: &JobData) -> JobEstimates {
        let mem_w = self.cfg.estimation.ga_memory_w_per_gb.value;
        let mut out = JobEstimates::default();
        for p in &job.placements {
            let r = self.rates(&job.cluster, &p.instance);
            let elapsed = p.elapsed_seconds();
            let mem_gb = p.alloc_memory_bytes.unwrap_or(0.0) / 1e9;
            out.green_algorithms +=
                p.core_seconds * r.core_w + p.gpu_seconds * r.gpu_w + mem_gb * mem_w * elapsed;
            out.ml_co2 += p.gpu_seconds * r.gpu_w;
            if let Some(w) = r.codecarbon_w {
                out.codecarbon += elapsed * w;
            }
        }
        out
    }

    /// The same for an (account, user) pair's jobs on one node, from its owner counters: the
    /// sums of what [`Estimator::job`] charges each of those jobs there (memory × elapsed is
    /// the exporter's sum over the cycles, where a job's is its largest limit × its elapsed).
    pub fn owner(&self, o: &OwnerData) -> JobEstimates {
        let mem_w = self.cfg.estimation.ga_memory_w_per_gb.value;
        let r = self.rates(&o.cluster, &o.instance);
        JobEstimates {
            green_algorithms: o.core_seconds * r.core_w
                + o.gpu_seconds * r.gpu_w
                + o.memory_byte_seconds / 1e9 * mem_w,
            ml_co2: o.gpu_seconds * r.gpu_w,
            codecarbon: r.codecarbon_w.map_or(0.0, |w| o.elapsed_seconds * w),
        }
    }
}

/// Per-(cluster, instance) average GPU power limit, watts.
fn gpu_watts_by_node(ds: &Dataset) -> BTreeMap<(&str, &str), f64> {
    let mut acc: BTreeMap<(&str, &str), (f64, f64)> = BTreeMap::new();
    for g in &ds.gpus {
        if let Some(w) = g.power_limit_watts {
            let e = acc
                .entry((g.cluster.as_str(), g.instance.as_str()))
                .or_default();
            e.0 += w;
            e.1 += 1.0;
        }
    }
    acc.into_iter().map(|(k, (s, n))| (k, s / n)).collect()
}

/// Constants used, with units and sources, in the order printed.
pub fn constants(cfg: &Config) -> Vec<Constant> {
    let k = |name: &str, value: f64, unit: &str, source: &str| Constant {
        name: name.into(),
        value,
        unit: unit.into(),
        source: source.into(),
    };
    let ci = &cfg.carbon_intensity;
    let e = &cfg.estimation;
    let mut v = vec![
        k("PUE", cfg.pue.value, "ratio", &cfg.pue.source),
        k(
            &format!("Carbon intensity ({}, {} {})", ci.zone, ci.scope, ci.year),
            ci.value,
            "g CO2e/kWh",
            &ci.source,
        ),
        k(
            &format!("Household ({})", cfg.household.description),
            cfg.household.kwh_per_year,
            "kWh/year",
            &cfg.household.source,
        ),
    ];
    if let Some(p) = &cfg.electricity_price {
        v.push(k(
            "Electricity price",
            p.per_kwh,
            &format!("{}/kWh", p.currency),
            &p.source,
        ));
    }
    v.extend([
        k(
            "Green Algorithms memory power",
            e.ga_memory_w_per_gb.value,
            "W/GB",
            &e.ga_memory_w_per_gb.source,
        ),
        k(
            "Green Algorithms core power where a node exports no TDP",
            e.ga_core_w_default.value,
            "W/core",
            &e.ga_core_w_default.source,
        ),
        k(
            "GPU TDP where a node exports no power limit",
            e.gpu_w_default.value,
            "W",
            &e.gpu_w_default.source,
        ),
        k(
            "CodeCarbon memory power",
            e.codecarbon_memory_w_per_gb.value,
            "W/GB",
            &e.codecarbon_memory_w_per_gb.source,
        ),
    ]);
    v
}

/// The method notes printed at the end of every format.
pub fn methods(cfg: &Config) -> Vec<String> {
    let e = &cfg.estimation;
    vec![
        "Energy in the period is, for each counter series, its value at the last sample at or before the end minus its value at the last sample at or before the start (a series that did not exist at the start counts from zero). No extrapolation: a job's energy is the exporter's final counter for it; energy between the last scrape before a boundary and the boundary falls in the next period.".into(),
        "Counters that went down (exporter restarts) are computed from raw samples: a small drop is a resume from the exporter's saved state, a drop below half is a restart from zero and the segments add up.".into(),
        format!("Green Algorithms: allocated core-hours × CPU TDP per physical core (node's exported TDP, else the default) + GPU-hours × GPU power limit + allocated memory (GB) × hours × {} W/GB; shown without PUE for the ratio, and with PUE as the tool reports it.", e.ga_memory_w_per_gb.value),
        "ML CO2 Impact: GPU-hours × GPU power limit (TDP); no CPU, memory or PUE term.".into(),
        format!("CodeCarbon-style (machine mode): the whole node's measured CPU and GPU power, averaged over the report period, during the job's elapsed time on each node, plus {} W/GB of the node's memory.", e.codecarbon_memory_w_per_gb.value),
        "Equivalents, CO2e and cost use the facility energy (IT energy × PUE).".into(),
    ]
}
