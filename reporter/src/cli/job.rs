//! The `job` subcommand: one job's figures, narrowed to its life, as text. Every string a user
//! chose (job name, account...) is printed on one line.

use super::{runtime, Fail};
use crate::collect::{Collector, Scope};
use crate::config::Config;
use crate::data::JobData;
use crate::model::{self, kwh};
use crate::period::{Period, Zone};
use crate::prom::Client;
use crate::render::format_num;
use std::collections::BTreeMap;

pub(super) fn job_summary(
    client: &Client,
    scope: Scope,
    cfg: &Config,
    job_id: &str,
) -> Result<(), Fail> {
    // Narrow the window to the job's life so that the node's mean power (CodeCarbon-style) is
    // the power while the job ran.
    let wide = Collector::new(client, scope.clone());
    let life = wide.job_lifetime().map_err(runtime)?;
    let Some((first, last)) = life else {
        return Err(runtime(format!(
            "job {job_id} has no samples between {} and {}: check the id, --cluster, or give --from/--to around the job's dates",
            scope.zone.iso(scope.period.start),
            scope.zone.iso(scope.period.end)
        )));
    };
    let mut narrow = scope.clone();
    // From one lookback before the first sample (the counter's zero) to the last sample.
    narrow.period = Period {
        start: (first as i64 - 1).max(scope.period.start),
        end: last.ceil() as i64,
    };
    let ds = Collector::new(client, narrow.clone())
        .job_dataset()
        .map_err(runtime)?;
    let Some(job) = ds.jobs.iter().find(|j| j.job_id == job_id) else {
        return Err(runtime(format!(
            "job {job_id}: no energy or core-seconds found"
        )));
    };
    let est = model::Estimator::new(&ds, cfg, narrow.period.seconds() as f64).job(job);
    let shown = JobShown {
        names: model::display_names(&ds),
        unmeasured: ds.unmeasured.clone(),
    };
    print!(
        "{}",
        job_text(job, &est, cfg, &narrow.period, &narrow.zone, &shown)
    );
    Ok(())
}

/// How the `job` subcommand names nodes and which components nothing measures.
#[derive(Default)]
pub struct JobShown {
    /// (cluster, instance) → node name ([`model::display_names`]).
    pub names: BTreeMap<(String, String), String>,
    pub unmeasured: Vec<String>,
}

/// The `job` subcommand's text.
pub fn job_text(
    job: &JobData,
    est: &model::JobEstimates,
    cfg: &Config,
    window: &Period,
    zone: &Zone,
    shown: &JobShown,
) -> String {
    let mut o = Text::default();
    who_and_where(&mut o, job, window, zone, shown);
    energy(&mut o, job, est, shown);
    impact(&mut o, kwh(job.energy.total()) * cfg.pue.value, cfg);
    o.0
}

/// The text, one `key   value` line at a time.
#[derive(Default)]
struct Text(String);

impl Text {
    fn kv(&mut self, k: &str, v: String) {
        self.0.push_str(&format!("{k:<24}{v}\n"));
    }
}

/// A user's string on one line: control characters become spaces.
fn line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The job's identity, nodes, window and use of cores and GPUs.
fn who_and_where(o: &mut Text, job: &JobData, window: &Period, zone: &Zone, shown: &JobShown) {
    o.kv("Job ID:", line(&job.job_id));
    if !job.cluster.is_empty() {
        o.kv("Cluster:", line(&job.cluster));
    }
    o.kv(
        "User/Project:",
        format!("{}/{}", line(&job.user), line(&job.account)),
    );
    o.kv("Name:", line(&job.job_name));
    o.kv("Partition:", line(&job.partition));
    let nodes = job.placements.iter().map(|p| {
        let key = (job.cluster.to_string(), p.instance.to_string());
        line(
            shown
                .names
                .get(&key)
                .map_or(crate::names::host_of(&p.instance), String::as_str),
        )
    });
    o.kv(
        "Nodes:",
        format!(
            "{} ({})",
            job.placements.len(),
            nodes.collect::<Vec<_>>().join(", ")
        ),
    );
    o.kv(
        "Seen:",
        format!("{} to {}", zone.iso(window.start), zone.iso(window.end)),
    );
    let cores = job.placements.iter().map(|p| p.alloc_cpus).sum::<f64>();
    o.kv("Cores:", format_num(cores, 0));
    o.kv("Core-hours:", format_num(job.core_seconds / 3600.0, 2));
    o.kv("GPU-hours:", format_num(job.gpu_seconds / 3600.0, 2));
    if job.core_seconds > 0.0 {
        o.kv(
            "CPU efficiency:",
            format!(
                "{} % of core-walltime",
                format_num(100.0 * job.cpu_seconds / job.core_seconds, 1)
            ),
        );
    }
}

/// The measured energy by component and the other tools' estimates.
fn energy(o: &mut Text, job: &JobData, est: &model::JobEstimates, shown: &JobShown) {
    let total = job.energy.total();
    o.kv(
        "Energy (measured):",
        format!(
            "{} kWh ({} J)",
            format_num(kwh(total), 3),
            format_num(total, 0)
        ),
    );
    for c in joulebook_common::Component::ALL {
        if shown.unmeasured.iter().any(|u| u == c.as_str()) {
            o.kv(&format!("  {c}:"), "not measured on this cluster".into());
            continue;
        }
        let v = job.energy.get(c);
        let share = if total > 0.0 { 100.0 * v / total } else { 0.0 };
        o.kv(
            &format!("  {c}:"),
            format!("{} kWh ({} %)", format_num(kwh(v), 3), format_num(share, 1)),
        );
    }
    let ratio = |e: f64| {
        if total > 0.0 {
            format!("{}× measured", format_num(e / total, 2))
        } else {
            "n/a".into()
        }
    };
    o.kv(
        "Green Algorithms:",
        format!(
            "{} kWh ({})",
            format_num(kwh(est.green_algorithms), 3),
            ratio(est.green_algorithms)
        ),
    );
    if job.gpu_seconds > 0.0 {
        o.kv(
            "ML CO2:",
            format!(
                "{} kWh ({})",
                format_num(kwh(est.ml_co2), 3),
                ratio(est.ml_co2)
            ),
        );
    } else {
        o.kv(
            "ML CO2:",
            "n/a (GPU-hours × GPU TDP only: no GPU used)".into(),
        );
    }
    o.kv(
        "CodeCarbon-style:",
        format!(
            "{} kWh ({})",
            format_num(kwh(est.codecarbon), 3),
            ratio(est.codecarbon)
        ),
    );
}

/// Facility energy (`facility`, kWh), emissions, household-days and cost.
fn impact(o: &mut Text, facility: f64, cfg: &Config) {
    let ci = &cfg.carbon_intensity;
    o.kv(
        "Facility energy:",
        format!("{} kWh (PUE {})", format_num(facility, 3), cfg.pue.value),
    );
    o.kv(
        "Emissions:",
        format!(
            "{} g CO2e ({} g/kWh, {} {} {}, {})",
            format_num(facility * ci.value, 1),
            ci.value,
            ci.zone,
            ci.scope,
            ci.year,
            ci.source
        ),
    );
    o.kv(
        "Household-days:",
        format!(
            "{} ({} kWh/year, {})",
            format_num(facility / (cfg.household.kwh_per_year / 365.0), 2),
            cfg.household.kwh_per_year,
            cfg.household.source
        ),
    );
    if let Some(p) = &cfg.electricity_price {
        o.kv(
            "Cost:",
            format!("{} {}", format_num(facility * p.per_kwh, 2), p.currency),
        );
    }
}
