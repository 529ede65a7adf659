//! Per-job sections: the top jobs, development versus final run, and the users' shown names.

use super::rankings::Group;
use super::{kwh, ratio, share, DevRow, JobRow};
use crate::config::Config;
use crate::data::{JobData, Name};
use std::collections::BTreeMap;

/// User names as shown: real, or "User N" in order of energy (anonymised).
pub(super) fn user_aliases(
    user_energy: &BTreeMap<&str, f64>,
    anonymize: bool,
) -> BTreeMap<String, String> {
    if anonymize {
        let mut us: Vec<(&str, f64)> = user_energy.iter().map(|(u, e)| (*u, *e)).collect();
        us.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        us.iter()
            .enumerate()
            .map(|(i, (u, _))| (u.to_string(), format!("User {}", i + 1)))
            .collect()
    } else {
        BTreeMap::new()
    }
}

/// The scope's jobs, most energy first (the lower id first on a tie): every one, or the first
/// `limit`, chosen before any row is made.
pub(super) fn top_job_rows(
    jobs: &[&JobData],
    show_user: &dyn Fn(&str) -> String,
    jobs_total_j: f64,
    limit: Option<usize>,
) -> Vec<JobRow> {
    let order = |a: &&JobData, b: &&JobData| JobData::by_energy(a, b);
    let mut chosen: Vec<&JobData> = jobs.to_vec();
    if let Some(n) = limit.filter(|n| *n < chosen.len()) {
        // The `n` first end up before index `n`, in any order.
        chosen.select_nth_unstable_by(n, order);
        chosen.truncate(n);
    }
    chosen.sort_by(order);
    // The rows share the jobs' strings; a shown (anonymised) user name is made once per user.
    let mut shown: BTreeMap<&str, Name> = BTreeMap::new();
    chosen
        .into_iter()
        .map(|j| JobRow {
            cluster: j.cluster.clone(),
            job_id: j.job_id.clone(),
            user: shown
                .entry(&j.user)
                .or_insert_with(|| Name::from(show_user(&j.user)))
                .clone(),
            project: j.account.clone(),
            name: j.job_name.clone(),
            partition: j.partition.clone(),
            energy_kwh: kwh(j.energy.total()),
            energy_j: j.energy.total(),
            energy_by_component_j: j.energy,
            share: share(j.energy.total(), jobs_total_j),
            core_hours: j.core_seconds / 3600.0,
            gpu_hours: j.gpu_seconds / 3600.0,
            nodes: j.placements.len(),
        })
        .collect()
}

/// Development versus final run, per project.
pub(super) fn dev_vs_final(
    jobs: &[&JobData],
    projects: &BTreeMap<String, Group>,
    cfg: &Config,
) -> Vec<DevRow> {
    let pattern = cfg
        .best_run
        .job_name_pattern
        .as_deref()
        .and_then(|p| regex::Regex::new(p).ok());
    let mut dev_vs_final = Vec::new();
    for p in projects.keys() {
        let pj: Vec<&&JobData> = jobs.iter().filter(|j| &j.account == p).collect();
        let total = projects[p].energy_j();
        let all: Vec<&JobData> = pj.iter().map(|j| **j).collect();
        let (chosen, by): (Vec<&JobData>, &str) = if let Some(ids) = cfg.best_run.jobs.get(p) {
            (
                all.iter()
                    .filter(|j| ids.iter().any(|i| j.job_id == *i))
                    .copied()
                    .collect(),
                "configured",
            )
        } else if let Some(found) = pattern.as_ref().and_then(|re| {
            largest(
                all.iter()
                    .filter(|j| re.is_match(&j.job_name))
                    .copied()
                    .collect(),
            )
        }) {
            (found, "pattern")
        } else {
            (largest(all.clone()).unwrap_or_default(), "largest job")
        };
        let fin: f64 = chosen.iter().map(|j| j.energy.total()).sum();
        dev_vs_final.push(DevRow {
            project: p.clone(),
            total_kwh: kwh(total),
            final_kwh: kwh(fin),
            final_jobs: chosen.iter().map(|j| j.job_id.to_string()).collect(),
            chosen_by: by.into(),
            ratio: ratio(total, fin),
        });
    }
    dev_vs_final.sort_by(|a, b| {
        b.total_kwh
            .total_cmp(&a.total_kwh)
            .then_with(|| a.project.cmp(&b.project))
    });
    dev_vs_final
}

/// The job with the most energy (the lowest id on a tie), as a one-element list.
fn largest(cands: Vec<&JobData>) -> Option<Vec<&JobData>> {
    cands
        .into_iter()
        .min_by(|a, b| JobData::by_energy(a, b))
        .map(|j| vec![j])
}
