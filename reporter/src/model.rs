//! The report's data model: every figure computed once, here, from a [`Dataset`] and the site
//! [`Config`]; HTML, Markdown, text and JSON only format it. No I/O.
//!
//! Units are in the field names: `_kwh` (kilowatt-hours), `_j` (joules), `_hours`, `_kg`
//! (kilograms CO2e), `share` (a fraction between 0 and 1), `ratio` (dimensionless).

use crate::config::{CarbonIntensity, Config, Household};
use crate::data::{ByComponent, Dataset, JobData, Name, NodeData, Placement};
pub use crate::methods::{
    constants, gpu_watts_by_node, job_estimates, methods, Constant, JobEstimates,
};
use crate::period::{Period, Zone};
use crate::stats;
use joulebook_common::Component;
use serde::Serialize;
use std::collections::BTreeMap;

/// Joules in a kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;

pub fn kwh(j: f64) -> f64 {
    j / J_PER_KWH
}

/// What a report covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum ScopeKind {
    Cluster,
    Project(String),
    User(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Version of this layout (`reporter/report.schema.json`).
    pub schema_version: u32,
    pub title: String,
    pub site: String,
    pub scope: ScopeKind,
    /// Cluster label filter, when one was given.
    pub cluster: Option<String>,
    pub period: PeriodInfo,
    pub generated_at: String,
    /// False when no energy at all was found: every section is then empty.
    pub has_data: bool,
    pub headline: Headline,
    pub components: Vec<ComponentRow>,
    /// Components that no source on the cluster measures (no node series of them): shown as
    /// not measured, not as 0 kWh.
    pub unmeasured: Vec<String>,
    /// GPUs' share of the IT energy.
    pub gpu_share: f64,
    /// Unallocated energy; cluster reports only.
    pub idle: Option<Idle>,
    pub projects: Ranking,
    pub users: Ranking,
    pub estimates: Estimates,
    pub dev_vs_final: Vec<DevRow>,
    /// Cluster reports only (node counters by day).
    pub daily: Vec<DayRow>,
    pub top_jobs: Vec<JobRow>,
    /// Rows shown in the HTML and Markdown tables (JSON holds every row).
    pub top_n: usize,
    pub constants: Vec<Constant>,
    pub methods: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PeriodInfo {
    pub start: String,
    pub end: String,
    pub label: String,
    pub days: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Headline {
    /// Measured energy of the IT equipment (node counters, or the jobs' for a project or user).
    pub it_energy_kwh: f64,
    pub it_energy_j: f64,
    /// IT energy × PUE.
    pub facility_energy_kwh: f64,
    pub pue: f64,
    /// Facility energy × carbon intensity.
    pub co2e_kg: f64,
    pub carbon_intensity: CarbonIntensity,
    pub cost: Option<Cost>,
    /// Facility energy ÷ one household's yearly consumption.
    pub households_for_a_year: f64,
    /// Facility energy per day of the period.
    pub facility_kwh_per_day: f64,
    /// `facility_kwh_per_day` ÷ one household's daily consumption.
    pub households_daily: f64,
    pub household: Household,
    pub jobs: usize,
    pub core_hours: f64,
    pub gpu_hours: f64,
    pub nodes: usize,
    /// Energy attributed to jobs.
    pub jobs_energy_kwh: f64,
    /// Energy no job held (cluster reports).
    pub unallocated_kwh: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    pub amount: f64,
    pub currency: String,
    pub per_kwh: f64,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ComponentRow {
    pub component: String,
    pub energy_kwh: f64,
    pub share: f64,
    /// False when no source on the cluster measures the component: its 0 kWh means nothing.
    pub measured: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    pub unallocated_kwh: f64,
    /// Of the IT energy.
    pub share: f64,
    pub by_component: Vec<ComponentRow>,
    pub nodes: Vec<IdleNode>,
    pub gpus: Vec<IdleGpu>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IdleNode {
    pub cluster: String,
    /// The Prometheus target (`host:port`).
    pub instance: String,
    /// The node as shown: its hostname, or the instance without the port (`names`).
    pub node: String,
    pub unallocated_kwh: f64,
    /// Of the node's energy.
    pub share_of_node: f64,
    pub node_kwh: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct IdleGpu {
    pub cluster: String,
    pub instance: String,
    /// The node as shown, as in [`IdleNode::node`].
    pub node: String,
    pub gpu_uuid: String,
    pub model: String,
    /// Share of the scrapes at which no job held the GPU.
    pub unallocated_share: f64,
    pub unallocated_hours: f64,
    /// ESTIMATE: the node's unallocated GPU energy split over its GPUs by unallocated time.
    pub unallocated_kwh_estimate: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Ranking {
    /// Sorted by energy, largest first.
    pub rows: Vec<RankRow>,
    /// Spearman's rank correlation between the energy and the core-hours rankings.
    pub spearman: Option<f64>,
    /// Largest moves between the two rankings.
    pub movers: Vec<Mover>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RankRow {
    pub name: String,
    pub energy_kwh: f64,
    pub share: f64,
    pub jobs: usize,
    pub core_hours: f64,
    pub gpu_hours: f64,
    pub rank_energy: f64,
    pub rank_core_hours: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Mover {
    pub name: String,
    pub rank_energy: f64,
    pub rank_core_hours: f64,
    /// rank by core-hours − rank by energy: positive means more energy than core-hours suggest.
    pub shift: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Estimates {
    pub total: Option<EstimateRow>,
    pub projects: Vec<EstimateRow>,
    pub users: Vec<EstimateRow>,
    /// Why some ML CO2 cells are n/a, when some are.
    pub ml_co2_footnote: Option<String>,
}

/// The footnote of the ML CO2 cells that are n/a.
pub const ML_CO2_NA: &str = "ML CO2 Impact counts GPU-hours × GPU power limit only: it does not apply to jobs that used no GPU, so it is n/a for CPU-only projects and users rather than 0 kWh.";

/// Energy of the same jobs by each method, IT energy (PUE 1) so that they compare like for like.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct EstimateRow {
    pub name: String,
    pub measured_kwh: f64,
    /// cores × hours × TDP per core + GPUs × hours × GPU TDP + memory GB × hours × 0.3725 W.
    pub green_algorithms_kwh: f64,
    /// Green Algorithms as its tool reports it: × PUE.
    pub green_algorithms_with_pue_kwh: f64,
    /// GPU TDP × GPU-hours; `None` (n/a) where the jobs used no GPU, to which the method does
    /// not apply.
    pub ml_co2_kwh: Option<f64>,
    /// Whole-node CPU + GPU energy during the job + 0.375 W/GB of the node's memory.
    pub codecarbon_kwh: f64,
    pub green_algorithms_ratio: Option<f64>,
    pub ml_co2_ratio: Option<f64>,
    pub codecarbon_ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DevRow {
    pub project: String,
    pub total_kwh: f64,
    pub final_kwh: f64,
    pub final_jobs: Vec<String>,
    /// How the final run was chosen: `configured`, `pattern` or `largest job`.
    pub chosen_by: String,
    /// total ÷ final.
    pub ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DayRow {
    pub date: String,
    /// Energy of allocated hardware by component, kWh.
    pub cpu_kwh: f64,
    pub dram_kwh: f64,
    pub gpu_kwh: f64,
    pub other_kwh: f64,
    /// Unallocated energy, all components, kWh.
    pub idle_kwh: f64,
    pub total_kwh: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobRow {
    pub cluster: Name,
    pub job_id: Name,
    pub user: Name,
    pub project: Name,
    pub name: Name,
    pub partition: Name,
    pub energy_kwh: f64,
    /// Exact sum of the job's counters, joules.
    pub energy_j: f64,
    pub energy_by_component_j: ByComponent,
    pub share: f64,
    pub core_hours: f64,
    pub gpu_hours: f64,
    pub nodes: usize,
}

impl Report {
    /// A copy holding only the rows the HTML, Markdown and text formats show (`top_n` of each
    /// table): templates receive the report as a generic value tree, and the full list of a
    /// large cluster's jobs would cost hundreds of megabytes there for nothing.
    /// The job list is copied `top_n` rows only (not whole, then cut): it is the one table
    /// that grows with the jobs.
    pub fn for_display(&self) -> Report {
        let n = self.top_n;
        let Report {
            schema_version,
            title,
            site,
            scope,
            cluster,
            period,
            generated_at,
            has_data,
            headline,
            components,
            unmeasured,
            gpu_share,
            idle,
            projects,
            users,
            estimates,
            dev_vs_final,
            daily,
            top_jobs,
            top_n,
            constants,
            methods,
            notes,
        } = self;
        let mut r = Report {
            schema_version: *schema_version,
            title: title.clone(),
            site: site.clone(),
            scope: scope.clone(),
            cluster: cluster.clone(),
            period: period.clone(),
            generated_at: generated_at.clone(),
            has_data: *has_data,
            headline: headline.clone(),
            components: components.clone(),
            unmeasured: unmeasured.clone(),
            gpu_share: *gpu_share,
            idle: idle.clone(),
            projects: projects.clone(),
            users: users.clone(),
            estimates: estimates.clone(),
            dev_vs_final: dev_vs_final.clone(),
            daily: daily.clone(),
            top_jobs: top_jobs.iter().take(n).cloned().collect(),
            top_n: *top_n,
            constants: constants.clone(),
            methods: methods.clone(),
            notes: notes.clone(),
        };
        r.projects.rows.truncate(n);
        r.users.rows.truncate(n);
        r.estimates.projects.truncate(n);
        r.estimates.users.truncate(n);
        r.dev_vs_final.truncate(n);
        if let Some(i) = r.idle.as_mut() {
            i.nodes.truncate(n);
            i.gpus.truncate(n);
        }
        r
    }
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
}

/// The job with the most energy (the lowest id on a tie), as a one-element list.
fn largest(cands: Vec<&JobData>) -> Option<Vec<&JobData>> {
    cands
        .into_iter()
        .max_by(|a, b| {
            a.energy
                .total()
                .total_cmp(&b.energy.total())
                .then_with(|| b.job_id.cmp(&a.job_id))
        })
        .map(|j| vec![j])
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

struct Group {
    energy_j: f64,
    jobs: usize,
    core_s: f64,
    gpu_s: f64,
    est: JobEstimates,
}

fn ranking(groups: &BTreeMap<String, Group>, total_j: f64) -> Ranking {
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

fn component_rows(b: &ByComponent, unmeasured: &[String]) -> Vec<ComponentRow> {
    let t = b.total();
    Component::ALL
        .iter()
        .map(|c| ComponentRow {
            component: c.as_str().to_string(),
            energy_kwh: kwh(b.get(*c)),
            share: share(b.get(*c), t),
            measured: !unmeasured.iter().any(|u| u == c.as_str()),
        })
        .collect()
}

/// Builds the report. `ds` holds the whole cluster (or the filtered cluster label); a project or
/// user report keeps that project's or user's jobs only.
pub fn build(ds: &Dataset, cfg: &Config, opt: &Options) -> Report {
    let period = ds.period.unwrap_or(Period { start: 0, end: 0 });
    let period_s = period.seconds() as f64;
    let jobs: Vec<&JobData> = ds
        .jobs
        .iter()
        .filter(|j| match &opt.scope {
            ScopeKind::Cluster => true,
            ScopeKind::Project(p) => &j.account == p,
            ScopeKind::User(u) => &j.user == u,
        })
        .collect();
    let cluster_scope = opt.scope == ScopeKind::Cluster;

    let alias = user_aliases(&jobs, opt.anonymize_users);
    let show_user = |u: &str| alias.get(u).cloned().unwrap_or_else(|| u.to_string());

    let node_energy = ds
        .nodes
        .iter()
        .fold(ByComponent::default(), |a, n| a.plus(&n.energy));
    let unallocated = ds
        .nodes
        .iter()
        .fold(ByComponent::default(), |a, n| a.plus(&n.unallocated));
    let job_energy = jobs
        .iter()
        .fold(ByComponent::default(), |a, j| a.plus(&j.energy));
    let it = if cluster_scope {
        node_energy
    } else {
        job_energy
    };
    let it_j = it.total();
    let has_data = it_j > 0.0 || !jobs.is_empty();

    let nodes_by_key: BTreeMap<(&str, &str), &NodeData> = ds
        .nodes
        .iter()
        .map(|n| ((n.cluster.as_str(), n.instance.as_str()), n))
        .collect();
    let names = display_names(ds);
    let shown = |c: &str, i: &str| {
        names
            .get(&(c.to_string(), i.to_string()))
            .cloned()
            .unwrap_or_else(|| crate::names::host_of(i).to_string())
    };
    let gpu_w = gpu_watts_by_node(ds);
    let est: Vec<JobEstimates> = jobs
        .iter()
        .map(|j| job_estimates(j, &nodes_by_key, &gpu_w, cfg, period_s))
        .collect();

    // Groups by project and by user.
    let mut projects: BTreeMap<String, Group> = BTreeMap::new();
    let mut users: BTreeMap<String, Group> = BTreeMap::new();
    let mut total_est = JobEstimates::default();
    for (j, e) in jobs.iter().zip(&est) {
        for (map, key) in [
            (&mut projects, j.account.as_str()),
            (
                &mut users,
                alias.get(j.user.as_str()).map_or(&*j.user, String::as_str),
            ),
        ] {
            // Looked up before a key is made: one allocation per project or user, not per job.
            if !map.contains_key(key) {
                map.insert(
                    key.to_string(),
                    Group {
                        energy_j: 0.0,
                        jobs: 0,
                        core_s: 0.0,
                        gpu_s: 0.0,
                        est: JobEstimates::default(),
                    },
                );
            }
            let Some(g) = map.get_mut(key) else { continue };
            g.energy_j += j.energy.total();
            g.jobs += 1;
            g.core_s += j.core_seconds;
            g.gpu_s += j.gpu_seconds;
            g.est.green_algorithms += e.green_algorithms;
            g.est.ml_co2 += e.ml_co2;
            g.est.codecarbon += e.codecarbon;
        }
        total_est.green_algorithms += e.green_algorithms;
        total_est.ml_co2 += e.ml_co2;
        total_est.codecarbon += e.codecarbon;
    }
    let jobs_total_j = job_energy.total();
    let proj_rank = ranking(&projects, jobs_total_j);
    let user_rank = ranking(&users, jobs_total_j);
    let estimates = estimates(
        &jobs,
        [(&proj_rank, &projects), (&user_rank, &users)],
        &total_est,
        jobs_total_j,
        cfg,
    );

    let dev_vs_final = dev_vs_final(&jobs, &projects, cfg);

    // Idle waste (cluster only: no project or user owns the idle hardware).
    let idle = cluster_scope
        .then(|| idle_section(ds, &nodes_by_key, &shown, &unallocated, it_j, period_s));

    let daily = if cluster_scope {
        daily_rows(ds, &opt.zone)
    } else {
        Vec::new()
    };

    let top_jobs = top_job_rows(&jobs, &show_user, jobs_total_j);

    let days = period_s / 86_400.0;
    let headline = headline(
        ds,
        &jobs,
        cfg,
        cluster_scope,
        it_j,
        jobs_total_j,
        &unallocated,
        days,
    );

    let mut notes = ds.notes.clone();
    notes.extend(crate::trust::claimed_project_note(&ds.jobs));
    if cluster_scope && it_j > 0.0 {
        let accounted = jobs_total_j + unallocated.total();
        let gap = (accounted - it_j) / it_j;
        if gap.abs() > 0.001 {
            notes.push(format!(
                "Jobs plus unallocated energy differ from the node counters by {:+.2} %: jobs crossing the period's boundaries are cut at the scrape before each boundary, and series that start or stop between scrapes shift a scrape interval of energy.",
                gap * 100.0
            ));
        }
    }
    if !has_data {
        notes.push("No data: no joulebook counter had samples in this period for this scope. Check the period, the --cluster filter and that Prometheus scrapes the exporters.".into());
    }

    let scope_label = match &opt.scope {
        ScopeKind::Cluster => opt
            .cluster
            .clone()
            .map_or("cluster".to_string(), |c| format!("cluster {c}")),
        ScopeKind::Project(p) => format!("project {p}"),
        ScopeKind::User(u) => format!("user {u}"),
    };
    Report {
        schema_version: 2,
        title: format!("Energy report {}: {}", opt.zone.label(&period), scope_label),
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
        has_data,
        headline,
        components: component_rows(&it, &ds.unmeasured),
        unmeasured: ds.unmeasured.clone(),
        gpu_share: share(it.gpu, it_j),
        idle,
        projects: proj_rank,
        users: user_rank,
        estimates,
        dev_vs_final,
        daily,
        top_jobs,
        top_n: cfg.top_n,
        constants: constants(cfg),
        methods: methods(cfg),
        notes,
    }
}

/// The estimates of other tools for all jobs, by project and by user (ranked as `ranks`).
fn estimates(
    jobs: &[&JobData],
    ranks: [(&Ranking, &BTreeMap<String, Group>); 2],
    total_est: &JobEstimates,
    jobs_total_j: f64,
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
    let gpu_total_s = jobs.iter().map(|j| j.gpu_seconds).sum::<f64>();
    let mut estimates = Estimates {
        total: (!jobs.is_empty()).then(|| {
            estimate_row(
                "all jobs",
                jobs_total_j,
                gpu_total_s,
                total_est,
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

/// The headline figures: IT and facility energy, CO2e, cost, comparisons, counts.
#[allow(clippy::too_many_arguments)]
fn headline(
    ds: &Dataset,
    jobs: &[&JobData],
    cfg: &Config,
    cluster_scope: bool,
    it_j: f64,
    jobs_total_j: f64,
    unallocated: &ByComponent,
    days: f64,
) -> Headline {
    let facility_kwh = kwh(it_j) * cfg.pue.value;
    let per_day = if days > 0.0 { facility_kwh / days } else { 0.0 };
    let hh = cfg.household.kwh_per_year;
    Headline {
        it_energy_kwh: kwh(it_j),
        it_energy_j: it_j,
        facility_energy_kwh: facility_kwh,
        pue: cfg.pue.value,
        co2e_kg: facility_kwh * cfg.carbon_intensity.value / 1000.0,
        carbon_intensity: cfg.carbon_intensity.clone(),
        cost: cfg.electricity_price.as_ref().map(|p| Cost {
            amount: facility_kwh * p.per_kwh,
            currency: p.currency.clone(),
            per_kwh: p.per_kwh,
            source: p.source.clone(),
        }),
        households_for_a_year: facility_kwh / hh,
        facility_kwh_per_day: per_day,
        households_daily: per_day / (hh / 365.0),
        household: cfg.household.clone(),
        jobs: jobs.len(),
        core_hours: jobs.iter().map(|j| j.core_seconds).sum::<f64>() / 3600.0,
        gpu_hours: jobs.iter().map(|j| j.gpu_seconds).sum::<f64>() / 3600.0,
        nodes: if cluster_scope {
            ds.nodes.iter().filter(|n| n.energy.total() > 0.0).count()
        } else {
            let mut s: Vec<(&str, &str)> = jobs
                .iter()
                .flat_map(|j| {
                    j.placements
                        .iter()
                        .map(|p: &Placement| (j.cluster.as_str(), p.instance.as_str()))
                })
                .collect();
            s.sort();
            s.dedup();
            s.len()
        },
        jobs_energy_kwh: kwh(jobs_total_j),
        unallocated_kwh: if cluster_scope {
            kwh(unallocated.total())
        } else {
            0.0
        },
    }
}

/// User names as shown: real, or "User N" in order of energy (anonymised).
fn user_aliases(jobs: &[&JobData], anonymize: bool) -> BTreeMap<String, String> {
    let mut user_energy: BTreeMap<&str, f64> = BTreeMap::new();
    for j in jobs {
        *user_energy.entry(j.user.as_str()).or_default() += j.energy.total();
    }
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

/// Development versus final run, per project.
fn dev_vs_final(
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
        let total: f64 = pj.iter().map(|j| j.energy.total()).sum();
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

/// Idle waste: unallocated energy by node, and each GPU's unallocated time and estimated energy.
fn idle_section(
    ds: &Dataset,
    nodes_by_key: &BTreeMap<(&str, &str), &NodeData>,
    shown: &dyn Fn(&str, &str) -> String,
    unallocated: &ByComponent,
    it_j: f64,
    period_s: f64,
) -> Idle {
    let mut nodes: Vec<IdleNode> = ds
        .nodes
        .iter()
        .map(|n| IdleNode {
            cluster: n.cluster.clone(),
            instance: n.instance.clone(),
            node: shown(&n.cluster, &n.instance),
            unallocated_kwh: kwh(n.unallocated.total()),
            share_of_node: share(n.unallocated.total(), n.energy.total()),
            node_kwh: kwh(n.energy.total()),
        })
        .collect();
    nodes.sort_by(|a, b| {
        b.unallocated_kwh
            .total_cmp(&a.unallocated_kwh)
            .then_with(|| a.instance.cmp(&b.instance))
    });
    // Each GPU's unallocated scrapes, to split its node's unallocated GPU energy.
    let idle_samples =
        |g: &crate::data::GpuData| (g.samples_present - g.samples_allocated).max(0.0);
    let mut node_idle: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for g in &ds.gpus {
        *node_idle
            .entry((g.cluster.as_str(), g.instance.as_str()))
            .or_default() += idle_samples(g);
    }
    let mut gpus: Vec<IdleGpu> = ds
        .gpus
        .iter()
        .map(|g| {
            let key = (g.cluster.as_str(), g.instance.as_str());
            let node_unalloc = nodes_by_key.get(&key).map_or(0.0, |n| n.unallocated.gpu);
            let sh = share(idle_samples(g), g.samples_present);
            IdleGpu {
                cluster: g.cluster.clone(),
                instance: g.instance.clone(),
                node: shown(&g.cluster, &g.instance),
                gpu_uuid: g.gpu_uuid.clone(),
                model: g.model.clone(),
                unallocated_share: sh,
                unallocated_hours: sh * period_s / 3600.0,
                unallocated_kwh_estimate: kwh(
                    node_unalloc * share(idle_samples(g), node_idle[&key])
                ),
            }
        })
        .collect();
    gpus.sort_by(|a, b| {
        b.unallocated_kwh_estimate
            .total_cmp(&a.unallocated_kwh_estimate)
            .then_with(|| a.gpu_uuid.cmp(&b.gpu_uuid))
    });
    Idle {
        unallocated_kwh: kwh(unallocated.total()),
        share: share(unallocated.total(), it_j),
        by_component: component_rows(unallocated, &ds.unmeasured),
        nodes,
        gpus,
    }
}

/// Allocated energy per component, unallocated and total of each day.
fn daily_rows(ds: &Dataset, zone: &Zone) -> Vec<DayRow> {
    ds.days
        .iter()
        .map(|d| {
            let alloc = d.energy.minus(&d.unallocated);
            DayRow {
                date: zone.date(d.period.start),
                cpu_kwh: kwh(alloc.cpu),
                dram_kwh: kwh(alloc.dram),
                gpu_kwh: kwh(alloc.gpu),
                other_kwh: kwh(alloc.other),
                idle_kwh: kwh(d.unallocated.total()),
                total_kwh: kwh(d.energy.total()),
            }
        })
        .collect()
}

/// Every job of the scope, most energy first.
fn top_job_rows(
    jobs: &[&JobData],
    show_user: &dyn Fn(&str) -> String,
    jobs_total_j: f64,
) -> Vec<JobRow> {
    // The rows share the jobs' strings; a shown (anonymised) user name is made once per user.
    let mut shown: BTreeMap<&str, Name> = BTreeMap::new();
    let mut top_jobs: Vec<JobRow> = jobs
        .iter()
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
        .collect();
    top_jobs.sort_by(|a, b| {
        b.energy_j
            .total_cmp(&a.energy_j)
            .then_with(|| a.job_id.cmp(&b.job_id))
    });
    top_jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{JobData, NodeData, Placement};

    fn job(id: &str, user: &str, account: &str, name: &str, joules: f64, core_s: f64) -> JobData {
        JobData {
            cluster: Name::default(),
            job_id: id.into(),
            user: user.into(),
            account: account.into(),
            job_name: name.into(),
            energy: ByComponent {
                cpu: joules,
                ..ByComponent::default()
            },
            core_seconds: core_s,
            placements: vec![Placement {
                instance: "n1:9977".into(),
                core_seconds: core_s,
                gpu_seconds: 0.0,
                alloc_cpus: 4.0,
                alloc_memory_bytes: Some(8e9),
            }],
            ..JobData::default()
        }
    }

    fn dataset() -> Dataset {
        Dataset {
            period: Some(Period {
                start: 0,
                end: 86_400,
            }),
            jobs: vec![
                job("1", "ann", "p", "dev-a", 3.6e6, 3600.0),
                job("2", "ann", "p", "final", 7.2e6, 3600.0),
                job("3", "bo", "p", "dev-b", 1.8e6, 7200.0),
                job("4", "cy", "q", "x", 3.6e6, 36_000.0),
            ],
            nodes: vec![NodeData {
                cluster: String::new(),
                instance: "n1:9977".into(),
                hostname: None,
                energy: ByComponent {
                    cpu: 36e6,
                    ..ByComponent::default()
                },
                unallocated: ByComponent {
                    cpu: 19.8e6,
                    ..ByComponent::default()
                },
                cpu_tdp_watts: Some(200.0),
                physical_cores: Some(20.0),
                memory_bytes: Some(100e9),
            }],
            ..Dataset::default()
        }
    }

    fn opts(scope: ScopeKind) -> Options {
        Options {
            scope,
            cluster: None,
            generated_at: 0,
            anonymize_users: false,
            zone: Zone::utc(),
        }
    }

    #[test]
    fn headline_equivalents() {
        let r = build(&dataset(), &Config::default(), &opts(ScopeKind::Cluster));
        assert!((r.headline.it_energy_kwh - 10.0).abs() < 1e-12);
        assert!((r.headline.facility_energy_kwh - 15.6).abs() < 1e-12);
        // 15.6 kWh × 44.2 g/kWh
        assert!((r.headline.co2e_kg - 0.68952).abs() < 1e-12);
        assert!((r.headline.households_for_a_year - 15.6 / 4792.0).abs() < 1e-15);
        assert!((r.headline.households_daily - 15.6 / (4792.0 / 365.0)).abs() < 1e-12);
        assert_eq!(r.headline.jobs, 4);
        assert!((r.idle.as_ref().map(|i| i.share).unwrap_or(0.0) - 0.55).abs() < 1e-12);
    }

    #[test]
    fn green_algorithms_by_hand() {
        let r = build(
            &dataset(),
            &Config::default(),
            &opts(ScopeKind::User("cy".into())),
        );
        let e = r.estimates.total.expect("estimates");
        // 36,000 core-s × (200 W / 20 cores) + 8 GB × 0.3725 W/GB × (36,000 / 4) s
        let want = (36_000.0 * 10.0 + 8.0 * 0.3725 * 9000.0) / 3.6e6;
        assert!((e.green_algorithms_kwh - want).abs() < 1e-12);
        // CodeCarbon: node CPU power 36 MJ / 1 day, + 100 GB × 0.375 W/GB, during 9,000 s.
        let cc = 9000.0 * (36e6 / 86_400.0 + 100.0 * 0.375) / 3.6e6;
        assert!((e.codecarbon_kwh - cc).abs() < 1e-12);
        assert_eq!(r.top_jobs.len(), 1);
        assert!(r.idle.is_none());
    }

    #[test]
    fn final_run_by_pattern_config_or_largest() {
        let mut cfg = Config::default();
        let r = build(&dataset(), &cfg, &opts(ScopeKind::Cluster));
        let p = r.dev_vs_final.iter().find(|d| d.project == "p").expect("p");
        assert_eq!(
            (p.chosen_by.as_str(), p.final_jobs.clone()),
            ("largest job", vec!["2".to_string()])
        );
        assert!((p.ratio.unwrap_or(0.0) - 12.6 / 7.2).abs() < 1e-12);
        cfg.best_run.job_name_pattern = Some("^dev".into());
        let r = build(&dataset(), &cfg, &opts(ScopeKind::Cluster));
        let p = r.dev_vs_final.iter().find(|d| d.project == "p").expect("p");
        assert_eq!(
            (p.chosen_by.as_str(), p.final_jobs.clone()),
            ("pattern", vec!["1".to_string()])
        );
        cfg.best_run.jobs.insert("p".into(), vec!["3".into()]);
        let r = build(&dataset(), &cfg, &opts(ScopeKind::Cluster));
        let p = r.dev_vs_final.iter().find(|d| d.project == "p").expect("p");
        assert_eq!(p.chosen_by, "configured");
        assert!((p.ratio.unwrap_or(0.0) - 7.0).abs() < 1e-12);
    }

    #[test]
    fn rankings_and_anonymisation() {
        let mut o = opts(ScopeKind::Cluster);
        o.anonymize_users = true;
        let r = build(&dataset(), &Config::default(), &o);
        let names: Vec<&str> = r.users.rows.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["User 1", "User 2", "User 3"]);
        // ann (most energy) ties bo on core-hours behind cy: ranks 2 and 3 share 2.5.
        assert_eq!(r.users.rows[0].rank_core_hours, 2.5);
        assert!(r.top_jobs.iter().all(|j| j.user.starts_with("User ")));
        assert!(r.users.spearman.is_some());
    }

    #[test]
    fn ml_co2_is_na_without_gpus_with_its_footnote() {
        let mut ds = dataset();
        ds.jobs[3].gpu_seconds = 7200.0;
        ds.jobs[3].placements[0].gpu_seconds = 7200.0;
        let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
        let row = |n: &str| {
            r.estimates
                .projects
                .iter()
                .find(|e| e.name == n)
                .cloned()
                .expect("row")
        };
        // p ran CPU-only jobs: n/a, not 0 kWh; q used 2 GPU-hours at the default 200 W.
        assert_eq!((row("p").ml_co2_kwh, row("p").ml_co2_ratio), (None, None));
        assert!((row("q").ml_co2_kwh.unwrap_or(0.0) - 0.4).abs() < 1e-12);
        assert_eq!(r.estimates.ml_co2_footnote.as_deref(), Some(ML_CO2_NA));
        let all = r.estimates.total.expect("total");
        assert!(all.ml_co2_kwh.is_some());
        // Every job with a GPU: no footnote.
        for j in &mut ds.jobs {
            j.gpu_seconds = 3600.0;
        }
        let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
        assert!(r.estimates.ml_co2_footnote.is_none());
    }

    #[test]
    fn unmeasured_components_and_node_names() {
        let mut ds = dataset();
        ds.unmeasured = vec!["other".into()];
        let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
        let measured: Vec<(&str, bool)> = r
            .components
            .iter()
            .map(|c| (c.component.as_str(), c.measured))
            .collect();
        assert_eq!(
            measured,
            [
                ("cpu", true),
                ("dram", true),
                ("gpu", true),
                ("other", false)
            ]
        );
        let idle = r.idle.as_ref().expect("idle");
        assert!(!idle.by_component[3].measured && idle.by_component[0].measured);
        assert_eq!(r.unmeasured, ["other"]);
        // The node without its port, or by the hostname its exporter publishes.
        assert_eq!(
            (idle.nodes[0].instance.as_str(), idle.nodes[0].node.as_str()),
            ("n1:9977", "n1")
        );
        ds.nodes[0].hostname = Some("gpu01".into());
        let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
        assert_eq!(r.idle.expect("idle").nodes[0].node, "gpu01");
    }

    #[test]
    fn empty_dataset_says_no_data() {
        let ds = Dataset {
            period: Some(Period {
                start: 0,
                end: 86_400,
            }),
            ..Dataset::default()
        };
        let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
        assert!(!r.has_data);
        assert!(r.notes.iter().any(|n| n.starts_with("No data")));
    }
}
