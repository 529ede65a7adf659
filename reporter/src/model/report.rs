//! The report's layout: the figures `build` computes, as serialised to JSON
//! (`reporter/report.schema.json`) and handed to the templates.

use crate::config::{CarbonIntensity, Household};
use crate::data::{ByComponent, Name};
use crate::methods::Constant;
use serde::Serialize;

/// What a report covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum ScopeKind {
    Cluster,
    Project(String),
    User(String),
}

impl ScopeKind {
    /// Whether the figures of `account` and `user` belong to a report of this scope.
    pub fn covers(&self, account: &str, user: &str) -> bool {
        match self {
            ScopeKind::Cluster => true,
            ScopeKind::Project(p) => p == account,
            ScopeKind::User(u) => u == user,
        }
    }
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
    /// Where the project and user rows and the estimates come from.
    pub totals_from: TotalsFrom,
    /// A summary (`--summary`): no job was read, `top_jobs` and `dev_vs_final` are empty.
    pub summary: bool,
    /// Cluster reports only (node counters by day).
    pub daily: Vec<DayRow>,
    /// The daily rows added up by local month (`date`: `YYYY-MM`) for periods of more than
    /// [`super::MONTHLY_ABOVE_DAYS`] days, shown instead of the days; else empty.
    pub monthly: Vec<DayRow>,
    pub top_jobs: Vec<JobRow>,
    /// Whether `top_jobs` lists every job of the scope (`--job-list all`, the default), not only
    /// the `top_n` first.
    pub top_jobs_all: bool,
    /// Rows shown in the HTML and Markdown tables (JSON holds every row, but the jobs with
    /// `--job-list top`).
    pub top_n: usize,
    pub constants: Vec<Constant>,
    pub methods: Vec<String>,
    pub notes: Vec<String>,
}

/// The source of the project and user totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TotalsFrom {
    /// Sums over the jobs' series.
    Jobs,
    /// The per-owner counters, checked against the node counters.
    OwnerCounters,
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
    /// That share of the local days of the period on which the node reported
    /// ([`crate::data::NodeData::seconds_reported`]).
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
    /// `YYYY-MM-DD`, or `YYYY-MM` in `monthly`.
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
            totals_from,
            summary,
            daily,
            monthly,
            top_jobs,
            top_jobs_all,
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
            totals_from: *totals_from,
            summary: *summary,
            daily: daily.clone(),
            monthly: monthly.clone(),
            top_jobs: top_jobs.iter().take(n).cloned().collect(),
            top_jobs_all: *top_jobs_all,
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
