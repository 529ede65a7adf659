//! The cgroup filesystem: which hierarchies are mounted, where each scheduler puts its jobs,
//! and reading small files in a way that tells "this job just ended" from "this file is bad".
//! The layouts are listed in the parent module's documentation.

use super::{CgroupMode, JobKey, JobsError, Scheduler};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Read};
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

/// Where one job lives this scan, as found by [`discover`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Found {
    /// The uid written in the path (Slurm v1 `uid_<uid>`, OAR 3 `u<uid>`, user slices).
    pub uid: Option<u32>,
    /// The user name written in the path (OAR 2 `<user>_<jobid>`).
    pub user: Option<String>,
    /// The job's folder in each v1 controller where it exists.
    pub v1: PerController<PathBuf>,
    /// The job's folder in the v2 hierarchy.
    pub v2: Option<PathBuf>,
}

/// Lists the jobs under every mounted hierarchy into `out`.
pub(crate) fn discover(
    h: &Hierarchy,
    user_slices: bool,
    out: &mut BTreeMap<JobKey, Found>,
    problems: &mut Vec<String>,
) {
    for c in Controller::ALL {
        let Some(root) = &h.v1[c as usize] else {
            continue;
        };
        let mut add = |key: JobKey, uid: Option<u32>, user: Option<&str>, dir: PathBuf| {
            let f = out.entry(key).or_default();
            f.uid = f.uid.or(uid);
            if f.user.is_none() {
                f.user = user.map(str::to_string);
            }
            f.v1[c as usize] = Some(dir);
        };
        slurm_v1(root, &mut add, problems);
        oar2(root, &mut add, problems);
        if user_slices {
            user_slice_jobs(root, &mut add, problems);
        }
    }
    if let Some(root) = &h.v2 {
        let mut add = |key: JobKey, uid: Option<u32>, _user: Option<&str>, dir: PathBuf| {
            let f = out.entry(key).or_default();
            f.uid = f.uid.or(uid);
            f.v2 = Some(dir);
        };
        slurm_v2(root, &mut add, problems);
        oar3(root, &mut add, problems);
        if user_slices {
            user_slice_jobs(root, &mut add, problems);
        }
    }
}

type Add<'a> = dyn FnMut(JobKey, Option<u32>, Option<&str>, PathBuf) + 'a;

/// Calls `f(name, path)` for each entry of `dir` whose name is UTF-8. A folder that does not
/// exist is empty (Slurm creates `slurm_<node>/` only with the first job; a uid folder goes
/// away with the user's last job); other errors are problems.
fn each_entry(
    dir: &Path,
    problems: &mut Vec<String>,
    mut f: impl FnMut(&str, &dyn Fn() -> PathBuf),
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_gone(&e) => return,
        Err(e) => {
            problems.push(format!("cannot list {}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(name) = name.to_str() {
            f(name, &|| entry.path());
        }
    }
}

fn slurm_v1(root: &Path, add: &mut Add<'_>, problems: &mut Vec<String>) {
    let mut slurm_dirs = Vec::new();
    each_entry(root, problems, |name, path| {
        if name == "slurm" || name.starts_with("slurm_") {
            slurm_dirs.push(path());
        }
    });
    for slurm in slurm_dirs {
        let mut uid_dirs = Vec::new();
        each_entry(&slurm, problems, |name, path| {
            if let Some(uid) = name.strip_prefix("uid_").and_then(parse_u32) {
                uid_dirs.push((uid, path()));
            }
        });
        for (uid, dir) in uid_dirs {
            each_entry(&dir, problems, |name, path| {
                if let Some(id) = slurm_job_dir(name) {
                    add(JobKey::new(Scheduler::Slurm, id), Some(uid), None, path());
                }
            });
        }
    }
}

fn slurm_v2(root: &Path, add: &mut Add<'_>, problems: &mut Vec<String>) {
    let mut scopes = Vec::new();
    each_entry(&root.join("system.slice"), problems, |name, path| {
        if is_slurmstepd_scope(name) {
            scopes.push(path());
        }
    });
    for scope in scopes {
        each_entry(&scope, problems, |name, path| {
            if let Some(id) = slurm_job_dir(name) {
                add(JobKey::new(Scheduler::Slurm, id), None, None, path());
            }
        });
    }
}

fn oar2(root: &Path, add: &mut Add<'_>, problems: &mut Vec<String>) {
    each_entry(&root.join("oar"), problems, |name, path| {
        if let Some((user, id)) = oar2_job_dir(name) {
            add(JobKey::new(Scheduler::Oar, id), None, Some(user), path());
        }
    });
}

fn oar3(root: &Path, add: &mut Add<'_>, problems: &mut Vec<String>) {
    let mut user_slices = Vec::new();
    each_entry(&root.join("oar.slice"), problems, |name, path| {
        if let Some(uid) = oar3_user_slice(name) {
            user_slices.push((uid, path()));
        }
    });
    for (uid, dir) in user_slices {
        each_entry(&dir, problems, |name, path| {
            if let Some((job_uid, id)) = oar3_job_slice(name) {
                if job_uid == uid {
                    add(JobKey::new(Scheduler::Oar, id), Some(uid), None, path());
                }
            }
        });
    }
}

fn user_slice_jobs(root: &Path, add: &mut Add<'_>, problems: &mut Vec<String>) {
    each_entry(&root.join("user.slice"), problems, |name, path| {
        if let Some(uid) = user_slice(name) {
            add(
                JobKey::new(Scheduler::UserSlice, format!("user-{uid}")),
                Some(uid),
                None,
                path(),
            );
        }
    });
}

fn parse_u32(s: &str) -> Option<u32> {
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
fn slurm_job_dir(name: &str) -> Option<&str> {
    name.strip_prefix("job_").filter(|id| is_job_id(id))
}

/// `slurmstepd.scope` or `<node>_slurmstepd.scope`.
fn is_slurmstepd_scope(name: &str) -> bool {
    name == "slurmstepd.scope"
        || name
            .strip_suffix("_slurmstepd.scope")
            .is_some_and(|node| !node.is_empty())
}

/// `<user>_<jobid>` → (user, id). User names may contain `_`, job ids may not.
fn oar2_job_dir(name: &str) -> Option<(&str, &str)> {
    let (user, id) = name.rsplit_once('_')?;
    (!user.is_empty() && is_job_id(id)).then_some((user, id))
}

/// `oar-u<uid>.slice` → uid.
fn oar3_user_slice(name: &str) -> Option<u32> {
    parse_u32(name.strip_prefix("oar-u")?.strip_suffix(".slice")?)
}

/// `oar-u<uid>-j<jobid>.slice` → (uid, id).
fn oar3_job_slice(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("oar-u")?.strip_suffix(".slice")?;
    let (uid, id) = rest.split_once("-j")?;
    Some((parse_u32(uid)?, id)).filter(|(_, id)| is_job_id(id))
}

/// `user-<uid>.slice` → uid.
fn user_slice(name: &str) -> Option<u32> {
    parse_u32(name.strip_prefix("user-")?.strip_suffix(".slice")?)
}

/// The job a cgroup path belongs to (a path from `/proc/<pid>/cgroup`, relative to its
/// hierarchy's root), or `None` for a path outside any job. Steps, tasks and the extern step
/// resolve to their job.
pub(crate) fn job_of_cgroup_path(path: &str, user_slices: bool) -> Option<JobKey> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segs.iter().enumerate() {
        let rest = &segs[i + 1..];
        // Slurm: a `job_<id>` below `slurm[_<node>]/uid_<uid>/` (v1) or below the stepd scope (v2).
        if *seg == "slurm" || seg.starts_with("slurm_") {
            if let (Some(uid), Some(job)) = (rest.first(), rest.get(1)) {
                if uid.strip_prefix("uid_").and_then(parse_u32).is_some() {
                    if let Some(id) = slurm_job_dir(job) {
                        return Some(JobKey::new(Scheduler::Slurm, id));
                    }
                }
            }
        }
        if is_slurmstepd_scope(seg) {
            if let Some(id) = rest.first().and_then(|j| slurm_job_dir(j)) {
                return Some(JobKey::new(Scheduler::Slurm, id));
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
                    return Some(JobKey::new(Scheduler::UserSlice, format!("user-{uid}")));
                }
            }
        }
    }
    None
}

/// Finds the job of a process from `/proc/<pid>/cgroup` (one line per hierarchy:
/// `<id>:<controllers>:<path>`). A scheduler's job wins over a user slice.
pub(crate) fn job_of_proc_cgroup(text: &str, user_slices: bool) -> Option<JobKey> {
    let mut fallback = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        match job_of_cgroup_path(path, user_slices) {
            Some(k) if k.scheduler != Scheduler::UserSlice => return Some(k),
            Some(k) => fallback = fallback.or(Some(k)),
            None => {}
        }
    }
    fallback
}

/// True for errors that mean "it is not there (any more)": ENOENT, and ENODEV from a file of
/// a cgroup removed between open and read, and ESRCH from a /proc entry of a process that exited.
pub(crate) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ESRCH))
}

/// The job's folder disappeared while it was being read: the job ended. Not a problem; the job
/// is left out of this scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Vanished;

/// Reads small cgroup files into a reused buffer, so a scan of a thousand jobs does not
/// allocate per file. Plain `read` calls: `read_to_string` would first `statx` and `lseek` each
/// file to size its buffer, and cgroup files report a size of 4096 or 0 anyway.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: Vec<u8>,
    path: PathBuf,
}

/// Bytes asked for per `read` call: every cgroup file joulebook reads but `cgroup.procs`
/// fits in one.
const CHUNK: usize = 4096;

impl Reader {
    /// The path of the file last read (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `dir/file`. `Ok(Some(text))` on success; `Ok(None)` when the file does not exist
    /// but `dir` does (this hierarchy lacks the file), or on an error, which is then pushed to
    /// `problems`; `Err(Vanished)` when `dir` itself is gone.
    pub(crate) fn read(
        &mut self,
        dir: &Path,
        file: &str,
        problems: &mut Vec<String>,
    ) -> Result<Option<&str>, Vanished> {
        self.path.as_mut_os_string().clear();
        self.path.push(dir);
        self.path.push(file);
        match read_all(&self.path, &mut self.buf) {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {
                return if dir.exists() {
                    Ok(None)
                } else {
                    Err(Vanished)
                };
            }
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", self.path.display()));
                return Ok(None);
            }
        }
        match std::str::from_utf8(&self.buf) {
            Ok(text) => Ok(Some(text)),
            Err(_) => {
                problems.push(format!("{}: content is not text", self.path.display()));
                Ok(None)
            }
        }
    }
}

/// Reads a whole file into `buf` (cleared first).
fn read_all(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    buf.clear();
    loop {
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        match f.read(&mut buf[start..]) {
            Ok(n) => {
                buf.truncate(start + n);
                if n == 0 {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
}

/// Subfolders of a job folder, for the fallback to steps and the search for processes. Sorted,
/// with Slurm's extern step last (its only process is a `sleep` that may not carry the job's
/// environment) and Slurm v2's `slurm` folders (slurmstepd itself) left out.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, Vanished> {
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

    #[test]
    fn names() {
        assert_eq!(slurm_job_dir("job_42"), Some("42"));
        assert_eq!(slurm_job_dir("job_"), None);
        assert_eq!(slurm_job_dir("job_4x"), None);
        assert!(is_slurmstepd_scope("slurmstepd.scope"));
        assert!(is_slurmstepd_scope("node1_slurmstepd.scope"));
        assert!(!is_slurmstepd_scope("_slurmstepd.scope"));
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
                key(Slurm, "42"),
            ),
            ("/slurm/uid_0/job_2/step_batch", key(Slurm, "2")),
            ("/slurm/uid_0/job_2/step_extern", key(Slurm, "2")),
            (
                "/system.slice/slurmstepd.scope/job_7/step_0/user/task_0",
                key(Slurm, "7"),
            ),
            (
                "/system.slice/n1_slurmstepd.scope/job_7/step_extern/user/task_special",
                key(Slurm, "7"),
            ),
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
            assert_eq!(job_of_cgroup_path(path, true), want, "{path}");
        }
        assert_eq!(
            job_of_cgroup_path("/user.slice/user-1000.slice", false),
            None
        );
    }

    #[test]
    fn proc_cgroup_prefers_the_scheduler_over_the_user_slice() {
        let text = "12:freezer:/slurm_n1/uid_1000/job_5/step_0/task_0\n1:name=systemd:/user.slice/user-1000.slice/session-1.scope\n0::/user.slice/user-1000.slice/session-1.scope\n";
        assert_eq!(job_of_proc_cgroup(text, true), key(Scheduler::Slurm, "5"));
        let text = "0::/user.slice/user-1000.slice/session-1.scope\n";
        assert_eq!(
            job_of_proc_cgroup(text, true),
            key(Scheduler::UserSlice, "user-1000")
        );
        assert_eq!(job_of_proc_cgroup("garbage", true), None);
    }
}
