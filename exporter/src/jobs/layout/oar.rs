//! OAR's layouts: OAR 2 (cgroup v1) `oar/<user>_<jobid>`, OAR 3 (systemd, cgroup v2)
//! `oar.slice/oar-u<uid>.slice/oar-u<uid>-j<jobid>.slice`.

use super::super::lister::{ListCtx, Listed, Sink};
use super::super::{JobKey, Scheduler};
use super::{is_job_id, parse_u32};
use std::path::Path;

/// `<user>_<jobid>` → (user, id). User names may contain `_`, job ids may not.
pub(in crate::jobs) fn oar2_job_dir(name: &str) -> Option<(&str, &str)> {
    let (user, id) = name.rsplit_once('_')?;
    (!user.is_empty() && is_job_id(id)).then_some((user, id))
}

/// `oar-u<uid>.slice` → uid.
pub(in crate::jobs) fn oar3_user_slice(name: &str) -> Option<u32> {
    parse_u32(name.strip_prefix("oar-u")?.strip_suffix(".slice")?)
}

/// `oar-u<uid>-j<jobid>.slice` → (uid, id).
pub(in crate::jobs) fn oar3_job_slice(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("oar-u")?.strip_suffix(".slice")?;
    let (uid, id) = rest.split_once("-j")?;
    Some((parse_u32(uid)?, id)).filter(|(_, id)| is_job_id(id))
}

/// The OAR job of a cgroup path whose segment `seg` is followed by `rest`.
pub(super) fn in_path(seg: &str, rest: &[&str]) -> Option<JobKey> {
    if seg == "oar" {
        if let Some((_, id)) = rest.first().and_then(|j| oar2_job_dir(j)) {
            return Some(JobKey::new(Scheduler::Oar, id));
        }
    }
    oar3_job_slice(seg).map(|(_, id)| JobKey::new(Scheduler::Oar, id))
}

impl ListCtx<'_> {
    /// `oar/<user>_<jobid>`, from `oar`.
    pub(in crate::jobs) fn oar2(&mut self, oar: &Path, ino: Option<u64>, f: Sink<'_>) {
        self.list(oar, ino, true, |name, ino| {
            if let Some((user, id)) = oar2_job_dir(name) {
                f(&Listed {
                    key: JobKey::new(Scheduler::Oar, id),
                    uid: None,
                    sluid: None,
                    user: Some(user),
                    parent: oar,
                    name,
                    ino,
                });
            }
        });
    }

    /// `oar.slice/oar-u<uid>.slice/oar-u<uid>-j<jobid>.slice`, from `oar.slice`.
    pub(in crate::jobs) fn oar3(&mut self, oar: &Path, ino: Option<u64>, f: Sink<'_>) {
        let mut user_slices = Vec::new();
        self.list(oar, ino, true, |name, ino| {
            if let Some(uid) = oar3_user_slice(name) {
                user_slices.push((uid, oar.join(name), Some(ino)));
            }
        });
        for (uid, dir, ino) in &user_slices {
            self.list(dir, *ino, true, |name, ino| {
                if let Some((job_uid, id)) = oar3_job_slice(name) {
                    if job_uid == *uid {
                        f(&Listed {
                            key: JobKey::new(Scheduler::Oar, id),
                            uid: Some(*uid),
                            sluid: None,
                            user: None,
                            parent: dir,
                            name,
                            ino,
                        });
                    }
                }
            });
        }
    }
}
