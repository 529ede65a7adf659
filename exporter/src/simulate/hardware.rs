//! The hardware model of one node, and the synthetic sources that read it through the exporter's
//! own [`Source`] trait, so the real sampler (wrap and reset correction, plausibility bounds) and
//! the real attribution run on it.
//!
//! Power follows the jobs: each CPU package and its DRAM draw `idle + (max − idle) × u`, where `u`
//! is the busy share of the socket's logical CPUs (each job contributes its CPUs on the socket ×
//! its utilisation); each GPU draws `idle + (max − idle) × its job's GPU utilisation`, capped at
//! its power limit, and `idle` when no job holds it. Energy is integrated per sample interval into
//! integer counters with the remainder carried, so the counters are exact integers that never
//! drift: RAPL-like counters in µJ that wrap at `max_energy_range_uj`
//! ([`RawEnergy::Wrapping`]) and NVML-like total-energy counters in mJ ([`RawEnergy::Resetting`]),
//! both starting at a random offset as real counters do.

use super::scenario::{ExtraZone, GpuMaker, NodeGroup};
use crate::energy::PowerIntegral;
use crate::sources::bmc::{BmcStatus, Method as BmcMethod, Protocol};
use crate::sources::rapl::RaplOptions;
use crate::sources::DeviceKey;
use crate::sources::{
    ChannelId, Domain, EnergyReading, RawEnergy, Source, SourceError, SourceKind, SourceSample,
};
use joulebook_common::PerComponent;
use std::sync::{Arc, Mutex, MutexGuard};

mod gpus;
pub use gpus::{AmdGpuSim, IntelGpuSim, NvmlSim};

/// One integrated counter: total in its unit since the simulation started, and the remainder.
#[derive(Clone, Debug, Default)]
struct Counter {
    total: u64,
    integral: PowerIntegral,
    /// What the last interval added, in the counter's unit.
    last: u64,
}

impl Counter {
    /// Adds `watts × dt`, in units of `per_joule` per joule (1e6 for µJ, 1e3 for mJ).
    fn add(&mut self, watts: f64, dt: f64, per_joule: f64) {
        self.last = self.integral.whole(watts * dt * per_joule);
        self.total += self.last;
    }
}

/// A GPU of the model.
#[derive(Clone, Debug)]
pub struct GpuModel {
    pub uuid: String,
    pub index: u32,
    pub model: String,
    pub pci_bus_id: String,
    pub idle_w: f64,
    pub max_w: f64,
    pub limit_w: f64,
    /// The counter's value when the simulation starts, mJ.
    offset_mj: u64,
    energy_mj: Counter,
    pub power_w: f64,
    /// Its MIG instances (with `gpus.mig`); empty: a whole GPU.
    pub mig: Vec<MigInstance>,
}

/// A MIG instance of a simulated GPU.
#[derive(Clone, Debug)]
pub struct MigInstance {
    pub uuid: String,
    /// Its GPU instance id (the `M` of `N.M`).
    pub gi: u32,
    pub slices: u32,
}

/// Streaming multiprocessors per MIG slice, as on an A100 (a 1g instance has 14 SMs, the 7g
/// instance 98: NVIDIA's MIG user guide, "A100 MIG profiles"). The split needs only the ratio.
pub const SMS_PER_SLICE: u64 = 14;

/// What a job can hold on a node: a whole GPU or a MIG instance, with its share of its GPU.
#[derive(Clone, Debug)]
pub struct Slot {
    pub id: String,
    /// Index of its physical GPU.
    pub gpu: usize,
    /// Its share of that GPU's energy (1 for a whole GPU, slices / 7 for an instance).
    pub share: f64,
}

/// The state of one node's hardware.
#[derive(Clone, Debug)]
pub struct NodeModel {
    pub sockets: usize,
    pub cpus_per_socket: u32,
    pkg: (f64, f64),
    dram: Option<(f64, f64)>,
    range_uj: u64,
    dram_range_uj: u64,
    pkg_offset: Vec<u64>,
    dram_offset: Vec<u64>,
    pkg_uj: Vec<Counter>,
    dram_uj: Vec<Counter>,
    pub gpus: Vec<GpuModel>,
    /// What the BMC sees beyond RAPL and the GPUs (idle, max watts), with a BMC.
    other: Option<(f64, f64)>,
    other_uj: Counter,
    /// Whole-node power of the last step (RAPL + GPUs + other), watts.
    node_w: f64,
    /// Seconds simulated so far.
    pub elapsed_s: f64,
    extra: Vec<ExtraZone>,
    /// Per socket: core and uncore zones; per node: psys (index 0).
    core_uj: Vec<Counter>,
    uncore_uj: Vec<Counter>,
    psys_uj: Counter,
    extra_offset: u64,
    /// Sources that fail their samples now (`faults` of kind `source_down`).
    pub down: Vec<SourceKind>,
    /// What every GPU counter has jumped by so far (`gpu_counter_jump`), mJ: in the raw counter
    /// only, never in the energy drawn.
    pub gpu_jump_mj: u64,
}

/// Shares of a socket's package power in its `core` zone (of the part above idle, and of idle)
/// and in `uncore`, and the platform power `psys` adds to packages and DRAM, for workstation
/// nodes. Illustrative round figures, not measurements: the simulator only needs the zones to
/// exist and move with the load, inside (core, uncore) or above (psys) the package.
const CORE_SHARE_ACTIVE: f64 = 0.9;
const CORE_SHARE_IDLE: f64 = 0.2;
const UNCORE_SHARE_IDLE: f64 = 0.05;
const PSYS_PLATFORM_WATTS: f64 = 15.0;

impl NodeModel {
    /// `offsets` gives the counters' starting values (drawn by the caller, so the model itself
    /// needs no random numbers).
    pub fn new(g: &NodeGroup, cluster: &str, node: &str, mut offsets: impl FnMut() -> u64) -> Self {
        let sockets = g.sockets as usize;
        let range = g.rapl_range_uj;
        let gpus = g
            .gpus
            .as_ref()
            .map(|spec| {
                (0..spec.count)
                    .map(|i| GpuModel {
                        uuid: match spec.vendor {
                            GpuMaker::Nvidia => gpu_uuid(&spec.uuid_prefix, cluster, node, i),
                            GpuMaker::Amd => amd_unique_id(cluster, node, i),
                            GpuMaker::Intel => intel_pci_address(i),
                        },
                        index: i,
                        model: spec.model.clone(),
                        // Bus ids as on a 4- or 8-GPU HGX board: one PCIe bus per GPU.
                        pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + 0x10 * i),
                        idle_w: spec.idle_watts,
                        max_w: spec.max_watts,
                        limit_w: spec.power_limit_watts.unwrap_or(spec.max_watts),
                        // Days to months of prior use, in mJ (a GPU at 300 W draws 2.6e10 mJ a day).
                        offset_mj: offsets() % 1_000_000_000_000,
                        energy_mj: Counter::default(),
                        power_w: spec
                            .idle_watts
                            .min(spec.power_limit_watts.unwrap_or(f64::MAX)),
                        mig: spec
                            .mig
                            .iter()
                            .flatten()
                            .enumerate()
                            .map(|(j, &slices)| MigInstance {
                                uuid: gpu_uuid("MIG", cluster, &format!("{node}/{i}"), j as u32),
                                // NVML numbers GPU instances from 1 upwards in creation order.
                                gi: j as u32 + 1,
                                slices,
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        NodeModel {
            sockets,
            cpus_per_socket: g.cores_per_socket * g.threads_per_core,
            pkg: (g.package_watts.idle, g.package_watts.max),
            dram: g.dram_watts.map(|p| (p.idle, p.max)),
            range_uj: range,
            dram_range_uj: g.rapl_dram_range_uj,
            pkg_offset: (0..sockets).map(|_| offsets() % range).collect(),
            dram_offset: (0..sockets)
                .map(|_| offsets() % g.rapl_dram_range_uj)
                .collect(),
            pkg_uj: vec![Counter::default(); sockets],
            dram_uj: vec![Counter::default(); sockets],
            gpus,
            other: g.bmc.map(|b| (b.other_watts.idle, b.other_watts.max)),
            other_uj: Counter::default(),
            node_w: 0.0,
            elapsed_s: 0.0,
            extra: g.rapl_extra_zones.clone(),
            core_uj: vec![Counter::default(); sockets],
            uncore_uj: vec![Counter::default(); sockets],
            psys_uj: Counter::default(),
            extra_offset: offsets() % range,
            down: Vec::new(),
            gpu_jump_mj: 0,
        }
    }

    /// Advances the model by `dt` seconds. `socket_busy[s]` is the busy share of socket `s`
    /// (0..1), `gpu_util[g]` the utilisation of GPU `g` (`None`: no job holds it).
    pub fn step(&mut self, dt: f64, socket_busy: &[f64], gpu_util: &[Option<f64>]) {
        let mut node_w = 0.0;
        let mut busy_sum = 0.0;
        for s in 0..self.sockets {
            let u = socket_busy.get(s).copied().unwrap_or(0.0).clamp(0.0, 1.0);
            busy_sum += u;
            let (idle, max) = self.pkg;
            let pkg_w = idle + (max - idle) * u;
            self.pkg_uj[s].add(pkg_w, dt, 1e6);
            node_w += pkg_w;
            if let Some((idle, max)) = self.dram {
                let w = idle + (max - idle) * u;
                self.dram_uj[s].add(w, dt, 1e6);
                node_w += w;
            }
            if self.extra.contains(&ExtraZone::Core) {
                let w = CORE_SHARE_IDLE * idle + CORE_SHARE_ACTIVE * (pkg_w - idle);
                self.core_uj[s].add(w, dt, 1e6);
            }
            if self.extra.contains(&ExtraZone::Uncore) {
                self.uncore_uj[s].add(UNCORE_SHARE_IDLE * idle, dt, 1e6);
            }
        }
        if self.extra.contains(&ExtraZone::Psys) {
            self.psys_uj.add(node_w + PSYS_PLATFORM_WATTS, dt, 1e6);
        }
        for (g, gpu) in self.gpus.iter_mut().enumerate() {
            let u = gpu_util
                .get(g)
                .copied()
                .flatten()
                .unwrap_or(0.0)
                .clamp(0.0, 1.0);
            let w = (gpu.idle_w + (gpu.max_w - gpu.idle_w) * u).min(gpu.limit_w);
            gpu.power_w = w;
            gpu.energy_mj.add(w, dt, 1e3);
            node_w += w;
        }
        if let Some((idle, max)) = self.other {
            let u = busy_sum / self.sockets.max(1) as f64;
            let w = idle + (max - idle) * u;
            self.other_uj.add(w, dt, 1e6);
            node_w += w;
        }
        self.node_w = node_w;
        self.elapsed_s += dt;
    }

    /// The whole node's energy as its BMC measures it, µJ since the simulation started: the
    /// counters of the modelled components plus `other`.
    pub fn bmc_uj(&self) -> u64 {
        let PerComponent {
            cpu,
            dram,
            gpu,
            other,
        } = self.totals_uj();
        cpu + dram + gpu + other
    }

    fn failing(&self, kind: SourceKind) -> Result<(), SourceError> {
        if self.down.contains(&kind) {
            Err(SourceError::new(format!(
                "simulated fault: the {kind} source fails its samples"
            )))
        } else {
            Ok(())
        }
    }

    /// Energy of the last step per socket (package, dram) and per GPU, µJ, as the exporter's
    /// counters see it (NVML counts whole mJ).
    pub fn last_deltas(&self) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        (
            self.pkg_uj.iter().map(|c| c.last).collect(),
            self.dram_uj.iter().map(|c| c.last).collect(),
            self.gpus.iter().map(|g| g.energy_mj.last * 1000).collect(),
        )
    }

    /// Energy since the start by component (cpu, dram, gpu, other), µJ.
    pub fn totals_uj(&self) -> PerComponent<u64> {
        PerComponent {
            cpu: self.pkg_uj.iter().map(|c| c.total).sum(),
            dram: if self.dram.is_some() {
                self.dram_uj.iter().map(|c| c.total).sum()
            } else {
                0
            },
            gpu: self.gpus.iter().map(|g| g.energy_mj.total * 1000).sum(),
            other: self.other_uj.total,
        }
    }

    /// `other` of the last step, µJ (0 without a BMC).
    pub fn last_other_uj(&self) -> u64 {
        self.other_uj.last
    }

    pub fn has_dram(&self) -> bool {
        self.dram.is_some()
    }

    /// What jobs can hold, in the order the scheduler numbers them: each GPU, or each GPU's
    /// MIG instances.
    pub fn slots(&self) -> Vec<Slot> {
        let mut out = Vec::new();
        for (g, gpu) in self.gpus.iter().enumerate() {
            if gpu.mig.is_empty() {
                out.push(Slot {
                    id: gpu.uuid.clone(),
                    gpu: g,
                    share: 1.0,
                });
            }
            for m in &gpu.mig {
                out.push(Slot {
                    id: m.uuid.clone(),
                    gpu: g,
                    share: f64::from(m.slices) / f64::from(super::scenario::MIG_SLICES),
                });
            }
        }
        out
    }
}

/// A stable AMD GPU id as the amdgpu source publishes it: a `unique_id`, 16 hex digits.
pub fn amd_unique_id(cluster: &str, node: &str, index: u32) -> String {
    gpu_uuid("x", cluster, node, index)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(16)
        .collect()
}

/// An Intel GPU's id as the intel_gpu source publishes it: its PCI address as the kernel's
/// `PCI_SLOT_NAME` writes it (`0000:18:00.0`), one bus per GPU (14 to a PCI domain, so that 64
/// GPUs stay distinct).
pub fn intel_pci_address(index: u32) -> String {
    format!("{:04x}:{:02x}:00.0", index / 14, 0x18 + 0x10 * (index % 14))
}

/// A stable, UUID-shaped GPU id: `<prefix>-` and 32 hex digits from SHA-256 of cluster, node and
/// index, formatted 8-4-4-4-12 as NVML prints them.
pub fn gpu_uuid(prefix: &str, cluster: &str, node: &str, index: u32) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{cluster}/{node}/{index}").as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{prefix}-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub type Shared = Arc<Mutex<NodeModel>>;

fn lock(m: &Shared) -> MutexGuard<'_, NodeModel> {
    // Nothing panics while holding the lock; if it ever did, the counters are still whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// RAPL-like source: one package and (where modelled) one DRAM zone per socket.
pub struct RaplSim {
    pub model: Shared,
}

impl Source for RaplSim {
    fn kind(&self) -> SourceKind {
        SourceKind::Rapl
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        let m = lock(&self.model);
        m.failing(SourceKind::Rapl)?;
        // The live RAPL source bounds every zone by the same max_zone_watts.
        let max_watts = RaplOptions::default().max_zone_watts;
        let mut energy = Vec::with_capacity(2 * m.sockets);
        for s in 0..m.sockets {
            energy.push(EnergyReading {
                channel: ChannelId::of(Domain::RaplPackage, DeviceKey::Socket(s as u32)),
                raw: RawEnergy::Wrapping {
                    uj: (m.pkg_offset[s] + m.pkg_uj[s].total) % m.range_uj,
                    range_uj: m.range_uj,
                    max_watts,
                },
            });
            if m.dram.is_some() {
                energy.push(EnergyReading {
                    channel: ChannelId::of(Domain::RaplDram, DeviceKey::Socket(s as u32)),
                    raw: RawEnergy::Wrapping {
                        uj: (m.dram_offset[s] + m.dram_uj[s].total) % m.dram_range_uj,
                        range_uj: m.dram_range_uj,
                        max_watts,
                    },
                });
            }
            for (zone, domain, counter) in [
                (ExtraZone::Core, Domain::RaplCore, &m.core_uj[s]),
                (ExtraZone::Uncore, Domain::RaplUncore, &m.uncore_uj[s]),
            ] {
                if m.extra.contains(&zone) {
                    energy.push(EnergyReading {
                        channel: ChannelId::of(domain, DeviceKey::Socket(s as u32)),
                        raw: RawEnergy::Wrapping {
                            uj: (m.extra_offset + counter.total) % m.range_uj,
                            range_uj: m.range_uj,
                            max_watts,
                        },
                    });
                }
            }
        }
        if m.extra.contains(&ExtraZone::Psys) {
            energy.push(EnergyReading {
                channel: ChannelId::of(Domain::RaplPsys, DeviceKey::Node),
                raw: RawEnergy::Wrapping {
                    uj: (m.extra_offset + m.psys_uj.total) % m.range_uj,
                    range_uj: m.range_uj,
                    max_watts,
                },
            });
        }
        Ok(SourceSample {
            energy,
            ..Default::default()
        })
    }
}

/// BMC-like source: the whole node's energy, integrated by the source itself from its own start
/// as the live BMC source does (a Redfish energy counter read every sample interval), so a new
/// exporter process starts its BMC total afresh.
pub struct BmcSim {
    pub model: Shared,
    /// The node's BMC energy and simulated seconds when this source was created.
    start: (u64, f64),
}

impl BmcSim {
    pub fn new(model: Shared) -> Self {
        let start = {
            let m = lock(&model);
            (m.bmc_uj(), m.elapsed_s)
        };
        BmcSim { model, start }
    }
}

impl Source for BmcSim {
    fn kind(&self) -> SourceKind {
        SourceKind::Bmc
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        let m = lock(&self.model);
        m.failing(SourceKind::Bmc)?;
        Ok(SourceSample {
            energy: vec![EnergyReading {
                channel: ChannelId::new(Domain::Bmc, ""),
                // As the live source: its own running total, judged by the source itself.
                raw: RawEnergy::Resetting {
                    uj: m.bmc_uj() - self.start.0,
                    max_watts: 0.0,
                },
            }],
            bmc: Some(BmcStatus {
                protocol: Protocol::Redfish,
                method: Some(BmcMethod::Counter),
                power_watts: Some(m.node_w),
                gap_seconds_total: 0.0,
                covered_seconds_total: m.elapsed_s - self.start.1,
            }),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_remainders_and_never_drift() {
        let mut c = Counter::default();
        for _ in 0..1000 {
            c.add(0.3333333, 1.0, 1e6);
        }
        assert_eq!(c.total, 333_333_300 - 1);
        let mut c = Counter::default();
        for _ in 0..3 {
            c.add(1.0 / 3.0, 1.0, 1e3);
        }
        assert!(c.total == 999 || c.total == 1000);
    }

    #[test]
    fn a_mig_gpu_is_held_by_instance_and_reported_as_partitions() {
        let g: crate::simulate::scenario::NodeGroup = serde_saphyr::from_str(
            "name: mig\ncount: 1\nsockets: 1\ncores_per_socket: 8\nmemory: 64GiB\n\
             cpu_model: Xeon\npackage_watts: {idle: 60, max: 205}\n\
             gpus: {count: 1, model: A100, idle_watts: 55, max_watts: 400, mig: [3, 2]}\n",
        )
        .unwrap();
        assert_eq!(g.name, "mig");
        let model = NodeModel::new(&g, "c", "mig01", || 0);
        let slots = model.slots();
        assert_eq!(slots.len(), 2);
        assert!(slots.iter().all(|x| x.id.starts_with("MIG-") && x.gpu == 0));
        assert_eq!(slots[0].share, 3.0 / 7.0);
        assert_eq!(slots[1].share, 2.0 / 7.0);
        let nvml = NvmlSim {
            model: Arc::new(Mutex::new(model)),
        };
        let p = nvml.gpu_partitions();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].total_weight, 98);
        let parts: Vec<(&str, u64, Option<u32>)> = p[0]
            .parts
            .iter()
            .map(|x| (x.id.as_str(), x.weight, x.instance))
            .collect();
        assert_eq!(
            parts,
            [
                (slots[0].id.as_str(), 42, Some(1)),
                (slots[1].id.as_str(), 28, Some(2))
            ]
        );
    }

    #[test]
    fn uuids_look_like_nvml() {
        let u = gpu_uuid("GPU", "c", "gpu01", 3);
        assert_eq!(u.len(), 40);
        assert!(u.starts_with("GPU-"));
        assert_eq!(u.matches('-').count(), 5);
        assert_ne!(u, gpu_uuid("GPU", "c", "gpu01", 2));
    }
}
