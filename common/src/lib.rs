//! What joulebook's exporter, reporter and tests agree on: metric names, label names, units and
//! the energy components. Every name a user can see on `/metrics` is defined here, once, and the
//! README's metric table is checked against [`ALL_METRICS`] by a test, so the two cannot drift.
//!
//! Names follow the Prometheus naming rules: base units (joules, watts, seconds, bytes), a `_total`
//! suffix on counters, an `_info` suffix on metrics whose value is always 1 and whose labels carry
//! the information. Released names are never renamed (dashboards and recording rules depend on
//! them); add new ones instead.

pub mod calendar;
#[cfg(feature = "clidocs")]
pub mod clidocs;
mod component;

pub use component::PerComponent;
use std::fmt;

/// Prefix of every joulebook metric.
pub const PREFIX: &str = "joulebook";

/// Label names. `job` and `instance` are deliberately absent: Prometheus renames them on scrape.
pub mod labels {
    pub const SOCKET: &str = "socket";
    /// The die of a multi-die CPU package whose dies have their own RAPL counters.
    pub const DIE: &str = "die";
    pub const COMPONENT: &str = "component";
    pub const METHOD: &str = "method";
    pub const SOURCE: &str = "source";
    pub const REASON: &str = "reason";
    pub const GPU_UUID: &str = "gpu_uuid";
    pub const INDEX: &str = "index";
    pub const MODEL: &str = "model";
    pub const PCI_BUS_ID: &str = "pci_bus_id";
    pub const CPU_MODEL: &str = "cpu_model";
    pub const CPU_VENDOR: &str = "cpu_vendor";
    pub const HOSTNAME: &str = "hostname";
    pub const VERSION: &str = "version";
    pub const REVISION: &str = "revision";
    pub const JOB_ID: &str = "job_id";
    pub const SCHEDULER: &str = "scheduler";
    pub const USER: &str = "user";
    pub const ACCOUNT: &str = "account";
    pub const PARTITION: &str = "partition";
    pub const JOB_NAME: &str = "job_name";
    /// Slurm 26.05's job identifier (SLUID), where the layout or the prolog gives one.
    pub const SLUID: &str = "sluid";
    /// The numeric uid that the prolog or the kernel attests (also for users the node's user
    /// database cannot name).
    pub const UID: &str = "uid";
    /// Where a job's metadata came from: prolog, kernel or environment.
    pub const METADATA: &str = "metadata";
    /// When a run of an owner pair's counters started from zero (Unix seconds, an integer):
    /// each run is its own series, which only grows.
    pub const SINCE: &str = "since";
    pub const PROTOCOL: &str = "protocol";
    /// A device of a sysfs source: GPU id (unique_id or PCI address) or sensor id.
    pub const DEVICE: &str = "device";
    /// The kernel's name for a device (`card0`, a hwmon label).
    pub const NAME: &str = "name";
    /// A hwmon sensor named in the configuration.
    pub const SENSOR: &str = "sensor";
    /// What a configured sensor measures: node, cpu, dram, gpu or none.
    pub const ROLE: &str = "role";
    /// The measured device (its `gpu_uuid`) that a part of it (a MIG instance, an AMD compute
    /// partition, an MI250X secondary die) belongs to.
    pub const PARENT_GPU_UUID: &str = "parent_gpu_uuid";
}

/// The unit a metric is expressed in; it becomes part of the metric name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Joules,
    Watts,
    Seconds,
    Bytes,
    /// A dimensionless count or state (no unit suffix).
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Joules => "joules",
            Unit::Watts => "watts",
            Unit::Seconds => "seconds",
            Unit::Bytes => "bytes",
            Unit::None => "",
        }
    }
}

/// The OpenMetrics type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Info,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Info => "info",
        }
    }
}

/// One metric family: its base name (without unit, `_total` or `_info`), unit, type, labels and
/// help text. [`MetricDef::name`] gives the name as it appears on `/metrics`.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    /// Name without the unit suffix and without `_total` / `_info`, e.g. `joulebook_rapl_package`.
    pub base: &'static str,
    pub unit: Unit,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

impl MetricDef {
    /// The sample name a scraper sees, e.g. `joulebook_rapl_package_joules_total`.
    pub fn name(&self) -> String {
        let mut n = self.base.to_string();
        if self.unit != Unit::None {
            n.push('_');
            n.push_str(self.unit.as_str());
        }
        match self.kind {
            Kind::Counter => n.push_str("_total"),
            Kind::Info => n.push_str("_info"),
            Kind::Gauge => {}
        }
        n
    }
}

impl fmt::Display for MetricDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

macro_rules! metric {
    ($ident:ident, $base:literal, $unit:ident, $kind:ident, [$($label:expr),*], $help:literal) => {
        pub const $ident: MetricDef = MetricDef {
            base: concat!("joulebook_", $base),
            unit: Unit::$unit,
            kind: Kind::$kind,
            labels: &[$($label),*],
            help: $help,
        };
    };
}

use labels as l;

// --- RAPL: one metric per domain, so that no sum double counts (package contains core and uncore).
metric!(RAPL_PACKAGE, "rapl_package", Joules, Counter, [l::SOCKET, l::DIE],
    "Energy of a CPU package (socket) from RAPL, wrap-corrected, since the exporter first ran on this node.");
metric!(
    RAPL_CORE,
    "rapl_core",
    Joules,
    Counter,
    [l::SOCKET, l::DIE],
    "Energy of the cores of a package from RAPL (already included in rapl_package)."
);
metric!(RAPL_UNCORE, "rapl_uncore", Joules, Counter, [l::SOCKET, l::DIE],
    "Energy of the uncore (integrated GPU, caches) of a package from RAPL (already included in rapl_package).");
metric!(
    RAPL_DRAM,
    "rapl_dram",
    Joules,
    Counter,
    [l::SOCKET, l::DIE],
    "Energy of the DRAM attached to a package from RAPL."
);
metric!(RAPL_PSYS, "rapl_psys", Joules, Counter, [],
    "Energy of the whole platform (psys zone) from RAPL; overlaps package and dram, never added to the node total.");

// --- Estimate, for machines without a hardware counter.
metric!(
    ESTIMATED_CPU,
    "estimated_cpu",
    Joules,
    Counter,
    [],
    "ESTIMATE, not a measurement: CPU energy modelled from /proc/stat utilisation and a TDP."
);
metric!(ESTIMATED_DRAM, "estimated_dram", Joules, Counter, [],
    "ESTIMATE, not a measurement: memory energy modelled as installed memory times a constant W/GB.");
metric!(
    ESTIMATED_CPU_TDP,
    "estimated_cpu_tdp",
    Watts,
    Gauge,
    [],
    "TDP of all CPU packages used by the CPU estimate (configured, built-in table, or 12 W per core)."
);

// --- GPUs.
metric!(GPU_ENERGY, "gpu", Joules, Counter, [l::GPU_UUID],
    "Energy of an NVIDIA GPU, from NVML's total-energy counter (or integrated power on pre-Volta GPUs, see joulebook_gpu_energy_method_info).");
metric!(
    GPU_POWER,
    "gpu_power",
    Watts,
    Gauge,
    [l::GPU_UUID],
    "Power draw of an NVIDIA GPU at the last sample."
);
metric!(
    GPU_POWER_LIMIT,
    "gpu_power_limit",
    Watts,
    Gauge,
    [l::GPU_UUID],
    "Enforced power limit of an NVIDIA GPU."
);
metric!(
    GPU_INFO,
    "gpu",
    None,
    Info,
    [l::GPU_UUID, l::INDEX, l::MODEL, l::PCI_BUS_ID],
    "An NVIDIA GPU seen by NVML; value 1."
);
metric!(
    GPU_ENERGY_METHOD,
    "gpu_energy_method",
    None,
    Info,
    [l::GPU_UUID, l::METHOD],
    "How a GPU's energy is obtained: counter (NVML total energy) or power_integration (fallback)."
);
metric!(
    GPU_PART_INFO,
    "gpu_part",
    None,
    Info,
    [l::GPU_UUID, l::PARENT_GPU_UUID],
    "A part of a measured GPU that jobs hold apart (MIG instance, AMD compute partition, MI250X secondary die): gpu_uuid as jobs name it, parent_gpu_uuid the device whose energy it shares; value 1."
);

// --- Devices read from sysfs (docs/sources.md).
metric!(AMDGPU_ENERGY, "amdgpu", Joules, Counter, [l::GPU_UUID],
    "Energy of an AMD GPU (a whole MI250X package, on its primary die) from the amdgpu driver's gpu_metrics energy counter, or integrated hwmon power (see joulebook_energy_device_info).");
metric!(AMD_APU_ENERGY, "amd_apu", Joules, Counter, [l::GPU_UUID],
    "Energy of an AMD APU's whole socket (MI300A: CPU cores, GPU and HBM) from its gpu_metrics counter; overlaps the CPU package, never added to the node total.");
metric!(INTEL_GPU_ENERGY, "intel_gpu", Joules, Counter, [l::GPU_UUID],
    "Energy of an Intel discrete GPU from the xe or i915 driver's hwmon energy counter (the card's, else the package's; never both); gpu_uuid is the PCI address.");
metric!(GRACE_SOCKET_ENERGY, "grace_socket", Joules, Counter, [l::SOCKET],
    "Energy of an NVIDIA Grace socket (CPU and SysIO rails, LPDDR5X memory, regulator losses) from its ACPI power meter, integrated.");
metric!(
    GRACE_CPU_RAIL_ENERGY,
    "grace_cpu_rail",
    Joules,
    Counter,
    [l::SOCKET],
    "Energy of a Grace socket's CPU rail (already included in grace_socket)."
);
metric!(
    GRACE_SYSIO_RAIL_ENERGY,
    "grace_sysio_rail",
    Joules,
    Counter,
    [l::SOCKET],
    "Energy of a Grace socket's SysIO rail (already included in grace_socket)."
);
metric!(GRACE_MODULE_ENERGY, "grace_module", Joules, Counter, [l::SOCKET],
    "Energy of a Grace Hopper module (Grace socket, Hopper GPU and HBM); overlaps cpu and gpu, never added to the node total.");
metric!(HWMON_ENERGY, "hwmon", Joules, Counter, [l::SENSOR, l::ROLE],
    "Energy of a hwmon sensor named in the configuration; role cpu, dram or gpu adds to that component, node (a whole-node meter) and none to no component.");
metric!(ENERGY_DEVICE_INFO, "energy_device", None, Info, [l::SOURCE, l::DEVICE, l::NAME, l::MODEL, l::METHOD],
    "A device measured by a sysfs source (amdgpu, ...): its kernel name, model, and method counter, power_integration or primary_die (counted on its package's primary die); value 1.");

// --- The BMC: the whole node as its baseboard management controller measures it.
metric!(BMC_ENERGY, "bmc", Joules, Counter, [],
    "Energy of the whole node from its BMC (Redfish or IPMI DCMI): fans, disks, NICs and PSU losses included; overlaps every other energy metric.");
metric!(BMC_POWER, "bmc_power", Watts, Gauge, [],
    "Node power at the BMC's last reading; absent while the BMC is down or its last reading is older than max_gap.");
metric!(BMC_ENERGY_METHOD, "bmc_energy_method", None, Info, [l::METHOD, l::PROTOCOL],
    "How the BMC's energy is obtained: method counter (the BMC's energy counter) or power_integration, protocol redfish or ipmi.");
metric!(BMC_GAP_SECONDS, "bmc_gap", Seconds, Counter, [],
    "Time over which no BMC energy was counted because successive readings were more than max_gap apart (BMC unreachable or failing).");

// --- The node.
metric!(NODE_ENERGY, "node", Joules, Counter, [l::COMPONENT],
    "Energy of the node by component (cpu, dram, gpu, other); sum by (component) never double counts.");
metric!(NODE_COMPONENT_INFO, "node_component", None, Info, [l::COMPONENT, l::METHOD, l::SOURCE],
    "How each component of joulebook_node_joules_total is obtained: method measured or estimated, and the source.");
metric!(
    NODE_INFO,
    "node",
    None,
    Info,
    [l::HOSTNAME, l::CPU_MODEL, l::CPU_VENDOR],
    "The node; value 1."
);
metric!(
    NODE_PHYSICAL_CORES,
    "node_physical_cores",
    None,
    Gauge,
    [],
    "Physical CPU cores of the node (the cores of the estimation methods' cores x hours)."
);
metric!(
    NODE_LOGICAL_CPUS,
    "node_logical_cpus",
    None,
    Gauge,
    [],
    "Logical CPUs (hardware threads) of the node."
);
metric!(
    NODE_SOCKETS,
    "node_sockets",
    None,
    Gauge,
    [],
    "CPU sockets of the node."
);
metric!(
    NODE_MEMORY,
    "node_memory",
    Bytes,
    Gauge,
    [],
    "Installed memory of the node (MemTotal)."
);
metric!(NODE_CPU_TDP, "node_cpu_tdp", Watts, Gauge, [],
    "Thermal design power of all the node's CPU packages together (configured, or from the built-in table).");

// --- Jobs (per-job attribution). `job_id` is the only per-job label on energy series; user,
// account, partition and name live on joulebook_job_info, joined with group_left.
metric!(JOB_ENERGY, "job", Joules, Counter, [l::JOB_ID, l::COMPONENT],
    "Energy attributed to a batch job by component, since the job appeared on this node; kept for a grace period after the job ends.");
metric!(
    UNALLOCATED_ENERGY,
    "unallocated",
    Joules,
    Counter,
    [l::COMPONENT],
    "Energy of hardware that no job held (idle waste), by component."
);
metric!(
    JOB_INFO,
    "job",
    None,
    Info,
    [
        l::JOB_ID,
        l::SCHEDULER,
        l::USER,
        l::ACCOUNT,
        l::PARTITION,
        l::JOB_NAME,
        l::SLUID,
        l::UID,
        l::METADATA
    ],
    "A job on this node and its metadata; value 1. Join on job_id."
);
metric!(
    JOB_GPU_INFO,
    "job_gpu",
    None,
    Info,
    [l::JOB_ID, l::GPU_UUID],
    "A GPU held by a job; value 1."
);
metric!(
    JOB_CPU_SECONDS,
    "job_cpu",
    Seconds,
    Counter,
    [l::JOB_ID],
    "CPU time used by a job's processes on this node."
);
metric!(
    JOB_CORE_SECONDS,
    "job_core",
    Seconds,
    Counter,
    [l::JOB_ID],
    "Allocated CPUs times elapsed time: the cores x hours of the estimation methods."
);
metric!(
    JOB_GPU_SECONDS,
    "job_gpu",
    Seconds,
    Counter,
    [l::JOB_ID],
    "Allocated GPUs times elapsed time: the GPU-hours of the estimation methods."
);
metric!(
    JOB_ALLOCATED_CPUS,
    "job_allocated_cpus",
    None,
    Gauge,
    [l::JOB_ID],
    "Logical CPUs allocated to a job on this node."
);
metric!(
    JOB_ALLOCATED_GPUS,
    "job_allocated_gpus",
    None,
    Gauge,
    [l::JOB_ID],
    "GPUs allocated to a job on this node."
);
metric!(
    JOB_ALLOCATED_MEMORY,
    "job_allocated_memory",
    Bytes,
    Gauge,
    [l::JOB_ID],
    "Memory limit of a job on this node, where the scheduler sets one."
);
metric!(
    JOBS_RUNNING,
    "jobs_running",
    None,
    Gauge,
    [],
    "Jobs running on this node at the last sample."
);

/// Seconds without a running job after which an owner pair's run ends (its counters are then
/// forgotten; the pair's next job starts a new run, with a new `since`): one day.
/// A run's series are published only while it has a job and for the jobs' grace period after,
/// so a reader finds a run's value at any time in its last sample at most this long before.
pub const OWNER_EXPIRY_S: f64 = 86_400.0;

// --- Per owner: cumulative totals per (account, user) on each node, the same deltas as the job
// counters, so project and user totals read a few series per node (exporter/src/owners.rs).
// Each run of a pair's counters (from `since`, when they started from zero) is its own series.
metric!(OWNER_ENERGY, "owner", Joules, Counter, [l::ACCOUNT, l::USER, l::SINCE, l::COMPONENT],
    "Energy attributed to the jobs of an (account, user) pair on this node, by component; the sum of their job counters.");
metric!(
    OWNER_CPU_SECONDS,
    "owner_cpu",
    Seconds,
    Counter,
    [l::ACCOUNT, l::USER, l::SINCE],
    "CPU time used by the jobs of an (account, user) pair on this node."
);
metric!(
    OWNER_CORE_SECONDS,
    "owner_core",
    Seconds,
    Counter,
    [l::ACCOUNT, l::USER, l::SINCE],
    "Allocated CPUs times elapsed time of the jobs of an (account, user) pair on this node."
);
metric!(
    OWNER_GPU_SECONDS,
    "owner_gpu",
    Seconds,
    Counter,
    [l::ACCOUNT, l::USER, l::SINCE],
    "Allocated GPUs times elapsed time of the jobs of an (account, user) pair on this node."
);
metric!(
    OWNER_ELAPSED_SECONDS,
    "owner_elapsed",
    Seconds,
    Counter,
    [l::ACCOUNT, l::USER, l::SINCE],
    "Elapsed time of the jobs of an (account, user) pair on this node, added over the jobs (two jobs for an hour: 7,200 s)."
);
metric!(
    OWNER_MEMORY_BYTE_SECONDS,
    "owner_memory_byte_seconds",
    None,
    Counter,
    [l::ACCOUNT, l::USER, l::SINCE],
    "Allocated memory times elapsed time of the jobs of an (account, user) pair on this node, byte-seconds (jobs without a memory limit add 0)."
);
metric!(
    OWNER_JOBS,
    "owner_jobs",
    None,
    Counter,
    [l::ACCOUNT, l::USER, l::SINCE],
    "Jobs of an (account, user) pair that started on this node."
);

// --- Health of the exporter itself.
metric!(SOURCE_UP, "source_up", None, Gauge, [l::SOURCE],
    "1 if the source's last sample succeeded, 0 if it is down (the log says why and how to fix it).");
metric!(
    SOURCE_ENABLED,
    "source_enabled",
    None,
    Gauge,
    [l::SOURCE],
    "1 if the source is switched on by configuration."
);
metric!(
    SAMPLE_DURATION,
    "sample_duration",
    Seconds,
    Gauge,
    [l::SOURCE],
    "Wall time of the source's last sample."
);
metric!(
    SAMPLES,
    "samples",
    None,
    Counter,
    [l::SOURCE],
    "Samples taken from the source, successful or not."
);
// Not `counter_wraps`: promtool's linter rejects a metric type inside a name.
metric!(COUNTER_WRAPS, "wraps", None, Counter, [l::SOURCE],
    "Hardware energy counter wraps corrected (RAPL) or resets absorbed (NVML after a driver reload).");
metric!(
    SAMPLES_DROPPED,
    "samples_dropped",
    None,
    Counter,
    [l::SOURCE, l::REASON],
    "Samples whose energy delta was discarded rather than added (implausible, garbage)."
);
metric!(
    BUILD_INFO,
    "build",
    None,
    Info,
    [l::VERSION, l::REVISION],
    "The exporter's version and source revision; value 1."
);
metric!(
    SAMPLE_INTERVAL,
    "sample_interval",
    Seconds,
    Gauge,
    [],
    "Configured interval between samples."
);
metric!(
    LAST_SAMPLE_TIMESTAMP,
    "last_sample_timestamp",
    Seconds,
    Gauge,
    [],
    "Unix time of the last completed sampling cycle."
);
metric!(COUNTERS_START_TIME, "counters_start_time", Seconds, Gauge, [],
    "Unix time since which this node's cumulative counters (all but the owner counters, which start again from zero when a pair returns after expiring) have only grown: when they last started from zero (first start, or a start without a usable state file), kept across resumes from the state file.");

metric!(OTHER_CLAMPS, "other_clamps", None, Counter, [],
    "BMC updates where the BMC's energy was below cpu + dram + gpu, so the other component was clamped to 0.");

/// Every metric defined above. The README's metric table must list each (tested).
pub const ALL_METRICS: &[MetricDef] = &[
    OTHER_CLAMPS,
    RAPL_PACKAGE,
    RAPL_CORE,
    RAPL_UNCORE,
    RAPL_DRAM,
    RAPL_PSYS,
    ESTIMATED_CPU,
    ESTIMATED_DRAM,
    ESTIMATED_CPU_TDP,
    GPU_ENERGY,
    GPU_POWER,
    GPU_POWER_LIMIT,
    GPU_INFO,
    GPU_ENERGY_METHOD,
    GPU_PART_INFO,
    AMDGPU_ENERGY,
    AMD_APU_ENERGY,
    INTEL_GPU_ENERGY,
    GRACE_SOCKET_ENERGY,
    GRACE_CPU_RAIL_ENERGY,
    GRACE_SYSIO_RAIL_ENERGY,
    GRACE_MODULE_ENERGY,
    HWMON_ENERGY,
    ENERGY_DEVICE_INFO,
    BMC_ENERGY,
    BMC_POWER,
    BMC_ENERGY_METHOD,
    BMC_GAP_SECONDS,
    NODE_ENERGY,
    NODE_COMPONENT_INFO,
    NODE_INFO,
    NODE_PHYSICAL_CORES,
    NODE_LOGICAL_CPUS,
    NODE_SOCKETS,
    NODE_MEMORY,
    NODE_CPU_TDP,
    JOB_ENERGY,
    UNALLOCATED_ENERGY,
    JOB_INFO,
    JOB_GPU_INFO,
    JOB_CPU_SECONDS,
    JOB_CORE_SECONDS,
    JOB_GPU_SECONDS,
    JOB_ALLOCATED_CPUS,
    JOB_ALLOCATED_GPUS,
    JOB_ALLOCATED_MEMORY,
    JOBS_RUNNING,
    OWNER_ENERGY,
    OWNER_CPU_SECONDS,
    OWNER_CORE_SECONDS,
    OWNER_GPU_SECONDS,
    OWNER_ELAPSED_SECONDS,
    OWNER_MEMORY_BYTE_SECONDS,
    OWNER_JOBS,
    SOURCE_UP,
    SOURCE_ENABLED,
    SAMPLE_DURATION,
    SAMPLES,
    COUNTER_WRAPS,
    SAMPLES_DROPPED,
    BUILD_INFO,
    SAMPLE_INTERVAL,
    LAST_SAMPLE_TIMESTAMP,
    COUNTERS_START_TIME,
];

/// The components of a node's energy. `sum by (component)` of the node counter is the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// CPU packages (RAPL package zones, or the estimate).
    Cpu,
    /// Memory (RAPL dram zones, or the estimate).
    Dram,
    /// GPUs (NVML).
    Gpu,
    /// Everything else the wall pays for (BMC minus the rest; filled when a BMC source exists).
    Other,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Cpu,
        Component::Dram,
        Component::Gpu,
        Component::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Cpu => "cpu",
            Component::Dram => "dram",
            Component::Gpu => "gpu",
            Component::Other => "other",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The exporter's default TCP port. Chosen outside 8080 and 9090–9100 and, at the time of writing,
/// not claimed on the Prometheus "default port allocations" wiki page.
pub const DEFAULT_PORT: u16 = 9977;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid_name(s: &str) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    #[test]
    fn names_are_unique_and_valid() {
        let mut seen = HashSet::new();
        for m in ALL_METRICS {
            let n = m.name();
            assert!(valid_name(&n), "{n}");
            assert!(n.starts_with("joulebook_"), "{n}");
            assert!(seen.insert(n.clone()), "duplicate metric {n}");
            for l in m.labels {
                assert!(valid_name(l), "{n}: label {l}");
                assert!(*l != "job" && *l != "instance", "{n}: reserved label {l}");
            }
            if m.kind == Kind::Counter {
                assert!(n.ends_with("_total"));
            }
        }
    }

    #[test]
    fn names_as_released() {
        assert_eq!(RAPL_PACKAGE.name(), "joulebook_rapl_package_joules_total");
        assert_eq!(NODE_ENERGY.name(), "joulebook_node_joules_total");
        assert_eq!(GPU_INFO.name(), "joulebook_gpu_info");
        assert_eq!(GPU_POWER.name(), "joulebook_gpu_power_watts");
        assert_eq!(SAMPLES_DROPPED.name(), "joulebook_samples_dropped_total");
        assert_eq!(NODE_MEMORY.name(), "joulebook_node_memory_bytes");
        assert_eq!(BMC_ENERGY.name(), "joulebook_bmc_joules_total");
        assert_eq!(BMC_POWER.name(), "joulebook_bmc_power_watts");
        assert_eq!(BMC_ENERGY_METHOD.name(), "joulebook_bmc_energy_method_info");
        assert_eq!(BMC_GAP_SECONDS.name(), "joulebook_bmc_gap_seconds_total");
    }
}
