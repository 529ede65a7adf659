//! The report's data model: every figure computed once, here, from a [`Dataset`] and the site
//! [`Config`]; HTML, Markdown, text and JSON only format it. No I/O.
//!
//! Units are in the field names: `_kwh` (kilowatt-hours), `_j` (joules), `_hours`, `_kg`
//! (kilograms CO2e), `share` (a fraction between 0 and 1), `ratio` (dimensionless).

mod headline;
mod idle;
mod jobs;
mod rankings;
mod report;
#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::data::{ByComponent, Dataset, JobData, NodeData, OwnerData};
pub use crate::methods::{constants, methods, Constant, Estimator, JobEstimates};
use crate::period::{Period, Zone};
pub use report::*;
use std::collections::BTreeMap;

/// Periods longer than this many days show their energy by month (the daily rows added up by
/// local month) instead of by day: a year's 365 rows and bars are unreadable; two months' 62
/// are not.
pub const MONTHLY_ABOVE_DAYS: f64 = 62.0;

/// Joules in a kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;

pub fn kwh(j: f64) -> f64 {
    j / J_PER_KWH
}

/// Options that shape a report but are not site constants.
#[derive(Clone, Debug)]
pub struct Options {
    pub scope: ScopeKind,
    pub cluster: Option<String>,
    pub generated_at: i64,
    pub anonymize_users: bool,
    /// The site's time zone, of every date and time the report prints.
    pub zone: Zone,
    /// Every job in `top_jobs` (`--job-list all`), else the config's `top_n` first.
    pub all_jobs: bool,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn share(a: f64, total: f64) -> f64 {
    if total > 0.0 {
        a / total
    } else {
        0.0
    }
}

/// Display names of every node of the dataset (its nodes and the nodes of its GPUs and jobs).
pub fn display_names(ds: &Dataset) -> BTreeMap<(String, String), String> {
    let mut keys: BTreeMap<(&str, &str), Option<&str>> = BTreeMap::new();
    let jobs = ds.jobs.iter().flat_map(|j| {
        j.placements
            .iter()
            .map(|p| (j.cluster.as_str(), p.instance.as_str()))
    });
    let gpus = ds
        .gpus
        .iter()
        .map(|g| (g.cluster.as_str(), g.instance.as_str()));
    for k in jobs.chain(gpus) {
        keys.entry(k).or_default();
    }
    for n in &ds.nodes {
        keys.insert((&n.cluster, &n.instance), n.hostname.as_deref());
    }
    crate::names::node_names(keys)
}

/// Builds the report. `ds` holds the whole cluster (or the filtered cluster label); a project or
/// user report keeps that project's or user's jobs only.
pub fn build(ds: &Dataset, cfg: &Config, opt: &Options) -> Report {
    let period = ds.period.unwrap_or(Period { start: 0, end: 0 });
    let period_s = period.seconds() as f64;
    let days = period_s / 86_400.0;
    let jobs = scope_jobs(ds, &opt.scope);
    let owners = ds.owners.as_ref().map(|o| scope_owners(o, &opt.scope));
    let cluster_scope = opt.scope == ScopeKind::Cluster;
    let alias = jobs::user_aliases(&user_energy(&jobs, owners.as_deref()), opt.anonymize_users);
    let show_user = |u: &str| alias.get(u).cloned().unwrap_or_else(|| u.to_string());
    let e = Energies::of(ds, &jobs, owners.as_deref(), cluster_scope);

    let nodes_by_key: BTreeMap<(&str, &str), &NodeData> = ds
        .nodes
        .iter()
        .map(|n| ((n.cluster.as_str(), n.instance.as_str()), n))
        .collect();
    let estimator = Estimator::new(ds, cfg, period_s);
    let groups = groups(ds, &jobs, owners.as_deref(), &estimator, opt, &alias);
    let projects = rankings::ranking(&groups.projects, e.jobs_j);
    let users = rankings::ranking(&groups.users, e.jobs_j);
    let estimates = rankings::estimates(
        [(&projects, &groups.projects), (&users, &groups.users)],
        &groups.total,
        e.jobs_j,
        !jobs.is_empty() || owners.as_ref().is_some_and(|o| !o.is_empty()),
        cfg,
    );
    // Idle waste and daily bars: cluster only (no project or user owns the idle hardware).
    let idle = cluster_scope
        .then(|| idle::idle_section(ds, &nodes_by_key, &e.unallocated, e.it_j, period_s));
    let daily = if cluster_scope {
        idle::daily_rows(ds, &opt.zone)
    } else {
        Vec::new()
    };
    let monthly = if days > MONTHLY_ABOVE_DAYS {
        idle::monthly_rows(&daily)
    } else {
        Vec::new()
    };
    let summary = ds.job_counts.is_some();
    let limit = (!opt.all_jobs).then_some(cfg.top_n);
    let top_jobs = jobs::top_job_rows(&jobs, &show_user, e.jobs_j, limit);
    let top_jobs_all = !summary && top_jobs.len() == jobs.len();
    let headline = headline::headline(
        ds,
        &jobs,
        owners.as_deref().filter(|_| summary),
        &groups.total,
        cfg,
        cluster_scope,
        &e,
    );
    Report {
        schema_version: 2,
        title: format!(
            "Energy report {}: {}",
            opt.zone.label(&period),
            scope_label(opt)
        ),
        site: cfg.site_name.clone(),
        scope: opt.scope.clone(),
        cluster: opt.cluster.clone(),
        period: PeriodInfo {
            start: opt.zone.iso(period.start),
            end: opt.zone.iso(period.end),
            label: opt.zone.label(&period),
            days,
        },
        generated_at: opt.zone.iso(opt.generated_at),
        has_data: e.has_data,
        headline,
        components: headline::component_rows(&e.it, &ds.unmeasured),
        unmeasured: ds.unmeasured.clone(),
        gpu_share: share(e.it.gpu, e.it_j),
        idle,
        projects,
        users,
        estimates,
        dev_vs_final: if summary {
            Vec::new()
        } else {
            jobs::dev_vs_final(&jobs, &groups.projects, cfg)
        },
        summary,
        totals_from: if owners.is_some() {
            TotalsFrom::OwnerCounters
        } else {
            TotalsFrom::Jobs
        },
        daily,
        monthly,
        top_jobs,
        top_jobs_all,
        top_n: cfg.top_n,
        constants: constants(cfg),
        methods: methods(cfg),
        notes: notes(ds, cluster_scope, &e, owners.as_deref()),
    }
}

/// The scope's projects and users with their estimates: sums over the owner figures when the
/// totals come from them (job counts from the server's in a summary, else from the jobs), else
/// over the jobs.
fn groups(
    ds: &Dataset,
    jobs: &[&JobData],
    owners: Option<&[&OwnerData]>,
    estimator: &Estimator,
    opt: &Options,
    alias: &BTreeMap<String, String>,
) -> rankings::Groups {
    use rankings::{Group, Groups};
    let Some(owners) = owners else {
        let parts = jobs.iter().map(|j| {
            (
                j.account.as_str(),
                j.user.as_str(),
                Group::of_job(j, estimator.job(j)),
            )
        });
        return Groups::sum(parts, alias);
    };
    let pairs = owners.iter().map(|o| {
        let g = Group::of_owner(o, estimator.owner(o));
        (o.account.as_str(), o.user.as_str(), g)
    });
    let counts: Vec<(&str, &str, Group)> = match &ds.job_counts {
        Some(c) => c
            .iter()
            .filter(|c| opt.scope.covers(&c.account, &c.user))
            .map(|c| (c.account.as_str(), c.user.as_str(), Group::count(c.jobs)))
            .collect(),
        None => jobs
            .iter()
            .map(|j| (j.account.as_str(), j.user.as_str(), Group::count(1)))
            .collect(),
    };
    Groups::sum(pairs.chain(counts), alias)
}

/// The jobs a report of `scope` covers.
fn scope_jobs<'a>(ds: &'a Dataset, scope: &ScopeKind) -> Vec<&'a JobData> {
    ds.jobs
        .iter()
        .filter(|j| scope.covers(&j.account, &j.user))
        .collect()
}

/// The owner figures a report of `scope` covers.
fn scope_owners<'a>(owners: &'a [OwnerData], scope: &ScopeKind) -> Vec<&'a OwnerData> {
    owners
        .iter()
        .filter(|o| scope.covers(&o.account, &o.user))
        .collect()
}

/// Each user's energy in the scope: from the owner counters when the totals come from them.
fn user_energy<'a>(
    jobs: &[&'a JobData],
    owners: Option<&[&'a OwnerData]>,
) -> BTreeMap<&'a str, f64> {
    let mut by: BTreeMap<&str, f64> = BTreeMap::new();
    match owners {
        Some(owners) => {
            for o in owners {
                *by.entry(o.user.as_str()).or_default() += o.energy.total();
            }
        }
        None => {
            for j in jobs {
                *by.entry(j.user.as_str()).or_default() += j.energy.total();
            }
        }
    }
    by
}

/// The scope's energy totals: nodes' unallocated energy, its jobs' energy, and its IT energy
/// (the node counters for a cluster report, the jobs' energy otherwise).
struct Energies {
    unallocated: ByComponent,
    it: ByComponent,
    it_j: f64,
    jobs_j: f64,
    has_data: bool,
}

impl Energies {
    /// `owners`: the scope's owner figures, when the totals come from them.
    fn of(
        ds: &Dataset,
        jobs: &[&JobData],
        owners: Option<&[&OwnerData]>,
        cluster_scope: bool,
    ) -> Energies {
        let sum = |parts: &mut dyn Iterator<Item = &ByComponent>| {
            parts.fold(ByComponent::default(), |a, b| a.plus(b))
        };
        let unallocated = sum(&mut ds.nodes.iter().map(|n| &n.unallocated));
        let job_energy = match owners {
            Some(o) => sum(&mut o.iter().map(|o| &o.energy)),
            None => sum(&mut jobs.iter().map(|j| &j.energy)),
        };
        let it = if cluster_scope {
            sum(&mut ds.nodes.iter().map(|n| &n.energy))
        } else {
            job_energy
        };
        let it_j = it.total();
        Energies {
            unallocated,
            it,
            it_j,
            jobs_j: job_energy.total(),
            has_data: it_j > 0.0 || !jobs.is_empty() || job_energy.total() > 0.0,
        }
    }
}

/// The dataset's notes, the claimed-project note, a jobs-plus-unallocated gap over 0.1 % and the
/// no-data note.
fn notes(
    ds: &Dataset,
    cluster_scope: bool,
    e: &Energies,
    owners: Option<&[&OwnerData]>,
) -> Vec<String> {
    let mut notes = ds.notes.clone();
    if let Some(o) = owners {
        let nodes: std::collections::BTreeSet<(&str, &str)> = o
            .iter()
            .map(|o| (o.cluster.as_str(), o.instance.as_str()))
            .collect();
        notes.push(format!(
            "Project and user energy, core- and GPU-hours and estimates are from the per-owner counters of {} nodes (equal on each node to its energy less its unallocated energy); {}.",
            nodes.len(),
            if ds.job_counts.is_some() {
                "job counts counted by the server"
            } else {
                "job counts and the job lists from the job series"
            }
        ));
    }
    if ds.job_counts.is_some() {
        notes.push("Summary report (--summary): no job was read, so the top jobs and the development-versus-final comparison are left out.".into());
    }
    notes.extend(crate::trust::claimed_project_note(&ds.jobs));
    if let Some(c) = &ds.job_counts {
        notes.extend(crate::trust::claimed_jobs_note(
            c.iter().map(|c| c.claimed).sum(),
            c.iter().map(|c| c.jobs).sum(),
        ));
    }
    if cluster_scope && e.it_j > 0.0 {
        let accounted = e.jobs_j + e.unallocated.total();
        let gap = (accounted - e.it_j) / e.it_j;
        if gap.abs() > 0.001 {
            notes.push(format!(
                "Jobs plus unallocated energy differ from the node counters by {:+.2} %: jobs crossing the period's boundaries are cut at the scrape before each boundary, and series that start or stop between scrapes shift a scrape interval of energy.",
                gap * 100.0
            ));
        }
    }
    if !e.has_data {
        notes.push("No data: no joulebook counter had samples in this period for this scope. Check the period, the --cluster filter and that Prometheus scrapes the exporters.".into());
    }
    notes
}

fn scope_label(opt: &Options) -> String {
    match &opt.scope {
        ScopeKind::Cluster => opt
            .cluster
            .clone()
            .map_or("cluster".to_string(), |c| format!("cluster {c}")),
        ScopeKind::Project(p) => format!("project {p}"),
        ScopeKind::User(u) => format!("user {u}"),
    }
}
