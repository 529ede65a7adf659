//! Per-job accounting: keeps each job's counters (energy by component, CPU time, core-seconds,
//! GPU-seconds) and the unallocated energy, fed every cycle with what the node's components gained
//! ([`CycleDelta`]) and the jobs running now. The split itself is [`crate::attribution`]'s pure
//! arithmetic; this module adds time: jobs appearing (counters created at 0), ending (kept for a
//! grace period so the last value is scraped, then dropped), and resuming from the state file.
//!
//! Invariant, checked in tests at every cycle: for every component, the energy added to the jobs
//! plus the energy added to unallocated equals what the node's component gained.
//!
//! Boundary error: a job that starts or ends during a cycle is charged for that whole cycle or
//! not at all (the scan sees it at the cycle's end), so a job's energy is off by at most one
//! sampling interval of its share at each end (1 s by default).

use crate::attribution::CycleDelta;
use crate::attribution::{Attributor, BaselineTracker, CpuPolicy, JobShare, NodeDelta, Topology};
use crate::jobs::Job;
use crate::node::NodeInfo;
use crate::owners::{Gain, OwnerRef, Owners};
use crate::sources::DeviceKey;
use crate::state::{uj_map, State};
use joulebook_common::{Component, PerComponent};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod pending;
mod saved;
use pending::Pending;
pub use saved::SavedJobs;

/// How user and job names leave the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymize {
    /// Published as they are.
    #[default]
    None,
    /// Replaced by a salted SHA-256 prefix: stable, so a user's jobs still group together,
    /// but not reversible without the salt.
    Hash,
    /// Published empty.
    Drop,
}

#[derive(Clone, Debug)]
pub struct AccountingOptions {
    pub policy: CpuPolicy,
    /// How long a finished job's counters stay published, seconds.
    pub grace_s: f64,
    pub anonymize: Anonymize,
    pub salt: String,
    /// Configured idle package power per socket, watts (overrides the learned baseline).
    pub idle_watts_by_socket: Vec<Option<f64>>,
}

/// Default grace period, seconds: two scrapes at a 60 s interval plus a margin, so the final
/// value of a job is scraped at least twice even by a slow Prometheus.
pub const DEFAULT_GRACE_S: f64 = 180.0;

impl Default for AccountingOptions {
    fn default() -> Self {
        AccountingOptions {
            policy: CpuPolicy::Allocation,
            grace_s: DEFAULT_GRACE_S,
            anonymize: Anonymize::None,
            salt: String::new(),
            idle_watts_by_socket: Vec::new(),
        }
    }
}

/// What is published about a job besides its counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobMeta {
    pub scheduler: String,
    pub user: String,
    pub account: String,
    pub partition: String,
    pub job_name: String,
    pub sluid: String,
    /// The attested numeric uid, decimal; empty when unknown (anonymised as the user is).
    pub uid: String,
    /// [`crate::jobs::MetadataSource`]: prolog, kernel or environment.
    pub metadata: String,
    /// These fields as the state file writes them, made at the first save that needs them
    /// (a job's metadata is replaced when it changes, never changed in place).
    pub saved: saved::SavedMeta,
}

/// One job's counters and current allocation. What changes rarely (metadata, CPUs, GPUs) is
/// shared behind `Arc`s, replaced only when it changes: a clone (one per job per published
/// snapshot) copies numbers and pointers, never strings, and `clone_from` a record of the
/// same job copies only the numbers (no reference count touched).
#[derive(Debug, Default, PartialEq)]
pub struct JobRecord {
    pub meta: Arc<JobMeta>,
    /// Energy by component, µJ.
    pub uj: PerComponent<u64>,
    pub cpu_seconds: f64,
    pub core_seconds: f64,
    pub gpu_seconds: f64,
    pub cpus: Arc<[u32]>,
    pub gpus: Arc<[String]>,
    pub memory_bytes: Option<u64>,
    /// cpu_usage_ns at the last scan, to turn the cumulative value into deltas.
    last_cpu_ns: Option<u64>,
    /// Unix time the job was seen to end; `None` while it runs. Kept for the state file.
    pub ended_at: Option<f64>,
    /// The same moment on the sampler's monotonic clock: the grace period is measured on it, so
    /// a wall clock set back or forth neither keeps finished jobs forever nor drops them early.
    ended_mono: Option<f64>,
    /// The metadata as discovered, before anonymisation: `meta` is rebuilt (and re-hashed) only
    /// when this changes, not every cycle.
    raw_meta: Arc<RawMeta>,
    /// The [`Job::revision`] that `raw_meta` and `cpus` were last compared with: the same
    /// non-zero revision again means the same values, not compared again.
    revision: u64,
    /// Counted in its owner's jobs ([`crate::owners`]) already.
    counted: bool,
    /// Where its owner's counters are, while `meta` is unchanged.
    owner: Option<OwnerRef>,
}

/// What `meta` is derived from: user, account, partition, job name, SLUID, uid, source.
type RawMeta = (
    [Option<String>; 5],
    Option<u32>,
    crate::jobs::MetadataSource,
);

impl JobRecord {
    pub fn joules(&self, c: Component) -> f64 {
        self.uj[c] as f64 / 1e6
    }
}

/// `a = b.clone()` for an `Arc` field, unless `a` already points where `b` does.
fn share<T: ?Sized>(a: &mut Arc<T>, b: &Arc<T>) {
    if !Arc::ptr_eq(a, b) {
        *a = Arc::clone(b);
    }
}

impl Clone for JobRecord {
    fn clone(&self) -> Self {
        let mut c = JobRecord {
            meta: Arc::clone(&self.meta),
            cpus: Arc::clone(&self.cpus),
            gpus: Arc::clone(&self.gpus),
            raw_meta: Arc::clone(&self.raw_meta),
            ..JobRecord::default()
        };
        c.clone_from(self);
        c
    }

    fn clone_from(&mut self, source: &Self) {
        // Destructured, so that a field added later cannot be forgotten here.
        let JobRecord {
            meta,
            uj,
            cpu_seconds,
            core_seconds,
            gpu_seconds,
            cpus,
            gpus,
            memory_bytes,
            last_cpu_ns,
            ended_at,
            ended_mono,
            raw_meta,
            revision,
            counted,
            owner,
        } = source;
        share(&mut self.meta, meta);
        share(&mut self.cpus, cpus);
        share(&mut self.gpus, gpus);
        share(&mut self.raw_meta, raw_meta);
        self.uj = *uj;
        self.cpu_seconds = *cpu_seconds;
        self.core_seconds = *core_seconds;
        self.gpu_seconds = *gpu_seconds;
        self.memory_bytes = *memory_bytes;
        self.last_cpu_ns = *last_cpu_ns;
        self.ended_at = *ended_at;
        self.ended_mono = *ended_mono;
        self.revision = *revision;
        self.counted = *counted;
        self.owner = *owner;
    }
}

/// Copies the records of `jobs` into `into`, a list made by an earlier call: an entry of the
/// same job in the same place keeps its `Arc`s and takes only the numbers.
pub fn copy_records(jobs: &BTreeMap<Arc<str>, JobRecord>, into: &mut Vec<(Arc<str>, JobRecord)>) {
    into.truncate(jobs.len());
    for (i, (id, rec)) in jobs.iter().enumerate() {
        match into.get_mut(i) {
            Some((old_id, old)) => {
                share(old_id, id);
                old.clone_from(rec);
            }
            None => into.push((Arc::clone(id), rec.clone())),
        }
    }
}

pub struct Accounting {
    opts: AccountingOptions,
    jobs: BTreeMap<Arc<str>, JobRecord>,
    /// CPU time of each running job during the current update, ns, and the running jobs in
    /// id order (kept to reuse their memory).
    cpu_deltas: Vec<u64>,
    order: Vec<usize>,
    /// The [`Job::revision`]s of the last update's running jobs: the same non-zero ones again,
    /// in the same order, are the same ids, which have records and keep `order`.
    revisions: Vec<u64>,
    /// The walk of the records against the running jobs, per record in the map's order: how
    /// many running jobs (in `order`) to pass over, then how many are its own. Reused while the
    /// jobs (`revisions`) and the records (`records_changed`) are the last update's.
    walk: Vec<(u32, u32)>,
    /// A record was added or removed since `walk` was made.
    records_changed: bool,
    unallocated: PerComponent<u64>,
    baseline: BaselineTracker,
    topology: Topology,
    /// Energy of jobs already dropped after their grace period, µJ: with it, jobs + unallocated
    /// can be checked against the node's totals at any time.
    retired: PerComponent<u64>,
    /// Remainders of the GPUs split between their parts (MIG instances, dies).
    splitter: crate::partition::Splitter,
    /// Sockets measured but missing from the topology, already logged.
    unknown_sockets: BTreeSet<u32>,
    /// Per (account, user) totals, fed with the same deltas as the jobs.
    owners: Owners,
    /// The split's buffers, and its weights while the running jobs are the same.
    attributor: Attributor,
    /// Records of running jobs (not ended), as of the last update or resume.
    running: usize,
    /// The cycles whose charge waits for [`Accounting::settle`], and where the running jobs'
    /// records are.
    pending: Pending,
    /// The earliest end among the finished jobs at the last walk of the records.
    first_end: f64,
    /// A running job held a GPU at the last walk of the records.
    gpus_held: bool,
}

/// What a running job holds through a cycle, for its owner's counters.
struct Held {
    cpus: usize,
    gpus: usize,
    memory_bytes: u64,
}

impl Held {
    fn of_share(s: &JobShare) -> Held {
        Held {
            cpus: s.cpus.len(),
            gpus: s.gpus.len(),
            memory_bytes: s.memory_bytes.unwrap_or(0),
        }
    }
}

/// Adds each share's gain (its energy from `by_job`, in the order of the running jobs, its CPU
/// time, its core-, GPU-seconds) to its record (`recs[record[j]]`; shares of the same id, listed
/// twice, add up in the same record, as merged) and to the record's owner: the same integers,
/// the same increments.
fn charge(
    recs: &mut [&mut JobRecord],
    record: &[usize],
    by_job: &[PerComponent<u64>],
    held: &[Held],
    cpu_deltas: &[u64],
    interval_s: f64,
    (owners, now, t_mono): (&mut Owners, f64, f64),
) {
    for (j, (&r, uj)) in record.iter().zip(by_job).enumerate() {
        let (Some(rec), Some(h)) = (recs.get_mut(r), held.get(j)) else {
            continue;
        };
        rec.uj.saturating_add_assign(uj);
        let started = !rec.counted;
        rec.counted = true;
        let gain = Gain {
            uj,
            cpu_seconds: cpu_deltas.get(j).copied().unwrap_or(0) as f64 / 1e9,
            core_seconds: h.cpus as f64 * interval_s,
            gpu_seconds: h.gpus as f64 * interval_s,
            elapsed_seconds: interval_s,
            memory_byte_seconds: h.memory_bytes as f64 * interval_s,
            started,
        };
        rec.cpu_seconds += gain.cpu_seconds;
        rec.core_seconds += gain.core_seconds;
        rec.gpu_seconds += gain.gpu_seconds;
        let m = &rec.meta;
        let owner = (m.account.as_str(), m.user.as_str());
        owners.add_cached(&mut rec.owner, owner, gain, now, t_mono);
    }
}

fn topology(node: &NodeInfo) -> Topology {
    let sockets = node
        .cpus_by_socket
        .keys()
        .max()
        .map_or(1, |m| *m as usize + 1);
    let mut cpus_by_socket = vec![Vec::new(); sockets];
    for (s, cpus) in &node.cpus_by_socket {
        cpus_by_socket[*s as usize] = cpus.clone();
    }
    Topology {
        cpus_by_socket,
        memory_bytes: node.memory_bytes,
    }
}

/// Spreads a node-wide energy over sockets by their CPU counts, exactly (the remainder goes to
/// the last socket), for components measured without a per-socket split (the estimate).
fn spread(total: u64, topo: &Topology) -> Vec<u64> {
    let n = topo.cpus_by_socket.len().max(1);
    let all: u64 = topo.cpus_by_socket.iter().map(|c| c.len() as u64).sum();
    if all == 0 {
        let mut v = vec![0; n];
        v[0] = total;
        return v;
    }
    let mut v: Vec<u64> = topo
        .cpus_by_socket
        .iter()
        .map(|c| (total as u128 * c.len() as u128 / all as u128) as u64)
        .collect();
    let given: u64 = v.iter().sum();
    if let Some(last) = v.last_mut() {
        *last += total - given;
    }
    v
}

/// Per-socket energies of a component: a socket of the topology, or a die of one, keeps its
/// energy on that socket; the energy of the others (the node: an estimate; a sensor named in the
/// configuration; a socket the topology lacks, added to `unknown` for the caller to log) is
/// spread over sockets by their CPUs.
fn by_socket(
    devices: Option<&BTreeMap<DeviceKey, u64>>,
    topo: &Topology,
    unknown: &mut Vec<u32>,
) -> Vec<u64> {
    let Some(devices) = devices else {
        return Vec::new();
    };
    let n = topo.cpus_by_socket.len().max(1);
    let mut v = vec![0u64; n];
    let mut unplaced = 0u64;
    for (dev, uj) in devices {
        let socket = match dev {
            // A die's energy belongs to its socket.
            DeviceKey::Socket(s) | DeviceKey::Die { socket: s, .. } => {
                let known = (*s as usize) < n;
                if !known {
                    unknown.push(*s);
                }
                known.then_some(*s as usize)
            }
            DeviceKey::Node | DeviceKey::Sensor(_) | DeviceKey::Gpu(_) => None,
        };
        match socket {
            Some(s) => v[s] = v[s].saturating_add(*uj),
            None => unplaced = unplaced.saturating_add(*uj),
        }
    }
    if unplaced > 0 {
        for (x, y) in v.iter_mut().zip(spread(unplaced, topo)) {
            *x = x.saturating_add(y);
        }
    }
    v
}

fn meta_of(opts: &AccountingOptions, job: &Job) -> JobMeta {
    let name = |v: &Option<String>| match opts.anonymize {
        Anonymize::None => v.clone().unwrap_or_default(),
        Anonymize::Hash => hash_name(&opts.salt, v.as_deref().unwrap_or("")),
        Anonymize::Drop => String::new(),
    };
    JobMeta {
        scheduler: job.scheduler.as_str().to_string(),
        user: name(&job.user),
        account: job.account.clone().unwrap_or_default(),
        partition: job.partition.clone().unwrap_or_default(),
        job_name: name(&job.job_name),
        sluid: job.sluid.clone().unwrap_or_default(),
        uid: name(&job.uid.map(|u| u.to_string())),
        metadata: job.metadata.as_str().to_string(),
        saved: Default::default(),
    }
}

/// A running job's record brought up to date with one scan of it: reopened if it had ended,
/// metadata and allocation replaced when they changed. Returns the CPU time used since the last
/// scan, ns (added with the cycle's other gains by [`charge`]).
fn refresh(opts: &AccountingOptions, rec: &mut JobRecord, job: &Job) -> u64 {
    if rec.ended_at.take().is_some() {
        // The id came back (a requeued job, or a resumed one): same counters.
        rec.last_cpu_ns = None;
    }
    rec.ended_mono = None;
    if job.revision == 0 || job.revision != rec.revision {
        let raw = [
            &job.user,
            &job.account,
            &job.partition,
            &job.job_name,
            &job.sluid,
        ];
        let (old, uid, source) = &*rec.raw_meta;
        let same =
            old.iter().zip(raw).all(|(a, b)| a == b) && *uid == job.uid && *source == job.metadata;
        if !same || rec.meta.scheduler.is_empty() {
            rec.meta = Arc::new(meta_of(opts, job));
            rec.owner = None;
            rec.raw_meta = Arc::new((raw.map(Clone::clone), job.uid, job.metadata));
        }
        if *rec.cpus != *job.cpus {
            rec.cpus = Arc::from(job.cpus.as_slice());
        }
        rec.revision = job.revision;
    }
    if *rec.gpus != *job.gpus {
        rec.gpus = Arc::from(job.gpus.as_slice());
    }
    rec.memory_bytes = job.memory_limit_bytes;
    cpu_since(&mut rec.last_cpu_ns, job.cpu_usage_ns)
}

/// The CPU time used since `last` (the last value read, ns), which becomes `cur` when a value
/// was read. A value that went down is a new cgroup or a step that ended (summed steps):
/// counting restarts from it rather than count a negative or a huge wrap.
fn cpu_since(last: &mut Option<u64>, cur: Option<u64>) -> u64 {
    let d = match (*last, cur) {
        (Some(prev), Some(cur)) if cur >= prev => cur - prev,
        _ => 0,
    };
    if cur.is_some() {
        *last = cur;
    }
    d
}

/// The order of `str` (bytewise, a prefix first), compared inline: job ids are a few bytes, and
/// a `memcmp` call per comparison was a sixth of a 1,000-job cycle's accounting.
#[inline]
fn id_cmp(a: &str, b: &str) -> Ordering {
    for (x, y) in a.bytes().zip(b.bytes()) {
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

/// `a == b`, inline (see [`id_cmp`]).
#[inline]
fn id_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

fn hash_name(salt: &str, value: &str) -> String {
    use sha2::{Digest, Sha256};
    if value.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(format!("{salt}\0{value}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Accounting {
    pub fn new(opts: AccountingOptions, node: &NodeInfo) -> Self {
        let mut baseline = BaselineTracker::new(24.0 * 3600.0, 60.0);
        baseline.set_configured(opts.idle_watts_by_socket.clone());
        Accounting {
            opts,
            jobs: BTreeMap::new(),
            unallocated: PerComponent::default(),
            baseline,
            topology: topology(node),
            retired: PerComponent::default(),
            cpu_deltas: Vec::new(),
            order: Vec::new(),
            revisions: Vec::new(),
            walk: Vec::new(),
            records_changed: true,
            splitter: Default::default(),
            unknown_sockets: BTreeSet::new(),
            owners: Owners::default(),
            attributor: Attributor::default(),
            running: 0,
            pending: Pending::default(),
            first_end: f64::INFINITY,
            gpus_held: false,
        }
    }

    /// Per (account, user) totals.
    pub fn owners(&self) -> &Owners {
        &self.owners
    }

    /// The owner pairs to publish: those with a job in the last grace period (as finished jobs
    /// are published for it).
    pub fn published_owners(
        &self,
    ) -> impl Iterator<Item = (crate::owners::OwnerKey, &crate::owners::OwnerTotals)> {
        self.owners.published(self.opts.grace_s)
    }

    pub fn jobs(&self) -> &BTreeMap<Arc<str>, JobRecord> {
        &self.jobs
    }

    /// Unallocated energy by component, µJ.
    pub fn unallocated_uj(&self) -> PerComponent<u64> {
        self.unallocated
    }

    /// Energy of all jobs ever seen (published or retired) plus unallocated, µJ per component:
    /// equals the node's energy gained since accounting started.
    pub fn accounted_uj(&self) -> PerComponent<u64> {
        let mut t = self.unallocated.saturating_add(self.retired);
        for j in self.jobs.values() {
            t.saturating_add_assign(&j.uj);
        }
        t
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// One cycle: `now` is Unix time (seconds), `delta` what the node gained, `running` the jobs
    /// present now. Returns nothing; the effect is in the counters.
    pub fn update(&mut self, now: f64, t_mono: f64, delta: &CycleDelta, running: &[Job]) {
        self.update_deferred(now, t_mono, delta, running);
        self.settle();
    }

    /// [`Accounting::update`] that may leave the cycle's charge pending: while the jobs are the
    /// last cycle's (see [`pending`]), only the node's energy and the CPU time read are added up,
    /// and the jobs are charged at the next [`Accounting::settle`] or change. Read the counters
    /// only after a settle.
    pub fn update_deferred(&mut self, now: f64, t_mono: f64, delta: &CycleDelta, running: &[Job]) {
        let node_delta = self.node_delta(delta, t_mono);
        if self.can_defer(t_mono, running) {
            self.pending.add(&node_delta, running, now, t_mono);
            return;
        }
        // What is pending belongs to the last cycle's jobs: charged to them before the change.
        self.settle();
        self.update_now(now, t_mono, node_delta, running);
    }

    /// One cycle charged now, with the jobs' records brought up to date with `running`.
    fn update_now(&mut self, now: f64, t_mono: f64, node_delta: NodeDelta, running: &[Job]) {
        // The running jobs in the map's order (by id), unsorted only when they do not come so.
        // A stable sort keeps a repeated id's entries in their order. The same jobs as in the
        // last update (by their revisions) keep its order and have their records already.
        let mut order = std::mem::take(&mut self.order);
        let same_jobs = running.len() == self.revisions.len()
            && running
                .iter()
                .zip(&self.revisions)
                .all(|(j, &r)| j.revision != 0 && j.revision == r);
        self.revisions.clear();
        self.revisions.extend(running.iter().map(|j| j.revision));
        if !same_jobs {
            order.clear();
            order.extend(0..running.len());
            if !running.is_sorted_by(|a, b| id_cmp(&a.id, &b.id).is_le()) {
                order.sort_by(|&a, &b| id_cmp(&running[a].id, &running[b].id));
            }
            self.add_new(running, &order);
        }

        // Every record against the jobs running now, in one walk: refresh what is running
        // (allocation, CPU time, core- and GPU-seconds; what did not change is not copied), mark
        // what is not as ended. `record[j]` is the position in `recs` of job `j`'s record.
        let mut recs: Vec<&mut JobRecord> = Vec::with_capacity(running.len());
        let mut record = vec![usize::MAX; running.len()];
        self.cpu_deltas.clear();
        self.cpu_deltas.resize(running.len(), 0);
        self.pending.start(running.len());
        let mut k = 0;
        // The earliest end among the finished jobs, for their expiry below.
        let mut first_end = f64::INFINITY;
        // The same jobs and records as in the last update: the same walk, without comparing
        // an id (the ids' bytes are not even touched).
        let reuse = same_jobs && !self.records_changed && self.walk.len() == self.jobs.len();
        if !reuse {
            self.walk.clear();
        }
        self.records_changed = false;
        for (i, (id, rec)) in self.jobs.iter_mut().enumerate() {
            let (skip, n) = if reuse {
                self.walk.get(i).copied().unwrap_or_default()
            } else {
                // (Every running id has a record by now: nothing is skipped here.)
                let start = k;
                while k < order.len() && id_cmp(&running[order[k]].id, id).is_lt() {
                    k += 1;
                }
                let first = k;
                while k < order.len() && id_eq(&running[order[k]].id, id) {
                    k += 1;
                }
                let step = ((first - start) as u32, (k - first) as u32);
                k = start;
                self.walk.push(step);
                step
            };
            let first = (k + skip as usize).min(order.len());
            k = (first + n as usize).min(order.len());
            for &j in &order[first..k] {
                self.cpu_deltas[j] = refresh(&self.opts, rec, &running[j]);
                record[j] = recs.len();
                self.pending.held_by(j, i, rec.last_cpu_ns);
            }
            if k > first {
                // (Running: `refresh` cleared its end.)
                recs.push(rec);
                continue;
            }
            if rec.ended_at.is_none() {
                rec.ended_at = Some(now);
                rec.ended_mono = Some(t_mono);
            }
            if let Some(end) = rec.ended_mono {
                first_end = first_end.min(end);
            }
        }
        self.order = order;
        self.running = recs.len();
        self.first_end = first_end;
        self.gpus_held = running.iter().any(|j| !j.gpus.is_empty());

        let shares: Vec<JobShare> = running
            .iter()
            .zip(&self.cpu_deltas)
            .map(|(j, &d)| JobShare {
                id: &j.id,
                cpus: &j.cpus,
                gpus: &j.gpus,
                memory_bytes: j.memory_limit_bytes,
                cpu_time_delta_ns: d,
            })
            .collect();
        // The same jobs (by their revisions, which cover their CPUs) in the same order hold the
        // same CPUs as on the last update: the split's weights are kept.
        let unallocated = self.attributor.split(
            &node_delta,
            &self.topology,
            &shares,
            self.opts.policy,
            &self.baseline.baselines(),
            same_jobs,
        );
        let held: Vec<Held> = shares.iter().map(Held::of_share).collect();
        charge(
            &mut recs,
            &record,
            self.attributor.shares(),
            &held,
            &self.cpu_deltas,
            node_delta.interval_s,
            (&mut self.owners, now, t_mono),
        );
        self.owners.expire(t_mono);
        self.unallocated.saturating_add_assign(&unallocated);

        // Finished jobs are dropped after the grace period.
        let grace = self.opts.grace_s;
        if t_mono - first_end <= grace {
            return;
        }
        let retired = &mut self.retired;
        self.records_changed = true;
        self.jobs.retain(|_, rec| match rec.ended_mono {
            Some(end) if t_mono - end > grace => {
                retired.saturating_add_assign(&rec.uj);
                false
            }
            _ => true,
        });
    }

    /// What the node's components gained in this cycle, per socket and GPU, as attribution
    /// splits it (a socket the topology lacks is logged once); the idle baseline learns from it.
    fn node_delta(&mut self, delta: &CycleDelta, t_mono: f64) -> NodeDelta {
        let c = &delta.by_component;
        let mut unknown = Vec::new();
        let node_delta = NodeDelta {
            cpu_by_socket: by_socket(c.cpu.as_ref(), &self.topology, &mut unknown),
            dram_by_socket: by_socket(c.dram.as_ref(), &self.topology, &mut unknown),
            gpu_by_uuid: {
                // Jobs name their GPUs by the id a GPU key prints.
                let mut g: BTreeMap<String, u64> = c
                    .gpu
                    .iter()
                    .flatten()
                    .map(|(k, uj)| (k.to_string(), *uj))
                    .collect();
                self.splitter.apply(
                    &mut g,
                    &delta.gpu_partitions,
                    self.opts.policy == CpuPolicy::UsageAboveBaseline,
                );
                g
            },
            other: c
                .other
                .as_ref()
                .map_or(0, |m| m.values().fold(0u64, |a, b| a.saturating_add(*b))),
            interval_s: delta.interval_s,
        };
        for s in unknown {
            if self.unknown_sockets.insert(s) {
                tracing::warn!(
                    socket = s,
                    sockets = self.topology.cpus_by_socket.len(),
                    "energy of a socket missing from the CPU topology is split over all sockets by CPUs"
                );
            }
        }
        if self.opts.policy == CpuPolicy::UsageAboveBaseline {
            self.baseline
                .observe(t_mono, &node_delta.cpu_by_socket, delta.interval_s);
        }
        node_delta
    }

    /// Gives each id of `running` (in `order`, sorted) that has no record one, counters at 0:
    /// found by walking the map and the sorted jobs together, not by a search per job.
    fn add_new(&mut self, running: &[Job], order: &[usize]) {
        let mut new_ids = Vec::new();
        let mut keys = self.jobs.keys().peekable();
        for &j in order {
            let id = running[j].id.as_str();
            while keys.next_if(|k| id_cmp(k, id).is_lt()).is_some() {}
            if keys.peek().is_none_or(|k| !id_eq(k, id)) {
                new_ids.push(j);
            }
        }
        self.records_changed |= !new_ids.is_empty();
        for j in new_ids {
            self.jobs
                .entry(Arc::from(running[j].id.as_str()))
                .or_default();
        }
    }

    /// Restores counters from a state file. Jobs that ended while the exporter was down are
    /// closed: they are marked ended now (unless the next scan finds them), so their final value
    /// is published for the grace period, then dropped. `counters_start` is the node's counters
    /// start time, as resumed: the start of owner pairs saved without theirs.
    pub fn resume(&mut self, state: &State, counters_start: f64, now: f64, t_mono: f64) {
        for c in Component::ALL {
            if let Some(uj) = state.unallocated.get(c.as_str()) {
                self.unallocated[c] = *uj;
            }
        }
        for (id, js) in &state.jobs {
            let mut rec = JobRecord {
                // Counted in its owner's jobs before the restart.
                counted: true,
                cpu_seconds: js.cpu_seconds,
                core_seconds: js.core_seconds,
                gpu_seconds: js.gpu_seconds,
                ended_at: Some(js.ended_at_unix.unwrap_or(now)),
                // Time already spent in the grace period before the restart counts; a saved time
                // in the future (clock set back since) counts as ending now.
                ended_mono: Some(
                    t_mono - js.ended_at_unix.map_or(0.0, |e| (now - e).clamp(0.0, 1e9)),
                ),
                meta: Arc::new(JobMeta {
                    scheduler: js.meta.get("scheduler").cloned().unwrap_or_default(),
                    user: js.meta.get("user").cloned().unwrap_or_default(),
                    account: js.meta.get("account").cloned().unwrap_or_default(),
                    partition: js.meta.get("partition").cloned().unwrap_or_default(),
                    job_name: js.meta.get("job_name").cloned().unwrap_or_default(),
                    sluid: js.meta.get("sluid").cloned().unwrap_or_default(),
                    uid: js.meta.get("uid").cloned().unwrap_or_default(),
                    metadata: js.meta.get("metadata").cloned().unwrap_or_default(),
                    saved: Default::default(),
                }),
                ..Default::default()
            };
            for c in Component::ALL {
                if let Some(uj) = js.joules_uj.get(c.as_str()) {
                    rec.uj[c] = *uj;
                }
            }
            self.jobs.insert(Arc::from(id.as_str()), rec);
            self.records_changed = true;
        }
        self.owners
            .resume(&state.owners, counters_start, now, t_mono);
        self.running = self.jobs.values().filter(|j| j.ended_at.is_none()).count();
    }

    /// Writes the counters into a state to be saved.
    pub fn save_into(&self, state: &mut State) {
        self.save_head_into(state);
        for (id, rec) in &self.jobs {
            state.jobs.insert(id.to_string(), saved::job_state(rec));
        }
        state.owners = self.owners.save();
    }

    /// Writes what a save takes from here besides the jobs and owners, which it then writes
    /// from a snapshot's records ([`SavedJobs`]) and the owners' ([`crate::owners::SavedOwners`]).
    pub fn save_head_into(&self, state: &mut State) {
        debug_assert!(self.settled(), "a save with a charge pending");
        state.unallocated = uj_map(&self.unallocated);
    }
}

#[cfg(test)]
mod tests;
