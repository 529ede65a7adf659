//! Energy sources. Each source reads one kind of hardware (or models it) and returns plain data;
//! it never touches Prometheus types and keeps no energy totals. The [`crate::sampler`] turns the
//! raw readings into wrap-corrected joules. One exception: the BMC answers every few seconds,
//! slower than the sampler asks, so [`bmc`] integrates its readings against their own timestamps
//! and hands the sampler its own monotonic counter (see that module for the rule).
//!
//! To add a source: implement [`Source`] in a new module, give it a [`SourceKind`], and build it in
//! [`crate::app::build_sources`] behind its configuration switch. A source whose hardware is slow
//! (the BMC) reads it on its own thread and only hands over the latest result in `sample()`.

pub mod amdgpu;
pub mod bmc;
pub mod bmc_status;
mod device;
pub mod estimate;
pub mod gpu_metrics;
pub mod grace;
pub mod hwmon;
pub mod hwmon_sensors;
pub mod intel_gpu;
pub mod kfd;
pub mod nvml;
pub mod rapl;

use crate::energy::DropReason;
/// Defined with the arithmetic that reads it; sources produce it.
pub use crate::energy::RawEnergy;
pub use device::DeviceKey;
use joulebook_common::Component;
use std::fmt;
use std::path::Path;

/// The sources the exporter knows, as named in the `source` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    Rapl,
    Nvml,
    Estimate,
    /// Whole-node power from the baseboard management controller (Redfish or IPMI DCMI).
    Bmc,
    /// AMD GPUs through the amdgpu driver's sysfs files (`gpu_metrics`, hwmon).
    AmdGpu,
    /// Intel discrete GPUs through the xe and i915 drivers' hwmon energy counters.
    IntelGpu,
    /// NVIDIA Grace and Grace Hopper: the firmware's ACPI power meters.
    Grace,
    /// hwmon sensors named in the configuration.
    Hwmon,
    /// Not an energy source: job discovery from cgroups, reported with the same health metrics
    /// so one alert covers "no data" from any part of the exporter.
    Jobs,
}

impl SourceKind {
    pub const ALL: [SourceKind; 9] = [
        SourceKind::Rapl,
        SourceKind::Nvml,
        SourceKind::Estimate,
        SourceKind::Bmc,
        SourceKind::AmdGpu,
        SourceKind::IntelGpu,
        SourceKind::Grace,
        SourceKind::Hwmon,
        SourceKind::Jobs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Rapl => "rapl",
            SourceKind::Nvml => "nvml",
            SourceKind::Estimate => "estimate",
            SourceKind::Bmc => "bmc",
            SourceKind::AmdGpu => "amdgpu",
            SourceKind::IntelGpu => "intel_gpu",
            SourceKind::Grace => "grace",
            SourceKind::Hwmon => "hwmon",
            SourceKind::Jobs => "jobs",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an energy channel measures. Each domain is its own metric, so no sum double counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Domain {
    RaplPackage,
    RaplCore,
    RaplUncore,
    RaplDram,
    RaplPsys,
    Gpu,
    /// An AMD GPU (an MI250X package on its primary die).
    AmdGpu,
    /// An AMD APU's whole socket (MI300A: its Zen 4 cores, GPU and HBM). It overlaps the CPU
    /// package RAPL measures, so it adds to no component.
    AmdApu,
    /// An Intel discrete GPU (its card, else its package).
    IntelGpu,
    /// A Grace socket (CPU and SysIO rails, LPDDR5X, regulator losses).
    GraceSocket,
    /// The CPU rail of a Grace socket (inside [`Domain::GraceSocket`]).
    GraceCpuRail,
    /// The SysIO rail of a Grace socket (inside [`Domain::GraceSocket`]).
    GraceSysioRail,
    /// A Grace Hopper module: the Grace socket, the Hopper GPU and its HBM. Overlaps cpu and
    /// gpu, so it adds to no component.
    GraceModule,
    /// A configured hwmon sensor by its role (`sources::hwmon_sensors`): a whole-node meter
    /// (overlaps everything, adds to no component; `other` is derived from it when there is no
    /// BMC), a cpu, dram or gpu meter, or none.
    HwmonNode,
    HwmonCpu,
    HwmonDram,
    HwmonGpu,
    HwmonOther,
    EstimatedCpu,
    EstimatedDram,
    /// The whole node as its BMC measures it (wall or PSU input power: fans, disks, NICs and PSU
    /// losses included). It overlaps every other domain, so it adds to no component; the node's
    /// `other` component is derived from it (BMC minus cpu, dram and gpu) by the sampler.
    Bmc,
}

impl Domain {
    /// The node component this domain adds to, or `None` for domains that overlap another
    /// (core and uncore are inside package; psys covers the whole platform).
    pub fn component(self) -> Option<Component> {
        match self {
            Domain::RaplPackage | Domain::EstimatedCpu | Domain::GraceSocket | Domain::HwmonCpu => {
                Some(Component::Cpu)
            }
            Domain::HwmonDram => Some(Component::Dram),
            Domain::HwmonGpu => Some(Component::Gpu),
            Domain::HwmonNode | Domain::HwmonOther | Domain::AmdApu => None,
            Domain::RaplDram | Domain::EstimatedDram => Some(Component::Dram),
            Domain::Gpu | Domain::AmdGpu | Domain::IntelGpu => Some(Component::Gpu),
            // Bmc: the whole node, from which `other` is derived rather than added.
            Domain::RaplCore | Domain::RaplUncore | Domain::RaplPsys | Domain::Bmc => None,
            // Inside the Grace socket, or overlapping it and the GPU.
            Domain::GraceCpuRail | Domain::GraceSysioRail | Domain::GraceModule => None,
        }
    }

    /// True for modelled domains, which must never be mistaken for measurements.
    pub fn is_estimate(self) -> bool {
        matches!(self, Domain::EstimatedCpu | Domain::EstimatedDram)
    }
}

/// Identifies one energy counter: a domain and the device it belongs to (socket, die of a
/// socket, GPU, sensor, or the node for node-wide domains).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId {
    pub domain: Domain,
    pub device: DeviceKey,
}

impl ChannelId {
    /// The channel whose device prints as `device` under `domain` ([`DeviceKey::parse`]): for
    /// keys read back from text (the state file) and tests. Sources build the key they know.
    pub fn new(domain: Domain, device: impl AsRef<str>) -> Self {
        ChannelId {
            domain,
            device: DeviceKey::parse(domain, device.as_ref()),
        }
    }

    /// A channel of a typed device.
    pub fn of(domain: Domain, device: DeviceKey) -> Self {
        ChannelId { domain, device }
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.device == DeviceKey::Node {
            write!(f, "{:?}", self.domain)
        } else {
            write!(f, "{:?}[{}]", self.domain, self.device)
        }
    }
}

/// One channel's reading in a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyReading {
    pub channel: ChannelId,
    pub raw: RawEnergy,
}

/// What a GPU source knows about a GPU besides its energy.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuInfo {
    pub uuid: String,
    pub index: u32,
    pub model: String,
    pub pci_bus_id: String,
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
    /// True when the energy comes from NVML's total-energy counter, false for power integration.
    pub energy_counter: bool,
}

/// A device measured by one of the sysfs sources (AMD and Intel GPUs, Grace, hwmon), published
/// in `joulebook_energy_device_info`. NVIDIA GPUs have their own [`GpuInfo`].
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    /// The channel its energy is published under (a device without energy of its own, like an
    /// MI250X secondary die, still names the channel it would have).
    pub channel: ChannelId,
    /// The kernel's name for it (`card0`, a hwmon label).
    pub name: String,
    pub model: String,
    /// How its energy is obtained: `counter`, `power_integration`, or where it is counted
    /// instead (`primary_die`).
    pub method: &'static str,
}

/// A GPU of a sysfs source (AMD, Intel) as job discovery needs it, to map a job's GPU list to
/// the channel its energy is published under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrmGpu {
    /// The channel's device (the `gpu_uuid` label): AMD's `unique_id` or PCI address, Intel's
    /// PCI address.
    pub id: String,
    /// `amd` or `intel`: which runtime's variables (`ROCR_VISIBLE_DEVICES`,
    /// `ZE_AFFINITY_MASK`) number it.
    pub vendor: &'static str,
    /// Position among the source's GPUs in PCI address order: the order in which ROCm and Level
    /// Zero enumerate devices, and in which Slurm's `AutoDetect` lists them.
    pub index: u32,
    /// Minors of its DRM character devices (major 226): `/dev/dri/cardN` and `renderD<M>`.
    pub drm_minors: Vec<u32>,
    /// Another name runtimes give it: ROCm's `GPU-<unique_id>`.
    pub alias: Option<String>,
}

/// A measured device whose energy belongs to parts that jobs hold apart: an NVIDIA GPU's MIG
/// instances, an AMD GPU's compute partitions, an MI250X package's two dies. Split by
/// [`crate::partition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuPartitions {
    /// The channel's device (the id the energy is measured under).
    pub device: String,
    /// The device's whole weight (all its SMs); what its parts do not weigh stays the device's.
    pub total_weight: u64,
    pub parts: Vec<GpuPart>,
}

/// One part of a [`GpuPartitions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuPart {
    /// The id jobs name it by (`MIG-…`, a die's id).
    pub id: String,
    /// Its share of the device: streaming multiprocessors, compute units, 1 per die.
    pub weight: u64,
    /// Its measured activity over the last interval, where the device reports it.
    pub activity: Option<u64>,
    /// A MIG instance's GPU instance id (the `M` of `N.M` in the mapping directory).
    pub instance: Option<u32>,
}

/// Everything a source returns from one sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceSample {
    pub energy: Vec<EnergyReading>,
    pub gpus: Vec<GpuInfo>,
    /// Devices of the sysfs sources.
    pub devices: Vec<DeviceInfo>,
    /// For the estimate: the TDP it used, in watts.
    pub estimate_tdp_watts: Option<f64>,
    /// For the BMC: its last power reading, how its energy is obtained, and its gaps.
    pub bmc: Option<bmc_status::BmcStatus>,
    /// Readings the source itself discarded since its last sample (sources that integrate
    /// internally, like the BMC, check plausibility against their own timestamps). Counted in
    /// `joulebook_samples_dropped_total`; not problems, so the source stays up.
    pub dropped: Vec<DropReason>,
    /// Partial failures: the sample holds what could be read (e.g. the GPUs still on the bus),
    /// and each problem is logged once and marks the source down until it clears.
    pub problems: Vec<SourceError>,
}

/// A source failed. `message` says what happened and names the file or call; `fix` tells the
/// administrator what to do about it. Both end up in one log line and on the landing page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    pub message: String,
    pub fix: Option<String>,
}

impl SourceError {
    pub fn new(message: impl Into<String>) -> Self {
        SourceError {
            message: message.into(),
            fix: None,
        }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, " (fix: {fix})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceError {}

/// The one interface every energy source implements.
pub trait Source: Send {
    fn kind(&self) -> SourceKind;

    /// Takes one sample. An error marks the source down until a later sample succeeds; the
    /// exporter keeps serving everything else.
    fn sample(&mut self) -> Result<SourceSample, SourceError>;

    /// For GPU sources: (GPU UUID, pid) of the processes running on each GPU, the last resort
    /// of the GPU → job mapping. Called only when job discovery needs it.
    fn gpu_processes(&self) -> Vec<(String, u32)> {
        Vec::new()
    }

    /// For GPU sources: (GPU UUID, minor number of /dev/nvidia<minor>), to read cgroup device
    /// lists.
    fn gpu_minors(&self) -> Vec<(String, u32)> {
        Vec::new()
    }

    /// For the sysfs GPU sources: the GPUs found, for the GPU → job mapping.
    fn drm_gpus(&self) -> Vec<DrmGpu> {
        Vec::new()
    }

    /// For GPU sources: the devices whose energy is split between parts (MIG, dies).
    fn gpu_partitions(&self) -> Vec<GpuPartitions> {
        Vec::new()
    }
}

/// Major number of the DRM character devices (`/dev/dri/card*`, `/dev/dri/renderD*`).
pub const DRM_MAJOR: u32 = 226;

/// The DRM minors of a GPU's PCI device `dev` (`<sysfs>/class/drm/cardN/device`): the `dev`
/// files under `dev/drm/` (one folder per minor: `card1`, `renderD129`), else card `n`'s minor
/// and its render node's, `128 + n`, as `drm_minor_alloc()` (`drm_drv.c`) numbers a device's
/// render minor in the legacy range (base 128) at the same index as its primary.
pub fn drm_minors(dev: &Path, n: u32) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dev.join("drm"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("dev")).ok()?;
            let (major, minor) = text.trim().split_once(':')?;
            (major.parse::<u32>().ok()? == DRM_MAJOR).then_some(())?;
            minor.parse().ok()
        })
        .collect();
    if out.is_empty() {
        out = vec![n, 128 + n];
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The index of a [`DrmGpu`] is its PCI address order: takes each GPU with its PCI address and returns them in that order, numbered from 0.
pub fn indexed_by_pci(mut gpus: Vec<(String, DrmGpu)>) -> Vec<DrmGpu> {
    gpus.sort_by(|a, b| a.0.cmp(&b.0));
    gpus.into_iter()
        .enumerate()
        .map(|(i, (_, g))| DrmGpu {
            index: i as u32,
            ..g
        })
        .collect()
}

#[cfg(test)]
mod drm_tests {
    use super::*;

    #[test]
    fn drm_minors_from_the_device_else_the_card_number() {
        let t = tempfile::tempdir().unwrap();
        let dev = t.path().join("card1/device");
        for (name, dev_no) in [("card1", "226:1"), ("renderD129", "226:129")] {
            std::fs::create_dir_all(dev.join("drm").join(name)).unwrap();
            std::fs::write(
                dev.join("drm").join(name).join("dev"),
                format!("{dev_no}\n"),
            )
            .unwrap();
        }
        // A folder without a `dev` file (the kernel's `drm/` holds only minors) is skipped.
        std::fs::create_dir_all(dev.join("drm/other")).unwrap();
        assert_eq!(drm_minors(&dev, 7), [1, 129]);
        assert_eq!(drm_minors(&t.path().join("card3/device"), 3), [3, 131]);
        let g: Vec<(String, DrmGpu)> = ["0000:c6:00.0", "0000:11:00.0"]
            .into_iter()
            .map(|pci| {
                let d = DrmGpu {
                    id: pci.into(),
                    vendor: "amd",
                    index: 9,
                    drm_minors: vec![],
                    alias: None,
                };
                (pci.to_string(), d)
            })
            .collect();
        let g = indexed_by_pci(g);
        assert_eq!(
            g.iter()
                .map(|d| (d.id.as_str(), d.index))
                .collect::<Vec<_>>(),
            [("0000:11:00.0", 0), ("0000:c6:00.0", 1)]
        );
    }
}
