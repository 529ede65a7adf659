//! The cgroup filesystem: which hierarchies are mounted, where each scheduler puts its jobs (the
//! names of the layouts' folders, and the job of a process's cgroup path), the budget of
//! descriptors kept open, and the subfolders of a job. The layouts are listed in the parent
//! module's documentation; their folders are walked by `lister`.

use super::reader::Vanished;
use super::sluid::is_sluid;
use super::{CgroupMode, JobId, JobKey, JobsError, Scheduler};
#[cfg(test)]
pub(crate) use crate::fileio::calls;
pub(crate) use crate::fileio::{counted, is_gone, read_again, read_all, Call};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

/// The v1 controllers joulebook reads, in the order their folders are searched for a job's
/// processes: freezer first, because `proctrack/cgroup` puts every process of a job there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Controller {
    Freezer,
    Cpuset,
    Cpuacct,
    Memory,
    Devices,
}

impl Controller {
    pub(crate) const ALL: [Controller; 5] = [
        Controller::Freezer,
        Controller::Cpuset,
        Controller::Cpuacct,
        Controller::Memory,
        Controller::Devices,
    ];

    fn name(self) -> &'static str {
        match self {
            Controller::Freezer => "freezer",
            Controller::Cpuset => "cpuset",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Devices => "devices",
        }
    }
}

/// Per-controller slots, indexed by [`Controller`].
pub(crate) type PerController<T> = [Option<T>; 5];

/// The mounted hierarchies under the configured root.
#[derive(Clone, Debug)]
pub(crate) struct Hierarchy {
    pub mode: CgroupMode,
    /// v1 controller folders (`cpu,cpuacct/` serves as the cpuacct folder).
    pub v1: PerController<PathBuf>,
    /// The v2 hierarchy: the root itself, or `unified/` on a hybrid system.
    pub v2: Option<PathBuf>,
}

/// The controllers joulebook reads among those a v1 folder's name lists: `cpu,cpuacct` (the
/// usual co-mount) is the cpuacct folder.
fn v1_folder_controllers(name: &str) -> impl Iterator<Item = Controller> + '_ {
    name.split(',')
        .filter_map(|part| Controller::ALL.into_iter().find(|c| c.name() == part))
}

/// Finds the hierarchies under `root`. Folders are recognised by name; symlinks such as
/// `cpuacct -> cpu,cpuacct` are followed.
pub(crate) fn detect(root: &Path) -> Result<Hierarchy, JobsError> {
    let io_err = |e: io::Error| JobsError::Io {
        path: root.to_path_buf(),
        source: e,
    };
    if root.join("cgroup.controllers").is_file() {
        return Ok(Hierarchy {
            mode: CgroupMode::V2,
            v1: Default::default(),
            v2: Some(root.to_path_buf()),
        });
    }
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(JobsError::NotCgroupFs {
                path: root.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    let mut v1: PerController<PathBuf> = Default::default();
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    // The co-mounted folder (`cpu,cpuacct`) and its symlink (`cpuacct`) are the same
    // hierarchy; sorting makes the path in messages the same on every run.
    names.sort();
    for name in &names {
        for c in v1_folder_controllers(name) {
            let slot = &mut v1[c as usize];
            if slot.is_none() {
                let path = root.join(name);
                if path.is_dir() {
                    *slot = Some(path);
                }
            }
        }
    }
    let has_v1 = v1.iter().any(Option::is_some);
    let unified = root.join("unified");
    match (has_v1, unified.is_dir()) {
        (true, true) => Ok(Hierarchy {
            mode: CgroupMode::Hybrid,
            v1,
            v2: Some(unified),
        }),
        (true, false) => Ok(Hierarchy {
            mode: CgroupMode::V1,
            v1,
            v2: None,
        }),
        (false, _) => Err(JobsError::NotCgroupFs {
            path: root.to_path_buf(),
        }),
    }
}

/// Where one job lives: its folder in each hierarchy that has one, and what its path says.
#[derive(Clone, Debug, Default)]
pub(crate) struct Found {
    /// The uid written in the path (Slurm v1 `uid_<uid>`, OAR 3 `u<uid>`, user slices).
    pub uid: Option<u32>,
    /// The user name written in the path (OAR 2 `<user>_<jobid>`).
    pub user: Option<String>,
    /// The folder's SLUID (Slurm 26.05 folders named by it).
    pub sluid: Option<String>,
    /// The job's folder in each v1 controller where it exists.
    pub v1: PerController<PathBuf>,
    /// The job's folder in the v2 hierarchy.
    pub v2: Option<PathBuf>,
}

/// Hierarchies by index: the v1 controllers (`Controller as usize`), then the v2 hierarchy.
pub(crate) const HIERARCHIES: usize = 6;
/// The index of the v2 hierarchy.
pub(crate) const V2: usize = 5;

impl Found {
    /// The job's folder in hierarchy `h` (a [`Controller`] index or [`V2`]).
    pub(crate) fn slot(&mut self, h: usize) -> &mut Option<PathBuf> {
        match self.v1.get_mut(h) {
            Some(slot) => slot,
            None => &mut self.v2,
        }
    }
}

impl Hierarchy {
    /// The root of hierarchy `h` (a [`Controller`] index or [`V2`]), if mounted.
    pub(crate) fn root(&self, h: usize) -> Option<&Path> {
        match self.v1.get(h) {
            Some(root) => root.as_deref(),
            None => self.v2.as_deref(),
        }
    }
}

/// Open files and folders kept between scans, within the process's limit on descriptors.
#[derive(Debug, Default)]
pub(crate) struct FdBudget {
    pub held: usize,
    /// How many may be held; `None` until first asked.
    limit: Option<usize>,
    /// The soft limit could not be raised further.
    at_hard_limit: bool,
}

/// File descriptors left for everything but the files and folders kept open here: the HTTP
/// server (64 connections), NVML, the state file, logs, and the files being read.
const FD_RESERVE: u64 = 256;

impl FdBudget {
    /// A budget of `n` descriptors, never raised (for tests).
    #[cfg(test)]
    pub(crate) fn fixed(n: usize) -> FdBudget {
        FdBudget {
            held: 0,
            limit: Some(n),
            at_hard_limit: true,
        }
    }

    /// True when one more descriptor may be kept (and counts it).
    pub(crate) fn take(&mut self) -> bool {
        let limit = *self.limit.get_or_insert_with(|| held_limit(0));
        if self.held >= limit && !self.at_hard_limit {
            let more = held_limit(2 * (self.held as u64 + FD_RESERVE));
            self.at_hard_limit = more <= limit;
            self.limit = Some(more);
        }
        if self.held >= self.limit.unwrap_or(0) {
            return false;
        }
        self.held += 1;
        true
    }
}

/// How many descriptors may be kept: the soft `RLIMIT_NOFILE` less [`FD_RESERVE`], after
/// raising the soft limit towards `want` (never above the hard limit). Raising it is safe:
/// nothing in the exporter uses `select(2)`, whose sets stop at descriptor 1023.
fn held_limit(want: u64) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    let target = want.min(lim.rlim_max);
    if target > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        }
    }
    usize::try_from(lim.rlim_cur.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
}

/// The inode number of `path` when it exists, as a listing of its folder would show it (a
/// final symlink is not followed).
pub(crate) fn probe(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    counted(Call::Stat);
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

pub(super) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_job_id(s: &str) -> bool {
    // Slurm and OAR job ids are decimal; anything else in these folders is not a job.
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `job_<id>` → id.
pub(super) fn slurm_job_dir(name: &str) -> Option<&str> {
    name.strip_prefix("job_").filter(|id| is_job_id(id))
}

/// `slurmstepd.scope` → `""`, `<node>_slurmstepd.scope` → node (Slurm cgroup v2).
pub(super) fn slurmstepd_scope(name: &str) -> Option<&str> {
    if name == "slurmstepd.scope" {
        return Some("");
    }
    name.strip_suffix("_slurmstepd.scope")
        .filter(|node| !node.is_empty())
}

/// `slurm` → `""`, `slurm_<node>` → node (Slurm cgroup v1).
pub(super) fn slurm_v1_scope(name: &str) -> Option<&str> {
    if name == "slurm" {
        return Some("");
    }
    name.strip_prefix("slurm_").filter(|node| !node.is_empty())
}

/// The scope of a slurmd instance, from the node name in its folder's name: 0 without one,
/// else a hash of the name (FNV-1a, never 0). The same node name gives the same scope in v1
/// and v2, so a job seen in both hierarchies of a hybrid node stays one entry.
pub(crate) fn scope_of(node: &str) -> u32 {
    if node.is_empty() {
        return 0;
    }
    let h = node.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h.max(1)
}

/// `<user>_<jobid>` → (user, id). User names may contain `_`, job ids may not.
pub(super) fn oar2_job_dir(name: &str) -> Option<(&str, &str)> {
    let (user, id) = name.rsplit_once('_')?;
    (!user.is_empty() && is_job_id(id)).then_some((user, id))
}

/// `oar-u<uid>.slice` → uid.
pub(super) fn oar3_user_slice(name: &str) -> Option<u32> {
    parse_u32(name.strip_prefix("oar-u")?.strip_suffix(".slice")?)
}

/// `oar-u<uid>-j<jobid>.slice` → (uid, id).
pub(super) fn oar3_job_slice(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("oar-u")?.strip_suffix(".slice")?;
    let (uid, id) = rest.split_once("-j")?;
    Some((parse_u32(uid)?, id)).filter(|(_, id)| is_job_id(id))
}

/// `user-<uid>.slice` → uid.
pub(super) fn user_slice(name: &str) -> Option<u32> {
    parse_u32(name.strip_prefix("user-")?.strip_suffix(".slice")?)
}

/// The job a cgroup path belongs to (a path from `/proc/<pid>/cgroup`, relative to its
/// hierarchy's root), or `None` for a path outside any job. Steps, tasks and the extern step
/// resolve to their job; a SLUID folder to the numeric id `sluid(scope, SLUID)` gives (the
/// ids found by [`Sluids`]), else to nothing.
pub(crate) fn job_of_cgroup_path(
    path: &str,
    user_slices: bool,
    sluid: &dyn Fn(u32, &str) -> Option<JobId>,
) -> Option<JobKey> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segs.iter().enumerate() {
        let rest = &segs[i + 1..];
        // Slurm: a `job_<id>` below `slurm[_<node>]/uid_<uid>/` (v1) or below the stepd scope (v2).
        if let Some(node) = slurm_v1_scope(seg) {
            if let (Some(uid), Some(job)) = (rest.first(), rest.get(1)) {
                if uid.strip_prefix("uid_").and_then(parse_u32).is_some() {
                    if let Some(id) = slurm_job_dir(job) {
                        return Some(JobKey::new(Scheduler::Slurm, id).in_scope(scope_of(node)));
                    }
                }
            }
        }
        if let Some(node) = slurmstepd_scope(seg) {
            let scope = scope_of(node);
            if let Some(j) = rest.first() {
                if let Some(id) = slurm_job_dir(j) {
                    return Some(JobKey::new(Scheduler::Slurm, id).in_scope(scope));
                }
                if is_sluid(j) {
                    return sluid(scope, j).map(|id| JobKey {
                        scheduler: Scheduler::Slurm,
                        id,
                        scope,
                    });
                }
            }
        }
        if *seg == "oar" {
            if let Some((_, id)) = rest.first().and_then(|j| oar2_job_dir(j)) {
                return Some(JobKey::new(Scheduler::Oar, id));
            }
        }
        if let Some((_, id)) = oar3_job_slice(seg) {
            return Some(JobKey::new(Scheduler::Oar, id));
        }
    }
    if user_slices {
        for w in segs.windows(2) {
            if w[0] == "user.slice" {
                if let Some(uid) = user_slice(w[1]) {
                    return Some(JobKey::user_slice(uid));
                }
            }
        }
    }
    None
}

/// Finds the job of a process from `/proc/<pid>/cgroup` (one line per hierarchy:
/// `<id>:<controllers>:<path>`). A scheduler's job wins over a user slice.
pub(crate) fn job_of_proc_cgroup(
    text: &str,
    user_slices: bool,
    sluid: &dyn Fn(u32, &str) -> Option<JobId>,
) -> Option<JobKey> {
    let mut fallback = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        match job_of_cgroup_path(path, user_slices, sluid) {
            Some(k) if k.scheduler != Scheduler::UserSlice => return Some(k),
            Some(k) => fallback = fallback.or(Some(k)),
            None => {}
        }
    }
    fallback
}

/// Subfolders of a job folder, for the fallback to steps and the search for processes. Sorted,
/// with Slurm's extern step last (its only process is a `sleep` that may not carry the job's
/// environment) and Slurm v2's `slurm` folders (slurmstepd itself) left out.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, Vanished> {
    counted(Call::Open);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_gone(&e) => return Err(Vanished),
        // Unreadable: treated as having no subfolders; the reads of the files say why.
        Err(_) => return Ok(Vec::new()),
    };
    let mut dirs: Vec<(bool, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name() != OsStr::new("slurm"))
        .map(|e| (e.file_name() == OsStr::new("step_extern"), e.path()))
        .collect();
    dirs.sort();
    Ok(dirs.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: Scheduler, id: &str) -> Option<JobKey> {
        Some(JobKey::new(s, id))
    }

    fn in_scope(s: Scheduler, id: &str, node: &str) -> Option<JobKey> {
        Some(JobKey::new(s, id).in_scope(scope_of(node)))
    }

    /// A SLUID known to be job 9 in the scope without a node name.
    fn sluids(scope: u32, s: &str) -> Option<JobId> {
        (scope == 0 && s == "sEKNKTV3WPV500").then(|| JobId::new("9"))
    }

    #[test]
    fn names() {
        assert_eq!(slurm_job_dir("job_42"), Some("42"));
        assert_eq!(slurm_job_dir("job_"), None);
        assert_eq!(slurm_job_dir("job_4x"), None);
        assert_eq!(slurmstepd_scope("slurmstepd.scope"), Some(""));
        assert_eq!(slurmstepd_scope("node1_slurmstepd.scope"), Some("node1"));
        assert_eq!(slurmstepd_scope("_slurmstepd.scope"), None);
        assert_eq!(slurm_v1_scope("slurm"), Some(""));
        assert_eq!(slurm_v1_scope("slurm_n1"), Some("n1"));
        assert_eq!(slurm_v1_scope("slurm_"), None);
        assert_eq!(slurm_v1_scope("slurmx"), None);
        assert_eq!(scope_of(""), 0);
        assert_ne!(scope_of("n1"), 0);
        assert_ne!(scope_of("n1"), scope_of("n2"));
        assert_eq!(oar2_job_dir("bob_smith_302"), Some(("bob_smith", "302")));
        assert_eq!(oar2_job_dir("_302"), None);
        assert_eq!(oar2_job_dir("alice_x"), None);
        assert_eq!(oar3_user_slice("oar-u1000.slice"), Some(1000));
        assert_eq!(oar3_job_slice("oar-u1000-j401.slice"), Some((1000, "401")));
        assert_eq!(oar3_job_slice("oar-u1000.slice"), None);
        assert_eq!(user_slice("user-0.slice"), Some(0));
        assert_eq!(user_slice("user-.slice"), None);
    }

    #[test]
    fn cgroup_paths_to_jobs() {
        use Scheduler::*;
        let cases = [
            (
                "/slurm_node1/uid_1000/job_42/step_0/task_1",
                in_scope(Slurm, "42", "node1"),
            ),
            ("/slurm/uid_0/job_2/step_batch", key(Slurm, "2")),
            ("/slurm/uid_0/job_2/step_extern", key(Slurm, "2")),
            (
                "/system.slice/slurmstepd.scope/job_7/step_0/user/task_0",
                key(Slurm, "7"),
            ),
            (
                "/system.slice/n1_slurmstepd.scope/job_7/step_extern/user/task_special",
                in_scope(Slurm, "7", "n1"),
            ),
            (
                "/system.slice/slurmstepd.scope/sEKNKTV3WPV500/step_0/user/task_0",
                key(Slurm, "9"),
            ),
            (
                "/system.slice/n1_slurmstepd.scope/sEKNKTV3WPV500/step_0/user/task_0",
                None,
            ),
            ("/system.slice/slurmstepd.scope/sUNKNOWN/step_0", None),
            ("/system.slice/slurmstepd.scope/system", None),
            ("/oar/alice_301", key(Oar, "301")),
            (
                "/oar.slice/oar-u1000.slice/oar-u1000-j401.slice/x.scope",
                key(Oar, "401"),
            ),
            (
                "/user.slice/user-1000.slice/session-3.scope",
                key(UserSlice, "user-1000"),
            ),
            ("/system.slice/sshd.service", None),
            ("/", None),
        ];
        for (path, want) in cases {
            assert_eq!(job_of_cgroup_path(path, true, &sluids), want, "{path}");
        }
        assert_eq!(
            job_of_cgroup_path("/user.slice/user-1000.slice", false, &sluids),
            None
        );
    }

    #[test]
    fn proc_cgroup_prefers_the_scheduler_over_the_user_slice() {
        let text = "12:freezer:/slurm_n1/uid_1000/job_5/step_0/task_0\n1:name=systemd:/user.slice/user-1000.slice/session-1.scope\n0::/user.slice/user-1000.slice/session-1.scope\n";
        assert_eq!(
            job_of_proc_cgroup(text, true, &sluids),
            in_scope(Scheduler::Slurm, "5", "n1")
        );
        let text = "0::/user.slice/user-1000.slice/session-1.scope\n";
        assert_eq!(
            job_of_proc_cgroup(text, true, &sluids),
            key(Scheduler::UserSlice, "user-1000")
        );
        assert_eq!(job_of_proc_cgroup("garbage", true, &sluids), None);
    }
}
