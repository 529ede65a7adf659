//! The job model: what discovery publishes about a job ([`Job`], plain data), and how it knows
//! a job across scans ([`JobKey`], an id stored inline). No I/O here.

use std::cmp::Ordering;
use std::fmt;
use std::path::PathBuf;

/// Where the prolog writes job records (see [`super::JobsOptions::record_dir`]).
pub const DEFAULT_RECORD_DIR: &str = "/run/joulebook/jobs";

/// The longest label value taken from a job (user, account, partition, job name, SLUID), in
/// bytes: longer values are cut at a character boundary. A job's user chooses most of them;
/// without a cap, 125 jobs with 128 KiB names took the exporter past 300 MB.
pub const MAX_LABEL_BYTES: usize = 256;

/// The longest GPU list read from a job's environment, in bytes: 64 GPU UUIDs fit.
pub const MAX_GPU_LIST_BYTES: usize = 4096;

/// `s` cut to [`MAX_LABEL_BYTES`] at a character boundary.
pub(crate) fn clip(s: &str) -> &str {
    clip_to(s, MAX_LABEL_BYTES)
}

/// `s` cut to `max` bytes at a character boundary.
pub(crate) fn clip_to(s: &str, max: usize) -> &str {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// Where a job's published metadata came from, most trusted first (the `metadata` label).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetadataSource {
    /// The job record written by the scheduler's prolog (root).
    Prolog,
    /// Only what the kernel and the scheduler's folders attest: the uid owning the job's
    /// processes or written in its cgroup path, and names from the user database.
    #[default]
    Kernel,
    /// At least one published value (account, partition, name, uid or user) is only as the
    /// job's own environment claims it.
    Environment,
}

impl MetadataSource {
    /// The value of the `metadata` label.
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataSource::Prolog => "prolog",
            MetadataSource::Kernel => "kernel",
            MetadataSource::Environment => "environment",
        }
    }
}

/// Who runs the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheduler {
    Slurm,
    Oar,
    /// A systemd user slice, reported as a job when [`super::JobsOptions::user_slices`] is on.
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
    /// `<index>.<instance>` for a MIG instance (GPU instance `<instance>` of GPU `<index>`; the
    /// physical GPU where NVML lists no such instance), or — a joulebook extension — by its
    /// UUID (`GPU-…`, `MIG-…`). The file holds the ids of the jobs using
    /// the GPU, one per line; whitespace and empty lines are ignored. Other names and
    /// subfolders are ignored, as dcgm-exporter ignores them. The only source that knows about
    /// a GPU allocated to a job and held idle when the job's environment is unreadable.
    MappingDir,
    /// The `gpus` line of the job's record written by the prolog (see [`super::JobsOptions::record_dir`]).
    JobRecord,
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
    /// `c 226:<minor> …` lines (`/dev/dri/card<N>`, `renderD<M>`) are matched to
    /// [`GpuRef::drm_minors`] (AMD and Intel GPUs).
    DevicesList,
    /// `ROCR_VISIBLE_DEVICES` (else `HIP_VISIBLE_DEVICES`) in the job's environment: AMD GPUs,
    /// by index among the node's AMD GPUs (used, like CUDA's, only when `devices.list` names
    /// no GPU) or by ROCm UUID (`GPU-<unique_id>`).
    RocrVisibleDevices,
    /// `ZE_AFFINITY_MASK` in the job's environment: Intel GPUs by index (`N`, or `N.M` for a
    /// tile of device N), used only when `devices.list` names no GPU.
    ZeAffinityMask,
    /// NVML's running processes, each mapped to a job through `/proc/<pid>/cgroup`. Misses a
    /// GPU that a job holds without running anything on it.
    NvmlProcesses,
}

impl GpuMappingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuMappingSource::MappingDir => "mapping_dir",
            GpuMappingSource::JobRecord => "job_record",
            GpuMappingSource::OarResources => "oar_resources",
            GpuMappingSource::SlurmJobGpus => "slurm_job_gpus",
            GpuMappingSource::CudaVisibleDevices => "cuda_visible_devices",
            GpuMappingSource::DevicesList => "devices_list",
            GpuMappingSource::RocrVisibleDevices => "rocr_visible_devices",
            GpuMappingSource::ZeAffinityMask => "ze_affinity_mask",
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
/// newlines or markup): escape them wherever they are rendered. Compared without
/// [`Job::revision`], which is bookkeeping, not a value.
#[derive(Clone, Debug, Eq)]
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
    /// Slurm 26.05's job identifier, from the folder name or the prolog's record.
    pub sluid: Option<String>,
    /// Where `uid`, `user`, `account`, `partition` and `job_name` came from.
    pub metadata: MetadataSource,
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
    /// Job discovery's mark of the values of `id`, `scheduler`, `uid`, `user`, `account`,
    /// `partition`, `job_name`, `cpus` and `memory_limit_bytes`: two jobs with the same
    /// non-zero revision hold the same values in those fields, so a consumer that kept them
    /// need not compare them again (a revision is never given to another job or to changed
    /// values). 0: unknown, compare.
    pub revision: u64,
}

impl PartialEq for Job {
    fn eq(&self, o: &Self) -> bool {
        // Destructured, so that a field added later cannot be forgotten here.
        let Job {
            id,
            scheduler,
            uid,
            user,
            account,
            partition,
            job_name,
            sluid,
            metadata,
            cpus,
            cpu_usage_ns,
            memory_limit_bytes,
            gpus,
            gpu_source,
            revision: _,
        } = self;
        *id == o.id
            && *scheduler == o.scheduler
            && *uid == o.uid
            && *user == o.user
            && *account == o.account
            && *partition == o.partition
            && *job_name == o.job_name
            && *sluid == o.sluid
            && *metadata == o.metadata
            && *cpus == o.cpus
            && *cpu_usage_ns == o.cpu_usage_ns
            && *memory_limit_bytes == o.memory_limit_bytes
            && *gpus == o.gpus
            && *gpu_source == o.gpu_source
    }
}

impl Job {
    /// A job with an empty id and nothing known: a slot for [`super::JobDiscovery::scan_into`], or a
    /// start for a test's job.
    pub fn empty(scheduler: Scheduler) -> Job {
        Job {
            id: String::new(),
            scheduler,
            uid: None,
            user: None,
            account: None,
            partition: None,
            job_name: None,
            sluid: None,
            metadata: MetadataSource::Kernel,
            cpus: Vec::new(),
            cpu_usage_ns: None,
            memory_limit_bytes: None,
            gpus: Vec::new(),
            gpu_source: None,
            revision: 0,
        }
    }
}

/// Sets `slot` to `value` (cut to [`MAX_LABEL_BYTES`]), reusing the string already there.
pub(super) fn set_text(slot: &mut Option<String>, value: Option<&str>) {
    let value = value.map(clip);
    match (slot.as_mut(), value) {
        (Some(old), Some(v)) => {
            if old != v {
                old.clear();
                old.push_str(v);
            }
        }
        (_, v) => *slot = v.map(str::to_string),
    }
}

/// Who made a GPU: says which runtime variable numbers it and which device files it has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GpuVendor {
    /// From NVML: `CUDA_VISIBLE_DEVICES`, `/dev/nvidia<minor>` (major 195).
    #[default]
    Nvidia,
    /// From the amdgpu source: `ROCR_VISIBLE_DEVICES`, `HIP_VISIBLE_DEVICES`, `/dev/dri` (226).
    Amd,
    /// From the Intel GPU source: `ZE_AFFINITY_MASK`, `/dev/dri` (226).
    Intel,
}

/// One GPU of the node's inventory: NVML's GPUs, then the AMD and Intel sources'.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuRef {
    /// The id its energy is published under (`gpu_uuid`): NVML's UUID, AMD's `unique_id` (else
    /// PCI address), Intel's PCI address.
    pub uuid: String,
    /// Index among the GPUs of its vendor (what `SLURM_JOB_GPUS`, the runtime variables and the
    /// mapping directory's file names use): NVML's index; PCI order for AMD and Intel.
    pub index: u32,
    /// Minor number of `/dev/nvidia<minor>` (what `devices.list` uses).
    pub minor: Option<u32>,
    pub vendor: GpuVendor,
    /// Minors of its `/dev/dri` devices (major 226: `card<N>`, `renderD<M>`), AMD and Intel.
    pub drm_minors: Vec<u32>,
    /// Another UUID runtimes give it (ROCm's `GPU-<unique_id>`), matched like `uuid`.
    pub alias: Option<String>,
    /// A MIG instance: its GPU instance id (`uuid` is its `MIG-…` UUID, `index` its physical
    /// GPU's). Named by UUID or as `<index>.<instance>`, never by an index alone.
    pub mig: Option<u32>,
    /// A MIG instance's capability devices, (major, minor) of `/dev/nvidia-caps/nvidia-cap<N>`
    /// (set by job discovery from `mig-minors`, see `nvcaps`).
    pub caps: Vec<(u32, u32)>,
}

impl GpuRef {
    /// True when `u` names this GPU (its id or its alias; ROCm prints hex digits in either case).
    pub(crate) fn is_named(&self, u: &str) -> bool {
        self.uuid == u
            || self
                .alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(u))
    }
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

/// A job id stored inline, so that finding or keeping a job costs no allocation: Slurm and OAR
/// ids are at most 20 decimal digits (longer names are not taken for jobs), a user slice's
/// `user-<uid>` at most 15 bytes. The length and the bytes are also kept as big-endian integers,
/// which compare as (length, bytes) do (the bytes past the id's length are zero): a search
/// among a thousand jobs then compares two integers per step instead of calling `memcmp`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct JobId {
    bytes: [u8; JobId::CAP],
    words: (u128, u64),
}

impl JobId {
    const CAP: usize = 22;

    /// `id`, cut to [`JobId::CAP`] bytes (callers pass ids already checked to be shorter).
    pub(crate) fn new(id: &str) -> JobId {
        let mut n = id.len().min(Self::CAP);
        while !id.is_char_boundary(n) {
            n -= 1;
        }
        let mut bytes = [0; Self::CAP];
        bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        Self::from_bytes(n as u8, bytes)
    }

    fn from_bytes(len: u8, bytes: [u8; JobId::CAP]) -> JobId {
        let mut hi = [0; 16];
        let mut lo = [0; 8];
        hi[0] = len;
        hi[1..].copy_from_slice(&bytes[..15]);
        lo[..Self::CAP - 15].copy_from_slice(&bytes[15..]);
        JobId {
            bytes,
            words: (u128::from_be_bytes(hi), u64::from_be_bytes(lo)),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        self.bytes
            .get(..(self.words.0 >> 120) as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A job's identity across scans: one job per (scheduler, scope, id). The scope tells the
/// slurmd instances of one node apart (`slurm_<node>`, `<node>_slurmstepd.scope`; see
/// [`super::layout::slurm::scope_of`]): the same id under two scopes is kept as two entries, each with its
/// own folders and CPU time, and published as one job (see [`super::merge_scopes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobKey {
    pub scheduler: Scheduler,
    pub id: JobId,
    /// 0: no node name in the path.
    pub scope: u32,
}

impl JobKey {
    pub(crate) fn new(scheduler: Scheduler, id: impl AsRef<str>) -> Self {
        JobKey {
            scheduler,
            id: JobId::new(id.as_ref()),
            scope: 0,
        }
    }

    /// The same job id under the slurmd scope `scope`.
    pub(crate) fn in_scope(self, scope: u32) -> Self {
        JobKey { scope, ..self }
    }

    /// The job `user-<uid>` of a systemd user slice.
    pub(crate) fn user_slice(uid: u32) -> Self {
        use std::io::Write;
        let mut bytes = [0; JobId::CAP];
        let mut rest: &mut [u8] = &mut bytes;
        // At most 15 bytes: always fits.
        let _ = write!(rest, "user-{uid}");
        let len = (JobId::CAP - rest.len()) as u8;
        JobKey {
            scheduler: Scheduler::UserSlice,
            id: JobId::from_bytes(len, bytes),
            scope: 0,
        }
    }

    /// A hash of the id (FNV-1a), to spread periodic work over the scans of a period.
    pub(super) fn hash(&self) -> u64 {
        self.id
            .bytes
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            })
    }
}

impl std::hash::Hash for JobKey {
    /// From the words alone, which hold the whole id (length included).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (hi, lo) = self.id.words;
        state.write_u64((hi >> 64) as u64 ^ (self.scheduler as u64) << 56);
        state.write_u64(hi as u64);
        state.write_u64(lo ^ u64::from(self.scope));
    }
}

impl Ord for JobKey {
    /// Numeric order for decimal ids (shorter first), which also orders `user-<uid>` sensibly.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.scheduler, self.id.words, self.scope).cmp(&(
            other.scheduler,
            other.id.words,
            other.scope,
        ))
    }
}

impl PartialOrd for JobKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
