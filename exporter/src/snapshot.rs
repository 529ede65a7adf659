//! What a scrape publishes: the immutable [`Snapshot`] the sampler builds at the end of each
//! cycle, and the [`Shared`] slot it is published through (`publish`, `latest`). Rules: a
//! snapshot is never changed once published; scrapes only read the latest one, so any number of
//! them change nothing. Below the sampler, the engine, the metrics and the server.

use crate::energy::DropReason;
use crate::node::NodeInfo;
use crate::sources::bmc::BmcStatus;
use crate::sources::{ChannelId, DeviceInfo, GpuInfo, SourceError, SourceKind};
use joulebook_common::{Component, PerComponent};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// How a node component is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Measured,
    Estimated,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Measured => "measured",
            Method::Estimated => "estimated",
        }
    }
}

/// Health of one source, as published.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    pub enabled: bool,
    pub up: bool,
    /// Why the source is down (message and fix), if it is.
    pub last_error: Option<SourceError>,
    pub samples: u64,
    pub wraps: u64,
    pub dropped: BTreeMap<DropReason, u64>,
    /// Wall time of the last sample, seconds.
    pub duration_s: f64,
}

/// One node component's total and how it is obtained.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentTotal {
    pub component: Component,
    pub joules: f64,
    pub method: Method,
    pub source: SourceKind,
}

/// Everything a scrape publishes, captured at the end of a sampling cycle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Energy per channel, joules, sorted by channel.
    pub channels: Vec<(ChannelId, f64)>,
    pub node: Vec<ComponentTotal>,
    pub gpus: Vec<GpuInfo>,
    /// Devices of the sysfs sources (AMD and Intel GPUs, Grace, hwmon), sorted by channel.
    pub devices: Vec<(SourceKind, DeviceInfo)>,
    /// Devices whose energy is split between parts jobs hold apart (MIG, AMD partitions, dies).
    pub partitions: Vec<crate::sources::GpuPartitions>,
    pub health: Vec<(SourceKind, Health)>,
    pub node_info: NodeInfo,
    /// Node CPU TDP, watts, and where it came from.
    pub cpu_tdp_watts: Option<(f64, &'static str)>,
    pub estimate_tdp_watts: Option<f64>,
    pub interval_s: f64,
    /// Unix time of the last completed cycle (0 before the first).
    pub last_sample_unix: f64,
    /// Unix time since which the counters have only grown (0 before the first cycle).
    pub counters_start_unix: f64,
    /// When the snapshot was taken, on the monotonic clock (for /healthz, immune to clock jumps).
    pub taken_at: Option<std::time::Instant>,
    /// How often snapshots are published, seconds, beyond the sampling interval (the state save
    /// interval when a state file is used; 0 otherwise).
    pub publish_every_s: f64,
    /// Jobs published (running, or ended within the grace period), by id.
    /// A record's clone shares its strings (see [`crate::accounting::JobRecord`]).
    pub jobs: Vec<(std::sync::Arc<str>, crate::accounting::JobRecord)>,
    /// Unallocated energy by component, joules (zeros when jobs are off).
    pub unallocated: PerComponent<f64>,
    /// Per (account, user) totals (empty when jobs are off): [`crate::owners`].
    pub owners: Vec<(crate::owners::OwnerKey, crate::owners::OwnerTotals)>,
    /// Jobs running at the last cycle; `None` when job accounting is off.
    pub jobs_running: Option<usize>,
    /// The BMC's last status (power, energy method, gaps), when a BMC source runs.
    pub bmc: Option<BmcStatus>,
    /// BMC updates where `other` was clamped to 0 (BMC below cpu + dram + gpu).
    pub other_clamps: u64,
}

/// The latest snapshot, shared between the sampler and the HTTP server.
pub type Shared = Arc<RwLock<Arc<Snapshot>>>;

/// The snapshot published last. A panic while the lock was held cannot leave a half-written
/// `Arc` behind, so a poisoned lock is used as it is.
pub fn latest(shared: &Shared) -> Arc<Snapshot> {
    match shared.read() {
        Ok(g) => Arc::clone(&g),
        Err(p) => Arc::clone(&p.into_inner()),
    }
}

/// Makes `snap` the snapshot every later scrape sees; returns the one it replaces.
pub fn publish(shared: &Shared, snap: Arc<Snapshot>) -> Arc<Snapshot> {
    match shared.write() {
        Ok(mut g) => std::mem::replace(&mut *g, snap),
        Err(p) => std::mem::replace(&mut *p.into_inner(), snap),
    }
}
