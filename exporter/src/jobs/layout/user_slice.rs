//! systemd user slices `user.slice/user-<uid>.slice`, each reported as a job `user-<uid>` when
//! `JobsOptions::user_slices` is on (login nodes, workstations).

use super::super::lister::{ListCtx, Listed, Sink};
use super::super::JobKey;
use super::parse_u32;
use std::path::Path;

/// `user-<uid>.slice` → uid.
pub(in crate::jobs) fn user_slice(name: &str) -> Option<u32> {
    parse_u32(name.strip_prefix("user-")?.strip_suffix(".slice")?)
}

/// The user slice a cgroup path lies in.
pub(super) fn in_path(segs: &[&str]) -> Option<JobKey> {
    segs.windows(2)
        .find(|w| w[0] == "user.slice")
        .and_then(|w| user_slice(w[1]))
        .map(JobKey::user_slice)
}

impl ListCtx<'_> {
    /// `user.slice/user-<uid>.slice`, from `user.slice`.
    pub(in crate::jobs) fn user_slice_jobs(&mut self, users: &Path, ino: Option<u64>, f: Sink<'_>) {
        self.list(users, ino, true, |name, ino| {
            if let Some(uid) = user_slice(name) {
                f(&Listed {
                    key: JobKey::user_slice(uid),
                    uid: Some(uid),
                    sluid: None,
                    user: None,
                    parent: users,
                    name,
                    ino,
                });
            }
        });
    }
}
