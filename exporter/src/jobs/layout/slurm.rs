//! Slurm's layouts: cgroup v1 `slurm[_<node>]/uid_<uid>/job_<id>/step_*/task_*`, cgroup v2
//! `system.slice/[<node>_]slurmstepd.scope/job_<id>/step_*/…`, and Slurm 26.05's SLUID
//! folders in the same scope (their numeric ids: see `super::super::sluid`). The node name
//! of a folder (`slurm_<node>`, `<node>_slurmstepd.scope`) is the job's scope.

use super::super::lister::{ListCtx, Listed, Sink};
use super::super::sluid::is_sluid;
use super::super::{JobId, JobKey, Scheduler};
use super::{is_job_id, parse_u32};
use std::ffi::OsStr;
use std::path::Path;

/// `job_<id>` → id.
pub(in crate::jobs) fn slurm_job_dir(name: &str) -> Option<&str> {
    name.strip_prefix("job_").filter(|id| is_job_id(id))
}

/// `slurmstepd.scope` → `""`, `<node>_slurmstepd.scope` → node (Slurm cgroup v2).
pub(in crate::jobs) fn slurmstepd_scope(name: &str) -> Option<&str> {
    if name == "slurmstepd.scope" {
        return Some("");
    }
    name.strip_suffix("_slurmstepd.scope")
        .filter(|node| !node.is_empty())
}

/// `slurm` → `""`, `slurm_<node>` → node (Slurm cgroup v1).
pub(in crate::jobs) fn slurm_v1_scope(name: &str) -> Option<&str> {
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

/// The Slurm job of a cgroup path whose segment `seg` is followed by `rest`: a `job_<id>` below
/// `slurm[_<node>]/uid_<uid>/` (v1) or below the stepd scope (v2), or a SLUID folder there whose
/// id `sluid(scope, SLUID)` gives.
pub(super) fn in_path(
    seg: &str,
    rest: &[&str],
    sluid: &dyn Fn(u32, &str) -> Option<JobId>,
) -> Option<JobKey> {
    if let Some(node) = slurm_v1_scope(seg) {
        if let (Some(uid), Some(job)) = (rest.first(), rest.get(1)) {
            if uid.strip_prefix("uid_").and_then(parse_u32).is_some() {
                if let Some(id) = slurm_job_dir(job) {
                    return Some(JobKey::new(Scheduler::Slurm, id).in_scope(scope_of(node)));
                }
            }
        }
    }
    let node = slurmstepd_scope(seg)?;
    let scope = scope_of(node);
    let j = rest.first()?;
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
    None
}

impl ListCtx<'_> {
    /// `slurm[_<node>]/uid_<uid>/job_<id>`, from the `slurm[_<node>]` folder.
    pub(in crate::jobs) fn slurm_v1(&mut self, slurm: &Path, ino: Option<u64>, f: Sink<'_>) {
        let scope = slurm
            .file_name()
            .and_then(OsStr::to_str)
            .and_then(slurm_v1_scope)
            .map_or(0, scope_of);
        let mut uid_dirs = Vec::new();
        self.list(slurm, ino, true, |name, ino| {
            if let Some(uid) = name.strip_prefix("uid_").and_then(parse_u32) {
                uid_dirs.push((uid, slurm.join(name), Some(ino)));
            }
        });
        for (uid, dir, ino) in &uid_dirs {
            self.list(dir, *ino, true, |name, ino| {
                if let Some(id) = slurm_job_dir(name) {
                    f(&Listed {
                        key: JobKey::new(Scheduler::Slurm, id).in_scope(scope),
                        uid: Some(*uid),
                        user: None,
                        sluid: None,
                        parent: dir,
                        name,
                        ino,
                    });
                }
            });
        }
    }

    /// `system.slice/[<node>_]slurmstepd.scope/{job_<id>,<SLUID>}`, from `system.slice`. A
    /// SLUID folder is listed once its numeric id is known (see [`Sluids`]); other folders
    /// (`system`, anything unknown) are not jobs.
    pub(in crate::jobs) fn slurm_v2(&mut self, system: &Path, ino: Option<u64>, f: Sink<'_>) {
        let mut scopes = Vec::new();
        self.list(system, ino, true, |name, ino| {
            if let Some(node) = slurmstepd_scope(name) {
                scopes.push((system.join(name), Some(ino), scope_of(node)));
            }
        });
        for (dir, ino, scope) in &scopes {
            let mut sluid_dirs: Vec<(String, u64)> = Vec::new();
            self.list(dir, *ino, true, |name, ino| {
                if let Some(id) = slurm_job_dir(name) {
                    f(&Listed {
                        key: JobKey::new(Scheduler::Slurm, id).in_scope(*scope),
                        uid: None,
                        user: None,
                        sluid: None,
                        parent: dir,
                        name,
                        ino,
                    });
                } else if is_sluid(name) {
                    sluid_dirs.push((name.to_string(), ino));
                }
            });
            if !sluid_dirs.is_empty() {
                self.unsettled();
            }
            for (name, ino) in &sluid_dirs {
                let Some(id) = self.sluids.resolve(dir, name, *scope, *ino, self.problems) else {
                    continue;
                };
                f(&Listed {
                    key: JobKey {
                        scheduler: Scheduler::Slurm,
                        id,
                        scope: *scope,
                    },
                    uid: None,
                    user: None,
                    sluid: Some(name),
                    parent: dir,
                    name,
                    ino: *ino,
                });
            }
        }
    }
}
