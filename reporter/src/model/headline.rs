//! The headline figures and the per-component table.

use super::rankings::Group;
use super::{kwh, share, ComponentRow, Cost, Energies, Headline};
use crate::config::Config;
use crate::data::{ByComponent, Dataset, JobData, OwnerData, Placement};
use joulebook_common::Component;

/// The headline figures: IT and facility energy, CO2e, cost, comparisons, counts. `total`: all
/// the scope's jobs (their count, core- and GPU-seconds); `owners`: the scope's owner figures
/// when a summary read no job.
pub(super) fn headline(
    ds: &Dataset,
    jobs: &[&JobData],
    owners: Option<&[&OwnerData]>,
    total: &Group,
    cfg: &Config,
    cluster_scope: bool,
    e: &Energies,
) -> Headline {
    let days = ds.period.map_or(0.0, |p| p.seconds() as f64 / 86_400.0);
    let (it_j, jobs_total_j, unallocated) = (e.it_j, e.jobs_j, &e.unallocated);
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
        jobs: total.jobs(),
        core_hours: total.core_s() / 3600.0,
        gpu_hours: total.gpu_s() / 3600.0,
        nodes: if cluster_scope {
            ds.nodes.iter().filter(|n| n.energy.total() > 0.0).count()
        } else {
            let placed = jobs.iter().flat_map(|j| {
                j.placements
                    .iter()
                    .map(|p: &Placement| (j.cluster.as_str(), p.instance.as_str()))
            });
            let used = owners
                .unwrap_or_default()
                .iter()
                .filter(|o| o.core_seconds > 0.0 || o.energy.total() > 0.0);
            let mut s: Vec<(&str, &str)> = placed
                .chain(used.map(|o| (o.cluster.as_str(), o.instance.as_str())))
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

pub(super) fn component_rows(b: &ByComponent, unmeasured: &[String]) -> Vec<ComponentRow> {
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
