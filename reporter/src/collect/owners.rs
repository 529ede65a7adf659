//! Project and user totals from the per-owner counters (`joulebook_owner_*_total`), read
//! instead of summed over every job when they are exact.
//!
//! Rules:
//! - Each owner series is one run of an (account, user) pair's counters on a node: its `since`
//!   label says when they started from zero (the pair kept, back after expiring, or the
//!   exporter started without its state), and within a run they only grow. A run is published
//!   only while it has a job and for the grace period after, so its series has gaps; it ends
//!   after `OWNER_EXPIRY_S` without a job. Its increase over `(S, E]` is its last value in the
//!   period minus its last value at or before `S`, which lies within `OWNER_EXPIRY_S` plus the
//!   lookback before `S` if the run goes on after `S` (zero for a run with no sample there, as for
//!   the job counters): two reads per family, whatever the period's length and the scrape
//!   interval, and no pass over the samples.
//! - Used only where every series has a `since` label (older exporters' owner series have none,
//!   and a returning pair's run would be read as one counter) and, per node and component, the
//!   owners' energy is the node's energy less its unallocated energy (what the exporter keeps
//!   at every sample, so a run misread, a node without owner counters or a gap in them shows);
//!   otherwise the totals are sums over the jobs, and a note says why.

use super::*;
use crate::data::OwnerData;

/// The owner counters a report reads, in the order [`Owners::add`] takes their rows.
const OWNER_COUNTERS: [MetricDef; 5] = [
    c::OWNER_ENERGY,
    c::OWNER_CORE_SECONDS,
    c::OWNER_GPU_SECONDS,
    c::OWNER_ELAPSED_SECONDS,
    c::OWNER_MEMORY_BYTE_SECONDS,
];

/// Largest difference, per node and component, between the owners' energy and the node's
/// energy less its unallocated energy that still counts as equal: the exporter keeps them
/// equal to the microjoule, so this only absorbs the rounding of adding doubles (relative to
/// the node's energy, plus an absolute millijoule).
const OWNER_GAP_RELATIVE: f64 = 1e-9;
const OWNER_GAP_ABSOLUTE_J: f64 = 1e-3;

impl Collector<'_> {
    /// The owner figures of every node, when they are complete and add up ([`owner_gaps`]);
    /// `None` otherwise, with a note saying why (none when there are no owner series at all:
    /// exporters before them).
    pub fn owner_totals(
        &self,
        instances: &[String],
        nodes: &BTreeMap<(String, String), NodeData>,
    ) -> Result<Option<Vec<OwnerData>>, PromError> {
        let mut acc = Owners::default();
        let selector = self.series_matching("joulebook_owner_.+");
        self.in_rounds("owner", &selector, instances, |round| {
            self.owners_round(round, &mut acc)
        })?;
        if acc.series == 0 {
            return Ok(None);
        }
        let owners: Vec<OwnerData> = acc.by_pair.into_values().collect();
        let why = if acc.without_since > 0 {
            format!(
                "{} owner counter series have no `{}` label (exporters before it)",
                acc.without_since,
                l::SINCE
            )
        } else {
            let gaps = owner_gaps(&owners, nodes);
            if gaps.is_empty() {
                return Ok(Some(owners));
            }
            gaps.join("; ")
        };
        self.note(format!(
            "Project and user totals are sums over the jobs, not the owner counters: {why}."
        ));
        Ok(None)
    }

    /// One round: last and base of each owner counter, added to `acc` once all are answered.
    fn owners_round(&self, round: &Round, acc: &mut Owners) -> Result<(), PromError> {
        let matcher = round.matcher();
        // A run idle at the start was last published at most a day before it.
        let lb = self.scope.lookback + c::OWNER_EXPIRY_S as i64;
        let queries: Vec<String> = OWNER_COUNTERS
            .iter()
            .flat_map(|m| self.increase_queries(&self.sel_in(m, matcher.as_deref()), lb, true))
            .collect();
        self.client.progress().stage("owner totals", queries.len());
        let mut answers = self.all_at_end(&queries)?.into_iter();
        for (family, m) in OWNER_COUNTERS.iter().enumerate() {
            let (last, base) = (
                answers.next().unwrap_or_default(),
                answers.next().unwrap_or_default(),
            );
            // No pass over raw samples: a run's counters only grow.
            for (labels, v) in self.increases(m, last, base, &BTreeSet::new(), |_| false)? {
                acc.add(family, &labels, v, |n| self.note(n));
            }
        }
        Ok(())
    }
}

/// The owner figures met so far, by (cluster, instance, account, user).
#[derive(Default)]
struct Owners {
    names: Interner,
    by_pair: BTreeMap<(Name, Name, Name, Name), OwnerData>,
    series: usize,
    without_since: usize,
}

impl Owners {
    /// Adds one series' increase of family `family` (an index into [`OWNER_COUNTERS`]).
    fn add(&mut self, family: usize, lb: &Labels, v: f64, note: impl Fn(String)) {
        self.series += 1;
        if lb.get(l::SINCE).is_none_or(str::is_empty) {
            self.without_since += 1;
        }
        let mut get = |n: &str| self.names.get(labels_str(lb, n));
        let key = (get(CLUSTER), get(INSTANCE), get(l::ACCOUNT), get(l::USER));
        let o = self
            .by_pair
            .entry(key.clone())
            .or_insert_with(|| OwnerData {
                cluster: key.0,
                instance: key.1,
                account: key.2,
                user: key.3,
                ..OwnerData::default()
            });
        match family {
            0 => {
                let comp = labels_str(lb, l::COMPONENT);
                if !o.energy.add(comp, v) {
                    note(format!("energy of unknown component {comp:?} ignored"));
                }
            }
            1 => o.core_seconds += v,
            2 => o.gpu_seconds += v,
            3 => o.elapsed_seconds += v,
            _ => o.memory_byte_seconds += v,
        }
    }
}

/// Per node and component where the owners' energy is not the node's energy less its
/// unallocated energy, a line naming them with both figures (at most a few, then a count).
pub fn owner_gaps(
    owners: &[OwnerData],
    nodes: &BTreeMap<(String, String), NodeData>,
) -> Vec<String> {
    let mut by_node: BTreeMap<(&str, &str), ByComponentSum> = BTreeMap::new();
    for o in owners {
        let e = by_node.entry((&o.cluster, &o.instance)).or_default();
        e.owners = e.owners.plus(&o.energy);
    }
    for n in nodes.values() {
        let e = by_node.entry((&n.cluster, &n.instance)).or_default();
        e.node = n.energy;
        e.unallocated = n.unallocated;
    }
    let mut gaps = Vec::new();
    for ((cluster, instance), e) in &by_node {
        for comp in c::Component::ALL {
            let (o, n, u) = (e.owners[comp], e.node[comp], e.unallocated[comp]);
            let allocated = n - u;
            if (o - allocated).abs() > OWNER_GAP_RELATIVE * n.abs() + OWNER_GAP_ABSOLUTE_J {
                let node = if cluster.is_empty() {
                    instance.to_string()
                } else {
                    format!("{cluster}/{instance}")
                };
                gaps.push(format!(
                    "{node} {comp}: owners {o:.3} J, node less unallocated {allocated:.3} J"
                ));
            }
        }
    }
    const SHOWN: usize = 3;
    if gaps.len() > SHOWN {
        let more = gaps.len() - SHOWN;
        gaps.truncate(SHOWN);
        gaps.push(format!("{more} more"));
    }
    gaps
}

/// One node's energy three ways.
#[derive(Default)]
struct ByComponentSum {
    owners: crate::data::ByComponent,
    node: crate::data::ByComponent,
    unallocated: crate::data::ByComponent,
}
