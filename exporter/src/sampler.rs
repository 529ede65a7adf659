//! The sampler: owns the sources and every energy total. Each cycle it asks each enabled source
//! for a sample, turns raw readings into wrap-corrected joules, adds the node components, and
//! publishes an immutable [`Snapshot`]. Scrapes only encode the latest snapshot, so any number of
//! Prometheus servers scraping at any moment change nothing.
//!
//! Time is passed in (seconds on a monotonic clock), so the simulator and the tests drive the
//! same code on a virtual clock.

use crate::attribution::CycleDelta;
use crate::energy::{Accumulator, Step};
use crate::node::NodeInfo;
use crate::snapshot::{ComponentTotal, Health, Method, Snapshot};
use crate::sources::bmc::BmcStatus;
use crate::sources::{
    ChannelId, DeviceInfo, DeviceKey, Domain, GpuInfo, RawEnergy, Source, SourceError, SourceKind,
};
use joulebook_common::{Component, PerComponent};
use std::collections::BTreeMap;
use std::time::Instant;

struct Slot {
    source: Box<dyn Source>,
    health: Health,
}

struct Channel {
    acc: Accumulator,
    source: SourceKind,
}

/// Measured energy since the BMC's total last moved, for `other` (see `Sampler::add_other`).
#[derive(Clone, Debug, Default)]
struct OtherWindow {
    measured_uj: u64,
    elapsed_s: f64,
    covered_s: Option<f64>,
    /// BMC energy and span held while a measured source is down (see `Sampler::add_other`).
    held_bmc_uj: u64,
    held_span_s: f64,
}

/// A whole-node hwmon meter (`sources.hwmon`, role `node`), which stands for the BMC when there
/// is none: the seconds its integrated energy covers, from one reading to the next.
#[derive(Clone, Debug, Default)]
struct NodeMeter {
    covered_s: f64,
    last_t: Option<f64>,
}

pub struct Sampler {
    other_window: OtherWindow,
    node_meter: Option<NodeMeter>,
    /// BMC updates where the BMC's energy was below cpu + dram + gpu, so `other` was clamped to 0.
    other_clamps: u64,
    slots: Vec<Slot>,
    channels: BTreeMap<ChannelId, Channel>,
    /// Node component totals (µJ). Kept apart from the channels, and fed with per-cycle deltas, so
    /// they stay monotonic when a component switches from estimated to measured.
    node: PerComponent<Option<(Accumulator, Method, SourceKind)>>,
    gpus: BTreeMap<String, GpuInfo>,
    /// Devices of the sysfs sources, by channel, with their source.
    devices: BTreeMap<ChannelId, (SourceKind, DeviceInfo)>,
    node_info: NodeInfo,
    cpu_tdp: Option<(f64, &'static str)>,
    estimate_tdp: Option<f64>,
    interval_s: f64,
    /// The longest wait until the next cycle that the last cycle's readings allow (see
    /// [`Sampler::sources_limit_s`]).
    sources_limit_s: f64,
    last_t: Option<f64>,
    disabled: Vec<SourceKind>,
    bmc: Option<BmcStatus>,
}

impl Sampler {
    pub fn new(
        sources: Vec<Box<dyn Source>>,
        disabled: Vec<SourceKind>,
        node_info: NodeInfo,
        cpu_tdp: Option<(f64, &'static str)>,
        interval_s: f64,
    ) -> Self {
        Sampler {
            other_window: OtherWindow::default(),
            node_meter: None,
            other_clamps: 0,
            slots: sources
                .into_iter()
                .map(|source| Slot {
                    source,
                    health: Health {
                        enabled: true,
                        ..Default::default()
                    },
                })
                .collect(),
            channels: BTreeMap::new(),
            node: PerComponent::default(),
            gpus: BTreeMap::new(),
            devices: BTreeMap::new(),
            node_info,
            cpu_tdp,
            estimate_tdp: None,
            interval_s,
            sources_limit_s: interval_s,
            last_t: None,
            disabled,
            bmc: None,
        }
    }

    /// Resumes totals saved by an earlier run: channel → (µJ, last raw reading if it may be
    /// used, with its age in seconds), component → µJ. `t` is the sampler's clock now.
    pub fn resume(
        &mut self,
        t: f64,
        channels: impl IntoIterator<Item = (ChannelId, SourceKind, u64, Option<(u64, f64)>)>,
        node: impl IntoIterator<Item = (Component, Method, SourceKind, u64)>,
    ) {
        for (id, source, uj, raw) in channels {
            let acc = match raw {
                Some((raw, age)) => Accumulator::resume_with_baseline(uj, raw, t, age),
                None => Accumulator::resume(uj),
            };
            self.channels.insert(id, Channel { acc, source });
        }
        for (c, m, s, uj) in node {
            self.node[c] = Some((Accumulator::resume(uj), m, s));
        }
    }

    /// Channel totals in µJ and last raw readings, for the state file.
    pub fn channel_totals(
        &self,
    ) -> impl Iterator<Item = (&ChannelId, SourceKind, u64, Option<u64>)> {
        self.channels
            .iter()
            .map(|(id, c)| (id, c.source, c.acc.total_uj(), c.acc.last_raw()))
    }

    /// Node component totals in µJ, for the state file.
    pub fn node_totals(&self) -> impl Iterator<Item = (Component, Method, SourceKind, u64)> + '_ {
        self.node
            .iter()
            .filter_map(|(c, n)| n.as_ref().map(|(acc, m, s)| (c, *m, *s, acc.total_uj())))
    }

    /// One sampling cycle at monotonic time `t` (seconds). Returns what each node component
    /// gained, for attribution.
    pub fn cycle(&mut self, t: f64) -> CycleDelta {
        let interval_s = self.last_t.map_or(0.0, |l| (t - l).max(0.0));
        self.last_t = Some(t);
        let mut limit = f64::INFINITY;
        // Whether every source that measures a component read all of it this cycle.
        let mut complete = true;
        // Deltas per channel this cycle.
        let mut added: BTreeMap<ChannelId, u64> = BTreeMap::new();
        for slot in &mut self.slots {
            let kind = slot.source.kind();
            let started = Instant::now();
            let result = slot.source.sample();
            slot.health.duration_s = started.elapsed().as_secs_f64();
            slot.health.samples += 1;
            let sample = match result {
                Ok(s) => s,
                Err(e) => {
                    complete &= kind == SourceKind::Bmc;
                    if slot.health.up || slot.health.last_error.as_ref() != Some(&e) {
                        log_down(kind, &e);
                    }
                    slot.health.up = false;
                    slot.health.last_error = Some(e);
                    continue;
                }
            };
            let problem = sample.problems.into_iter().next();
            match (&problem, slot.health.up, &slot.health.last_error) {
                (Some(p), _, last) if last.as_ref() != Some(p) => log_down(kind, p),
                (None, false, Some(_)) => tracing::info!(source = %kind, "source is up again"),
                _ => {}
            }
            complete &= problem.is_none() || kind == SourceKind::Bmc;
            slot.health.up = problem.is_none();
            slot.health.last_error = problem;
            if let Some(bmc) = sample.bmc {
                self.bmc = Some(bmc);
            }
            for reason in sample.dropped {
                *slot.health.dropped.entry(reason).or_default() += 1;
            }
            if let Some(tdp) = sample.estimate_tdp_watts {
                self.estimate_tdp = Some(tdp);
            }
            for device in sample.devices {
                self.devices.insert(device.channel.clone(), (kind, device));
            }
            for gpu in sample.gpus {
                self.gpus.insert(gpu.uuid.clone(), gpu);
            }
            if kind == SourceKind::Bmc {
                // Its `other` is matched to our cycles over the BMC's own spans: keep them short.
                limit = limit.min(self.interval_s);
            }
            for reading in sample.energy {
                limit = limit.min(longest_wait_s(&reading.raw, self.interval_s));
                let ch = self
                    .channels
                    .entry(reading.channel.clone())
                    .or_insert_with(|| Channel {
                        acc: Accumulator::default(),
                        source: kind,
                    });
                let step = ch.acc.update(reading.raw, t);
                if reading.channel.domain == Domain::HwmonNode {
                    let m = self.node_meter.get_or_insert_with(NodeMeter::default);
                    let previous = m.last_t.replace(t);
                    if let (Step::Added { .. }, Some(p)) = (step, previous) {
                        m.covered_s += (t - p).max(0.0);
                    }
                }
                match step {
                    Step::Baseline | Step::Gap { .. } => {}
                    Step::Added { uj, wrapped } => {
                        if wrapped {
                            slot.health.wraps += 1;
                        }
                        added.insert(reading.channel, uj);
                    }
                    Step::Dropped(reason) => {
                        *slot.health.dropped.entry(reason).or_default() += 1;
                        tracing::warn!(
                            source = %kind,
                            channel = %reading.channel,
                            reason = reason.as_str(),
                            "energy delta discarded (not added to any total)"
                        );
                    }
                }
            }
        }
        // A source down may come back with any counter: until it reads again, no long wait.
        self.sources_limit_s = if complete { limit } else { self.interval_s };
        self.add_node(&added, interval_s, complete)
    }

    /// The longest wait until the next cycle that the sources allow, from the last cycle's
    /// readings: half the fastest wrap of each wrapping counter at its plausibility bound
    /// (`max_energy_range_uj` ÷ the zone's maximum power, `sources.rapl.max_zone_watts`), so
    /// that at most one wrap can happen between two readings even if a cycle comes a whole wait
    /// late (the accumulator restarts a counter that may have wrapped twice); the sampling interval for channels that
    /// integrate power (their accuracy depends on it) and for the BMC; no limit for counters that
    /// do not wrap. Before the first cycle, and after one where a source failed: the interval.
    pub fn sources_limit_s(&self) -> f64 {
        self.sources_limit_s
    }

    /// Adds one cycle's channel deltas to the node components. Measured channels win over the
    /// estimate for a component as soon as any measured channel of it exists, so the two are
    /// never added together.
    fn add_node(
        &mut self,
        added: &BTreeMap<ChannelId, u64>,
        interval_s: f64,
        complete: bool,
    ) -> CycleDelta {
        let mut delta = CycleDelta {
            interval_s,
            gpu_partitions: self
                .slots
                .iter()
                .flat_map(|s| s.source.gpu_partitions())
                .collect(),
            ..Default::default()
        };
        for component in Component::ALL {
            let measured = self.channels.iter().any(|(id, _)| {
                id.domain.component() == Some(component) && !id.domain.is_estimate()
            });
            let mut by_device: BTreeMap<DeviceKey, u64> = BTreeMap::new();
            let mut source = None;
            for (id, ch) in &self.channels {
                if id.domain.component() != Some(component) || id.domain.is_estimate() == measured {
                    continue;
                }
                source = Some(ch.source);
                if let Some(uj) = added.get(id) {
                    *by_device.entry(id.device.clone()).or_default() += uj;
                }
            }
            let Some(source) = source else { continue };
            let method = if measured {
                Method::Measured
            } else {
                Method::Estimated
            };
            let total: u64 = by_device.values().sum();
            let entry = self.node[component]
                .get_or_insert_with(|| (Accumulator::default(), method, source));
            entry.0 = Accumulator::resume(entry.0.total_uj().saturating_add(total));
            entry.1 = method;
            entry.2 = source;
            delta.by_component[component] = Some(by_device);
        }
        self.add_other(added, &mut delta, complete);
        delta
    }

    /// `other` = BMC − (cpu + dram + gpu), never negative. The BMC's energy arrives in chunks
    /// (one per BMC reading, every few seconds) covering a known span; RAPL and NVML arrive every
    /// cycle. So each time the BMC's total moves, the node's measured energy over the same span
    /// is taken as the average measured power since the previous move times that span, and
    /// `other` gets the difference. A negative difference (sensor noise, or a BMC that misses
    /// part of the node) is clamped to 0 and counted. Error bound: the difference between the
    /// measured power averaged over our cycles and over the BMC's span, for one BMC interval;
    /// it averages out over time.
    ///
    /// While a source that measures a component is down (`complete` false: NVML failed, a GPU
    /// fell off the bus, RAPL unreadable), the BMC still sees that component's energy, and the
    /// source adds it when it comes back (its counter kept counting). Taking BMC − measured then
    /// would count that energy twice, once as `other` and once in its component. So the BMC's
    /// updates are held, and the window is closed at the first update after every source is
    /// back, over the whole span: `other` is then BMC − measured over the outage too, and the
    /// node's total equals the BMC's. A source that never comes back leaves `other` uncounted
    /// from then on (the JoulebookSourceDown alert says why).
    ///
    /// Without a BMC, a whole-node hwmon meter (role `node`) takes its place: its energy arrives
    /// every cycle, covering the time since its previous reading, and the same rule applies.
    fn add_other(
        &mut self,
        added: &BTreeMap<ChannelId, u64>,
        delta: &mut CycleDelta,
        complete: bool,
    ) {
        // The BMC, else a whole-node hwmon meter, is the node's meter.
        let (covered, meter) = match (&self.bmc, &self.node_meter) {
            (Some(b), _) => (b.covered_seconds_total, SourceKind::Bmc),
            (None, Some(m)) => (m.covered_s, SourceKind::Hwmon),
            (None, None) => return,
        };
        let measured: u64 = [Component::Cpu, Component::Dram, Component::Gpu]
            .iter()
            .filter_map(|c| delta.by_component[*c].as_ref())
            .flat_map(|m| m.values())
            .sum();
        let w = &mut self.other_window;
        w.measured_uj = w.measured_uj.saturating_add(measured);
        w.elapsed_s += delta.interval_s;
        let bmc_uj = added
            .iter()
            .filter(|(id, _)| matches!(id.domain, Domain::Bmc | Domain::HwmonNode))
            .map(|(_, uj)| *uj)
            .sum::<u64>();
        let Some(previous) = w.covered_s.replace(covered) else {
            // First BMC energy this process sees (after a restart, the energy of the BMC's
            // whole first span arrives at once): the span it covers is unknown, so `other`
            // starts from the next BMC update rather than taking all of this as `other`.
            w.measured_uj = 0;
            w.elapsed_s = 0.0;
            return;
        };
        let span = covered - previous;
        if bmc_uj == 0 && span <= 0.0 {
            return;
        }
        if !complete {
            w.held_bmc_uj = w.held_bmc_uj.saturating_add(bmc_uj);
            w.held_span_s += span.max(0.0);
            return;
        }
        let bmc_uj = bmc_uj.saturating_add(std::mem::take(&mut w.held_bmc_uj));
        let span = span.max(0.0) + std::mem::take(&mut w.held_span_s);
        let avg_w = if w.elapsed_s > 0.0 {
            w.measured_uj as f64 / w.elapsed_s
        } else {
            0.0
        };
        let rest = bmc_uj as f64 - avg_w * span.max(0.0);
        let other = if rest < 0.0 {
            self.other_clamps += 1;
            0
        } else {
            rest.round() as u64
        };
        w.measured_uj = 0;
        w.elapsed_s = 0.0;
        let entry = self.node[Component::Other]
            .get_or_insert_with(|| (Accumulator::default(), Method::Measured, meter));
        entry.0 = Accumulator::resume(entry.0.total_uj().saturating_add(other));
        delta.by_component.other = Some([(DeviceKey::Node, other)].into());
    }

    pub fn snapshot(&self, unix_now: f64) -> Snapshot {
        let mut health: Vec<(SourceKind, Health)> = self
            .slots
            .iter()
            .map(|s| (s.source.kind(), s.health.clone()))
            .collect();
        for kind in &self.disabled {
            health.push((*kind, Health::default()));
        }
        health.sort_by_key(|(k, _)| *k);
        Snapshot {
            channels: self
                .channels
                .iter()
                .map(|(id, c)| (id.clone(), c.acc.joules()))
                .collect(),
            node: self
                .node
                .iter()
                .filter_map(|(c, n)| {
                    n.as_ref().map(|(acc, method, source)| ComponentTotal {
                        component: c,
                        joules: acc.joules(),
                        method: *method,
                        source: *source,
                    })
                })
                .collect(),
            gpus: self.gpus.values().cloned().collect(),
            devices: self.devices.values().cloned().collect(),
            partitions: self
                .slots
                .iter()
                .flat_map(|s| s.source.gpu_partitions())
                .collect(),
            health,
            node_info: self.node_info.clone(),
            cpu_tdp_watts: self.cpu_tdp,
            estimate_tdp_watts: self.estimate_tdp,
            interval_s: self.interval_s,
            last_sample_unix: unix_now,
            taken_at: Some(std::time::Instant::now()),
            bmc: self.bmc.clone(),
            other_clamps: self.other_clamps,
            ..Default::default()
        }
    }

    /// The GPU inventory for job discovery: NVML's GPUs (UUID, index, device minor), then the
    /// AMD and Intel sources' (id, index in PCI order, DRM minors).
    pub fn gpu_refs(&self) -> Vec<crate::jobs::GpuRef> {
        let minors: BTreeMap<String, u32> = self
            .slots
            .iter()
            .flat_map(|s| s.source.gpu_minors())
            .collect();
        let nvml = self.gpus.values().map(|g| crate::jobs::GpuRef {
            uuid: g.uuid.clone(),
            index: g.index,
            minor: minors.get(&g.uuid).copied(),
            ..Default::default()
        });
        // The sysfs GPU sources' GPUs (AMD, Intel), after NVML's.
        let drm = self
            .slots
            .iter()
            .flat_map(|s| s.source.drm_gpus())
            .map(|g| crate::jobs::GpuRef {
                uuid: g.id,
                index: g.index,
                minor: None,
                vendor: match g.vendor {
                    "amd" => crate::jobs::GpuVendor::Amd,
                    _ => crate::jobs::GpuVendor::Intel,
                },
                drm_minors: g.drm_minors,
                alias: g.alias,
                ..Default::default()
            });
        // MIG instances of NVML's GPUs (their parts with a GPU instance id).
        let mig: Vec<crate::jobs::GpuRef> = self
            .slots
            .iter()
            .flat_map(|s| s.source.gpu_partitions())
            .filter_map(|l| Some((self.gpus.get(&l.device)?.index, l.parts)))
            .flat_map(|(index, parts)| {
                parts.into_iter().filter_map(move |p| {
                    Some(crate::jobs::GpuRef {
                        uuid: p.id,
                        index,
                        mig: Some(p.instance?),
                        ..Default::default()
                    })
                })
            })
            .collect();
        nvml.chain(drm).chain(mig).collect()
    }

    /// (GPU UUID, pid) of the processes on the GPUs, from every GPU source.
    pub fn gpu_processes(&self) -> Vec<(String, u32)> {
        self.slots
            .iter()
            .flat_map(|s| s.source.gpu_processes())
            .collect()
    }

    pub fn node_info(&self) -> &NodeInfo {
        &self.node_info
    }

    /// The total of one channel in joules, if it exists.
    pub fn channel_joules(&self, id: &ChannelId) -> Option<f64> {
        self.channels.get(id).map(|c| c.acc.joules())
    }

    /// True if a measured channel exists for the domain (used to decide the estimate's role).
    pub fn has_domain(&self, domain: Domain) -> bool {
        self.channels.keys().any(|id| id.domain == domain)
    }
}

/// One log line per transition to down (or change of reason), with the fix.
/// A channel's part of [`Sampler::sources_limit_s`].
fn longest_wait_s(raw: &RawEnergy, interval_s: f64) -> f64 {
    match *raw {
        RawEnergy::Wrapping {
            range_uj,
            max_watts,
            ..
        } if max_watts.is_finite() && max_watts > 0.0 && range_uj > 0 => {
            range_uj as f64 / 1e6 / max_watts / 2.0
        }
        RawEnergy::Wrapping { .. } | RawEnergy::Power { .. } => interval_s,
        RawEnergy::Resetting { .. } => f64::INFINITY,
    }
}

fn log_down(kind: SourceKind, e: &SourceError) {
    match &e.fix {
        Some(fix) => tracing::warn!(source = %kind, error = %e.message, fix = %fix, "source down"),
        None => tracing::warn!(source = %kind, error = %e.message, "source down"),
    }
}

#[cfg(test)]
mod tests;
