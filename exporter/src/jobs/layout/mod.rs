//! The schedulers' cgroup layouts, one file each: the names of a layout's folders, how its
//! folders are walked (a `ListCtx` method, called from `Lister::list_jobs`), and how a
//! process's cgroup path names its job. A new layout is a file here, its call in
//! `Lister::list_jobs` and in [`job_of_cgroup_path`], and a fixture under
//! `tests/fixtures/cgroup/`. The layouts are listed in the parent module's documentation.

pub(super) mod oar;
pub(super) mod slurm;
pub(super) mod user_slice;

use super::{JobId, JobKey, Scheduler};

pub(in crate::jobs) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(in crate::jobs) fn is_job_id(s: &str) -> bool {
    // Slurm and OAR job ids are decimal; anything else in these folders is not a job.
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The job a cgroup path belongs to (a path from `/proc/<pid>/cgroup`, relative to its
/// hierarchy's root), or `None` for a path outside any job. Steps, tasks and the extern step
/// resolve to their job; a SLUID folder to the numeric id `sluid(scope, SLUID)` gives (the
/// ids found by `Sluids`), else to nothing. A scheduler's job wins over a user slice.
pub(crate) fn job_of_cgroup_path(
    path: &str,
    user_slices: bool,
    sluid: &dyn Fn(u32, &str) -> Option<JobId>,
) -> Option<JobKey> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segs.iter().enumerate() {
        let rest = &segs[i + 1..];
        if let Some(key) = slurm::in_path(seg, rest, sluid).or_else(|| oar::in_path(seg, rest)) {
            return Some(key);
        }
    }
    if user_slices {
        return user_slice::in_path(&segs);
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

#[cfg(test)]
mod tests {
    use super::oar::*;
    use super::slurm::*;
    use super::user_slice::*;
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
