//! A job's metadata from the environment of one of its processes (`/proc/<pid>/environ`).
//!
//! The environment is the only place where a node sees a job's account, partition and name
//! without asking the scheduler's controller (which would mean a network call or a fork of
//! `scontrol` per job). It is read once per job and cached by the caller.

use super::Scheduler;
use std::io;
use std::path::{Path, PathBuf};

/// What joulebook takes from a job's environment. Values are kept as data: a job name may hold
/// quotes, newlines or markup and is never interpreted here. Bytes that are not UTF-8 become
/// U+FFFD. Empty values count as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JobEnv {
    pub account: Option<String>,
    pub partition: Option<String>,
    pub job_name: Option<String>,
    /// `SLURM_JOB_UID`: the only source of the uid on cgroup v2, where the path has none.
    pub uid: Option<u32>,
    /// `SLURM_JOB_USER` / `OAR_USER`, for users that `/etc/passwd` does not list (LDAP, sssd).
    pub user: Option<String>,
    /// `SLURM_JOB_GPUS`, else `SLURM_STEP_GPUS` (steps started by `srun` outside a batch script
    /// only carry the latter): the variable's name and its value, global GPU indices.
    pub slurm_gpus: Option<(&'static str, String)>,
    /// `CUDA_VISIBLE_DEVICES`: indices that may be renumbered from 0 inside a device-constrained
    /// job, or `GPU-…` UUIDs.
    pub cuda_visible_devices: Option<String>,
}

/// The variables read per scheduler, and the one whose value must equal the job id: a process
/// in a job's cgroup can be `slurmstepd` itself or a program that replaced its environment, and
/// taking metadata from it would mislabel the job.
struct Keys {
    id: &'static [&'static str],
    account: &'static str,
    partition: &'static str,
    job_name: &'static str,
    uid: &'static str,
    user: &'static str,
    gpus: &'static [&'static str],
}

const SLURM: Keys = Keys {
    id: &["SLURM_JOB_ID", "SLURM_JOBID"],
    account: "SLURM_JOB_ACCOUNT",
    partition: "SLURM_JOB_PARTITION",
    job_name: "SLURM_JOB_NAME",
    uid: "SLURM_JOB_UID",
    user: "SLURM_JOB_USER",
    gpus: &["SLURM_JOB_GPUS", "SLURM_STEP_GPUS"],
};

const OAR: Keys = Keys {
    id: &["OAR_JOB_ID", "OAR_JOBID"],
    account: "OAR_PROJECT_NAME",
    // OAR does not always export the queue; the partition then stays unknown.
    partition: "OAR_QUEUE",
    job_name: "OAR_JOB_NAME",
    uid: "",
    user: "OAR_USER",
    gpus: &[],
};

/// Parses a NUL-separated environment. `None` when it does not belong to job `id` of
/// `scheduler` (or the scheduler exports no environment we read).
pub(crate) fn parse_environ(bytes: &[u8], scheduler: Scheduler, id: &str) -> Option<JobEnv> {
    let keys = match scheduler {
        Scheduler::Slurm => &SLURM,
        Scheduler::Oar => &OAR,
        Scheduler::UserSlice => return None,
    };
    let mut env = JobEnv::default();
    let mut id_ok = false;
    let mut gpus: [Option<String>; 2] = [None, None];
    for entry in bytes.split(|&b| b == 0) {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (k, v) = (&entry[..eq], &entry[eq + 1..]);
        // Only the first definition counts, as for getenv(3). Values are cut where a label
        // would be (GPU lists a little further): the job's user chooses their length.
        let set_max = |slot: &mut Option<String>, max: usize| {
            if slot.is_none() && !v.is_empty() {
                let cut = &v[..v.len().min(max + 4)];
                let text = String::from_utf8_lossy(cut);
                *slot = Some(super::clip_to(&text, max).to_string());
            }
        };
        let set = |slot: &mut Option<String>| set_max(slot, super::MAX_LABEL_BYTES);
        // A GPU list is cut after its last whole entry: a cut entry could name another GPU.
        let set_list = |slot: &mut Option<String>| {
            if slot.is_none() && !v.is_empty() {
                let max = super::MAX_GPU_LIST_BYTES;
                let cut = if v.len() > max {
                    let head = &v[..max];
                    &head[..head.iter().rposition(|&b| b == b',').unwrap_or(0)]
                } else {
                    v
                };
                *slot = Some(String::from_utf8_lossy(cut).into_owned());
            }
        };
        if keys.id.iter().any(|key| key.as_bytes() == k) {
            id_ok |= v == id.as_bytes();
        } else if k == keys.account.as_bytes() {
            set(&mut env.account);
        } else if k == keys.partition.as_bytes() {
            set(&mut env.partition);
        } else if k == keys.job_name.as_bytes() {
            set(&mut env.job_name);
        } else if !keys.uid.is_empty() && k == keys.uid.as_bytes() {
            if env.uid.is_none() {
                env.uid = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
            }
        } else if k == keys.user.as_bytes() {
            set(&mut env.user);
        } else if k == b"CUDA_VISIBLE_DEVICES" {
            set_list(&mut env.cuda_visible_devices);
        } else if let Some(i) = keys.gpus.iter().position(|key| key.as_bytes() == k) {
            set_list(&mut gpus[i]);
        }
    }
    if !id_ok {
        return None;
    }
    env.slurm_gpus = keys
        .gpus
        .iter()
        .zip(gpus)
        .find_map(|(var, value)| value.map(|v| (*var, v)));
    Some(env)
}

/// Why no environment was found for a job in this scan.
#[derive(Debug, Default)]
pub(crate) struct EnvSearch {
    /// The first environ file that could not be read for lack of permission.
    pub denied: Option<PathBuf>,
}

/// Tries the environments of `pids` in order and returns the first that belongs to the job.
/// Processes that exit meanwhile (ENOENT, ESRCH) and zombies (empty environ) are skipped.
pub(crate) fn find_job_env(
    procfs: &Path,
    pids: &[u32],
    scheduler: Scheduler,
    id: &str,
    buf: &mut Vec<u8>,
    search: &mut EnvSearch,
) -> Option<JobEnv> {
    use std::io::Read;
    for &pid in pids {
        let path = procfs.join(pid.to_string()).join("environ");
        super::cgroup::counted(super::cgroup::Call::Open);
        buf.clear();
        let res = std::fs::File::open(&path).and_then(|mut f| f.read_to_end(buf));
        match res {
            Ok(_) => {
                if let Some(env) = parse_environ(buf, scheduler, id) {
                    return Some(env);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                search.denied.get_or_insert(path);
            }
            // Gone (ENOENT, ESRCH) or unreadable for another reason: try the next process.
            Err(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environ(pairs: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in pairs {
            v.extend_from_slice(p.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn slurm_variables_are_read_and_the_job_id_checked() {
        let e = environ(&[
            "PATH=/bin",
            "SLURM_JOB_ID=42",
            "SLURM_JOB_ACCOUNT=physics",
            "SLURM_JOB_PARTITION=gpu",
            "SLURM_JOB_NAME=train",
            "SLURM_JOB_UID=1000",
            "SLURM_JOB_USER=alice",
            "SLURM_STEP_GPUS=3",
            "SLURM_JOB_GPUS=0,1",
            "CUDA_VISIBLE_DEVICES=0,1",
            "SLURM_JOB_NAME=second definition is ignored",
        ]);
        let env = parse_environ(&e, Scheduler::Slurm, "42").expect("env");
        assert_eq!(env.account.as_deref(), Some("physics"));
        assert_eq!(env.partition.as_deref(), Some("gpu"));
        assert_eq!(env.job_name.as_deref(), Some("train"));
        assert_eq!(env.uid, Some(1000));
        assert_eq!(env.user.as_deref(), Some("alice"));
        assert_eq!(env.slurm_gpus, Some(("SLURM_JOB_GPUS", "0,1".to_string())));
        assert_eq!(env.cuda_visible_devices.as_deref(), Some("0,1"));
        // Another job's environment, or slurmstepd's (no job id), is refused.
        assert_eq!(parse_environ(&e, Scheduler::Slurm, "43"), None);
        assert_eq!(
            parse_environ(&environ(&["PATH=/bin"]), Scheduler::Slurm, "42"),
            None
        );
    }

    #[test]
    fn step_gpus_stand_in_for_job_gpus() {
        let e = environ(&["SLURM_JOBID=7", "SLURM_STEP_GPUS=2"]);
        let env = parse_environ(&e, Scheduler::Slurm, "7").expect("env");
        assert_eq!(env.slurm_gpus, Some(("SLURM_STEP_GPUS", "2".to_string())));
    }

    #[test]
    fn oar_variables() {
        let e = environ(&[
            "OAR_JOB_ID=301",
            "OAR_PROJECT_NAME=climate",
            "OAR_JOB_NAME=sim",
            "OAR_USER=alice",
            "SLURM_JOB_NAME=not ours",
        ]);
        let env = parse_environ(&e, Scheduler::Oar, "301").expect("env");
        assert_eq!(env.account.as_deref(), Some("climate"));
        assert_eq!(env.job_name.as_deref(), Some("sim"));
        assert_eq!(env.partition, None);
        assert_eq!(env.user.as_deref(), Some("alice"));
    }

    #[test]
    fn hostile_values_are_kept_verbatim() {
        let mut e = environ(&["SLURM_JOB_ID=1"]);
        e.extend_from_slice(b"SLURM_JOB_NAME=a\"b\nc<script>\xff=x\0SLURM_JOB_ACCOUNT=\0");
        let env = parse_environ(&e, Scheduler::Slurm, "1").expect("env");
        assert_eq!(env.job_name.as_deref(), Some("a\"b\nc<script>\u{fffd}=x"));
        assert_eq!(env.account, None);
    }

    /// Values are cut: labels at 256 bytes, GPU lists after their last whole entry within
    /// 4 KiB (a cut "1000" must not become GPU 1).
    #[test]
    fn flooded_values_are_cut() {
        let list: Vec<String> = (1000..3000).map(|i| i.to_string()).collect();
        let name = "N".repeat(100_000);
        let env = parse_environ(
            &environ(&[
                "SLURM_JOB_ID=1",
                &format!("SLURM_JOB_NAME={name}"),
                &format!("SLURM_JOB_GPUS={}", list.join(",")),
            ]),
            Scheduler::Slurm,
            "1",
        )
        .expect("env");
        assert_eq!(
            env.job_name.map(|n| n.len()),
            Some(super::super::MAX_LABEL_BYTES)
        );
        let (_, gpus) = env.slurm_gpus.expect("gpus");
        assert!(gpus.len() <= super::super::MAX_GPU_LIST_BYTES);
        assert!(gpus.split(',').all(|g| g.len() == 4), "{gpus}");
    }

    #[test]
    fn user_slices_have_no_environment() {
        assert_eq!(
            parse_environ(&environ(&["A=1"]), Scheduler::UserSlice, "user-0"),
            None
        );
    }
}
