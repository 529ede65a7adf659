//! The batch jobs running on this node, read from cgroups: their ids, owners, metadata, CPUs,
//! CPU time, memory limit and GPUs. Plain data for the attribution; no Prometheus types and no
//! energy arithmetic here.
//!
//! Everything comes from files under configurable roots (`--path.cgroupfs`, `--path.procfs`,
//! the root of `/etc/passwd`), so tests run on fixture trees. Nothing forks a process or asks
//! the scheduler's controller: a scan runs every second with up to a thousand jobs.
//!
//! A scan ([`JobDiscovery::scan`]) reads what changes and caches the rest:
//! 1. it reads each known job's CPU time again from its `cpuacct.usage` (v1) or `cpu.stat`
//!    (v2), kept open since the job was first seen: one `pread`, no path lookup (every scan,
//!    or less often: [`JobsOptions::cpu_time_every`]);
//! 2. it lists the job folders of the supported layouts (below) in one hierarchy: every v1
//!    controller that a scheduler uses holds every job, so between full listings (every 30
//!    scans, and on each scan while none finds a job) only the controller holding the most
//!    jobs is listed, plus any that held a job that one lacked, plus the v2 hierarchy. The
//!    folders listed are kept open and watched with inotify: one in which no folder was made,
//!    removed or moved since its last listing is replayed from memory, the others are read
//!    again with `getdents64` (all of them every 10th full listing, as a safety net). The
//!    events are taken in after step 1, so a job removed after its CPU time was read is not
//!    replayed. A job's folder in another controller is the same path below that
//!    controller's root;
//! 3. a job seen for the first time (a new id, or the same id in a folder with another inode
//!    number: a reused id) is read at once: its CPUs (`cpuset.effective_cpus`, else
//!    `cpuset.cpus`; which one exists is remembered), CPU time and memory limit at the job
//!    level, falling back to the union/sum over its steps only when the job folder lacks the
//!    file; its environment, from one of its processes (account, partition, name, the GPU
//!    variables); its GPUs;
//! 4. a job's CPUs, memory limit and `devices.list` (only with a GPU inventory: it names GPUs
//!    by device minor) are read again every 60 scans, each job at its own scan of the period
//!    (`scontrol update` can change a running job's CPUs), and on each of the first 3 scans of
//!    a job that started while the exporter runs (Slurm writes them just after creating the
//!    folders). An environment (or OAR resources file) not found yet is looked for on each of
//!    the job's first 10 scans, then every 5 scans; one found is kept until the job ends;
//! 5. the job's GPUs come from the most trusted source that names any (see
//!    [`GpuMappingSource`]): the cached ones, and the mapping directory and NVML's processes,
//!    read on every scan.
//!
//! A problem found in cached data is reported on every scan until the data is read again, as
//! if it was read each time.
//!
//! Cost of a scan with N jobs, once they are known: N `pread`s (N/k with `cpu_time_every` k),
//! one `read` of the inotify queue, an `lseek` and two `getdents64` per folder listed in which
//! something changed (the root, `slurm_<node>`, one per user), and about 2N/60 `pread`s of the
//! static files kept open (CPUs, memory limit; plus, then, a `stat` per controller that a job
//! lacks); no `open` and no failed `open`. Kept open: three files per job (CPU time, CPUs,
//! memory limit) and one per folder listed in any hierarchy. The soft `RLIMIT_NOFILE` is
//! raised towards the hard limit when they need it, 256 descriptors are left for the rest of
//! the exporter, and files are read by path when none is to spare.
//!
//! Layouts, relative to a hierarchy root (a v1 controller folder such as `cpuset/` or
//! `cpu,cpuacct/`, the v2 root, or `unified/` on a hybrid system); steps, tasks and Slurm's
//! extern step belong to their job:
//!
//! | scheduler | layout |
//! |---|---|
//! | Slurm, cgroup v1 | `slurm[_<node>]/uid_<uid>/job_<id>/step_<s>/task_<t>` |
//! | Slurm, cgroup v2 | `system.slice/[<node>_]slurmstepd.scope/job_<id>/step_<s>/…` |
//! | Slurm 26.05, cgroup v2 | `system.slice/[<node>_]slurmstepd.scope/<SLUID>/step_<s>/…` (id: see `sluid`) |
//! | OAR 2 (v1) | `oar/<user>_<jobid>` |
//! | OAR 3 (systemd, v2) | `oar.slice/oar-u<uid>.slice/oar-u<uid>-j<jobid>.slice` |
//! | systemd user slices | `user.slice/user-<uid>.slice` (only with [`JobsOptions::user_slices`]) |
//!
//! A job is one per (scheduler, slurmd scope, id); the scopes of one id are published as one
//! job. Its metadata comes from the most trusted source that gives it (the prolog's record, the
//! kernel, the environment: see `meta` and docs/job-identity.md), and every label value taken
//! from a job is cut at [`MAX_LABEL_BYTES`].
//!
//! A job whose folder disappears during the scan has ended: it is left out without a problem.
//! The CPU time is read before the listing, so a job whose cgroup was removed since (its open
//! file fails with ENODEV, or keeps its last content in a fixture tree) is not listed, and left
//! out.
//! Bad content is reported in [`ScanResult::problems`] with the file's path, and the job is
//! still listed with what could be read.

mod cache;
mod cgroup;
mod cpuset;
mod env;
mod gpu;
mod layout;
mod lister;
mod meta;
mod model;
mod nvcaps;
mod passwd;
mod read;
mod reader;
mod record;
mod sluid;

use cache::{next_in_phase, parse_usage, Cache, Devices, JobCache, Statics, UsageFile, UsageRead};
pub use cpuset::{format_cpu_list, parse_cpu_list, CpuListError, MAX_CPU_ID};
use model::set_text;
pub(crate) use model::{clip, clip_to, JobId, JobKey};
pub use model::{
    CgroupMode, GpuMappingSource, GpuRef, GpuVendor, Job, JobsError, MetadataSource, ScanResult,
    Scheduler, DEFAULT_RECORD_DIR, MAX_GPU_LIST_BYTES, MAX_LABEL_BYTES,
};
use read::Ctx;

use cgroup::{Controller, FdBudget, Found, Hierarchy, PerSlot, Slot};
use cpuset::shorten;
use env::{EnvSearch, JobEnv};
use lister::{Listed, Lister};
use reader::{Reader, Vanished};
use sluid::Sluids;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where to read from, and which optional sources to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobsOptions {
    /// Root of the cgroup filesystem (`--path.cgroupfs`, default `/sys/fs/cgroup`).
    pub cgroupfs: PathBuf,
    /// Root of procfs (`--path.procfs`, default `/proc`), for process environments and cgroups.
    pub procfs: PathBuf,
    /// Root under which `etc/passwd` is read (default `/`), e.g. `/host` in a container.
    pub rootfs: PathBuf,
    /// GPU ↔ job mapping directory in dcgm-exporter's `--hpc-job-mapping-dir` format, written
    /// by the scheduler's prolog (format: see [`GpuMappingSource::MappingDir`]).
    pub mapping_dir: Option<PathBuf>,
    /// Directory of OAR job resources files (format: see [`GpuMappingSource::OarResources`]).
    pub oar_resources_dir: Option<PathBuf>,
    /// Job records written by the scheduler's prolog (`--jobs.record-dir`, default
    /// `/run/joulebook/jobs`; format: see the `record` module): the trusted source of a job's
    /// user, account, partition, name and SLUID.
    pub record_dir: Option<PathBuf>,
    /// Report each systemd `user-<uid>.slice` as a job `user-<uid>` (login nodes, workstations).
    pub user_slices: bool,
    /// Read each job's CPU time every this many scans, each job at its own scan of the period,
    /// reporting the last value in between. 1 reads it on every scan, which the
    /// `usage_above_baseline` CPU policy needs (it splits each cycle's energy by the CPU time
    /// used in that cycle). 0 (the default) reads it on every scan up to
    /// [`AUTO_CPU_TIME_READS`] jobs, and with more jobs every ⌈jobs / that⌉ scans, so that a
    /// scan reads about that many files; a job's last seconds of CPU time before it ends can
    /// then go unseen. Each read is one `pread` of a file kept open (about 1–2 µs).
    pub cpu_time_every: u32,
}

impl Default for JobsOptions {
    fn default() -> Self {
        JobsOptions {
            cgroupfs: PathBuf::from("/sys/fs/cgroup"),
            procfs: PathBuf::from("/proc"),
            rootfs: PathBuf::from("/"),
            mapping_dir: None,
            oar_resources_dir: None,
            record_dir: Some(PathBuf::from(DEFAULT_RECORD_DIR)),
            user_slices: false,
            cpu_time_every: 0,
        }
    }
}

impl JobsOptions {
    /// Options for a whole system mounted at `root` (`<root>/sys/fs/cgroup`, `<root>/proc`,
    /// `<root>/etc/passwd`): a host mounted into a container, or a fixture tree.
    pub fn under_root(root: &Path) -> Self {
        JobsOptions {
            cgroupfs: root.join("sys/fs/cgroup"),
            procfs: root.join("proc"),
            rootfs: root.to_path_buf(),
            record_dir: Some(root.join(DEFAULT_RECORD_DIR.trim_start_matches('/'))),
            ..JobsOptions::default()
        }
    }
}

/// CPU-time files read per scan, about, with [`JobsOptions::cpu_time_every`] at 0.
pub const AUTO_CPU_TIME_READS: usize = 128;

/// Processes whose environment is tried per job and scan, at most: bounds the cost of a job
/// whose processes all refuse (permission) or all replaced their environment.
const MAX_ENV_CANDIDATES: usize = 8;
/// Depth below a job folder searched for processes (`step/user/task` on Slurm v2 is 3).
const MAX_PROC_DEPTH: usize = 4;
/// v1 reports "no limit" as the largest page-aligned i64 (9223372036854771712); anything this
/// large is no limit a scheduler would set.
const V1_NO_LIMIT: u64 = 1 << 62;
/// A job's CPUs, memory limit and `devices.list` are read again every this many scans, each
/// job at its own scan of the period (`scontrol update` can change a running job's CPUs).
const STATIC_REFRESH_SCANS: u64 = 60;
/// A job that starts while the exporter runs has them read on each of its first scans too:
/// Slurm writes `cpuset.cpus`, the memory limit and the device rules just after creating the
/// folders, and may create a controller's folder after another's.
const YOUNG_SCANS: u64 = 3;
/// While no environment (or OAR resources file) is found for a job, it is looked for on each
/// of the job's first this many scans (its first process appears within milliseconds)...
const EAGER_SCANS: u64 = 10;
/// ... then every this many scans (an allocation with no step yet, a process that refuses).
const RETRY_SCANS: u64 = 5;
/// Every hierarchy is listed every this many scans (and on each scan while none holds a job);
/// in between, only those that matter (see [`Listing`]).
const FULL_LISTING_SCANS: u64 = 30;
/// Every this many full listings, every folder is read again with `getdents64` even if no
/// inotify event said it changed (a safety net: cgroupfs reports every `mkdir` and `rmdir`).
const FULL_LISTINGS_PER_RELIST: u64 = 10;
/// The v1 controllers in the order one is preferred for listing on every scan when several
/// hold as many jobs: cpuacct gives the CPU time, so its listing and its open files agree.
const LISTING_PREFERENCE: [Controller; 5] = [
    Controller::Cpuacct,
    Controller::Cpuset,
    Controller::Freezer,
    Controller::Memory,
    Controller::Devices,
];

/// Which hierarchies are listed on each scan. One is enough to know which jobs exist: every v1
/// controller that Slurm or OAR uses holds every job, so between full listings only the
/// controller holding the most jobs is listed, plus any other that held a job the first one
/// did not (jobs still being set up or torn down, or mixed settings), plus the v2 hierarchy.
#[derive(Debug, Default)]
struct Listing {
    every_scan: PerSlot<bool>,
    /// The scan of the last full listing; 0 before the first.
    last_full: u64,
    /// Full listings so far.
    full_listings: u64,
    /// What the last listing of each hierarchy reported (repeated while it is not listed).
    problems: PerSlot<Vec<String>>,
}

impl Listing {
    fn full_due(&self, now: u64, h: &Hierarchy) -> bool {
        let has_v1 = h.v1.iter().any(Option::is_some);
        self.last_full == 0
            || now.saturating_sub(self.last_full) >= FULL_LISTING_SCANS
            || (has_v1
                && !Controller::ALL
                    .iter()
                    .any(|c| self.every_scan[Slot::V1(*c).index()]))
    }

    /// After a full listing: which hierarchies to list until the next.
    fn choose(&mut self, cache: &Cache, now: u64, h: &Hierarchy) {
        let listed = || {
            cache
                .values()
                .filter(|e| e.seen == now)
                .map(|e| e.listed_in)
        };
        let mut count = [0usize; Controller::ALL.len()];
        for bits in listed() {
            for (c, n) in Controller::ALL.into_iter().zip(count.iter_mut()) {
                *n += usize::from(bits & Slot::V1(c).bit() != 0);
            }
        }
        self.every_scan = [false; Slot::COUNT];
        let mut primary: Option<Controller> = None;
        for c in LISTING_PREFERENCE {
            if count[c as usize] > primary.map_or(0, |p| count[p as usize]) {
                primary = Some(c);
            }
        }
        if let Some(p) = primary {
            self.every_scan[Slot::V1(p).index()] = true;
            for bits in listed() {
                if bits & Slot::V1(p).bit() == 0 {
                    if let Some(c) = LISTING_PREFERENCE
                        .iter()
                        .find(|c| bits & Slot::V1(**c).bit() != 0)
                    {
                        self.every_scan[Slot::V1(*c).index()] = true;
                    }
                }
            }
        }
        self.every_scan[Slot::V2.index()] = h.v2.is_some();
        self.last_full = now;
        self.full_listings += 1;
    }
}

/// The folder of the prolog's job records, watched with one `stat` per scan: the prolog and
/// epilog replace and remove files by renaming and unlinking, which changes the folder's
/// modification time, so a node without the prolog, or whose records did not change, pays no
/// `open` per job.
/// When it changed, it is listed (one `getdents64` pass) and only the jobs whose record file
/// came, went or was replaced (another inode number) read theirs again.
#[derive(Debug, Default)]
struct RecordDir {
    exists: bool,
    stamp: Option<(std::time::SystemTime, u64)>,
    changed: bool,
    /// The folder's entries (name → inode number) as of its last change.
    entries: HashMap<String, u64>,
}

impl RecordDir {
    fn refresh(&mut self, dir: Option<&Path>) {
        use std::os::unix::fs::{DirEntryExt, MetadataExt};
        let stamp = dir.and_then(|d| {
            cgroup::counted(cgroup::Call::Stat);
            let m = std::fs::metadata(d).ok()?;
            Some((m.modified().ok()?, m.ino()))
        });
        self.exists = stamp.is_some();
        self.changed = stamp != self.stamp;
        self.stamp = stamp;
        if self.changed {
            self.entries.clear();
            if let Some(list) = dir.and_then(|d| std::fs::read_dir(d).ok()) {
                cgroup::counted(cgroup::Call::Open);
                for e in list.flatten() {
                    if let Ok(name) = e.file_name().into_string() {
                        self.entries.insert(name, e.ino());
                    }
                }
            }
        }
    }

    /// The inode number of the record of job `id`, as last listed.
    fn ino(&self, id: &str) -> Option<u64> {
        self.entries.get(id).copied()
    }
}

/// Discovers jobs; keeps per-job caches between scans.
pub struct JobDiscovery {
    opts: JobsOptions,
    hierarchy: Option<Hierarchy>,
    passwd: passwd::Passwd,
    cache: Cache,
    reader: Reader,
    env_buf: Vec<u8>,
    /// For the `pread`s of CPU-time files, the GPU mapping files and `/proc/<pid>/cgroup`.
    buf: Vec<u8>,
    /// Scans so far: the clock of every schedule here.
    scans: u64,
    /// The last [`Job::revision`] given.
    revisions: u64,
    listing: Listing,
    lister: Lister,
    sluids: Sluids,
    fds: FdBudget,
    /// How many of the last scan's problems are the source's own (see
    /// [`JobDiscovery::source_problems`]).
    source_problems: usize,
    /// The record folder as of the last scan (see [`RecordDir`]).
    records: RecordDir,
    /// MIG capability minors, for device lists (see [`nvcaps`]).
    mig_caps: nvcaps::MigCaps,
    /// Runs between the CPU-time reads of known jobs and the listing, so tests can make a job
    /// vanish mid-scan.
    #[cfg(test)]
    before_listing: Option<Box<dyn FnMut() + Send>>,
    /// Runs between the listing and the per-job reads.
    #[cfg(test)]
    after_listing: Option<Box<dyn FnMut() + Send>>,
}

impl fmt::Debug for JobDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobDiscovery")
            .field("opts", &self.opts)
            .field("mode", &self.hierarchy.as_ref().map(|h| h.mode))
            .field("cached_jobs", &self.cache.len())
            .field("open_files", &self.fds.held)
            .finish_non_exhaustive()
    }
}

impl JobDiscovery {
    pub fn new(opts: JobsOptions) -> JobDiscovery {
        JobDiscovery {
            sluids: Sluids::new(opts.procfs.clone(), opts.record_dir.clone()),
            passwd: passwd::Passwd::new(
                opts.rootfs.join("etc/passwd"),
                opts.rootfs == Path::new("/"),
            ),
            opts,
            hierarchy: None,
            cache: Cache::default(),
            reader: Reader::default(),
            env_buf: Vec::new(),
            buf: Vec::new(),
            scans: 0,
            revisions: 0,
            listing: Listing::default(),
            lister: Lister::default(),
            fds: FdBudget::default(),
            source_problems: 0,
            records: RecordDir::default(),
            mig_caps: nvcaps::MigCaps::default(),
            #[cfg(test)]
            before_listing: None,
            #[cfg(test)]
            after_listing: None,
        }
    }

    /// Which hierarchies are mounted under [`JobsOptions::cgroupfs`]; an error names the path
    /// when it holds neither v1 controllers nor a v2 hierarchy.
    pub fn detect_mode(&self) -> Result<CgroupMode, JobsError> {
        cgroup::detect(&self.opts.cgroupfs).map(|h| h.mode)
    }

    /// The mode found by the last successful scan.
    pub fn mode(&self) -> Option<CgroupMode> {
        self.hierarchy.as_ref().map(|h| h.mode)
    }

    /// What to wait on for a job folder created or removed, when the last scan watched every
    /// folder it listed (see `Lister::event_fd`); `None` when starts and ends are seen only by
    /// scanning.
    pub fn event_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.hierarchy.as_ref()?;
        self.lister.event_fd()
    }

    /// How many of the problems the last scan returned (the first ones) are the source's own:
    /// no cgroup mount, a hierarchy or the user database that cannot be read. The others are
    /// one job's bad data, which never marks the whole source down.
    pub fn source_problems(&self) -> usize {
        self.source_problems
    }

    /// One scan: the jobs running now. `gpus` is the NVML inventory; `gpu_pids` the
    /// (GPU UUID, pid) pairs of NVML's running processes.
    pub fn scan(&mut self, gpus: &[GpuRef], gpu_pids: &[(String, u32)]) -> ScanResult {
        let mut jobs = Vec::new();
        let problems = self.scan_into(gpus, gpu_pids, &mut jobs);
        ScanResult { jobs, problems }
    }

    /// [`JobDiscovery::scan`] into `jobs`, the previous scan's list: its strings and vectors are
    /// overwritten in place, so a steady scan allocates nothing per job. Returns the problems.
    pub fn scan_into(
        &mut self,
        gpus: &[GpuRef],
        gpu_pids: &[(String, u32)],
        jobs: &mut Vec<Job>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        self.source_problems = 0;
        if self.hierarchy.is_none() {
            // Detected once: mounts do not change under a running exporter, and a node
            // without cgroups yet (early boot) is retried on the next scan.
            match cgroup::detect(&self.opts.cgroupfs) {
                Ok(h) => self.hierarchy = Some(h),
                Err(e) => {
                    problems.push(e.to_string());
                    self.source_problems = 1;
                    self.cache.clear();
                    jobs.clear();
                    return problems;
                }
            }
        }
        self.scans += 1;
        let now = self.scans;
        // On a MIG node, each instance's capability devices, which device lists name.
        let with_caps;
        let gpus = if gpus.iter().any(|g| g.mig.is_some()) {
            with_caps = self.mig_caps.enrich(&self.opts.procfs, gpus);
            &with_caps[..]
        } else {
            gpus
        };
        let JobDiscovery {
            opts,
            hierarchy: Some(hierarchy),
            passwd,
            cache,
            reader,
            env_buf,
            buf,
            listing,
            lister,
            sluids,
            fds,
            revisions,
            source_problems,
            records,
            ..
        } = self
        else {
            jobs.clear();
            return problems;
        };
        passwd.refresh(&mut problems);

        // 1. The CPU time of the jobs already known, from their open files. Read before the
        // listing: a job whose folder is removed after its read is not listed below and is
        // left out, so a value from a removed folder is never reported.
        let every_for = |jobs: usize| match opts.cpu_time_every {
            0 => jobs.div_ceil(AUTO_CPU_TIME_READS).max(1) as u64,
            k => u64::from(k),
        };
        let every = every_for(cache.len());
        let full = listing.full_due(now, hierarchy);
        let relist = full && listing.full_listings % FULL_LISTINGS_PER_RELIST == 0;
        // (Folders of the hierarchies listed only in full listings stay open, and watched,
        // until the next one.)
        lister.begin(now, relist);
        sluids.begin(now);
        records.refresh(opts.record_dir.as_deref());
        fds.held = lister.open_count();
        for e in cache.values_mut() {
            e.read_held_usage(now, every, buf);
            fds.held += usize::from(matches!(e.usage, UsageFile::Held { .. }))
                + e.statics.as_ref().map_or(0, Statics::held);
        }
        #[cfg(test)]
        if let Some(hook) = self.before_listing.as_mut() {
            hook();
        }

        // 2. Which jobs exist: list the hierarchies (see `Listing`); a full listing reads
        // every folder again, the others replay the folders in which nothing changed.
        lister.refresh();
        let mut listed_now = [false; Slot::COUNT];
        for h in Slot::ALL {
            let Some(root) = hierarchy.root(h) else {
                continue;
            };
            if !full && !listing.every_scan[h.index()] {
                continue;
            }
            listed_now[h.index()] = true;
            let found = &mut listing.problems[h.index()];
            found.clear();
            lister.list_jobs((h, root), opts.user_slices, fds, sluids, found, &mut |l| {
                note_listed(cache, now, h, l)
            });
        }
        for p in &listing.problems {
            problems.extend_from_slice(p);
        }
        *source_problems = problems.len();
        if full {
            listing.choose(cache, now, hierarchy);
        }
        #[cfg(test)]
        if let Some(hook) = self.after_listing.as_mut() {
            hook();
        }

        let mapping = match &opts.mapping_dir {
            Some(dir) => gpu::read_mapping_dir(dir, gpus, buf, &mut problems),
            None => HashMap::new(),
        };
        let nvml = nvml_jobs(&opts.procfs, gpu_pids, opts.user_slices, sluids, buf);
        // For the jobs read by path below (new ones among them): the period as of this listing.
        let every = every_for(cache.len());
        let mut ctx = Ctx {
            opts,
            hierarchy,
            listed_now,
            now,
            every,
            passwd,
            reader,
            env_buf,
            fds,
            revisions,
            records,
            gpus,
            mapping: &mapping,
            nvml: &nvml,
            problems: &mut problems,
        };
        // 3. Each job listed: what changed, and what is due. Slot `n` of `jobs` is overwritten
        // by the n-th job read.
        let mut n = 0;
        let mut ended = Vec::new();
        let order = cache.order();
        for key in &order {
            let Some(e) = cache.map.get_mut(key) else {
                continue;
            };
            if e.seen != now {
                ended.push(*key);
                continue;
            }
            // A hierarchy listed on this scan that no longer lists the job: its folder there
            // is gone.
            for h in Slot::ALL {
                let listed = listed_now[h.index()];
                if listed && e.listed_in & h.bit() == 0 && e.found.slot(h).take().is_some() {
                    e.ino[h.index()] = None;
                    e.relayout = true;
                }
            }
            if n == jobs.len() {
                jobs.push(Job::empty(key.scheduler));
            }
            match ctx.read_job(key, e, &mut jobs[n]) {
                Ok(()) => n += 1,
                Err(Vanished) => ended.push(*key),
            }
        }
        jobs.truncate(n);
        merge_scopes(jobs);
        cache.order = Some(order);
        // Ended jobs lose their cache (and close their files), so a reused id starts afresh.
        for key in &ended {
            cache.remove(key);
        }
        problems
    }
}

/// Records one listed job folder in the cache.
fn note_listed(cache: &mut Cache, now: u64, h: Slot, l: &Listed<'_>) {
    let e = cache.entry(l.key, || JobCache::new(now, l.key.hash()));
    if e.seen != now {
        e.seen = now;
        e.listed_in = 0;
    }
    if e.ino[h.index()].is_some_and(|ino| ino != l.ino) {
        e.restart(now);
    }
    e.listed_in |= h.bit();
    e.ino[h.index()] = Some(l.ino);
    let slot = e.found.slot(h);
    if slot.is_none() {
        *slot = Some(l.parent.join(l.name));
        e.relayout = true;
    }
    e.found.uid = e.found.uid.or(l.uid);
    if e.found.user.is_none() {
        e.found.user = l.user.map(str::to_string);
    }
    if e.found.sluid.is_none() {
        e.found.sluid = l.sluid.map(str::to_string);
    }
}

/// Publishes the entries of one job id under several slurmd scopes (a job spanning the
/// virtual nodes of a multiple-slurmd node) as one job: `jobs` is in key order, so they are
/// neighbours. CPUs and GPUs are united, CPU time and memory limits added; the metadata of
/// the first entry is kept. A merged job has revision 0 (compare everything).
fn merge_scopes(jobs: &mut Vec<Job>) {
    let same = |a: &Job, b: &Job| a.scheduler == b.scheduler && a.id == b.id;
    if jobs.windows(2).all(|w| !same(&w[0], &w[1])) {
        return;
    }
    let mut merged: Vec<Job> = Vec::with_capacity(jobs.len());
    for j in jobs.drain(..) {
        match merged.last_mut() {
            Some(m) if same(m, &j) => {
                m.cpus.extend_from_slice(&j.cpus);
                m.cpus.sort_unstable();
                m.cpus.dedup();
                m.cpu_usage_ns = match (m.cpu_usage_ns, j.cpu_usage_ns) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    (a, b) => a.or(b),
                };
                m.memory_limit_bytes = match (m.memory_limit_bytes, j.memory_limit_bytes) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    _ => None,
                };
                m.gpus.extend(j.gpus);
                m.gpus.sort_unstable();
                m.gpus.dedup();
                m.gpu_source = m
                    .gpu_source
                    .min(j.gpu_source)
                    .or(m.gpu_source.or(j.gpu_source));
                m.revision = 0;
            }
            _ => merged.push(j),
        }
    }
    *jobs = merged;
}

/// Maps NVML's GPU processes to jobs through `/proc/<pid>/cgroup`.
fn nvml_jobs(
    procfs: &Path,
    gpu_pids: &[(String, u32)],
    user_slices: bool,
    sluids: &Sluids,
    buf: &mut Vec<u8>,
) -> HashMap<JobKey, Vec<String>> {
    let mut map: HashMap<JobKey, Vec<String>> = HashMap::new();
    for (uuid, pid) in gpu_pids {
        let path = procfs.join(pid.to_string()).join("cgroup");
        // A process that exited since NVML listed it, or a pid from another pid namespace,
        // simply maps to nothing.
        let Ok((_, n)) = cgroup::read_all(&path, buf) else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(buf.get(..n).unwrap_or_default()) else {
            continue;
        };
        let sluid = |scope: u32, s: &str| sluids.id_of(scope, s);
        if let Some(key) = layout::job_of_proc_cgroup(text, user_slices, &sluid) {
            let list = map.entry(key).or_default();
            if !list.contains(uuid) {
                list.push(uuid.clone());
            }
        }
    }
    for list in map.values_mut() {
        list.sort_unstable();
    }
    map
}

/// The CPUs parsed from the cpuset file at `path`; none, with a problem naming it, if bad.
fn cpus_of(
    parsed: Result<Vec<u32>, CpuListError>,
    path: &Path,
    problems: &mut Vec<String>,
) -> Vec<u32> {
    parsed.unwrap_or_else(|e| {
        problems.push(format!("{}: {e}", path.display()));
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use joulebook_tests::{copy_tree, environ, write_file};

    fn fixture(name: &str) -> PathBuf {
        joulebook_tests::fixture("cgroup").join(name)
    }

    fn ids(r: &ScanResult) -> Vec<&str> {
        r.jobs.iter().map(|j| j.id.as_str()).collect()
    }

    /// A v1 job whose cpuacct folder is removed mid-scan, after its CPU time was read from the
    /// open file (Slurm tears controllers down one by one): skipped for this scan, no problem,
    /// cache dropped.
    #[test]
    fn a_cgroup_vanishing_mid_read_is_skipped_without_a_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("slurm-v1"), dir.path());
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        let r = d.scan(&[], &[]);
        assert_eq!(ids(&r), vec!["101", "102"]);
        assert_eq!(d.cache.len(), 2);

        let victim = dir
            .path()
            .join("sys/fs/cgroup/cpu,cpuacct/slurm_node1/uid_1001/job_102");
        d.before_listing = Some(Box::new(move || {
            std::fs::remove_dir_all(&victim).expect("rm");
        }));
        let r = d.scan(&[], &[]);
        assert_eq!(r.problems, Vec::<String>::new());
        assert_eq!(ids(&r), vec!["101"]);
        let node1 =
            |id: &str| JobKey::new(Scheduler::Slurm, id).in_scope(layout::slurm::scope_of("node1"));
        assert!(!d.cache.contains_key(&node1("102")));
        assert!(d.cache.contains_key(&node1("101")));
    }

    /// A v2 job removed entirely between listing and reading its environment.
    #[test]
    fn a_v2_job_vanishing_before_its_processes_are_read_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("no-procs"), dir.path());
        let job = dir
            .path()
            .join("sys/fs/cgroup/system.slice/slurmstepd.scope/job_701");
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        d.after_listing = Some(Box::new(move || {
            let _ = std::fs::remove_dir_all(&job);
        }));
        let r = d.scan(&[], &[]);
        assert_eq!(r, ScanResult::default());
        assert!(d.cache.is_empty());
    }

    #[test]
    fn ended_jobs_leave_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("oar3"), dir.path());
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        d.scan(&[], &[]);
        assert!(d.cache.values().all(|c| c.env.is_some()));
        std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup/oar.slice")).expect("rm");
        assert!(d.scan(&[], &[]).jobs.is_empty());
        assert!(d.cache.is_empty());
    }

    #[test]
    fn job_keys_order_numerically() {
        let mut keys = [
            JobKey::new(Scheduler::UserSlice, "user-0"),
            JobKey::new(Scheduler::Slurm, "1000"),
            JobKey::new(Scheduler::Oar, "5"),
            JobKey::new(Scheduler::Slurm, "999"),
        ];
        keys.sort();
        let got: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(got, vec!["999", "1000", "5", "user-0"]);
    }

    #[test]
    fn discovery_can_move_to_a_sampling_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<JobDiscovery>();
    }

    /// A Slurm cgroup v1 node with `n` jobs, as `bench/make-slurm-node` writes it: each job in
    /// the five controllers, one process with a job environment.
    fn slurm_v1_node(root: &Path, n: u32) {
        let cg = root.join("sys/fs/cgroup");
        for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
            write_file(&cg.join(ctrl).join("cgroup.procs"), b"1\n");
        }
        for j in 0..n {
            let (id, uid, pid) = (100_000 + j, 1000 + j % 7, 10_000 + j);
            let base = format!("slurm_n1/uid_{uid}/job_{id}");
            write_file(
                &cg.join("cpuset").join(&base).join("cpuset.cpus"),
                format!("{}\n", j % 64).as_bytes(),
            );
            write_file(
                &cg.join("cpuset")
                    .join(&base)
                    .join("step_batch/cgroup.procs"),
                format!("{pid}\n").as_bytes(),
            );
            write_file(
                &cg.join("cpu,cpuacct").join(&base).join("cpuacct.usage"),
                format!("{}\n", u64::from(j) * 1000).as_bytes(),
            );
            write_file(
                &cg.join("memory").join(&base).join("memory.limit_in_bytes"),
                b"4294967296\n",
            );
            write_file(
                &cg.join("devices").join(&base).join("devices.list"),
                b"a *:* rwm\n",
            );
            for ctrl in ["cpu,cpuacct", "memory", "devices", "freezer"] {
                write_file(&cg.join(ctrl).join(&base).join("cgroup.procs"), b"");
            }
            write_file(
                &root.join(format!("proc/{pid}/environ")),
                &environ(&[
                    ("SLURM_JOB_ID", &id.to_string()),
                    ("SLURM_JOB_NAME", &format!("job-{j}")),
                ]),
            );
        }
    }

    fn held_files(d: &JobDiscovery) -> usize {
        d.cache
            .values()
            .filter(|e| matches!(e.usage, UsageFile::Held { .. }))
            .count()
    }

    /// Calls counted during `f`: opens, preads, stats, rewinds of open folders.
    fn counting(f: impl FnOnce()) -> [u64; 6] {
        let before = cgroup::calls();
        f();
        let after = cgroup::calls();
        std::array::from_fn(|i| after[i] - before[i])
    }

    /// The steady state of a scan: no file opened per job, one `pread` per job for its CPU
    /// time, and the folders of the listing replayed from memory (nothing changed in them),
    /// except on the full listings, which read them again.
    #[test]
    fn a_steady_scan_reads_one_open_file_per_job_and_opens_almost_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = 300;
        slurm_v1_node(dir.path(), n);
        let mut d = JobDiscovery::new(JobsOptions {
            cpu_time_every: 1,
            ..JobsOptions::under_root(dir.path())
        });
        let first = d.scan(&[], &[]);
        assert_eq!(first.jobs.len(), n as usize);
        assert_eq!(first.problems, Vec::<String>::new());
        assert_eq!(held_files(&d), n as usize);

        // A whole refresh period: every job's static data is read once more in it.
        let scans = STATIC_REFRESH_SCANS;
        let mut last = ScanResult::default();
        let [opens, preads, stats, rewinds, replays, static_preads] = counting(|| {
            for _ in 0..scans {
                last = d.scan(&[], &[]);
            }
        });
        assert_eq!(last, first, "cached results are the same as read results");
        let per_scan = |c: u64| c as f64 / scans as f64;
        // CPU time: exactly one pread per job and scan.
        assert_eq!(preads, u64::from(n) * scans);
        // The memory limit, read again from the file kept open since the first scan (the CPUs'
        // file, searched for on the first scan, is opened once more in this period, and kept).
        assert_eq!(static_preads, u64::from(n));
        // Static data: cpuset, memory and devices.list once per job and period. The folders
        // listed (root, slurm_n1, 7 uid folders; in the controller listed on every scan, and
        // in the other four at the full listing every 30 scans) stay open and are replayed:
        // nothing changed in them.
        assert!(
            opens <= u64::from(n) * 3,
            "{opens} opens in {scans} scans ({} per scan)",
            per_scan(opens)
        );
        assert!(per_scan(opens) / f64::from(n) < 0.1, "{opens} opens");
        assert!(stats <= 2 * scans, "{stats} stats");
        let full = scans / FULL_LISTING_SCANS;
        assert_eq!(rewinds, 0);
        assert_eq!(replays, 9 * scans + 4 * 9 * full);
        // The next period: the static files too are read with one pread each, opened no more.
        let [opens, preads, _, _, _, static_preads] = counting(|| {
            for _ in 0..scans {
                last = d.scan(&[], &[]);
            }
        });
        assert_eq!(last, first);
        assert_eq!(opens, 0);
        assert_eq!(preads, u64::from(n) * scans);
        assert_eq!(static_preads, 2 * u64::from(n));
        // Every FULL_LISTINGS_PER_RELIST-th full listing reads them all again.
        let [_, _, _, rewinds, ..] = counting(|| {
            for _ in 0..FULL_LISTING_SCANS * FULL_LISTINGS_PER_RELIST {
                d.scan(&[], &[]);
            }
        });
        assert_eq!(rewinds, 5 * 9);

        // Every k scans: a k-th of the jobs per scan, each job at its own scan.
        let mut d = JobDiscovery::new(JobsOptions {
            cpu_time_every: 4,
            ..JobsOptions::under_root(dir.path())
        });
        d.scan(&[], &[]);
        let [_, preads, ..] = counting(|| {
            for _ in 0..40 {
                d.scan(&[], &[]);
            }
        });
        assert_eq!(preads, u64::from(n) * 10);
        // The default reads every job on every scan up to AUTO_CPU_TIME_READS jobs, and about
        // that many per scan above.
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        d.scan(&[], &[]);
        let [_, preads, ..] = counting(|| {
            for _ in 0..30 {
                d.scan(&[], &[]);
            }
        });
        let per_scan = preads / 30;
        assert!(
            (AUTO_CPU_TIME_READS as u64 / 2..=AUTO_CPU_TIME_READS as u64).contains(&per_scan),
            "{per_scan} reads per scan"
        );
    }

    /// The folders are watched: a job made or removed in a folder that was being replayed is
    /// seen on the next scan, and only the folder that changed is read again.
    #[test]
    fn a_job_made_or_removed_in_a_watched_folder_is_seen_on_the_next_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        slurm_v1_node(dir.path(), 14);
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        for _ in 0..3 {
            assert_eq!(d.scan(&[], &[]).jobs.len(), 14);
        }
        let [_, _, _, rewinds, replays, _] = counting(|| {
            d.scan(&[], &[]);
        });
        assert_eq!((rewinds, replays), (0, 9));

        let cg = dir.path().join("sys/fs/cgroup");
        let new_job = "slurm_n1/uid_1000/job_200000";
        for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
            std::fs::create_dir_all(cg.join(ctrl).join(new_job)).expect("mkdir");
        }
        write_file(
            &cg.join("cpu,cpuacct").join(new_job).join("cpuacct.usage"),
            b"5\n",
        );
        let mut r = ScanResult::default();
        let [_, _, _, rewinds, replays, _] = counting(|| r = d.scan(&[], &[]));
        assert_eq!(r.jobs.len(), 15);
        let job = r.jobs.iter().find(|j| j.id == "200000").expect("new job");
        assert_eq!(job.cpu_usage_ns, Some(5));
        assert_eq!((rewinds, replays), (1, 8), "only uid_1000 is read again");

        for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
            std::fs::remove_dir_all(cg.join(ctrl).join(new_job)).expect("rm");
        }
        let r = d.scan(&[], &[]);
        assert_eq!(r.jobs.len(), 14);
        assert!(!ids(&r).contains(&"200000"));
        assert!(!d
            .cache
            .contains_key(&JobKey::new(Scheduler::Slurm, "200000")));
    }

    #[test]
    fn cpu_time_read_every_k_scans_is_at_most_k_scans_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        slurm_v1_node(dir.path(), 20);
        let mut d = JobDiscovery::new(JobsOptions {
            cpu_time_every: 3,
            ..JobsOptions::under_root(dir.path())
        });
        d.scan(&[], &[]);
        let usage = dir
            .path()
            .join("sys/fs/cgroup/cpu,cpuacct/slurm_n1/uid_1005/job_100005/cpuacct.usage");
        std::fs::write(&usage, "777\n").expect("write");
        let mut seen_at = None;
        for i in 1..=3 {
            let r = d.scan(&[], &[]);
            let job = r.jobs.iter().find(|j| j.id == "100005").expect("job");
            if job.cpu_usage_ns == Some(777) {
                seen_at = Some(i);
                break;
            }
            assert_eq!(
                job.cpu_usage_ns,
                Some(5000),
                "the last value, until read again"
            );
        }
        assert!(seen_at.is_some(), "not read again within 3 scans");
    }

    /// `scontrol update` changes a running job's CPUs: picked up within the refresh period,
    /// each job at its own scan of it.
    #[test]
    fn a_cpuset_change_is_picked_up_within_the_refresh_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("slurm-v1"), dir.path());
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        assert_eq!(d.scan(&[], &[]).jobs[0].cpus, vec![0, 1, 2, 3]);
        let job = dir
            .path()
            .join("sys/fs/cgroup/cpuset/slurm_node1/uid_1000/job_101");
        for file in ["cpuset.cpus", "cpuset.effective_cpus"] {
            std::fs::write(job.join(file), "0-5\n").expect("write");
        }
        let key = JobKey::new(Scheduler::Slurm, "101").in_scope(layout::slurm::scope_of("node1"));
        let due = d.cache.get(&key).expect("cached").next_static;
        assert!(due > 1 && due <= 1 + STATIC_REFRESH_SCANS, "{due}");
        // Into one list, reused as the engine does: the revision tells when to write again.
        let mut jobs = Vec::new();
        for scan in 2..=1 + STATIC_REFRESH_SCANS {
            d.scan_into(&[], &[], &mut jobs);
            let cpus = jobs[0].cpus.clone();
            if scan < due {
                assert_eq!(cpus, vec![0, 1, 2, 3], "scan {scan}: not read again yet");
            } else {
                assert_eq!(cpus, vec![0, 1, 2, 3, 4, 5], "scan {scan}");
            }
        }
        // Jobs are spread over the period.
        let phases: std::collections::BTreeSet<u64> = (0..200)
            .map(|i| JobKey::new(Scheduler::Slurm, (5000 + i).to_string()).hash() % 60)
            .collect();
        assert!(phases.len() > 40, "{phases:?}");
    }

    /// A job's revision stays while nothing it marks changes, so the list reused from scan to
    /// scan is not written again; a new name in the passwd file, or an environment found
    /// late, gives a new revision and the list shows the new values.
    #[test]
    fn revisions_change_with_the_values_they_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        slurm_v1_node(dir.path(), 3);
        let passwd = dir.path().join("etc/passwd");
        write_file(&passwd, b"ann:x:1000:1000::/home/ann:/bin/sh\n");
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        let mut jobs = Vec::new();
        d.scan_into(&[], &[], &mut jobs);
        let first: Vec<u64> = jobs.iter().map(|j| j.revision).collect();
        assert!(first.iter().all(|&r| r != 0), "{first:?}");
        assert_eq!(jobs[0].user.as_deref(), Some("ann"));
        d.scan_into(&[], &[], &mut jobs);
        assert_eq!(jobs.iter().map(|j| j.revision).collect::<Vec<_>>(), first);

        // Renamed: a longer file, so its stamp changes whatever the clock's resolution.
        write_file(&passwd, b"annabel:x:1000:1000::/home/annabel:/bin/sh\n");
        d.scan_into(&[], &[], &mut jobs);
        assert_eq!(jobs[0].user.as_deref(), Some("annabel"));
        assert_ne!(jobs[0].revision, first[0]);
        assert_eq!(
            jobs,
            d.scan(&[], &[]).jobs,
            "the same as a list read afresh"
        );

        // An environment found late: the job name appears.
        let late = dir
            .path()
            .join("sys/fs/cgroup/cpuset/slurm_n1/uid_1000/job_100000");
        let env = dir.path().join("proc/10000/environ");
        std::fs::remove_file(&env).expect("rm");
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        d.scan_into(&[], &[], &mut jobs);
        assert!(late.is_dir());
        assert_eq!(jobs[0].job_name, None);
        let before = jobs[0].revision;
        write_file(
            &env,
            &environ(&[("SLURM_JOB_ID", "100000"), ("SLURM_JOB_NAME", "late")]),
        );
        let named = (0..2 * RETRY_SCANS).find(|_| {
            d.scan_into(&[], &[], &mut jobs);
            jobs[0].job_name.as_deref() == Some("late")
        });
        assert!(named.is_some(), "no name within {} scans", 2 * RETRY_SCANS);
        assert_ne!(jobs[0].revision, before);
    }

    /// A job that starts while the exporter runs is read again on its next scans: Slurm
    /// writes its cpuset and memory limit just after creating the folders.
    #[test]
    fn a_new_job_being_set_up_is_read_again_on_its_first_scans() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("slurm-v1"), dir.path());
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        d.scan(&[], &[]);
        let cg = dir.path().join("sys/fs/cgroup");
        let job = "slurm_node1/uid_1000/job_103";
        write_file(&cg.join("cpuset").join(job).join("cpuset.cpus"), b"");
        write_file(
            &cg.join("cpu,cpuacct").join(job).join("cpuacct.usage"),
            b"0\n",
        );
        let r = d.scan(&[], &[]);
        let j = r.jobs.iter().find(|j| j.id == "103").expect("job 103");
        assert_eq!((j.cpus.clone(), j.memory_limit_bytes), (vec![], None));
        // The memory controller's folder appears after the others, then the values.
        write_file(
            &cg.join("memory").join(job).join("memory.limit_in_bytes"),
            b"1048576\n",
        );
        write_file(&cg.join("cpuset").join(job).join("cpuset.cpus"), b"6-7\n");
        let r = d.scan(&[], &[]);
        let j = r.jobs.iter().find(|j| j.id == "103").expect("job 103");
        assert_eq!(
            (j.cpus.clone(), j.memory_limit_bytes),
            (vec![6, 7], Some(1_048_576))
        );
    }

    /// The same job id in a new folder (a requeued job, or ids reused after Slurm's counter was
    /// reset) is a new job: everything is read afresh, at once.
    #[test]
    fn a_reused_job_id_in_a_new_folder_reads_fresh_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        copy_tree(&fixture("slurm-v2"), root);
        let mut d = JobDiscovery::new(JobsOptions::under_root(root));
        let r = d.scan(&[], &[]);
        assert_eq!(r.jobs[0].job_name.as_deref(), Some("v2-job"));
        assert_eq!(r.jobs[0].cpu_usage_ns, Some(2_500_000_000));

        // The old folder moves away (still there, so the new one cannot get its inode number).
        let scope = root.join("sys/fs/cgroup/system.slice/node1_slurmstepd.scope");
        std::fs::rename(scope.join("job_201"), scope.join("old_201")).expect("mv");
        write_file(&scope.join("job_201/cpu.stat"), b"usage_usec 5\n");
        write_file(&scope.join("job_201/cpuset.cpus.effective"), b"7\n");
        write_file(&scope.join("job_201/step_0/cgroup.procs"), b"3999\n");
        write_file(
            &root.join("proc/3999/environ"),
            &environ(&[("SLURM_JOB_ID", "201"), ("SLURM_JOB_NAME", "second-life")]),
        );
        let r = d.scan(&[], &[]);
        assert_eq!(r.problems, Vec::<String>::new());
        let j = &r.jobs[0];
        assert_eq!(j.id, "201");
        assert_eq!(j.job_name.as_deref(), Some("second-life"));
        assert_eq!(j.account, None);
        assert_eq!(j.cpus, vec![7]);
        assert_eq!(j.cpu_usage_ns, Some(5_000));
        assert_eq!(j.memory_limit_bytes, None);
    }

    /// A job with no process keeps being looked at: on each of its first scans, then every
    /// few scans, never on every scan for long.
    #[test]
    fn a_job_without_processes_gets_its_metadata_once_a_process_appears() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("no-procs"), dir.path());
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        for _ in 0..EAGER_SCANS + 7 {
            assert_eq!(d.scan(&[], &[]).jobs[0].job_name, None);
        }
        // Past the first scans, the search (a listing of the job's folders) is not done on
        // every scan.
        let [opens, ..] = counting(|| {
            for _ in 0..RETRY_SCANS * 4 {
                d.scan(&[], &[]);
            }
        });
        // A search opens the 4 folders of the job (and reads their cgroup.procs); the static
        // data may be read once (2 files).
        assert!(
            opens <= 4 * 8 + 2,
            "{opens} opens in {} scans",
            RETRY_SCANS * 4
        );

        let task = dir
            .path()
            .join("sys/fs/cgroup/system.slice/slurmstepd.scope/job_701/step_0/user/task_0");
        write_file(&task.join("cgroup.procs"), b"7101\n");
        write_file(
            &dir.path().join("proc/7101/environ"),
            &environ(&[("SLURM_JOB_ID", "701"), ("SLURM_JOB_NAME", "late")]),
        );
        let named = (1..=RETRY_SCANS)
            .find(|_| d.scan(&[], &[]).jobs[0].job_name.as_deref() == Some("late"));
        assert!(named.is_some(), "no metadata within {RETRY_SCANS} scans");
    }

    #[test]
    fn an_ended_job_leaves_the_cache_and_closes_its_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("slurm-v1"), dir.path());
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        for _ in 0..3 {
            d.scan(&[], &[]);
        }
        assert_eq!(held_files(&d), 2);
        // In each of the five controllers: its root, slurm_node1, uid_1000, uid_1001.
        let open_dirs = d.lister.open_count();
        assert_eq!(open_dirs, 5 * 4);
        for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
            let cg = dir.path().join("sys/fs/cgroup").join(ctrl);
            std::fs::remove_dir_all(cg.join("slurm_node1/uid_1001")).expect("rm");
        }
        assert_eq!(ids(&d.scan(&[], &[])), vec!["101"]);
        assert_eq!(d.cache.len(), 1);
        assert_eq!(held_files(&d), 1);
        // The uid folder that went away is closed on the next scan in the controller listed
        // on every scan, at the next full listing in the others.
        d.scan(&[], &[]);
        assert_eq!(d.lister.open_count(), open_dirs - 1);
        for _ in 0..FULL_LISTING_SCANS {
            d.scan(&[], &[]);
        }
        assert_eq!(d.lister.open_count(), open_dirs - 5);
    }

    /// The sampler sleeps on the event descriptor between scans: a job folder made or removed
    /// must wake it, and a scan must take the events in, so that it sleeps again.
    #[test]
    fn a_job_folder_made_or_removed_wakes_the_event_descriptor() {
        use crate::tick::{wait_woken, Stop, Woken};
        use std::time::Duration;
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("slurm-v1"), dir.path());
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        let (stop, _keep) = Stop::new().expect("stop");
        let wait = |d: &JobDiscovery, ms| {
            let fd = d.event_fd().expect("every folder watched");
            wait_woken(Duration::from_millis(ms), &stop, Some(fd))
        };
        d.scan(&[], &[]);
        d.scan(&[], &[]);
        assert_eq!(wait(&d, 0), Woken::Timeout);
        let uid = dir
            .path()
            .join("sys/fs/cgroup/cpu,cpuacct/slurm_node1/uid_1000");
        std::fs::create_dir(uid.join("job_105")).expect("mkdir");
        assert_eq!(wait(&d, 5000), Woken::Event);
        d.scan(&[], &[]);
        assert_eq!(wait(&d, 0), Woken::Timeout);
        std::fs::remove_dir(uid.join("job_105")).expect("rmdir");
        assert_eq!(wait(&d, 5000), Woken::Event);
        d.scan(&[], &[]);
        assert_eq!(wait(&d, 0), Woken::Timeout);
        // A new user's first job: the uid folder appears in a watched folder.
        std::fs::create_dir_all(uid.with_file_name("uid_1002/job_106")).expect("mkdir");
        assert_eq!(wait(&d, 5000), Woken::Event);
        d.scan(&[], &[]);
        assert_eq!(wait(&d, 0), Woken::Timeout);
    }

    /// A job found only in a controller other than the one listed on every scan (mixed
    /// settings, or a job being torn down) is still found, at the next full listing.
    #[test]
    fn a_job_in_another_controller_only_is_found_by_the_full_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("slurm-v1"), dir.path());
        let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        d.scan(&[], &[]);
        let freezer = dir
            .path()
            .join("sys/fs/cgroup/freezer/slurm_node1/uid_1000/job_104");
        write_file(&freezer.join("cgroup.procs"), b"");
        let found_at = (2..=1 + FULL_LISTING_SCANS)
            .find(|_| ids(&d.scan(&[], &[])).contains(&"104"))
            .expect("found within a full listing period");
        assert!(found_at <= 1 + FULL_LISTING_SCANS);
        // Listed on every scan from then on, like the controller that holds the most jobs.
        assert!(d.listing.every_scan[Slot::V1(Controller::Freezer).index()]);
        std::fs::remove_dir_all(&freezer).expect("rm");
        assert_eq!(ids(&d.scan(&[], &[])), vec!["101", "102"]);
    }

    /// Without file descriptors to spare, every read goes by path: the same results.
    #[test]
    fn without_descriptors_to_spare_files_are_read_by_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&fixture("slurm-v1"), dir.path());
        let mut kept = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        let mut by_path = JobDiscovery::new(JobsOptions::under_root(dir.path()));
        by_path.fds = FdBudget::fixed(0);
        for _ in 0..3 {
            assert_eq!(by_path.scan(&[], &[]), kept.scan(&[], &[]));
        }
        assert_eq!(held_files(&by_path), 0);
        assert_eq!(by_path.lister.open_count(), 0);
        let usage = dir
            .path()
            .join("sys/fs/cgroup/cpu,cpuacct/slurm_node1/uid_1000/job_101/cpuacct.usage");
        std::fs::write(&usage, "5\n").expect("write");
        assert_eq!(by_path.scan(&[], &[]).jobs[0].cpu_usage_ns, Some(5));
        assert_eq!(kept.scan(&[], &[]).jobs[0].cpu_usage_ns, Some(5));
    }

    #[test]
    fn job_ids_are_kept_inline() {
        let k = JobKey::user_slice(4_294_967_295);
        assert_eq!(k, JobKey::new(Scheduler::UserSlice, "user-4294967295"));
        assert_eq!(k.id.as_str(), "user-4294967295");
        let long = "12345678901234567890";
        assert_eq!(JobKey::new(Scheduler::Slurm, long).id.as_str(), long);
        assert_eq!(format!("{}", JobKey::new(Scheduler::Oar, "42").id), "42");
    }

    #[test]
    fn next_in_phase_spreads_and_bounds() {
        for period in [1, 3, 60] {
            for phase in 0..period {
                for now in 0..130 {
                    let t = next_in_phase(now, phase, period);
                    assert!(t > now && t <= now + period, "{now} {phase} {period}");
                    assert_eq!(t % period, phase);
                }
            }
        }
    }

    #[test]
    fn labels() {
        assert_eq!(Scheduler::Slurm.as_str(), "slurm");
        assert_eq!(Scheduler::Oar.to_string(), "oar");
        assert_eq!(Scheduler::UserSlice.as_str(), "user");
        assert_eq!(GpuMappingSource::MappingDir.as_str(), "mapping_dir");
    }
}
