//! Node groups: the hardware of each group's nodes (CPUs, RAPL zones, GPUs, BMC).

use super::Bytes;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    pub name: String,
    pub count: u32,
    /// Node names are `<prefix><number>`; default: the group's name.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Slurm partition of the group's nodes; default: the group's name.
    #[serde(default)]
    pub partition: Option<String>,
    pub sockets: u32,
    pub cores_per_socket: u32,
    #[serde(default = "one")]
    pub threads_per_core: u32,
    pub memory: Bytes,
    pub cpu_model: String,
    /// Default: from the model name (Intel → GenuineIntel, AMD → AuthenticAMD).
    #[serde(default)]
    pub cpu_vendor: Option<String>,
    /// RAPL package power per socket, idle and at full load.
    pub package_watts: Power,
    /// RAPL DRAM power per socket; default: no DRAM zone (AMD).
    #[serde(default)]
    pub dram_watts: Option<Power>,
    /// `max_energy_range_uj` of every RAPL zone; small values force counter wraps.
    #[serde(default = "default_rapl_range")]
    pub rapl_range_uj: u64,
    /// `max_energy_range_uj` of the DRAM zones (their energy unit differs from the package's).
    #[serde(default = "default_rapl_dram_range")]
    pub rapl_dram_range_uj: u64,
    #[serde(default)]
    pub gpus: Option<Gpus>,
    /// A BMC (Redfish) measuring the whole node: RAPL + GPUs + what they miss.
    #[serde(default)]
    pub bmc: Option<Bmc>,
    /// RAPL zones besides package and DRAM that the node shows (`core`, `uncore`, `psys`), as on
    /// workstation-class CPUs. The exporter publishes them and adds none to the node.
    #[serde(default)]
    pub rapl_extra_zones: Vec<ExtraZone>,
}

/// The node's BMC: it measures what RAPL and NVML measure plus `other_watts` (fans, disks,
/// NICs, power-supply losses), which follows the node's CPU load between idle and max.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bmc {
    pub other_watts: Power,
}

/// A RAPL zone below the package (`core`: the cores, `uncore`: the integrated GPU) or above it
/// (`psys`: the platform).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExtraZone {
    Core,
    Uncore,
    Psys,
}

fn one() -> u32 {
    1
}

/// The `max_energy_range_uj` of Intel server packages: 2^32 counts of 61.035 µJ (the energy unit
/// 2^-14 J in MSR_RAPL_POWER_UNIT), as `/sys/class/powercap/intel-rapl:0/max_energy_range_uj`
/// shows on Xeon Scalable nodes.
pub const DEFAULT_RAPL_RANGE_UJ: u64 = 262_143_328_850;

fn default_rapl_range() -> u64 {
    DEFAULT_RAPL_RANGE_UJ
}

/// The DRAM zones' range on the same nodes: 2^32 counts of 15.3 µJ (DRAM energy unit 2^-16 J),
/// as `intel-rapl:0:2/max_energy_range_uj` shows (65712999613 µJ on a Xeon Gold 6248).
pub const DEFAULT_RAPL_DRAM_RANGE_UJ: u64 = 65_712_999_613;

fn default_rapl_dram_range() -> u64 {
    DEFAULT_RAPL_DRAM_RANGE_UJ
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    pub idle: f64,
    pub max: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpus {
    pub count: u32,
    pub model: String,
    /// UUIDs are `<uuid_prefix>-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, stable per node and index.
    #[serde(default = "gpu_prefix")]
    pub uuid_prefix: String,
    pub idle_watts: f64,
    pub max_watts: f64,
    /// Enforced power limit; default: `max_watts`. Power is capped at it.
    #[serde(default)]
    pub power_limit_watts: Option<f64>,
    /// `nvidia` (NVML, the default), `amd` (the amdgpu driver's energy counter: ids are
    /// `unique_id`s, 16 hex digits) or `intel` (the xe driver's hwmon `card` counter: ids are
    /// PCI addresses).
    #[serde(default)]
    pub vendor: GpuMaker,
    /// MIG: every GPU is split into instances of these many slices of 7 (`[3, 4]`: a 3g and a
    /// 4g instance; 1, 2, 3, 4 or 7 each, at most 7 together; NVIDIA only). Jobs then hold
    /// instances (by MIG UUID), not whole GPUs; slices in no instance are held by no job.
    #[serde(default)]
    pub mig: Option<Vec<u32>>,
}

/// Who made a node's GPUs: which source measures them.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GpuMaker {
    #[default]
    Nvidia,
    Amd,
    Intel,
}

/// Slices of a MIG-capable GPU (A100, H100): an instance holds 1, 2, 3, 4 or all 7.
pub const MIG_SLICES: u32 = 7;

fn gpu_prefix() -> String {
    "GPU".into()
}

impl NodeGroup {
    pub fn partition(&self) -> &str {
        self.partition.as_deref().unwrap_or(&self.name)
    }
    pub fn physical_cores(&self) -> u32 {
        self.sockets * self.cores_per_socket
    }
    pub fn logical_cpus(&self) -> u32 {
        self.physical_cores() * self.threads_per_core
    }
    /// The GPUs jobs can hold: whole GPUs, or with `gpus.mig` every GPU's instances.
    pub fn gpu_count(&self) -> u32 {
        self.gpus.as_ref().map_or(0, |g| {
            g.count * g.mig.as_ref().map_or(1, |m| m.len() as u32)
        })
    }
    /// Who made its GPUs; `None` without GPUs.
    pub fn gpu_maker(&self) -> Option<GpuMaker> {
        self.gpus.as_ref().map(|g| g.vendor)
    }
    pub fn cpu_vendor(&self) -> String {
        if let Some(v) = &self.cpu_vendor {
            return v.clone();
        }
        if self.cpu_model.contains("AMD") {
            "AuthenticAMD".into()
        } else if self.cpu_model.contains("Intel") {
            "GenuineIntel".into()
        } else {
            String::new()
        }
    }
}
