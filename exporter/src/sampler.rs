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
    ChannelId, DeviceInfo, Domain, GpuInfo, RawEnergy, Source, SourceError, SourceKind,
};
use joulebook_common::Component;
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
    node: BTreeMap<Component, (Accumulator, Method, SourceKind)>,
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
            node: BTreeMap::new(),
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
            self.node.insert(c, (Accumulator::resume(uj), m, s));
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
            .map(|(c, (acc, m, s))| (*c, *m, *s, acc.total_uj()))
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
            let mut by_device: BTreeMap<String, u64> = BTreeMap::new();
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
            let entry = self
                .node
                .entry(component)
                .or_insert_with(|| (Accumulator::default(), method, source));
            entry.0 = Accumulator::resume(entry.0.total_uj().saturating_add(total));
            entry.1 = method;
            entry.2 = source;
            delta.by_component.insert(component, by_device);
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
            .filter_map(|c| delta.by_component.get(c))
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
        let entry = self
            .node
            .entry(Component::Other)
            .or_insert_with(|| (Accumulator::default(), Method::Measured, meter));
        entry.0 = Accumulator::resume(entry.0.total_uj().saturating_add(other));
        delta
            .by_component
            .insert(Component::Other, [(String::new(), other)].into());
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
                .map(|(c, (acc, method, source))| ComponentTotal {
                    component: *c,
                    joules: acc.joules(),
                    method: *method,
                    source: *source,
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
mod tests {
    use super::*;
    use crate::energy::DropReason;
    use crate::sources::{EnergyReading, RawEnergy, SourceSample};
    use std::sync::{Arc, Mutex};

    /// A scripted source: each sample pops the next result.
    struct Script {
        kind: SourceKind,
        steps: Arc<Mutex<Vec<Result<SourceSample, SourceError>>>>,
    }

    impl Source for Script {
        fn kind(&self) -> SourceKind {
            self.kind
        }
        fn sample(&mut self) -> Result<SourceSample, SourceError> {
            let mut s = self.steps.lock().unwrap();
            if s.is_empty() {
                Err(SourceError::new("script exhausted"))
            } else {
                s.remove(0)
            }
        }
    }

    fn rapl(values: &[(u32, u64)]) -> Result<SourceSample, SourceError> {
        Ok(SourceSample {
            energy: values
                .iter()
                .map(|(socket, uj)| EnergyReading {
                    channel: ChannelId::new(Domain::RaplPackage, socket.to_string()),
                    raw: RawEnergy::Wrapping {
                        uj: *uj,
                        range_uj: 1_000_000_000,
                        max_watts: 500.0,
                    },
                })
                .collect(),
            ..Default::default()
        })
    }

    fn estimate(watts: f64) -> Result<SourceSample, SourceError> {
        Ok(SourceSample {
            energy: vec![EnergyReading {
                channel: ChannelId::new(Domain::EstimatedCpu, ""),
                raw: RawEnergy::Power { watts },
            }],
            estimate_tdp_watts: Some(100.0),
            ..Default::default()
        })
    }

    fn sampler(scripts: Vec<(SourceKind, Vec<Result<SourceSample, SourceError>>)>) -> Sampler {
        let sources: Vec<Box<dyn Source>> = scripts
            .into_iter()
            .map(|(kind, steps)| {
                Box::new(Script {
                    kind,
                    steps: Arc::new(Mutex::new(steps)),
                }) as Box<dyn Source>
            })
            .collect();
        Sampler::new(sources, vec![], NodeInfo::default(), None, 1.0)
    }

    fn node_joules(s: &Snapshot, c: Component) -> f64 {
        s.node
            .iter()
            .find(|n| n.component == c)
            .map_or(0.0, |n| n.joules)
    }

    #[test]
    fn the_sources_bound_the_wait_by_their_fastest_wrap() {
        // A 10 kJ counter at a 500 W bound wraps in 20 s at the fastest: 10 s between reads.
        let zone = |range_uj| {
            Ok(SourceSample {
                energy: vec![EnergyReading {
                    channel: ChannelId::new(Domain::RaplDram, "0"),
                    raw: RawEnergy::Wrapping {
                        uj: 0,
                        range_uj,
                        max_watts: 500.0,
                    },
                }],
                ..Default::default()
            })
        };
        let mut s = sampler(vec![
            (SourceKind::Rapl, vec![zone(10_000_000_000)]),
            (SourceKind::Hwmon, vec![zone(40_000_000_000)]),
        ]);
        assert_eq!(
            s.sources_limit_s(),
            1.0,
            "the interval before the first cycle"
        );
        s.cycle(0.0);
        assert_eq!(s.sources_limit_s(), 10.0, "the fastest of the zones");
        let mut s = sampler(vec![(SourceKind::Estimate, vec![estimate(50.0)])]);
        s.cycle(0.0);
        assert_eq!(
            s.sources_limit_s(),
            1.0,
            "power is integrated every interval"
        );
        let nvml = Ok(SourceSample {
            energy: vec![EnergyReading {
                channel: ChannelId::new(Domain::Gpu, "GPU-1"),
                raw: RawEnergy::Resetting {
                    uj: 5,
                    max_watts: 700.0,
                },
            }],
            ..Default::default()
        });
        let mut s = sampler(vec![(SourceKind::Nvml, vec![nvml])]);
        s.cycle(0.0);
        assert_eq!(
            s.sources_limit_s(),
            f64::INFINITY,
            "a 64-bit counter sets no bound"
        );
        s.cycle(1.0);
        assert_eq!(s.sources_limit_s(), 1.0, "a source down: the interval");
    }

    #[test]
    fn wraps_and_sockets_add_up_and_downtime_loses_nothing() {
        let mut s = sampler(vec![(
            SourceKind::Rapl,
            vec![
                rapl(&[(0, 999_000_000), (1, 0)]),
                rapl(&[(0, 1_000_000), (1, 100_000_000)]),
                Err(SourceError::new("garbage in energy_uj")),
                rapl(&[(0, 3_000_000), (1, 300_000_000)]),
            ],
        )]);
        for t in 0..4 {
            s.cycle(t as f64);
        }
        let snap = s.snapshot(0.0);
        // Socket 0: 2 J across the wrap, then 2 J. Socket 1: 300 J (100 J, then 200 J over 2 s). The failed sample in between
        // loses nothing: the next delta spans it.
        assert_eq!(node_joules(&snap, Component::Cpu), 304.0);
        let (_, h) = &snap.health[0];
        assert_eq!(h.wraps, 1);
        assert!(h.up);
        assert_eq!(h.samples, 4);
    }

    #[test]
    fn estimate_fills_in_until_measurement_appears_and_totals_never_go_back() {
        let mut s = sampler(vec![
            (
                SourceKind::Rapl,
                vec![
                    Err(SourceError::new("permission denied")),
                    Err(SourceError::new("permission denied")),
                    rapl(&[(0, 0)]),
                    rapl(&[(0, 5_000_000)]),
                ],
            ),
            (
                SourceKind::Estimate,
                vec![
                    estimate(50.0),
                    estimate(50.0),
                    estimate(50.0),
                    estimate(50.0),
                ],
            ),
        ]);
        s.cycle(0.0);
        s.cycle(1.0);
        let snap = s.snapshot(0.0);
        assert_eq!(node_joules(&snap, Component::Cpu), 50.0);
        assert_eq!(snap.node[0].method, Method::Estimated);
        assert!(
            !snap
                .health
                .iter()
                .find(|h| h.0 == SourceKind::Rapl)
                .unwrap()
                .1
                .up
        );
        s.cycle(2.0);
        s.cycle(3.0);
        let snap = s.snapshot(0.0);
        // The estimate's 50 J stay; the measured 5 J are added; the estimate no longer counts.
        assert_eq!(node_joules(&snap, Component::Cpu), 55.0);
        assert_eq!(snap.node[0].method, Method::Measured);
        assert_eq!(snap.node[0].source, SourceKind::Rapl);
        // The estimate is still published under its own name.
        let est = snap
            .channels
            .iter()
            .find(|(id, _)| id.domain == Domain::EstimatedCpu)
            .unwrap();
        assert_eq!(est.1, 150.0);
    }

    #[test]
    fn implausible_deltas_are_counted_not_added() {
        let mut s = sampler(vec![(
            SourceKind::Rapl,
            vec![
                rapl(&[(0, 0)]),
                rapl(&[(0, 990_000_000)]),
                rapl(&[(0, 990_000_100)]),
            ],
        )]);
        let mut cpu = vec![];
        for t in 0..3 {
            let d = s.cycle(t as f64);
            cpu.push(
                d.by_component
                    .get(&Component::Cpu)
                    .map(|m| m.values().sum::<u64>()),
            );
        }
        assert_eq!(cpu, vec![Some(0), Some(0), Some(100)]);
        let snap = s.snapshot(0.0);
        assert_eq!(snap.health[0].1.dropped[&DropReason::Implausible], 1);
    }

    fn bmc(total_j: u64, covered_s: f64) -> Result<SourceSample, SourceError> {
        Ok(SourceSample {
            energy: vec![EnergyReading {
                channel: ChannelId::new(Domain::Bmc, ""),
                raw: RawEnergy::Resetting {
                    uj: total_j * 1_000_000,
                    max_watts: 0.0,
                },
            }],
            bmc: Some(crate::sources::bmc::BmcStatus {
                protocol: crate::sources::bmc::Protocol::Redfish,
                method: None,
                power_watts: None,
                gap_seconds_total: 0.0,
                covered_seconds_total: covered_s,
            }),
            ..Default::default()
        })
    }

    /// RAPL says 100 W every second; the BMC reports every 5 s. `other` is the BMC's energy minus
    /// the measured energy over the span it covers, and a BMC below RAPL is clamped and counted.
    #[test]
    fn other_is_bmc_minus_measured_over_the_same_span() {
        let rapl_steps = (0..16)
            .map(|i| rapl(&[(0, (i * 100_000_000) % 1_000_000_000)]))
            .collect();
        // Totals: 0 J at t=1 (baseline), +750 J over 5 s at t=6, +750 J at t=11, +300 J at t=15.
        let mut bmc_steps = vec![];
        for t in 0..16u64 {
            bmc_steps.push(match t {
                0..=5 => bmc(0, 0.0),
                6..=10 => bmc(750, 5.0),
                11..=14 => bmc(1500, 10.0),
                _ => bmc(1800, 14.0),
            });
        }
        let mut s = sampler(vec![
            (SourceKind::Rapl, rapl_steps),
            (SourceKind::Bmc, bmc_steps),
        ]);
        let mut other = vec![];
        for t in 0..16 {
            let d = s.cycle(t as f64);
            if let Some(o) = d.by_component.get(&Component::Other) {
                other.push((t, o[""]));
            }
        }
        // At t=6: 750 J − 100 W × 5 s = 250 J. At t=11 the same. At t=15: 300 J over 4 s of
        // 100 W is 400 J measured: clamped to 0.
        assert_eq!(other, vec![(6, 250_000_000), (11, 250_000_000), (15, 0)]);
        let snap = s.snapshot(0.0);
        assert_eq!(node_joules(&snap, Component::Other), 500.0);
        assert_eq!(snap.other_clamps, 1);
        assert!(snap
            .node
            .iter()
            .any(|n| n.component == Component::Other && n.source == SourceKind::Bmc));
    }

    /// Without a BMC, a whole-node hwmon meter (role node) is the node's meter: `other` is its
    /// energy minus the measured components over the span its readings cover, and comes from
    /// the hwmon source; the meter itself adds to no component.
    #[test]
    fn a_hwmon_node_meter_gives_other_without_a_bmc() {
        let rapl_steps = (0..6u64).map(|i| rapl(&[(0, i * 100_000_000)])).collect();
        let meter = |w: f64| {
            Ok(SourceSample {
                energy: vec![EnergyReading {
                    channel: ChannelId::new(Domain::HwmonNode, "node"),
                    raw: RawEnergy::Power { watts: w },
                }],
                ..Default::default()
            })
        };
        // 250 W, then the meter fails at t=3 (held), then 250 W again.
        let meter_steps = (0..6u64)
            .map(|i| match i {
                3 => Err(SourceError::new("simulated read error")),
                _ => meter(250.0),
            })
            .collect();
        let mut s = sampler(vec![
            (SourceKind::Rapl, rapl_steps),
            (SourceKind::Hwmon, meter_steps),
        ]);
        let mut other = vec![];
        for t in 0..6 {
            let d = s.cycle(t as f64);
            other.push(d.by_component.get(&Component::Other).map(|o| o[""]));
        }
        // 150 W a second; at t=4 the meter's 2 s since its last reading against RAPL's 2 s.
        assert_eq!(
            other,
            vec![
                None,
                Some(150_000_000),
                Some(150_000_000),
                None,
                Some(300_000_000),
                Some(150_000_000)
            ]
        );
        let snap = s.snapshot(0.0);
        assert_eq!(
            node_joules(&snap, Component::Cpu) + node_joules(&snap, Component::Other),
            1250.0
        );
        assert!(snap
            .node
            .iter()
            .any(|n| n.component == Component::Other && n.source == SourceKind::Hwmon));
    }

    /// RAPL at 100 W fails from t=3 to t=7 while its counter keeps counting; the BMC, at 150 W,
    /// reports every second. `other` must not take the CPU's energy of the outage as well as
    /// RAPL's catch-up: the node's total equals the BMC's, and `other` is its 50 W.
    #[test]
    fn a_source_down_does_not_count_its_energy_twice() {
        let rapl_steps = (0..12u64)
            .map(|i| match i {
                3..=7 => Err(SourceError::new("simulated read error")),
                _ => rapl(&[(0, (i * 100_000_000) % 1_000_000_000)]),
            })
            .collect();
        let bmc_steps = (0..12u64).map(|i| bmc(150 * i, i as f64)).collect();
        let mut s = sampler(vec![
            (SourceKind::Rapl, rapl_steps),
            (SourceKind::Bmc, bmc_steps),
        ]);
        let mut other = vec![];
        for t in 0..12 {
            let d = s.cycle(t as f64);
            other.push(d.by_component.get(&Component::Other).map(|o| o[""]));
        }
        // t=3..7 are held; at t=8 RAPL's 600 J catch-up arrives and the held 6 s of BMC close
        // at 6 × 50 W.
        assert_eq!(
            other,
            vec![
                None,
                Some(50_000_000),
                Some(50_000_000),
                None,
                None,
                None,
                None,
                None,
                Some(300_000_000),
                Some(50_000_000),
                Some(50_000_000),
                Some(50_000_000)
            ]
        );
        let snap = s.snapshot(0.0);
        let node = node_joules(&snap, Component::Cpu) + node_joules(&snap, Component::Other);
        // The BMC counted 150 W × 11 s (t=0 to t=11).
        assert_eq!(node, 1650.0);
        assert_eq!(snap.other_clamps, 0);
    }

    #[test]
    fn resumed_totals_continue() {
        let mut s = sampler(vec![(
            SourceKind::Rapl,
            vec![rapl(&[(0, 10)]), rapl(&[(0, 1_000_010)])],
        )]);
        s.resume(
            0.0,
            [(
                ChannelId::new(Domain::RaplPackage, "0"),
                SourceKind::Rapl,
                7_000_000,
                None,
            )],
            [(
                Component::Cpu,
                Method::Measured,
                SourceKind::Rapl,
                7_000_000,
            )],
        );
        s.cycle(0.0);
        s.cycle(1.0);
        let snap = s.snapshot(0.0);
        assert_eq!(node_joules(&snap, Component::Cpu), 8.0);
        assert_eq!(snap.channels[0].1, 8.0);
    }
}
