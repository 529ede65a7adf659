//! One node's whole pipeline per cycle: the sampler (sources → node components), job discovery
//! (cgroups → running jobs) and accounting (node deltas → jobs and unallocated). The live exporter
//! drives it from the wall clock; `simulate` drives the same code on a virtual clock with
//! synthetic sources and jobs.

use crate::accounting::{Accounting, AccountingOptions, SavedJobs};
use crate::jobs::{Job, JobDiscovery, JobsOptions};
use crate::owners::SavedOwners;
use crate::sampler::Sampler;
use crate::snapshot::{Health, Method, Snapshot};
use crate::sources::{ChannelId, Domain, SourceError, SourceKind};
use crate::state::{Out, Saver, State, StateError};
use joulebook_common::Component;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

pub struct Engine {
    pub sampler: Sampler,
    discovery: Option<JobDiscovery>,
    accounting: Option<Accounting>,
    jobs_health: Health,
    /// The problems of the last scan, each logged when it first appeared: a bad file is
    /// reported once while it stays bad, not every second, and the set never holds more than
    /// one scan's problems (a problem that goes and comes back is logged again).
    logged: BTreeSet<String>,
    /// The jobs of the last scan, overwritten by the next one (no allocation per job).
    jobs: Vec<Job>,
    /// Unix time since which the counters have only grown (`joulebook_counters_start_time_seconds`):
    /// kept from the state file by [`Engine::resume`], else the first cycle's time (a start from 0).
    counters_start_unix: Option<f64>,
}

/// A state to save and the snapshot to publish once it is saved ([`Engine::saving`]): the
/// snapshot's job records and a copy of the owners' counters are written as the state's jobs
/// and owners, in the bytes [`Engine::to_state`] would give.
pub struct Saving {
    head: State,
    pub snapshot: Arc<Snapshot>,
    owners: SavedOwners,
}

impl Saving {
    pub fn save(&self, saver: &mut Saver) -> Result<(), StateError> {
        saver.save_parts(&self.out())
    }

    /// What a save writes.
    fn out(&self) -> Out<'_, SavedJobs<'_>, &SavedOwners> {
        Out {
            head: &self.head,
            jobs: SavedJobs(&self.snapshot.jobs),
            owners: &self.owners,
        }
    }
}

impl Engine {
    /// `discovery` is `None` when jobs are not scanned from cgroups (off, or simulated);
    /// `accounting` is `None` when jobs are off altogether.
    pub fn new(
        sampler: Sampler,
        discovery: Option<JobsOptions>,
        accounting: Option<AccountingOptions>,
    ) -> Engine {
        let accounting = accounting.map(|o| Accounting::new(o, sampler.node_info()));
        Engine {
            discovery: discovery.map(JobDiscovery::new),
            jobs_health: Health {
                enabled: accounting.is_some(),
                ..Default::default()
            },
            accounting,
            sampler,
            logged: BTreeSet::new(),
            jobs: Vec::new(),
            counters_start_unix: None,
        }
    }

    /// Called by every cycle: counters not resumed from a state file start from zero now.
    fn counters_started(&mut self, unix: f64) {
        self.counters_start_unix.get_or_insert(unix);
    }

    pub fn accounting(&self) -> Option<&Accounting> {
        self.accounting.as_ref()
    }

    /// One live cycle: sample, scan the jobs, attribute.
    pub fn cycle(&mut self, t: f64, unix: f64) {
        self.cycle_deferred(t, unix);
        self.settle();
    }

    /// [`Engine::cycle`] that may leave the jobs' charge pending while they are the last
    /// cycle's (see [`Accounting::update_deferred`]): [`Engine::snapshot_reusing`] charges it
    /// before it reads the counters.
    pub fn cycle_deferred(&mut self, t: f64, unix: f64) {
        self.counters_started(unix);
        let delta = self.sampler.cycle(t);
        let Some(acc) = &mut self.accounting else {
            return;
        };
        match &mut self.discovery {
            Some(d) => {
                let started = Instant::now();
                let gpus = self.sampler.gpu_refs();
                // NVML process lists are only worth their cost when there are GPUs.
                let pids = if gpus.is_empty() {
                    Vec::new()
                } else {
                    self.sampler.gpu_processes()
                };
                let problems = d.scan_into(&gpus, &pids, &mut self.jobs);
                let h = &mut self.jobs_health;
                h.samples += 1;
                h.duration_s = started.elapsed().as_secs_f64();
                match (d.mode(), problems.first()) {
                    (None, _) => {
                        let e = match d.detect_mode() {
                            Err(e) => SourceError::new(e.to_string()),
                            Ok(_) => SourceError::new("cgroup mode unknown"),
                        }
                        .with_fix("point --path.cgroupfs at the cgroup mount (/sys/fs/cgroup)");
                        if h.last_error.as_ref() != Some(&e) {
                            tracing::warn!(source = "jobs", error = %e.message, fix = ?e.fix, "source down");
                        }
                        h.up = false;
                        h.last_error = Some(e);
                    }
                    (Some(_), first) => {
                        log_new_problems(&mut self.logged, problems.iter().cloned());
                        // Only the source's own problems (a hierarchy that cannot be listed)
                        // mark it down: one job's bad data never does.
                        let down = problems.get(..d.source_problems()).and_then(<[_]>::first);
                        if !h.up && h.last_error.is_some() && down.is_none() {
                            tracing::info!(source = "jobs", "source is up again");
                        }
                        h.up = down.is_none();
                        h.last_error = down.or(first).map(|p| SourceError::new(p.clone()));
                    }
                }
            }
            None => self.jobs.clear(),
        }
        acc.update_deferred(unix, t, &delta, &self.jobs);
    }

    /// Charges what [`Engine::cycle_deferred`] left pending.
    fn settle(&mut self) {
        if let Some(acc) = &mut self.accounting {
            acc.settle();
        }
    }

    /// Whether the sampler must keep to `sample_interval` (see `tick::Pace::busy`): jobs ran
    /// at the last scan, or a job could start unseen (discovery without complete watches).
    pub fn jobs_busy(&self) -> bool {
        self.accounting.is_some()
            && (!self.jobs.is_empty()
                || self
                    .discovery
                    .as_ref()
                    .is_none_or(|d| d.event_fd().is_none()))
    }

    /// What wakes the sampler for a job start or end: see [`JobDiscovery::event_fd`].
    pub fn job_events(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.discovery.as_ref()?.event_fd()
    }

    /// A cycle without a scan, for a wake-up by a job folder event while the last scan found no
    /// job: the energy since the last cycle goes to unallocated, since no job ran in it, so a job
    /// that has just started gets nothing from before its start. Does nothing and returns false
    /// when the last scan found jobs (their CPU time would have to be read: use [`Engine::cycle`]).
    pub fn cycle_before_jobs(&mut self, t: f64, unix: f64) -> bool {
        if !self.jobs.is_empty() {
            return false;
        }
        self.counters_started(unix);
        let delta = self.sampler.cycle(t);
        if let Some(acc) = &mut self.accounting {
            acc.update(unix, t, &delta, &[]);
        }
        true
    }

    /// One simulated cycle: the jobs are given instead of scanned.
    pub fn cycle_with_jobs(&mut self, t: f64, unix: f64, jobs: &[Job]) {
        self.counters_started(unix);
        let delta = self.sampler.cycle(t);
        if let Some(acc) = &mut self.accounting {
            self.jobs_health.samples += 1;
            self.jobs_health.up = true;
            acc.update(unix, t, &delta, jobs);
        }
    }

    /// The counters now (after [`Engine::cycle`]; after [`Engine::cycle_deferred`], use
    /// [`Engine::snapshot_reusing`], which settles first).
    pub fn snapshot(&self, unix: f64) -> Snapshot {
        self.snapshot_into(unix, None)
    }

    /// What the live loop publishes: charges what [`Engine::cycle_deferred`] left pending, then
    /// takes the snapshot into the job list of `spare` (when given), an earlier snapshot no
    /// scrape holds any more: a steady node's jobs are then copied as numbers only.
    pub fn snapshot_reusing(&mut self, unix: f64, spare: Option<Snapshot>) -> Snapshot {
        self.settle();
        self.snapshot_into(unix, spare)
    }

    fn snapshot_into(&self, unix: f64, spare: Option<Snapshot>) -> Snapshot {
        let mut s = self.sampler.snapshot(unix);
        s.counters_start_unix = self.counters_start_unix.unwrap_or(0.0);
        if let Some(acc) = &self.accounting {
            debug_assert!(acc.settled(), "a snapshot with a charge pending");
            s.health.push((SourceKind::Jobs, self.jobs_health.clone()));
            s.health.sort_by_key(|(k, _)| *k);
            s.jobs = spare.map(|spare| spare.jobs).unwrap_or_default();
            crate::accounting::copy_records(acc.jobs(), &mut s.jobs);
            s.unallocated = acc.unallocated_uj().joules();
            s.jobs_running = Some(acc.running());
            s.owners = acc
                .published_owners()
                .map(|(k, o)| (k, o.clone()))
                .collect();
        } else {
            s.health.push((SourceKind::Jobs, Health::default()));
            s.health.sort_by_key(|(k, _)| *k);
        }
        s
    }

    /// Everything worth keeping across a restart.
    pub fn to_state(&self, hostname: &str, boot_id: Option<String>, unix: f64) -> State {
        let mut st = self.state_head(hostname, boot_id, unix);
        if let Some(acc) = &self.accounting {
            acc.save_into(&mut st);
        }
        st
    }

    /// What [`Engine::to_state`] returns, as a save writes it, with the jobs taken from
    /// `snapshot`, which must be this engine's [`Engine::snapshot`] of the same cycle: a save
    /// then builds no per-job strings (see [`Saving`]).
    pub fn saving(
        &self,
        hostname: &str,
        boot_id: Option<String>,
        unix: f64,
        snapshot: Arc<Snapshot>,
    ) -> Saving {
        let mut head = self.state_head(hostname, boot_id, unix);
        let owners = match &self.accounting {
            Some(acc) => {
                acc.save_head_into(&mut head);
                let o = acc.owners().iter();
                o.map(|(k, o)| (k, o.clone())).collect()
            }
            None => Vec::new(),
        };
        Saving {
            head,
            snapshot,
            owners: SavedOwners(owners),
        }
    }

    /// The state without the jobs and owners.
    fn state_head(&self, hostname: &str, boot_id: Option<String>, unix: f64) -> State {
        let mut st = State::new(hostname);
        st.saved_at_unix = unix;
        st.boot_id = boot_id;
        st.counters_start_unix = self.counters_start_unix;
        for (id, source, uj, raw) in self.sampler.channel_totals() {
            let key = channel_key(id, source);
            if let Some(raw) = raw {
                st.raw.insert(key.clone(), raw);
            }
            st.channels.insert(key, uj);
        }
        for (c, _, source, uj) in self.sampler.node_totals() {
            st.node
                .insert(format!("{}:{}", c.as_str(), source.as_str()), uj);
        }
        st
    }

    /// Restores totals from a state file written by [`Engine::to_state`]. Raw hardware readings
    /// are reused only when the node has not rebooted since (same boot id): counters restart
    /// at boot.
    ///
    /// The counters continue from the file's totals, which are at least what was published
    /// (a snapshot is published only once its state is saved), so they have not gone down and
    /// the file's `counters_start_unix` is kept; a file without it gives the resume time.
    pub fn resume(&mut self, st: &State, unix: f64, t: f64, boot_id: Option<&str>) {
        let counters_start = st.counters_start_unix.unwrap_or(unix);
        self.counters_start_unix = Some(counters_start);
        let same_boot = boot_id.is_some() && st.boot_id.as_deref() == boot_id;
        let age = unix - st.saved_at_unix;
        let channels = st.channels.iter().filter_map(|(k, uj)| {
            let (id, s) = parse_channel_key(k)?;
            let raw = st
                .raw
                .get(k)
                .filter(|_| same_boot && age >= 0.0)
                .map(|r| (*r, age));
            Some((id, s, *uj, raw))
        });
        let node = st.node.iter().filter_map(|(k, uj)| {
            let (c, s) = k.split_once(':')?;
            let c = Component::ALL.into_iter().find(|x| x.as_str() == c)?;
            let s = SourceKind::ALL.into_iter().find(|x| x.as_str() == s)?;
            let m = if s == SourceKind::Estimate {
                Method::Estimated
            } else {
                Method::Measured
            };
            Some((c, m, s, *uj))
        });
        self.sampler.resume(t, channels, node);
        if let Some(acc) = &mut self.accounting {
            acc.resume(st, counters_start, unix, t);
        }
    }
}

fn domain_name(d: Domain) -> &'static str {
    match d {
        Domain::RaplPackage => "rapl_package",
        Domain::RaplCore => "rapl_core",
        Domain::RaplUncore => "rapl_uncore",
        Domain::RaplDram => "rapl_dram",
        Domain::RaplPsys => "rapl_psys",
        Domain::Gpu => "gpu",
        Domain::AmdGpu => "amdgpu",
        Domain::AmdApu => "amd_apu",
        Domain::IntelGpu => "intel_gpu",
        Domain::GraceSocket => "grace_socket",
        Domain::GraceCpuRail => "grace_cpu_rail",
        Domain::GraceSysioRail => "grace_sysio_rail",
        Domain::GraceModule => "grace_module",
        Domain::HwmonNode => "hwmon_node",
        Domain::HwmonCpu => "hwmon_cpu",
        Domain::HwmonDram => "hwmon_dram",
        Domain::HwmonGpu => "hwmon_gpu",
        Domain::HwmonOther => "hwmon_none",
        Domain::EstimatedCpu => "estimated_cpu",
        Domain::EstimatedDram => "estimated_dram",
        Domain::Bmc => "bmc",
    }
}

const DOMAINS: [Domain; 21] = [
    Domain::RaplPackage,
    Domain::RaplCore,
    Domain::RaplUncore,
    Domain::RaplDram,
    Domain::RaplPsys,
    Domain::Gpu,
    Domain::AmdGpu,
    Domain::AmdApu,
    Domain::IntelGpu,
    Domain::GraceSocket,
    Domain::GraceCpuRail,
    Domain::GraceSysioRail,
    Domain::GraceModule,
    Domain::HwmonNode,
    Domain::HwmonCpu,
    Domain::HwmonDram,
    Domain::HwmonGpu,
    Domain::HwmonOther,
    Domain::EstimatedCpu,
    Domain::EstimatedDram,
    Domain::Bmc,
];

/// `source/domain/device`: stable names, so a state file survives refactoring of the enums.
fn channel_key(id: &ChannelId, source: SourceKind) -> String {
    format!(
        "{}/{}/{}",
        source.as_str(),
        domain_name(id.domain),
        id.device
    )
}

fn parse_channel_key(k: &str) -> Option<(ChannelId, SourceKind)> {
    let mut parts = k.splitn(3, '/');
    let source = parts.next()?;
    let domain = parts.next()?;
    let device = parts.next()?;
    let source = SourceKind::ALL.into_iter().find(|x| x.as_str() == source)?;
    let domain = DOMAINS.into_iter().find(|d| domain_name(*d) == domain)?;
    Some((ChannelId::new(domain, device), source))
}

/// New job-discovery problems logged per cycle, at most; the rest are counted in one line.
const MAX_NEW_PROBLEM_LINES: usize = 20;

/// Logs the problems of this scan that the last one did not have (at most
/// [`MAX_NEW_PROBLEM_LINES`], then one line with the count of the others), and keeps this
/// scan's set for the next.
fn log_new_problems(logged: &mut BTreeSet<String>, problems: impl Iterator<Item = String>) {
    let now: BTreeSet<String> = problems.collect();
    let mut shown = 0;
    let mut more = 0;
    for p in now.difference(logged) {
        if shown < MAX_NEW_PROBLEM_LINES {
            tracing::warn!(source = "jobs", problem = %p, "job discovery problem");
            shown += 1;
        } else {
            more += 1;
        }
    }
    if more > 0 {
        tracing::warn!(
            source = "jobs",
            count = more,
            "more job discovery problems not logged"
        );
    }
    *logged = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::DeviceKey;

    #[test]
    fn channel_keys_round_trip() {
        for d in DOMAINS {
            let id = ChannelId::new(d, "GPU-1/2");
            let k = channel_key(&id, SourceKind::Nvml);
            assert_eq!(parse_channel_key(&k), Some((id, SourceKind::Nvml)));
        }
        assert_eq!(parse_channel_key("nope"), None);
    }

    /// The state file's channel keys as the string-keyed code wrote them (`source/domain/device`)
    /// load as typed devices, and the typed devices are saved under the same keys.
    #[test]
    fn state_keys_of_every_device_kind_load_typed_and_save_the_same() {
        let gpu = "GPU-8f6d1c2e-0a4b-4c3d-9e1f-2a3b4c5d6e7f";
        let cases = [
            (
                "rapl/rapl_package/0",
                Domain::RaplPackage,
                DeviceKey::Socket(0),
            ),
            ("rapl/rapl_dram/12", Domain::RaplDram, DeviceKey::Socket(12)),
            (
                "rapl/rapl_package/1-die-1",
                Domain::RaplPackage,
                DeviceKey::Die { socket: 1, die: 1 },
            ),
            ("rapl/rapl_psys/", Domain::RaplPsys, DeviceKey::Node),
            (
                "grace/grace_socket/1",
                Domain::GraceSocket,
                DeviceKey::Socket(1),
            ),
            (
                "nvml/gpu/GPU-8f6d1c2e-0a4b-4c3d-9e1f-2a3b4c5d6e7f",
                Domain::Gpu,
                DeviceKey::gpu(gpu),
            ),
            ("amdgpu/amdgpu/1234", Domain::AmdGpu, DeviceKey::gpu("1234")),
            (
                "intel_gpu/intel_gpu/0000:4d:00.0",
                Domain::IntelGpu,
                DeviceKey::gpu("0000:4d:00.0"),
            ),
            (
                "hwmon/hwmon_node/node",
                Domain::HwmonNode,
                DeviceKey::sensor("node"),
            ),
            (
                "hwmon/hwmon_cpu/0",
                Domain::HwmonCpu,
                DeviceKey::sensor("0"),
            ),
            (
                "estimate/estimated_cpu/",
                Domain::EstimatedCpu,
                DeviceKey::Node,
            ),
            ("bmc/bmc/", Domain::Bmc, DeviceKey::Node),
        ];
        for (key, domain, device) in cases {
            let (id, source) = parse_channel_key(key).expect(key);
            assert_eq!(id, ChannelId::of(domain, device), "{key}");
            assert_eq!(channel_key(&id, source), key);
        }
    }
}

/// The live schedule's wake-up on a job start (`app::sample_loop`): a cycle without a scan closes
/// the idle interval before the scan that finds the new job.
#[cfg(test)]
mod schedule_tests {
    use super::*;
    use crate::accounting::AccountingOptions;
    use crate::node::NodeInfo;
    use crate::sources::{EnergyReading, RawEnergy, Source, SourceSample};
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// One RAPL package counter, set by the test.
    struct Meter(Arc<AtomicU64>);

    impl crate::sources::Source for Meter {
        fn kind(&self) -> SourceKind {
            SourceKind::Rapl
        }
        fn sample(&mut self) -> Result<crate::sources::SourceSample, SourceError> {
            Ok(SourceSample {
                energy: vec![EnergyReading {
                    channel: ChannelId::new(Domain::RaplPackage, "0"),
                    raw: RawEnergy::Wrapping {
                        uj: self.0.load(Ordering::SeqCst),
                        range_uj: 1 << 40,
                        max_watts: 500.0,
                    },
                }],
                ..Default::default()
            })
        }
    }

    const CONTROLLERS: [&str; 5] = ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"];

    /// Moves every controller's `slurm_node1` folder from `from` to `to` (under the tree root).
    fn move_jobs(root: &Path, from: &str, to: &str) {
        for c in CONTROLLERS {
            let cg = root.join("sys/fs/cgroup").join(c);
            std::fs::rename(cg.join(from), cg.join(to)).expect("rename");
        }
    }

    /// Job 101's CPU energy and the unallocated CPU energy, J, after an idle node (30 s) sees
    /// the job start, with the event's cycle without a scan (`pre`) or without it.
    fn job_start(pre: bool) -> (f64, f64, f64) {
        let dir = tempfile::tempdir().expect("tempdir");
        joulebook_tests::copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cgroup/slurm-v1"),
            dir.path(),
        );
        move_jobs(dir.path(), "slurm_node1", "later");
        let uj = Arc::new(AtomicU64::new(0));
        let mut node = NodeInfo::default();
        node.cpus_by_socket.insert(0, (0..8).collect());
        let sources: Vec<Box<dyn Source>> = vec![Box::new(Meter(uj.clone()))];
        let sampler = Sampler::new(sources, vec![], node, None, 1.0);
        let mut e = Engine::new(
            sampler,
            Some(crate::jobs::JobsOptions::under_root(dir.path())),
            Some(AccountingOptions::default()),
        );
        e.cycle(0.0, 0.0);
        uj.store(1_000_000, Ordering::SeqCst);
        e.cycle(1.0, 1.0);
        assert!(!e.jobs_busy(), "an idle node with watched folders");
        // 30 s later the job's folders appear (100 W meanwhile); the event wakes the sampler.
        uj.store(31_000_000, Ordering::SeqCst);
        move_jobs(dir.path(), "later", "slurm_node1");
        if pre {
            assert!(e.cycle_before_jobs(31.0, 31.0));
            uj.store(31_010_000, Ordering::SeqCst);
        }
        e.cycle(31.1, 31.1);
        assert!(e.jobs_busy(), "jobs run");
        assert!(!e.cycle_before_jobs(31.2, 31.2), "refused while jobs run");
        let acc = e.accounting().expect("accounting");
        let job = acc
            .jobs()
            .get("101")
            .expect("job 101")
            .joules(Component::Cpu);
        let un = acc.unallocated_uj().cpu;
        let node_j = e
            .sampler
            .channel_joules(&ChannelId::new(Domain::RaplPackage, "0"));
        (job, un as f64 / 1e6, node_j.unwrap_or(0.0))
    }

    fn metered_engine() -> Engine {
        let mut node = NodeInfo::default();
        node.cpus_by_socket.insert(0, (0..8).collect());
        let uj = Arc::new(AtomicU64::new(5_000_000));
        let sources: Vec<Box<dyn Source>> = vec![Box::new(Meter(uj))];
        Engine::new(Sampler::new(sources, vec![], node, None, 1.0), None, None)
    }

    /// `joulebook_counters_start_time_seconds`: set by the first cycle of counters that start
    /// from zero, kept by a resume from the state file, the resume time for a file without it.
    #[test]
    fn counters_start_time_survives_a_resume_and_moves_on_a_start_from_zero() {
        let mut e = metered_engine();
        assert_eq!(e.snapshot(0.0).counters_start_unix, 0.0, "before any cycle");
        e.cycle(0.0, 1_000.5);
        e.cycle(1.0, 1_001.5);
        assert_eq!(e.snapshot(1_001.5).counters_start_unix, 1_000.5);
        let st = e.to_state("n1", None, 1_001.5);
        assert_eq!(st.counters_start_unix, Some(1_000.5));

        let mut resumed = metered_engine();
        resumed.resume(&st, 2_000.0, 0.0, None);
        resumed.cycle(0.0, 2_000.0);
        assert_eq!(resumed.snapshot(2_000.0).counters_start_unix, 1_000.5);

        let mut old_file = st.clone();
        old_file.counters_start_unix = None;
        let mut from_old = metered_engine();
        from_old.resume(&old_file, 3_000.0, 0.0, None);
        from_old.cycle(0.0, 3_001.0);
        assert_eq!(from_old.snapshot(3_001.0).counters_start_unix, 3_000.0);

        // No usable state file: the counters start from zero, and the time moves.
        let mut fresh = metered_engine();
        fresh.cycle(0.0, 4_000.0);
        assert_eq!(fresh.snapshot(4_000.0).counters_start_unix, 4_000.0);
    }

    /// The start (`since`) of an owner pair saved without it is the node's counters
    /// start time as resumed (the file's, else the resume time); a saved one is kept.
    #[test]
    fn owner_pairs_saved_without_a_start_take_the_counters_start() {
        let engine = || {
            let mut node = NodeInfo::default();
            node.cpus_by_socket.insert(0, (0..8).collect());
            let uj = Arc::new(AtomicU64::new(5_000_000));
            let sources: Vec<Box<dyn Source>> = vec![Box::new(Meter(uj))];
            let sampler = Sampler::new(sources, vec![], node, None, 1.0);
            Engine::new(sampler, None, Some(AccountingOptions::default()))
        };
        let mut st = State::new("n1");
        st.saved_at_unix = 1_900.0;
        st.counters_start_unix = Some(1_000.5);
        for (user, start_unix) in [("old", None), ("kept", Some(1_500.0))] {
            st.owners.push(crate::state::OwnerState {
                account: "p".into(),
                user: user.into(),
                last_active_unix: 1_900.0,
                start_unix,
                ..Default::default()
            });
        }
        let starts = |st: &State, unix: f64| {
            let mut e = engine();
            e.resume(st, unix, 0.0, None);
            e.cycle(0.0, unix);
            e.snapshot(unix)
                .owners
                .iter()
                .map(|((_, u), o)| (u.to_string(), o.start_unix()))
                .collect::<Vec<_>>()
        };
        let want = |old| vec![("kept".to_string(), 1_500.0), ("old".to_string(), old)];
        assert_eq!(starts(&st, 2_000.0), want(1_000.5));
        st.counters_start_unix = None;
        assert_eq!(starts(&st, 2_000.0), want(2_000.0));
    }

    /// A live save (`Engine::saving`: the jobs from the snapshot's records, the owners from
    /// a copy) writes the bytes of `Engine::to_state`, with jobs running and ended, and loads
    /// back as that state.
    #[test]
    fn a_save_from_the_snapshot_writes_what_to_state_gives() {
        let dir = tempfile::tempdir().expect("tempdir");
        joulebook_tests::copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cgroup/slurm-v1"),
            dir.path(),
        );
        let uj = Arc::new(AtomicU64::new(0));
        let mut node = NodeInfo::default();
        node.cpus_by_socket.insert(0, (0..8).collect());
        let sources: Vec<Box<dyn Source>> = vec![Box::new(Meter(uj.clone()))];
        let mut e = Engine::new(
            Sampler::new(sources, vec![], node, None, 1.0),
            Some(crate::jobs::JobsOptions::under_root(dir.path())),
            Some(AccountingOptions::default()),
        );
        let file = dir.path().join("state.json");
        let mut saver = crate::state::Saver::new(&file);
        let mut check = |e: &Engine, unix: f64, ended: bool| {
            let boot = Some("b".to_string());
            let whole = e.to_state("n1", boot.clone(), unix);
            assert!(!whole.jobs.is_empty() && !whole.owners.is_empty());
            assert_eq!(
                whole.jobs.values().all(|j| j.ended_at_unix.is_some()),
                ended
            );
            let saving = e.saving("n1", boot, unix, Arc::new(e.snapshot(unix)));
            assert_eq!(
                String::from_utf8(saving.out().to_json().expect("encode")),
                String::from_utf8(serde_json::to_vec(&whole).expect("encode")),
            );
            saving.save(&mut saver).expect("save");
            let crate::state::LoadOutcome::Loaded(loaded) = crate::state::load(&file, "n1") else {
                panic!("the save does not load");
            };
            assert_eq!(loaded, whole);
            // Every field a job is published with comes back from the file.
            let mut resumed = Engine::new(
                Sampler::new(vec![], vec![], NodeInfo::default(), None, 1.0),
                None,
                Some(AccountingOptions::default()),
            );
            resumed.resume(&loaded, unix, 0.0, None);
            let fields = |e: &Engine| {
                let jobs = e.snapshot(unix).jobs.into_iter();
                jobs.map(|(id, r)| (id, r.meta, r.uj, r.cpu_seconds, r.core_seconds))
                    .collect::<Vec<_>>()
            };
            assert_eq!(fields(&resumed), fields(e));
        };
        for t in 0..3 {
            uj.store(t * 7_000_001, Ordering::SeqCst);
            e.cycle(t as f64, 1_000.0 + t as f64);
        }
        check(&e, 1_002.0, false);
        move_jobs(dir.path(), "slurm_node1", "gone");
        uj.store(30_000_000, Ordering::SeqCst);
        e.cycle(3.0, 1_003.0);
        check(&e, 1_003.0, true);
    }

    #[test]
    fn a_job_started_on_an_idle_node_gets_nothing_from_before_its_start() {
        let (job, unallocated, node) = job_start(true);
        assert!(
            job < 0.01,
            "job 101 got {job} J of the 10 mJ since its start"
        );
        // Jobs + unallocated = node (job 102 starts too and shares the last 10 mJ).
        assert!(
            unallocated >= 31.0 - 0.01 && unallocated <= node,
            "{unallocated} of {node}"
        );
        // Without the cycle before the scan, the job is charged for the idle 30 s.
        let (job, _, _) = job_start(false);
        assert!(job > 1.0, "{job} J");
    }
}
