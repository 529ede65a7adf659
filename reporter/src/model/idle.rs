//! Idle waste (unallocated energy by node and GPU) and the daily and monthly bars: cluster
//! reports only.

use super::{display_names, headline::component_rows, kwh, share, DayRow, Idle, IdleGpu, IdleNode};
use crate::data::{ByComponent, Dataset, NodeData};
use crate::period::Zone;
use std::collections::BTreeMap;

/// Idle waste: unallocated energy by node, and each GPU's unallocated time and estimated energy.
pub(super) fn idle_section(
    ds: &Dataset,
    nodes_by_key: &BTreeMap<(&str, &str), &NodeData>,
    unallocated: &ByComponent,
    it_j: f64,
    period_s: f64,
) -> Idle {
    let names = display_names(ds);
    let shown = |c: &str, i: &str| {
        names
            .get(&(c.to_string(), i.to_string()))
            .cloned()
            .unwrap_or_else(|| crate::names::host_of(i).to_string())
    };
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
            let node = nodes_by_key.get(&key);
            let node_unalloc = node.map_or(0.0, |n| n.unallocated.gpu);
            // The share of the scrapes that saw it, of the time its node reported.
            let seconds = node.map_or(period_s, |n| n.seconds_over(period_s));
            let sh = share(idle_samples(g), g.samples_present);
            IdleGpu {
                cluster: g.cluster.clone(),
                instance: g.instance.clone(),
                node: shown(&g.cluster, &g.instance),
                gpu_uuid: g.gpu_uuid.clone(),
                model: g.model.clone(),
                unallocated_share: sh,
                unallocated_hours: sh * seconds / 3600.0,
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
pub(super) fn daily_rows(ds: &Dataset, zone: &Zone) -> Vec<DayRow> {
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

/// The daily rows added up by local month, in order; `date` becomes `YYYY-MM`.
pub(super) fn monthly_rows(daily: &[DayRow]) -> Vec<DayRow> {
    let mut out: Vec<DayRow> = Vec::new();
    for d in daily {
        let month = d.date.get(..7).unwrap_or(&d.date);
        match out.last_mut() {
            Some(m) if m.date == month => {
                m.cpu_kwh += d.cpu_kwh;
                m.dram_kwh += d.dram_kwh;
                m.gpu_kwh += d.gpu_kwh;
                m.other_kwh += d.other_kwh;
                m.idle_kwh += d.idle_kwh;
                m.total_kwh += d.total_kwh;
            }
            _ => out.push(DayRow {
                date: month.to_string(),
                ..d.clone()
            }),
        }
    }
    out
}
