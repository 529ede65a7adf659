//! Projects and users ranked by energy (with the rank they would have by core-hours), and the
//! energy other tools would estimate for them. A group's figures are sums over its jobs, or over
//! its owner counters (the job counts still from the jobs).

use super::{kwh, ratio, share, EstimateRow, Estimates, Mover, RankRow, Ranking, ML_CO2_NA};
use crate::config::Config;
use crate::data::{JobData, OwnerData};
use crate::methods::JobEstimates;
use crate::stats;
use std::collections::BTreeMap;

/// The jobs grouped by project and by user (as shown), and all of them.
pub(super) struct Groups {
    pub projects: BTreeMap<String, Group>,
    pub users: BTreeMap<String, Group>,
    pub total: Group,
}

impl Groups {
    /// The sums of `parts`, each an (account, user) and its figures (a job's, an owner pair's on
    /// one node, or a job count); `alias`: shown user names (anonymised), by user.
    pub fn sum<'a>(
        parts: impl IntoIterator<Item = (&'a str, &'a str, Group)>,
        alias: &BTreeMap<String, String>,
    ) -> Groups {
        let mut g = Groups::empty();
        for (account, user, one) in parts {
            g.add(account, user, &one, alias);
        }
        g
    }

    fn empty() -> Groups {
        Groups {
            projects: BTreeMap::new(),
            users: BTreeMap::new(),
            total: Group::default(),
        }
    }

    /// Adds `one` to its project's, its user's and the total.
    fn add(&mut self, account: &str, user: &str, one: &Group, alias: &BTreeMap<String, String>) {
        let user = alias.get(user).map_or(user, String::as_str);
        for (map, key) in [(&mut self.projects, account), (&mut self.users, user)] {
            // Looked up before a key is made: one allocation per project or user, not per job.
            if !map.contains_key(key) {
                map.insert(key.to_string(), Group::default());
            }
            if let Some(g) = map.get_mut(key) {
                g.add(one);
            }
        }
        self.total.add(one);
    }
}

#[derive(Clone, Copy, Default)]
pub(super) struct Group {
    energy_j: f64,
    jobs: usize,
    core_s: f64,
    gpu_s: f64,
    est: JobEstimates,
}

impl Group {
    /// One job's figures, with its estimates.
    pub fn of_job(j: &JobData, est: JobEstimates) -> Group {
        Group {
            energy_j: j.energy.total(),
            jobs: 1,
            core_s: j.core_seconds,
            gpu_s: j.gpu_seconds,
            est,
        }
    }

    /// One owner pair's figures on one node, with its estimates; its jobs are counted apart
    /// ([`Group::count`]).
    pub fn of_owner(o: &OwnerData, est: JobEstimates) -> Group {
        Group {
            energy_j: o.energy.total(),
            jobs: 0,
            core_s: o.core_seconds,
            gpu_s: o.gpu_seconds,
            est,
        }
    }

    /// `jobs` jobs, nothing else.
    pub fn count(jobs: usize) -> Group {
        Group {
            jobs,
            ..Group::default()
        }
    }

    fn add(&mut self, o: &Group) {
        self.energy_j += o.energy_j;
        self.jobs += o.jobs;
        self.core_s += o.core_s;
        self.gpu_s += o.gpu_s;
        self.est.green_algorithms += o.est.green_algorithms;
        self.est.ml_co2 += o.est.ml_co2;
        self.est.codecarbon += o.est.codecarbon;
    }

    pub fn energy_j(&self) -> f64 {
        self.energy_j
    }

    pub fn jobs(&self) -> usize {
        self.jobs
    }

    pub fn core_s(&self) -> f64 {
        self.core_s
    }

    pub fn gpu_s(&self) -> f64 {
        self.gpu_s
    }
}

pub(super) fn ranking(groups: &BTreeMap<String, Group>, total_j: f64) -> Ranking {
    let names: Vec<&String> = groups.keys().collect();
    let energy: Vec<f64> = groups.values().map(|g| g.energy_j).collect();
    let core: Vec<f64> = groups.values().map(|g| g.core_s).collect();
    let (re, rc) = (stats::ranks_desc(&energy), stats::ranks_desc(&core));
    let mut rows: Vec<RankRow> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let g = &groups[*n];
            RankRow {
                name: (*n).clone(),
                energy_kwh: kwh(g.energy_j),
                share: share(g.energy_j, total_j),
                jobs: g.jobs,
                core_hours: g.core_s / 3600.0,
                gpu_hours: g.gpu_s / 3600.0,
                rank_energy: re[i],
                rank_core_hours: rc[i],
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        a.rank_energy
            .total_cmp(&b.rank_energy)
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut movers: Vec<Mover> = rows
        .iter()
        .filter(|r| r.rank_core_hours != r.rank_energy)
        .map(|r| Mover {
            name: r.name.clone(),
            rank_energy: r.rank_energy,
            rank_core_hours: r.rank_core_hours,
            shift: r.rank_core_hours - r.rank_energy,
        })
        .collect();
    movers.sort_by(|a, b| {
        b.shift
            .abs()
            .total_cmp(&a.shift.abs())
            .then_with(|| a.name.cmp(&b.name))
    });
    movers.truncate(5);
    Ranking {
        spearman: stats::spearman(&energy, &core),
        rows,
        movers,
    }
}

/// The estimates of other tools for all jobs, by project and by user (ranked as `ranks`).
pub(super) fn estimates(
    ranks: [(&Ranking, &BTreeMap<String, Group>); 2],
    total: &Group,
    total_measured_j: f64,
    any: bool,
    cfg: &Config,
) -> Estimates {
    let est_rows = |rank: &Ranking, groups: &BTreeMap<String, Group>| {
        rank.rows
            .iter()
            .map(|r| {
                let g = &groups[&r.name];
                estimate_row(&r.name, g.energy_j, g.gpu_s, &g.est, cfg.pue.value)
            })
            .collect::<Vec<_>>()
    };
    let mut estimates = Estimates {
        total: any.then(|| {
            estimate_row(
                "all jobs",
                total_measured_j,
                total.gpu_s,
                &total.est,
                cfg.pue.value,
            )
        }),
        projects: est_rows(ranks[0].0, ranks[0].1),
        users: est_rows(ranks[1].0, ranks[1].1),
        ml_co2_footnote: None,
    };
    let na = |rows: &[EstimateRow]| rows.iter().any(|r| r.ml_co2_kwh.is_none());
    if na(&estimates.projects)
        || na(&estimates.users)
        || estimates.total.iter().any(|t| t.ml_co2_kwh.is_none())
    {
        estimates.ml_co2_footnote = Some(ML_CO2_NA.into());
    }
    estimates
}

/// `gpu_s`: the GPU-seconds of the jobs (ML CO2 applies only where they used GPUs).
fn estimate_row(
    name: &str,
    measured_j: f64,
    gpu_s: f64,
    e: &JobEstimates,
    pue: f64,
) -> EstimateRow {
    let gpus = gpu_s > 0.0;
    EstimateRow {
        name: name.to_string(),
        measured_kwh: kwh(measured_j),
        green_algorithms_kwh: kwh(e.green_algorithms),
        green_algorithms_with_pue_kwh: kwh(e.green_algorithms) * pue,
        ml_co2_kwh: gpus.then(|| kwh(e.ml_co2)),
        codecarbon_kwh: kwh(e.codecarbon),
        green_algorithms_ratio: ratio(e.green_algorithms, measured_j),
        ml_co2_ratio: ratio(e.ml_co2, measured_j).filter(|_| gpus),
        codecarbon_ratio: ratio(e.codecarbon, measured_j),
    }
}
