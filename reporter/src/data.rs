//! The raw figures collected from Prometheus for one period, before any report arithmetic: what
//! [`crate::collect`] returns and [`crate::model`] consumes. Plain data, no I/O, so the model is
//! tested without a server.

use crate::period::Period;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A shared, immutable string: the labels a report repeats for every job (cluster, user,
/// account, partition, node...) are held once, through an [`Interner`], and cloned by reference
/// count into the report's rows. Serializes as the plain string, so outputs do not change.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Arc::from(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Arc::from(s))
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, o: &str) -> bool {
        &*self.0 == o
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, o: &&str) -> bool {
        &*self.0 == *o
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, o: &String) -> bool {
        &*self.0 == o.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        String::deserialize(d).map(Name::from)
    }
}

/// One [`Name`] per distinct string met: what a collection holds grows with the distinct
/// users, projects, nodes... not with the jobs that repeat them.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Name>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Name {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        self.0.insert(n.clone());
        n
    }
}

/// A value per energy component, joules unless a field says otherwise; serialised as
/// `{cpu, dram, gpu, other}`.
pub type ByComponent = joulebook_common::PerComponent<f64>;

/// A job's share of one node (instance) during the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub instance: Name,
    /// Allocated CPUs × elapsed, seconds, inside the period.
    pub core_seconds: f64,
    /// Allocated GPUs × elapsed, seconds, inside the period.
    pub gpu_seconds: f64,
    /// Largest CPU allocation seen (logical CPUs).
    pub alloc_cpus: f64,
    /// Largest memory limit seen, bytes; `None` where the scheduler sets none.
    pub alloc_memory_bytes: Option<f64>,
}

impl Placement {
    /// Elapsed time on this node inside the period, seconds (core-seconds ÷ allocated CPUs).
    pub fn elapsed_seconds(&self) -> f64 {
        if self.alloc_cpus > 0.0 {
            self.core_seconds / self.alloc_cpus
        } else {
            0.0
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
///
/// Its strings are [`Name`]s: the repeated ones interned by the collection, so a job holds
/// pointers, not copies (what a long period holds is about a job's numbers).
pub struct JobData {
    pub cluster: Name,
    pub job_id: Name,
    pub scheduler: Name,
    pub user: Name,
    pub account: Name,
    pub partition: Name,
    pub job_name: Name,
    /// Where the exporter took the job's metadata from (`prolog`, `kernel`, `environment`;
    /// empty from exporters before it was published): see [`crate::trust`].
    #[serde(default)]
    pub metadata: Name,
    /// Energy inside the period, joules, summed over the job's nodes.
    pub energy: ByComponent,
    /// Seconds inside the period, summed over nodes.
    pub core_seconds: f64,
    pub gpu_seconds: f64,
    /// CPU time used, seconds.
    pub cpu_seconds: f64,
    pub placements: Vec<Placement>,
}

impl JobData {
    /// The order of every job list: most energy first, the lower id first on a tie.
    pub fn by_energy(a: &JobData, b: &JobData) -> std::cmp::Ordering {
        b.energy
            .total()
            .total_cmp(&a.energy.total())
            .then_with(|| a.job_id.cmp(&b.job_id))
    }
}

/// One node (a Prometheus `instance`) and its facts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeData {
    pub cluster: String,
    pub instance: String,
    /// The hostname its exporter publishes (`joulebook_node_info`), if any.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Node energy inside the period, joules.
    pub energy: ByComponent,
    /// Energy of hardware no job held, joules.
    pub unallocated: ByComponent,
    /// TDP of all CPU packages, watts.
    pub cpu_tdp_watts: Option<f64>,
    pub physical_cores: Option<f64>,
    pub memory_bytes: Option<f64>,
    /// Seconds of the period in the local days on which the node's energy grew: the time its
    /// mean power and its GPUs' unallocated hours are taken over, so that a node that reported
    /// for a month of a yearly report is not averaged over the year. `None` where the energy was
    /// not read by day.
    #[serde(default)]
    pub seconds_reported: Option<f64>,
}

impl NodeData {
    /// The seconds its figures are averaged over: [`NodeData::seconds_reported`], else the
    /// period's `period_s`.
    pub fn seconds_over(&self, period_s: f64) -> f64 {
        self.seconds_reported.unwrap_or(period_s)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuData {
    pub cluster: String,
    pub instance: String,
    pub gpu_uuid: String,
    pub model: String,
    /// Enforced power limit, watts.
    pub power_limit_watts: Option<f64>,
    /// Scrapes that saw the GPU, and scrapes that saw a job holding it.
    pub samples_present: f64,
    pub samples_allocated: f64,
}

/// One (account, user) pair's figures on one node inside the period, from the owner counters
/// (`joulebook_owner_*_total`): the sums of its jobs' figures there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnerData {
    pub cluster: Name,
    pub instance: Name,
    pub account: Name,
    pub user: Name,
    pub energy: ByComponent,
    /// Allocated CPUs × elapsed, seconds.
    pub core_seconds: f64,
    /// Allocated GPUs × elapsed, seconds.
    pub gpu_seconds: f64,
    /// Elapsed time added over the jobs, seconds.
    pub elapsed_seconds: f64,
    /// Allocated memory × elapsed, byte-seconds.
    pub memory_byte_seconds: f64,
}

/// Jobs of one (account, user) pair counted by the server (a summary report reads no job).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobCount {
    pub account: Name,
    pub user: Name,
    pub jobs: usize,
    /// Of them, those whose project is only as the job claims it ([`crate::trust`]).
    #[serde(default)]
    pub claimed: usize,
}

/// Node energy of one day (or partial day) summed over nodes, joules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayData {
    pub period: Period,
    pub energy: ByComponent,
    pub unallocated: ByComponent,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub period: Option<Period>,
    pub jobs: Vec<JobData>,
    pub nodes: Vec<NodeData>,
    pub gpus: Vec<GpuData>,
    pub days: Vec<DayData>,
    /// Caveats met while collecting (counter resets handled, counters without a base…).
    pub notes: Vec<String>,
    /// Components that no node counter series has (no source on the cluster measures them,
    /// e.g. `other` without BMCs); empty when no node series was found at all.
    #[serde(default)]
    pub unmeasured: Vec<String>,
    /// The owner counters of every node, when they are complete and add up to each node's
    /// energy less its unallocated energy: the project and user totals then come from them
    /// instead of from the jobs ([`crate::collect`]'s `owners`). `None`: sums over the jobs.
    #[serde(default)]
    pub owners: Option<Vec<OwnerData>>,
    /// A summary report's job counts (`--summary`), when `jobs` is empty because no job was
    /// read: the report then has no job lists.
    #[serde(default)]
    pub job_counts: Option<Vec<JobCount>>,
}
