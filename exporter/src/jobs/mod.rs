//! The batch jobs running on this node, read from cgroups: their ids, owners, metadata, CPUs,
//! CPU time, memory limit and GPUs. Plain data for the attribution; no Prometheus types and no
//! energy arithmetic here.
//!
//! Everything comes from files under configurable roots (`--path.cgroupfs`, `--path.procfs`,
//! the root of `/etc/passwd`), so tests run on fixture trees. Nothing forks a process or asks
//! the scheduler's controller: a scan runs every second with up to a thousand jobs.
//!
//! A scan ([`JobDiscovery::scan`]):
//! 1. lists the job folders of every supported layout (below) under the mounted hierarchies
//!    (cgroup v1, v2 or hybrid);
//! 2. reads each job's CPUs, CPU time and memory limit at the job level, falling back to the
//!    union/sum over its steps only when the job folder lacks the file;
//! 3. reads the job's environment once, from one of its processes, and caches it until the
//!    job ends: account, partition, name, and the GPU variables;
//! 4. finds the job's GPUs from the most trusted source that names any (see
//!    [`GpuMappingSource`]).
//!
//! Layouts, relative to a hierarchy root (a v1 controller folder such as `cpuset/` or
//! `cpu,cpuacct/`, the v2 root, or `unified/` on a hybrid system); steps, tasks and Slurm's
//! extern step belong to their job:
//!
//! | scheduler | layout |
//! |---|---|
//! | Slurm, cgroup v1 | `slurm[_<node>]/uid_<uid>/job_<id>/step_<s>/task_<t>` |
//! | Slurm, cgroup v2 | `system.slice/[<node>_]slurmstepd.scope/job_<id>/step_<s>/…` |
//! | OAR 2 (v1) | `oar/<user>_<jobid>` |
//! | OAR 3 (systemd, v2) | `oar.slice/oar-u<uid>.slice/oar-u<uid>-j<jobid>.slice` |
//! | systemd user slices | `user.slice/user-<uid>.slice` (only with [`JobsOptions::user_slices`]) |
//!
//! A job whose folder disappears during the scan has ended: it is left out without a problem.
//! Bad content is reported in [`ScanResult::problems`] with the file's path, and the job is
//! still listed with what could be read.

mod cgroup;
mod cpuset;
mod env;
mod gpu;
mod passwd;

pub use cpuset::{format_cpu_list, parse_cpu_list, CpuListError, MAX_CPU_ID};

use cgroup::{Controller, Found, Hierarchy, Reader, Vanished};
use cpuset::shorten;
use env::{EnvSearch, JobEnv};
use std::cmp::Ordering;
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
    /// Report each systemd `user-<uid>.slice` as a job `user-<uid>` (login nodes, workstations).
    pub user_slices: bool,
}

impl Default for JobsOptions {
    fn default() -> Self {
        JobsOptions {
            cgroupfs: PathBuf::from("/sys/fs/cgroup"),
            procfs: PathBuf::from("/proc"),
            rootfs: PathBuf::from("/"),
            mapping_dir: None,
            oar_resources_dir: None,
            user_slices: false,
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
            ..JobsOptions::default()
        }
    }
}

/// Who runs the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheduler {
    Slurm,
    Oar,
    /// A systemd user slice, reported as a job when [`JobsOptions::user_slices`] is on.
    UserSlice,
}

impl Scheduler {
    /// The value of the `scheduler` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Slurm => "slurm",
            Scheduler::Oar => "oar",
            Scheduler::UserSlice => "user",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which cgroup hierarchies the node mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CgroupMode {
    /// Controller folders (`cpuset/`, `cpu,cpuacct/`, `memory/`, …) under the root.
    V1,
    /// The unified hierarchy at the root (`cgroup.controllers` there).
    V2,
    /// v1 controllers plus the unified hierarchy at `unified/` (systemd's hybrid mode).
    Hybrid,
}

/// Where a job's GPUs came from, most trusted first. The first source that names at least one
/// GPU of the inventory wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GpuMappingSource {
    /// dcgm-exporter's `--hpc-job-mapping-dir` format, written by the scheduler's prolog:
    /// one regular file per GPU, named by its index (`0`, `1`, …; decimal digits only), or
    /// `<index>.<instance>` for a MIG instance (attributed to the physical GPU `<index>`), or —
    /// a joulebook extension — by its UUID (`GPU-…`). The file holds the ids of the jobs using
    /// the GPU, one per line; whitespace and empty lines are ignored. Other names and
    /// subfolders are ignored, as dcgm-exporter ignores them. The only source that knows about
    /// a GPU allocated to a job and held idle when the job's environment is unreadable.
    MappingDir,
    /// joulebook's OAR job resources file `<oar_resources_dir>/<jobid>`, written by an OAR
    /// prolog: one GPU per line, an index (`0`) or a UUID (`GPU-…`); empty lines and lines
    /// starting with `#` are ignored.
    OarResources,
    /// `SLURM_JOB_GPUS` (or `SLURM_STEP_GPUS`) in the job's environment: global indices or UUIDs.
    SlurmJobGpus,
    /// `CUDA_VISIBLE_DEVICES` in the job's environment. Inside a device-constrained job Slurm
    /// renumbers it from 0, so an index list is used only when the job's `devices.list` names
    /// no GPU; a UUID list is always exact.
    CudaVisibleDevices,
    /// The cgroup v1 `devices.list` of the job: `c 195:<minor> …` lines, matched to
    /// [`GpuRef::minor`]; `/dev/nvidiactl` (255) and `/dev/nvidia-modeset` (254) are not GPUs.
    DevicesList,
    /// NVML's running processes, each mapped to a job through `/proc/<pid>/cgroup`. Misses a
    /// GPU that a job holds without running anything on it.
    NvmlProcesses,
}

impl GpuMappingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuMappingSource::MappingDir => "mapping_dir",
            GpuMappingSource::OarResources => "oar_resources",
            GpuMappingSource::SlurmJobGpus => "slurm_job_gpus",
            GpuMappingSource::CudaVisibleDevices => "cuda_visible_devices",
            GpuMappingSource::DevicesList => "devices_list",
            GpuMappingSource::NvmlProcesses => "nvml_processes",
        }
    }
}

impl fmt::Display for GpuMappingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One running job. Text fields come verbatim from the system (a job name may hold quotes,
/// newlines or markup): escape them wherever they are rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The scheduler's job id; `user-<uid>` for a user slice.
    pub id: String,
    pub scheduler: Scheduler,
    /// From the cgroup path (Slurm v1 `uid_<uid>`, OAR 3 `u<uid>`, user slices), else
    /// `SLURM_JOB_UID`, else `/etc/passwd` for OAR 2's user name.
    pub uid: Option<u32>,
    /// From the path (OAR 2), else `/etc/passwd`, else `SLURM_JOB_USER` / `OAR_USER`.
    pub user: Option<String>,
    pub account: Option<String>,
    pub partition: Option<String>,
    pub job_name: Option<String>,
    /// Allocated logical CPU ids, ascending (`cpuset.effective_cpus` where present, else
    /// `cpuset.cpus`). Empty when no cpuset controller covers the job.
    pub cpus: Vec<u32>,
    /// CPU time used by the job's processes since the job started, in nanoseconds
    /// (`cpuacct.usage`, or `cpu.stat` `usage_usec` × 1000).
    pub cpu_usage_ns: Option<u64>,
    /// Memory limit in bytes, only when one is set (`None` for v2 `max` and v1 values ≥ 2^62).
    pub memory_limit_bytes: Option<u64>,
    /// UUIDs of the GPUs the job holds, sorted.
    pub gpus: Vec<String>,
    /// Which source named the GPUs; `None` when no GPU was found.
    pub gpu_source: Option<GpuMappingSource>,
}

/// One GPU of the node's inventory, from NVML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuRef {
    pub uuid: String,
    /// NVML index (what `SLURM_JOB_GPUS` and the mapping directory's file names use).
    pub index: u32,
    /// Minor number of `/dev/nvidia<minor>` (what `devices.list` uses).
    pub minor: Option<u32>,
}

/// The result of one scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// The jobs running now, ordered by scheduler, then job id (numerically).
    pub jobs: Vec<Job>,
    /// What could not be read or understood, each message naming the file.
    pub problems: Vec<String>,
}

/// The cgroup filesystem cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("no cgroup filesystem under {path}: found neither cgroup.controllers (cgroup v2) nor controller folders such as cpuset/, cpuacct/, memory/ (cgroup v1) (fix: point --path.cgroupfs at the cgroup mount)")]
    NotCgroupFs { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A job's identity across scans.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct JobKey {
    pub scheduler: Scheduler,
    pub id: String,
}

impl JobKey {
    pub(crate) fn new(scheduler: Scheduler, id: impl Into<String>) -> Self {
        JobKey {
            scheduler,
            id: id.into(),
        }
    }
}

impl Ord for JobKey {
    /// Numeric order for decimal ids (shorter first), which also orders `user-<uid>` sensibly.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.scheduler, self.id.len(), &self.id).cmp(&(other.scheduler, other.id.len(), &other.id))
    }
}

impl PartialOrd for JobKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What is kept about a job between scans: things that do not change while it runs.
#[derive(Debug, Default)]
struct JobCache {
    /// `None` until one of the job's processes could be read.
    env: Option<JobEnv>,
    /// The entries of the OAR resources file, once read non-empty.
    oar_resources: Option<Vec<String>>,
}

/// Processes whose environment is tried per job and scan, at most: bounds the cost of a job
/// whose processes all refuse (permission) or all replaced their environment.
const MAX_ENV_CANDIDATES: usize = 8;
/// Depth below a job folder searched for processes (`step/user/task` on Slurm v2 is 3).
const MAX_PROC_DEPTH: usize = 4;
/// v1 reports "no limit" as the largest page-aligned i64 (9223372036854771712); anything this
/// large is no limit a scheduler would set.
const V1_NO_LIMIT: u64 = 1 << 62;

/// Discovers jobs; keeps per-job caches between scans.
pub struct JobDiscovery {
    opts: JobsOptions,
    hierarchy: Option<Hierarchy>,
    passwd: passwd::Passwd,
    cache: HashMap<JobKey, JobCache>,
    /// Reused between scans to keep its capacity.
    found: BTreeMap<JobKey, Found>,
    reader: Reader,
    env_buf: Vec<u8>,
    /// Runs between discovery and the per-job reads, so tests can make a job vanish mid-scan.
    #[cfg(test)]
    after_discovery: Option<Box<dyn FnMut() + Send>>,
}

impl fmt::Debug for JobDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobDiscovery")
            .field("opts", &self.opts)
            .field("mode", &self.hierarchy.as_ref().map(|h| h.mode))
            .field("cached_jobs", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl JobDiscovery {
    pub fn new(opts: JobsOptions) -> JobDiscovery {
        JobDiscovery {
            passwd: passwd::Passwd::new(opts.rootfs.join("etc/passwd")),
            opts,
            hierarchy: None,
            cache: HashMap::new(),
            found: BTreeMap::new(),
            reader: Reader::default(),
            env_buf: Vec::new(),
            #[cfg(test)]
            after_discovery: None,
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

    /// One scan: the jobs running now. `gpus` is the NVML inventory; `gpu_pids` the
    /// (GPU UUID, pid) pairs of NVML's running processes.
    pub fn scan(&mut self, gpus: &[GpuRef], gpu_pids: &[(String, u32)]) -> ScanResult {
        let mut problems = Vec::new();
        if self.hierarchy.is_none() {
            // Detected once: mounts do not change under a running exporter, and a node
            // without cgroups yet (early boot) is retried on the next scan.
            match cgroup::detect(&self.opts.cgroupfs) {
                Ok(h) => self.hierarchy = Some(h),
                Err(e) => {
                    problems.push(e.to_string());
                    self.cache.clear();
                    return ScanResult {
                        jobs: Vec::new(),
                        problems,
                    };
                }
            }
        }
        let JobDiscovery {
            opts,
            hierarchy: Some(hierarchy),
            passwd,
            cache,
            found,
            reader,
            env_buf,
            ..
        } = self
        else {
            return ScanResult::default();
        };
        passwd.refresh(&mut problems);
        found.clear();
        cgroup::discover(hierarchy, opts.user_slices, found, &mut problems);
        #[cfg(test)]
        if let Some(hook) = self.after_discovery.as_mut() {
            hook();
        }

        let mapping = match &opts.mapping_dir {
            Some(dir) => gpu::read_mapping_dir(dir, gpus, &mut problems),
            None => HashMap::new(),
        };
        let nvml = nvml_jobs(&opts.procfs, gpu_pids, opts.user_slices);
        let mut ctx = Ctx {
            opts,
            passwd,
            reader,
            env_buf,
            gpus,
            mapping: &mapping,
            nvml: &nvml,
            problems: &mut problems,
        };
        let mut jobs = Vec::with_capacity(found.len());
        let mut vanished = Vec::new();
        for (key, f) in found.iter() {
            // No `entry(key.clone())`: that would allocate a key per job and scan.
            if !cache.contains_key(key) {
                cache.insert(key.clone(), JobCache::default());
            }
            let Some(entry) = cache.get_mut(key) else {
                continue;
            };
            match ctx.read_job(key, f, entry) {
                Ok(job) => jobs.push(job),
                Err(Vanished) => vanished.push(key.clone()),
            }
        }
        // Ended jobs lose their cache, so a reused id starts afresh.
        cache.retain(|k, _| found.contains_key(k) && !vanished.contains(k));
        ScanResult { jobs, problems }
    }
}

/// Maps NVML's GPU processes to jobs through `/proc/<pid>/cgroup`.
fn nvml_jobs(
    procfs: &Path,
    gpu_pids: &[(String, u32)],
    user_slices: bool,
) -> HashMap<JobKey, Vec<String>> {
    let mut map: HashMap<JobKey, Vec<String>> = HashMap::new();
    for (uuid, pid) in gpu_pids {
        let path = procfs.join(pid.to_string()).join("cgroup");
        // A process that exited since NVML listed it, or a pid from another pid namespace,
        // simply maps to nothing.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Some(key) = cgroup::job_of_proc_cgroup(&text, user_slices) {
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

/// What one scan's per-job reads share.
struct Ctx<'a> {
    opts: &'a JobsOptions,
    passwd: &'a passwd::Passwd,
    reader: &'a mut Reader,
    env_buf: &'a mut Vec<u8>,
    gpus: &'a [GpuRef],
    mapping: &'a HashMap<String, Vec<String>>,
    nvml: &'a HashMap<JobKey, Vec<String>>,
    problems: &'a mut Vec<String>,
}

/// A CPU time reading.
enum Usage {
    Ns(u64),
    /// The file is not there (fall back to the steps).
    Absent,
    /// The file is there but unusable (already reported).
    Bad,
}

impl Ctx<'_> {
    fn read_job(&mut self, key: &JobKey, f: &Found, cache: &mut JobCache) -> Result<Job, Vanished> {
        let cpus = self.cpus(f)?;
        let cpu_usage_ns = self.cpu_usage(f)?;
        let memory_limit_bytes = self.memory_limit(f)?;
        if cache.env.is_none() && key.scheduler != Scheduler::UserSlice {
            cache.env = self.find_env(key, f)?;
        }
        let (gpus, gpu_source) = self.job_gpus(key, f, cache)?;

        let env = cache.env.as_ref();
        let uid = f
            .uid
            .or_else(|| env.and_then(|e| e.uid))
            .or_else(|| f.user.as_deref().and_then(|u| self.passwd.uid(u)));
        let user = f
            .user
            .clone()
            .or_else(|| uid.and_then(|u| self.passwd.name(u)).map(str::to_string))
            .or_else(|| env.and_then(|e| e.user.clone()));
        Ok(Job {
            id: key.id.clone(),
            scheduler: key.scheduler,
            uid,
            user,
            account: env.and_then(|e| e.account.clone()),
            partition: env.and_then(|e| e.partition.clone()),
            job_name: env.and_then(|e| e.job_name.clone()),
            cpus,
            cpu_usage_ns,
            memory_limit_bytes,
            gpus,
            gpu_source,
        })
    }

    fn cpus(&mut self, f: &Found) -> Result<Vec<u32>, Vanished> {
        let (dir, files): (&Path, &[&str]) = if let Some(d) = &f.v1[Controller::Cpuset as usize] {
            (d, &["cpuset.effective_cpus", "cpuset.cpus"])
        } else if let Some(d) = &f.v2 {
            (d, &["cpuset.cpus.effective", "cpuset.cpus"])
        } else {
            return Ok(Vec::new());
        };
        if let Some(cpus) = self.cpus_at(dir, files)? {
            return Ok(cpus);
        }
        let mut all = Vec::new();
        for sub in cgroup::subdirs(dir)? {
            // A step that ended meanwhile just adds nothing.
            if let Ok(Some(cpus)) = self.cpus_at(&sub, files) {
                all.extend(cpus);
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// The first of `files` present in `dir`, parsed; `None` when none is present.
    fn cpus_at(&mut self, dir: &Path, files: &[&str]) -> Result<Option<Vec<u32>>, Vanished> {
        for file in files {
            let Some(text) = self.reader.read(dir, file, self.problems)? else {
                continue;
            };
            let parsed = parse_cpu_list(text);
            return Ok(Some(parsed.unwrap_or_else(|e| {
                self.problems
                    .push(format!("{}: {e}", self.reader.path().display()));
                Vec::new()
            })));
        }
        Ok(None)
    }

    fn cpu_usage(&mut self, f: &Found) -> Result<Option<u64>, Vanished> {
        let (dir, v2) = if let Some(d) = &f.v1[Controller::Cpuacct as usize] {
            (d, false)
        } else if let Some(d) = &f.v2 {
            (d, true)
        } else {
            return Ok(None);
        };
        match self.usage_at(dir, v2)? {
            Usage::Ns(ns) => return Ok(Some(ns)),
            Usage::Bad => return Ok(None),
            Usage::Absent => {}
        }
        let mut sum: Option<u64> = None;
        for sub in cgroup::subdirs(dir)? {
            if let Ok(Usage::Ns(ns)) = self.usage_at(&sub, v2) {
                sum = Some(sum.unwrap_or(0).saturating_add(ns));
            }
        }
        Ok(sum)
    }

    fn usage_at(&mut self, dir: &Path, v2: bool) -> Result<Usage, Vanished> {
        let file = if v2 { "cpu.stat" } else { "cpuacct.usage" };
        let Some(text) = self.reader.read(dir, file, self.problems)? else {
            return Ok(Usage::Absent);
        };
        let ns = if v2 {
            text.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|us| us.saturating_mul(1000))
        } else {
            text.trim().parse::<u64>().ok()
        };
        match ns {
            Some(ns) => Ok(Usage::Ns(ns)),
            None => {
                let shown = shorten(text).to_string();
                let what = if v2 {
                    "a usage_usec line"
                } else {
                    "a CPU time in nanoseconds"
                };
                self.problems.push(format!(
                    "{}: expected {what}, found {shown:?}",
                    self.reader.path().display(),
                ));
                Ok(Usage::Bad)
            }
        }
    }

    fn memory_limit(&mut self, f: &Found) -> Result<Option<u64>, Vanished> {
        let (dir, file) = if let Some(d) = &f.v1[Controller::Memory as usize] {
            (d, "memory.limit_in_bytes")
        } else if let Some(d) = &f.v2 {
            (d, "memory.max")
        } else {
            return Ok(None);
        };
        let Some(text) = self.reader.read(dir, file, self.problems)? else {
            return Ok(None);
        };
        let v = text.trim();
        if v == "max" {
            return Ok(None);
        }
        match v.parse::<u64>() {
            Ok(b) if b >= V1_NO_LIMIT => Ok(None),
            Ok(b) => Ok(Some(b)),
            Err(_) => {
                let shown = shorten(text).to_string();
                let msg = format!(
                    "{}: expected a byte count or \"max\", found {shown:?}",
                    self.reader.path().display(),
                );
                self.problems.push(msg);
                Ok(None)
            }
        }
    }

    /// The job's environment, from the first of its processes whose environment carries the
    /// job's id. `Ok(None)` when no process could be read yet (retried next scan).
    fn find_env(&mut self, key: &JobKey, f: &Found) -> Result<Option<JobEnv>, Vanished> {
        // Every hierarchy lists the same processes, but a controller may leave a job's folder
        // empty (OAR 2 puts processes in cpuset only): try the next until one has any.
        let mut pids = Vec::new();
        for dir in f.v2.iter().chain(f.v1.iter().flatten()) {
            self.collect_pids(dir, 0, &mut pids)?;
            if !pids.is_empty() {
                break;
            }
        }
        let mut search = EnvSearch::default();
        let env = env::find_job_env(
            &self.opts.procfs,
            &pids,
            key.scheduler,
            &key.id,
            self.env_buf,
            &mut search,
        );
        if env.is_none() {
            if let Some(path) = search.denied {
                self.problems.push(format!(
                    "cannot read {}: permission denied, so {} job {} has no account, partition or name (fix: run the exporter as root or with CAP_SYS_PTRACE)",
                    path.display(),
                    key.scheduler,
                    key.id
                ));
            }
        }
        Ok(env)
    }

    /// Pids of the processes below `dir`, deepest folders first (tasks before their step's
    /// slurmstepd), at most [`MAX_ENV_CANDIDATES`].
    fn collect_pids(
        &mut self,
        dir: &Path,
        depth: usize,
        out: &mut Vec<u32>,
    ) -> Result<(), Vanished> {
        let subs = match cgroup::subdirs(dir) {
            Ok(s) => s,
            Err(Vanished) if depth == 0 => return Err(Vanished),
            Err(Vanished) => return Ok(()),
        };
        if depth < MAX_PROC_DEPTH {
            for sub in subs {
                if out.len() >= MAX_ENV_CANDIDATES {
                    return Ok(());
                }
                // A step that ended meanwhile holds no processes.
                let _ = self.collect_pids(&sub, depth + 1, out);
            }
        }
        for file in ["cgroup.procs", "tasks"] {
            let text = match self.reader.read(dir, file, self.problems) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(Vanished) if depth == 0 => return Err(Vanished),
                Err(Vanished) => return Ok(()),
            };
            for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                if out.len() >= MAX_ENV_CANDIDATES {
                    break;
                }
                if !out.contains(&pid) {
                    out.push(pid);
                }
            }
            break;
        }
        Ok(())
    }

    fn job_gpus(
        &mut self,
        key: &JobKey,
        f: &Found,
        cache: &mut JobCache,
    ) -> Result<(Vec<String>, Option<GpuMappingSource>), Vanished> {
        use GpuMappingSource as S;
        let found = |list: Vec<String>, s: S| Ok((list, Some(s)));
        if key.scheduler != Scheduler::UserSlice {
            if let Some(list) = self.mapping.get(&key.id) {
                return found(list.clone(), S::MappingDir);
            }
        }
        if key.scheduler == Scheduler::Oar {
            let list = self.oar_resources(key, cache);
            if !list.is_empty() {
                return found(list, S::OarResources);
            }
        }
        let mut devices: Option<Vec<String>> = None;
        if let Some(env) = &cache.env {
            // Builds the message lazily: only a problem pays for the formatting.
            let what =
                |var: &'static str| move || format!("{var} of {} job {}", key.scheduler, key.id);
            if let Some((var, v)) = &env.slurm_gpus {
                let list = gpu::resolve_list(v, self.gpus, &what(var), self.problems);
                if !list.is_empty() {
                    return found(list, S::SlurmJobGpus);
                }
            }
            if let Some(v) = &env.cuda_visible_devices {
                if !gpu::all_uuids(v) {
                    // Indices may be renumbered from 0 in a constrained job: the devices list,
                    // when it names GPUs, is exact.
                    let d = self.devices_gpus(f)?;
                    if !d.is_empty() {
                        return found(d, S::DevicesList);
                    }
                    devices = Some(d);
                }
                let list =
                    gpu::resolve_list(v, self.gpus, &what("CUDA_VISIBLE_DEVICES"), self.problems);
                if !list.is_empty() {
                    return found(list, S::CudaVisibleDevices);
                }
            }
        }
        let d = match devices {
            Some(d) => d,
            None => self.devices_gpus(f)?,
        };
        if !d.is_empty() {
            return found(d, S::DevicesList);
        }
        if let Some(list) = self.nvml.get(key) {
            return found(list.clone(), S::NvmlProcesses);
        }
        Ok((Vec::new(), None))
    }

    /// GPUs from the OAR resources file, read once per job (an absent file is retried: the
    /// prolog may be late).
    fn oar_resources(&mut self, key: &JobKey, cache: &mut JobCache) -> Vec<String> {
        let Some(dir) = &self.opts.oar_resources_dir else {
            return Vec::new();
        };
        let path = dir.join(&key.id);
        if cache.oar_resources.is_none() {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let entries = gpu::parse_oar_resources(&text);
                    if !entries.is_empty() {
                        cache.oar_resources = Some(entries);
                    }
                }
                Err(e) if cgroup::is_gone(&e) => {}
                Err(e) => self.problems.push(format!(
                    "cannot read OAR resources file {}: {e}",
                    path.display()
                )),
            }
        }
        let Some(entries) = &cache.oar_resources else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let tokens = entries.iter().filter_map(|e| {
            let t = gpu::token(e);
            if t.is_none() {
                bad.push(e.as_str());
            }
            t
        });
        gpu::resolve(
            tokens,
            self.gpus,
            &|| format!("OAR resources file {}", path.display()),
            &mut out,
            self.problems,
        );
        for b in bad {
            self.problems.push(format!(
                "OAR resources file {}: expected a GPU index or GPU-… UUID per line, found {:?}",
                path.display(),
                shorten(b)
            ));
        }
        out
    }

    /// GPUs from the v1 `devices.list` at the job level, else the union over its steps.
    fn devices_gpus(&mut self, f: &Found) -> Result<Vec<String>, Vanished> {
        let Some(dir) = &f.v1[Controller::Devices as usize] else {
            return Ok(Vec::new());
        };
        let mut minors = match self.minors_at(dir)? {
            Some(m) => m,
            None => {
                let mut all = Vec::new();
                for sub in cgroup::subdirs(dir)? {
                    if let Ok(Some(m)) = self.minors_at(&sub) {
                        all.extend(m);
                    }
                }
                all
            }
        };
        minors.sort_unstable();
        minors.dedup();
        let path = dir.join("devices.list");
        Ok(gpu::resolve_minors(
            &minors,
            self.gpus,
            &|| path.display().to_string(),
            self.problems,
        ))
    }

    /// The GPU minors a `devices.list` allows; `None` when the file is absent.
    fn minors_at(&mut self, dir: &Path) -> Result<Option<Vec<u32>>, Vanished> {
        let Some(text) = self.reader.read(dir, "devices.list", self.problems)? else {
            return Ok(None);
        };
        match gpu::parse_devices_list(text) {
            Ok(gpu::DeviceAccess::Minors(m)) => Ok(Some(m)),
            Ok(gpu::DeviceAccess::Unconstrained) => Ok(Some(Vec::new())),
            Err(line) => {
                self.problems.push(format!(
                    "{}: expected lines such as \"c 195:0 rwm\", found {:?}",
                    self.reader.path().display(),
                    shorten(&line)
                ));
                Ok(Some(Vec::new()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/cgroup")
            .join(name)
    }

    fn copy_tree(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).expect("mkdir");
        for entry in std::fs::read_dir(src).expect("read fixture") {
            let entry = entry.expect("entry");
            let (from, to) = (entry.path(), dst.join(entry.file_name()));
            let ty = entry.file_type().expect("file type");
            if ty.is_symlink() {
                let target = std::fs::read_link(&from).expect("readlink");
                std::os::unix::fs::symlink(target, &to).expect("symlink");
            } else if ty.is_dir() {
                copy_tree(&from, &to);
            } else {
                std::fs::copy(&from, &to).expect("copy");
            }
        }
    }

    fn ids(r: &ScanResult) -> Vec<&str> {
        r.jobs.iter().map(|j| j.id.as_str()).collect()
    }

    /// A v1 job whose cpuacct folder is removed after discovery (Slurm tears controllers down
    /// one by one): skipped for this scan, no problem, cache dropped.
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
        d.after_discovery = Some(Box::new(move || {
            std::fs::remove_dir_all(&victim).expect("rm");
        }));
        let r = d.scan(&[], &[]);
        assert_eq!(r.problems, Vec::<String>::new());
        assert_eq!(ids(&r), vec!["101"]);
        assert!(!d.cache.contains_key(&JobKey::new(Scheduler::Slurm, "102")));
        assert!(d.cache.contains_key(&JobKey::new(Scheduler::Slurm, "101")));
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
        d.after_discovery = Some(Box::new(move || {
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

    #[test]
    fn labels() {
        assert_eq!(Scheduler::Slurm.as_str(), "slurm");
        assert_eq!(Scheduler::Oar.to_string(), "oar");
        assert_eq!(Scheduler::UserSlice.as_str(), "user");
        assert_eq!(GpuMappingSource::MappingDir.as_str(), "mapping_dir");
    }
}
