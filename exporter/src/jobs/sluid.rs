//! Slurm 26.05 names a job's cgroup v2 folder by its SLUID (`system.slice/slurmstepd.scope/
//! sEKNKTV3WPV500/step_0/…`, cgroup.conf `CgroupJobIdPaths=no`, the default) instead of
//! `job_<id>`. Jobs are published under their numeric id (what `sacct`, `squeue` and `seff`
//! take), which the folder's name does not give: it is taken from a source the job's user
//! cannot write, in this order:
//! 1. the job record written by the prolog (`<record_dir>/<SLUID>`, a link to the record
//!    `<record_dir>/<id>`; see [`super::record`]), whose `sluid` must name the folder;
//! 2. the root-owned `slurmstepd` of one of the job's steps (`<SLUID>/step_*/slurm/
//!    cgroup.procs`), whose process title is `slurmstepd: [<id>.<step>]` (Slurm's
//!    `_set_job_log_prefix`, src/slurmd/slurmstepd/slurmstepd.c: `setproctitle("[%s]")` with
//!    the step id written `<job>.<step>`, `<job>.batch`, `<job>.extern`, `<job>+<het>.<step>`).
//!
//! A SLUID folder whose id is not found yet is not listed (its energy stays unallocated) and
//! looked for again on each of its first scans, then every few scans, with a problem naming
//! it. Found ids are kept per folder (by inode number) until the folder goes.

use super::record;
use super::JobId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A SLUID: `s` and up to 24 upper-case letters and digits (Crockford base32). Lower-case
/// names in a slurmstepd scope (`system`) are Slurm's own folders, not jobs.
pub(crate) fn is_sluid(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('s') else {
        return false;
    };
    (1..=24).contains(&rest.len())
        && rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Tries while a SLUID's id is not found: on each of the folder's first this many scans...
const EAGER_TRIES: u32 = 10;
/// ... then every this many scans.
const RETRY_SCANS: u64 = 5;
/// Processes of a step's `slurm` folder looked at, at most.
const MAX_STEPD_PIDS: usize = 4;

#[derive(Debug)]
struct Entry {
    scope: u32,
    sluid: String,
    id: Option<JobId>,
    tries: u32,
    next_try: u64,
    used: u64,
}

/// The numeric ids of the SLUID folders listed.
#[derive(Debug)]
pub(crate) struct Sluids {
    procfs: PathBuf,
    record_dir: Option<PathBuf>,
    /// By the folder's inode number.
    known: HashMap<u64, Entry>,
    now: u64,
    buf: Vec<u8>,
}

impl Sluids {
    pub(crate) fn new(procfs: PathBuf, record_dir: Option<PathBuf>) -> Sluids {
        Sluids {
            procfs,
            record_dir,
            known: HashMap::new(),
            now: 0,
            buf: Vec::new(),
        }
    }

    /// Starts scan `now`: folders not listed on the last scan are forgotten.
    pub(crate) fn begin(&mut self, now: u64) {
        self.known.retain(|_, e| e.used + 1 >= now);
        self.now = now;
    }

    /// The numeric id of the SLUID folder `name` in the slurmstepd scope folder `scope_dir`.
    pub(crate) fn resolve(
        &mut self,
        scope_dir: &Path,
        name: &str,
        scope: u32,
        ino: u64,
        problems: &mut Vec<String>,
    ) -> Option<JobId> {
        let now = self.now;
        let e = self.known.entry(ino).or_insert_with(|| Entry {
            scope,
            sluid: name.to_string(),
            id: None,
            tries: 0,
            next_try: now,
            used: now,
        });
        e.used = now;
        if e.id.is_some() || now < e.next_try {
            if e.id.is_none() && e.tries >= EAGER_TRIES {
                problems.push(unresolved(scope_dir, name));
            }
            return e.id;
        }
        let found = from_record(self.record_dir.as_deref(), name, &mut self.buf)
            .or_else(|| from_slurmstepd(&self.procfs, &scope_dir.join(name), &mut self.buf));
        let e = self.known.get_mut(&ino)?;
        e.tries += 1;
        e.id = found.map(|id| JobId::new(&id));
        if e.id.is_none() {
            e.next_try = if e.tries < EAGER_TRIES {
                now + 1
            } else {
                now + RETRY_SCANS
            };
            if e.tries >= EAGER_TRIES {
                problems.push(unresolved(scope_dir, name));
            }
        }
        e.id
    }

    /// The id found for SLUID `sluid` in scope `scope`, for a process's `/proc/<pid>/cgroup`.
    pub(crate) fn id_of(&self, scope: u32, sluid: &str) -> Option<JobId> {
        self.known
            .values()
            .find(|e| e.scope == scope && e.sluid == sluid)
            .and_then(|e| e.id)
    }
}

fn unresolved(scope_dir: &Path, name: &str) -> String {
    format!(
        "{}: Slurm job folder named by its SLUID, and no job record nor root-owned slurmstepd names its job id: not counted as a job yet (fix: install the joulebook prolog, see docs/job-identity.md)",
        scope_dir.join(name).display()
    )
}

/// The job id of the prolog's record linked as `<dir>/<sluid>`, if its `sluid` is this one.
fn from_record(dir: Option<&Path>, sluid: &str, buf: &mut Vec<u8>) -> Option<String> {
    let path = dir?.join(sluid);
    let rec = record::read(&path, buf).ok()??;
    (rec.sluid.as_deref() == Some(sluid)).then_some(rec.job_id)
}

/// The job id in the title of a root-owned slurmstepd of one of the job's steps.
fn from_slurmstepd(procfs: &Path, job_dir: &Path, buf: &mut Vec<u8>) -> Option<String> {
    let steps = std::fs::read_dir(job_dir).ok()?;
    let mut steps: Vec<PathBuf> = steps
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("step_"))
        })
        .map(|e| e.path().join("slurm/cgroup.procs"))
        .collect();
    steps.sort();
    for procs in steps {
        let Ok(text) = std::fs::read_to_string(&procs) else {
            continue;
        };
        for pid in text
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .take(MAX_STEPD_PIDS)
        {
            let dir = procfs.join(pid.to_string());
            if proc_uid(&dir.join("status"), buf) != Some(0) {
                continue;
            }
            if let Some(id) = read_small(&dir.join("cmdline"), buf).and_then(stepd_job_id) {
                return Some(id);
            }
        }
    }
    None
}

/// The real uid of a process, from the `Uid:` line of `/proc/<pid>/status`.
pub(crate) fn proc_uid(path: &Path, buf: &mut Vec<u8>) -> Option<u32> {
    let text = read_small(path, buf)?;
    let line = std::str::from_utf8(text)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The first 4 KiB of a small file.
fn read_small<'b>(path: &Path, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    use std::io::Read;
    super::cgroup::counted(super::cgroup::Call::Open);
    let f = std::fs::File::open(path).ok()?;
    buf.clear();
    f.take(4096).read_to_end(buf).ok()?;
    Some(buf.as_slice())
}

/// The job id in a slurmstepd process title (`/proc/<pid>/cmdline`): `slurmstepd: [1234.0]`,
/// `[1234.batch]`, `[1234.extern]`, `[1234+1.0]`, possibly followed by ` stepmgr]`, NULs or
/// spaces.
pub(crate) fn stepd_job_id(cmdline: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(cmdline).ok()?;
    let rest = text.strip_prefix("slurmstepd: [")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    let (id, tail) = rest.split_at(end);
    let ok = !id.is_empty() && id.len() <= 20 && (tail.starts_with('.') || tail.starts_with('+'));
    ok.then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sluid_names() {
        assert!(is_sluid("sEKNKTV3WPV500"));
        assert!(!is_sluid("system"));
        assert!(!is_sluid("s"));
        assert!(!is_sluid("job_12"));
        assert!(!is_sluid("sEKN/KT"));
        assert!(!is_sluid(&format!("s{}", "A".repeat(25))));
    }

    #[test]
    fn slurmstepd_titles() {
        let id = |t: &[u8]| stepd_job_id(t);
        assert_eq!(id(b"slurmstepd: [1234.0]\0\0\0"), Some("1234".into()));
        assert_eq!(id(b"slurmstepd: [77.batch]"), Some("77".into()));
        assert_eq!(id(b"slurmstepd: [77.extern]   "), Some("77".into()));
        assert_eq!(id(b"slurmstepd: [77+1.0 stepmgr]"), Some("77".into()));
        assert_eq!(id(b"slurmstepd: [sEKNKTV3WPV500.0]"), None);
        assert_eq!(id(b"slurmstepd: [77]"), None);
        assert_eq!(id(b"python train.py"), None);
        assert_eq!(id(b"slurmstepd: [.0]"), None);
    }
}
