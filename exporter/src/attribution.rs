//! Attribution: splitting one sample interval's node energy between the batch jobs on the node and
//! "unallocated" (powered hardware that no job holds: the idle waste a cluster pays for). Pure
//! integer arithmetic over deltas: no I/O, no errors, no floats in the result.
//!
//! # The invariant
//!
//! For every component (cpu, dram, gpu, other) and every sample, the jobs' energies plus the
//! unallocated energy equal the node's energy for that component **exactly**, to the microjoule.
//! Every split below is `floor(energy × weight / total)` in `u128` with integer weights whose sum
//! never exceeds `total`, so no job is ever given more than its exact share; the leftover
//! microjoules (less than one per job per split) go to unallocated. Rounding therefore never
//! invents or loses energy, and never over-charges a job: the error on a job is below 1 µJ per
//! split per sample, i.e. below one microwatt at a 1 s interval. The only precondition is that a
//! component's node total for one interval fits in `u64` (18 TJ); sums that would overflow
//! saturate.
//!
//! # The rules, and why
//!
//! * **GPU**: a GPU's energy goes to the job that holds it; when several jobs list the same GPU
//!   (shared or MPS), they split it evenly. A GPU no job holds is unallocated. GPUs are exclusive
//!   devices in both Slurm and OAR, so whoever holds one is responsible for all it draws, idle or
//!   not. GPUs a job lists that were not measured this interval count nothing.
//! * **CPU package, [`CpuPolicy::Allocation`]** (the default), per socket: each logical CPU of the
//!   socket stands for an equal share of the socket's energy; a CPU's share goes to the job(s)
//!   holding it (split evenly between jobs that list the same CPU, i.e. oversubscription), and
//!   CPUs nobody holds are unallocated. So a job gets (its CPUs on the socket ÷ all CPUs of the
//!   socket) of the socket's energy. This is what a batch user reserved and kept others from using;
//!   per-process CPU-time attribution is known to be poor (Kepler's ~15× over-estimation), and
//!   allocation needs no model. CPUs a job lists that are not in the topology count nothing, and a
//!   CPU listed twice by one job counts once.
//! * **CPU package, [`CpuPolicy::UsageAboveBaseline`]**, per socket: the socket's baseline energy
//!   `min(energy, idle_watts × interval)` is split by allocation as above (a job that holds cores
//!   keeps them powered whether it uses them or not); the rest, the energy above idle that work
//!   actually caused, is split by the jobs' CPU time on that socket. A job's CPU time is
//!   apportioned to sockets by how many of its CPUs are on each. If no job used CPU time, the
//!   above-baseline part is unallocated (something outside the jobs drew it). An unknown baseline
//!   (`None`, or not a finite non-negative number, or an interval that is not) makes that socket
//!   fall back to allocation: without an idle level there is no defensible "above". See [`BaselineTracker`] for how the
//!   baseline is found.
//! * **DRAM**, per socket: when every job on the node has a memory limit and the node's memory is
//!   known, by allocated memory: a job gets (its limit ÷ node memory) of each socket's DRAM energy,
//!   scaled down proportionally when the limits add up to more than the node so the jobs never get
//!   more than 100 %; the rest is unallocated. Memory limits are node-wide (not per NUMA node), so
//!   the same fractions apply on every socket. DRAM power is mostly refresh and background power
//!   of the installed DIMMs, so it is fair to charge it to whoever reserved the memory. When any job
//!   lacks a limit, its memory footprint is unknown and DRAM is split by allocated CPUs exactly like
//!   the package (the usual Slurm/OAR proxy, memory per CPU).
//! * **Other** (wall power minus cpu, dram and gpu: fans, disks, network, PSU losses) is split by
//!   allocated CPUs of the whole node, the same rule as the package applied to all sockets at once:
//!   that power keeps the node up, and the CPUs are the node's unit of reservation.
//!
//! Jobs listed twice with the same id are added together. Every job in the input appears in the
//! output, with zeros if it got nothing, so its counters can be created at 0 when it appears.
//!
//! Code map: `split` does the arithmetic of one interval, `baseline` learns idle power for
//! the usage policy; the types they share are here.

mod baseline;
mod split;

pub use baseline::BaselineTracker;
pub use split::{attribute, attribute_each, Attributor};

use crate::sources::DeviceKey;
use joulebook_common::{Component, PerComponent};
use std::collections::BTreeMap;

/// Short names for the components in the split's arithmetic and its tests.
const CPU: Component = Component::Cpu;
const DRAM: Component = Component::Dram;
const GPU: Component = Component::Gpu;
const OTHER: Component = Component::Other;

/// Energy added to each node component during one cycle, in microjoules, with its per-device
/// split (socket, die, GPU, sensor, node). This is what per-job attribution divides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CycleDelta {
    /// Per component, µJ by device; `None` for a component no source measures.
    pub by_component: PerComponent<Option<BTreeMap<DeviceKey, u64>>>,
    pub interval_s: f64,
    /// GPUs whose energy belongs to parts that jobs hold apart (MIG instances, MI250X dies).
    pub gpu_partitions: Vec<crate::sources::GpuPartitions>,
}

/// The node's energy in one sample interval, in microjoules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeDelta {
    /// Package energy of each socket (index = socket number), µJ.
    pub cpu_by_socket: Vec<u64>,
    /// DRAM energy of each socket, µJ; may be empty or shorter than `cpu_by_socket`.
    pub dram_by_socket: Vec<u64>,
    /// Energy of each GPU by UUID, µJ.
    pub gpu_by_uuid: BTreeMap<String, u64>,
    /// The rest of the node (BMC minus cpu, dram and gpu), µJ; 0 while there is no BMC source.
    pub other: u64,
    /// Length of the interval, seconds.
    pub interval_s: f64,
}

impl NodeDelta {
    /// Adds another interval's energy (device by device) and length. Saturates at `u64::MAX`.
    pub fn add(&mut self, o: &NodeDelta) {
        let add = |a: &mut Vec<u64>, b: &[u64]| {
            if a.len() < b.len() {
                a.resize(b.len(), 0);
            }
            for (x, y) in a.iter_mut().zip(b) {
                *x = x.saturating_add(*y);
            }
        };
        add(&mut self.cpu_by_socket, &o.cpu_by_socket);
        add(&mut self.dram_by_socket, &o.dram_by_socket);
        for (uuid, uj) in &o.gpu_by_uuid {
            let e = self.gpu_by_uuid.entry(uuid.clone()).or_default();
            *e = e.saturating_add(*uj);
        }
        self.other = self.other.saturating_add(o.other);
        self.interval_s += o.interval_s;
    }

    /// The node's energy per component, µJ. Saturates at `u64::MAX`.
    pub fn component_totals(&self) -> PerComponent<u64> {
        let sum = |v: &mut dyn Iterator<Item = u64>| v.fold(0u64, u64::saturating_add);
        PerComponent {
            cpu: sum(&mut self.cpu_by_socket.iter().copied()),
            dram: sum(&mut self.dram_by_socket.iter().copied()),
            gpu: sum(&mut self.gpu_by_uuid.values().copied()),
            other: self.other,
        }
    }
}

/// What the node has, as far as attribution cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// Logical CPU ids of each socket (index = socket number). A CPU listed in two sockets belongs
    /// to the first.
    pub cpus_by_socket: Vec<Vec<u32>>,
    /// Installed memory, bytes; 0 if unknown (DRAM is then split by CPUs).
    pub memory_bytes: u64,
}

/// One job's claim on the node during the interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobShare<'a> {
    pub id: &'a str,
    /// Logical CPU ids the job holds (its cpuset).
    pub cpus: &'a [u32],
    /// UUIDs of the GPUs the job holds.
    pub gpus: &'a [String],
    /// The job's memory limit, bytes; `None` when it has none.
    pub memory_bytes: Option<u64>,
    /// CPU time the job used during the interval, nanoseconds (all its CPUs together).
    pub cpu_time_delta_ns: u64,
}

/// How CPU package energy is split. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CpuPolicy {
    /// By allocated CPUs.
    #[default]
    Allocation,
    /// Idle baseline by allocated CPUs, the rest by CPU time.
    UsageAboveBaseline,
}

/// Idle power of each socket, for [`CpuPolicy::UsageAboveBaseline`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Baselines {
    /// Idle package power of each socket, watts; `None` when unknown.
    pub idle_watts_by_socket: Vec<Option<f64>>,
}

/// The result for one interval: µJ per job and unallocated, per component.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attribution {
    pub jobs: BTreeMap<String, PerComponent<u64>>,
    pub unallocated: PerComponent<u64>,
}

#[cfg(test)]
mod tests;
