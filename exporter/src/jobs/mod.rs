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
//!    replayed. A hierarchy none of whose folders changed replays its last listing whole
//!    (no name parsed again), and when every hierarchy due does so, as on the last scan,
//!    the jobs are the last scan's and are not handed out again. A job's folder in another
//!    controller is the same path below that controller's root;
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
//! Step 1 takes the jobs due from a queue, and step 3 reads only the jobs with something due
//! while the jobs and what they all depend on are the last scan's (see `visit`): a steady scan
//! of 1,000 jobs touches the 128 or so whose CPU time is due, not all of them.
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
mod listing;
mod meta;
mod model;
mod nvcaps;
mod passwd;
mod read;
mod reader;
mod record;
mod sluid;
mod visit;

use cache::{next_in_phase, parse_usage, Cache, Devices, JobCache, Statics, UsageFile, UsageRead};
pub use cpuset::{format_cpu_list, parse_cpu_list, CpuListError, MAX_CPU_ID};
use model::set_text;
pub(crate) use model::{clip, clip_to, JobId, JobKey};
pub use model::{
    CgroupMode, GpuMappingSource, GpuRef, GpuVendor, Job, JobsError, MetadataSource, ScanResult,
    Scheduler, DEFAULT_RECORD_DIR, MAX_GPU_LIST_BYTES, MAX_LABEL_BYTES,
};
use read::Ctx;
use visit::read_listed;

use cgroup::{Controller, FdBudget, Found, Hierarchy, PerSlot, Slot};
use cpuset::shorten;
use env::{EnvSearch, JobEnv};
use lister::Lister;
use listing::{note_listed, Listing, FULL_LISTINGS_PER_RELIST};
use reader::{Reader, Vanished};
use sluid::Sluids;
use std::collections::{BTreeMap, HashMap};
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

    /// Scans between two reads of a job's CPU time with `jobs` jobs known (see
    /// [`JobsOptions::cpu_time_every`]).
    fn cpu_time_period(&self, jobs: usize) -> u64 {
        match self.cpu_time_every {
            0 => jobs.div_ceil(AUTO_CPU_TIME_READS).max(1) as u64,
            k => u64::from(k),
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
    /// Counts the listings: 0 before the first (no entries).
    generation: u64,
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
            self.generation += 1;
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
    /// The last scan's GPU inventory, and whether no mapping file nor NVML process named a
    /// job on it (see [`Ctx::read_steady`]).
    last_gpus: Vec<GpuRef>,
    last_no_gpu_names: bool,
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
            last_gpus: Vec::new(),
            last_no_gpu_names: false,
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

    /// Detects the hierarchies on the first scan that finds them: mounts do not change under a
    /// running exporter, and a node without cgroups yet (early boot) is retried on the next
    /// scan. False, with the problem (the source's own), while there are none.
    fn detect_once(&mut self, problems: &mut Vec<String>) -> bool {
        if self.hierarchy.is_some() {
            return true;
        }
        match cgroup::detect(&self.opts.cgroupfs) {
            Ok(h) => {
                self.hierarchy = Some(h);
                true
            }
            Err(e) => {
                problems.push(e.to_string());
                self.source_problems = 1;
                self.cache.clear();
                false
            }
        }
    }

    /// One scan: the jobs running now. `gpus` is the NVML inventory; `gpu_pids` the
    /// (GPU UUID, pid) pairs of NVML's running processes.
    pub fn scan(&mut self, gpus: &[GpuRef], gpu_pids: &[(String, u32)]) -> ScanResult {
        let mut jobs = Vec::new();
        let problems = self.scan_into(gpus, gpu_pids, &mut jobs);
        ScanResult { jobs, problems }
    }

    /// [`JobDiscovery::scan`] into `jobs`, the previous scan's list: its strings and vectors are
    /// overwritten in place, so a steady scan allocates nothing per job, and a list of the
    /// last scan's length is taken to be that list, unchanged (only the jobs with something
    /// due are written into it). Returns the problems.
    pub fn scan_into(
        &mut self,
        gpus: &[GpuRef],
        gpu_pids: &[(String, u32)],
        jobs: &mut Vec<Job>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        self.source_problems = 0;
        if !self.detect_once(&mut problems) {
            jobs.clear();
            return problems;
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
            last_gpus,
            last_no_gpu_names,
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
        let every = opts.cpu_time_period(cache.len());
        let full = listing.full_due(now, hierarchy);
        let relist = full && listing.full_listings % FULL_LISTINGS_PER_RELIST == 0;
        // (Folders of the hierarchies listed only in full listings stay open, and watched,
        // until the next one.)
        lister.begin(now, relist);
        sluids.begin(now);
        records.refresh(opts.record_dir.as_deref());
        fds.held = lister.open_count();
        fds.held += cache.read_held_usage(now, every, buf);
        #[cfg(test)]
        if let Some(hook) = self.before_listing.as_mut() {
            hook();
        }

        // 2. Which jobs exist: list the hierarchies (see `Listing`); a full listing reads
        // every folder again, the others replay the folders in which nothing changed.
        lister.refresh();
        // Every hierarchy due replays its saved listing whole, the same ones as on the last
        // scan, which kept every job it listed (the cache's order is still the one it made):
        // the jobs listed are the last scan's, so they are not handed out one by one.
        let quiet = cache.order.is_some()
            && listing.due_as_last(full, hierarchy)
            && Slot::ALL
                .into_iter()
                .zip(listing.due(full, hierarchy))
                .all(|(h, due)| !due || lister.replays_whole(h));
        let listed_now = listing.list(full, hierarchy, |h, root, found| {
            if quiet {
                lister.keep_listing(h);
                return;
            }
            lister.list_jobs((h, root), opts.user_slices, fds, sluids, found, &mut |l| {
                note_listed(cache, now, h, l)
            });
        });
        problems.extend(listing.problems.iter().flatten().cloned());
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
        // The GPU inputs of this scan and the last: the same inventory, and no mapping file
        // nor NVML process naming a job on either.
        let no_gpu_names = mapping.is_empty() && nvml.is_empty();
        let gpus_steady = no_gpu_names && *last_no_gpu_names && last_gpus.as_slice() == gpus;
        *last_no_gpu_names = no_gpu_names;
        if last_gpus.as_slice() != gpus {
            last_gpus.clear();
            last_gpus.extend_from_slice(gpus);
        }
        // For the jobs read by path below (new ones among them): the period as of this listing.
        let every = opts.cpu_time_period(cache.len());
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
            gpus_steady,
            slot_epoch: 0,
            problems: &mut problems,
        };
        // 3. Each job listed: what changed, and what is due.
        read_listed(&mut ctx, cache, jobs, quiet);
        problems
    }
}

/// Publishes the entries of one job id under several slurmd scopes (a job spanning the
/// virtual nodes of a multiple-slurmd node) as one job: `jobs` is in key order, so they are
/// neighbours. CPUs and GPUs are united, CPU time and memory limits added; the metadata of
/// the first entry is kept. A merged job has revision 0 (compare everything).
/// Returns whether any was merged.
fn merge_scopes(jobs: &mut Vec<Job>) -> bool {
    let same = |a: &Job, b: &Job| a.scheduler == b.scheduler && a.id == b.id;
    if jobs.windows(2).all(|w| !same(&w[0], &w[1])) {
        return false;
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
    true
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
mod tests;
