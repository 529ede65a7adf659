//! What is kept about each job between scans ([`JobCache`]: its folders, files kept open,
//! static data and when to read each thing again) and the map of the jobs known ([`Cache`]).

use super::cgroup::{self, Found, PerSlot, Slot};
use super::cpuset::shorten;
use super::env::JobEnv;
use super::record::Record;
use super::JobKey;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What is kept about a job between scans.
#[derive(Debug, Default)]
pub(super) struct JobCache {
    /// The job's folders, as last listed or probed.
    pub(super) found: Found,
    /// The inode number of the job's folder in each hierarchy where it was listed or probed: a
    /// different one is a new job with the same id.
    pub(super) ino: PerSlot<Option<u64>>,
    /// The last scan that listed the job, and the hierarchies that listed it then (bits).
    pub(super) seen: u64,
    pub(super) listed_in: u8,
    /// The scan that first listed this job (this folder).
    pub(super) first_seen: u64,
    /// [`JobKey::hash`]: places the job's periodic reads within their period.
    pub(super) hash: u64,
    /// The folders changed since the job's data was read: read it all again.
    pub(super) relayout: bool,
    /// CPUs and memory limit; `None` until read, then read again at `next_static`.
    pub(super) statics: Option<Statics>,
    pub(super) next_static: u64,
    /// `None` until one of the job's processes could be read; then kept until the job ends.
    pub(super) env: Option<JobEnv>,
    /// What the last search for the environment reported, repeated until one is found.
    pub(super) env_problems: Vec<String>,
    pub(super) next_env: u64,
    /// The uid owning the job's processes (`/proc/<pid>/status`), looked for with the
    /// environment when the path gives none.
    pub(super) kernel_uid: Option<u32>,
    /// The prolog's record, once found; kept until the job ends or the record changes.
    pub(super) record: Option<Record>,
    /// The record file's inode number, as the folder's last listing showed it.
    pub(super) record_ino: Option<u64>,
    /// The record folder's listing (`RecordDir::generation`) that `record_ino` was taken
    /// from: the same one again is not looked up again.
    pub(super) record_generation: u64,
    /// Why the record could not be used, repeated until it can.
    pub(super) record_problem: Option<String>,
    /// An environment contradicting an attested value was reported (once per job).
    pub(super) warned: bool,
    /// The entries of the OAR resources file, once read non-empty.
    pub(super) oar_resources: Option<Vec<String>>,
    /// Why the OAR resources file could not be read, repeated until it is.
    pub(super) oar_problem: Option<String>,
    pub(super) next_oar: u64,
    /// The GPU minors that `devices.list` allows: read when first needed, dropped with the
    /// static data.
    pub(super) devices: Option<Devices>,
    /// Where the CPU time is read from.
    pub(super) usage: UsageFile,
    /// The CPU time read on this scan; `None` until read.
    pub(super) usage_now: Option<UsageRead>,
    /// The scan at which the CPU time is read next (see [`JobsOptions::cpu_time_every`]).
    pub(super) next_usage: u64,
    /// The [`Job::revision`] of what was published last, and what it was derived from besides
    /// the static data: whether the environment and the record were found, the uid from the
    /// path or the processes, whether a user name came from the path, and the user database's
    /// generation.
    pub(super) revision: u64,
    pub(super) revision_inputs: RevisionInputs,
    /// The [`Cache::epoch`] and output slot of the job's last read, and whether that read
    /// reported no problem: the conditions of [`Ctx::read_steady`](super::read::Ctx::read_steady).
    pub(super) written: Option<(u64, usize)>,
    pub(super) clean: bool,
}

/// What a job's published values are derived from besides the static data
/// ([`JobCache::revision_inputs`]).
pub(super) type RevisionInputs = (bool, bool, Option<u32>, Option<u32>, bool, u64);

impl JobCache {
    /// Whether the environment and the record were found, the uid from the path or the
    /// processes, whether a user name came from the path, and the user database's generation
    /// `passwd`: a new revision when these change.
    pub(super) fn revision_inputs(&self, passwd: u64) -> RevisionInputs {
        (
            self.env.is_some(),
            self.record.is_some(),
            self.found.uid,
            self.kernel_uid,
            self.found.user.is_some(),
            passwd,
        )
    }
}

/// A job's data that only changes through `scontrol update` or while its cgroups are being set
/// up, with the problems its reading found (repeated on every scan, as if it was read each time).
#[derive(Debug, Default)]
pub(super) struct Statics {
    pub(super) cpus: Vec<u32>,
    /// Which file gave the CPUs, so that the next read opens only that one...
    pub(super) cpus_file: Option<usize>,
    /// ... which is then kept open, as the memory limit's file, and read again with `pread`.
    pub(super) cpus_held: Option<std::fs::File>,
    pub(super) cpus_problems: Vec<String>,
    pub(super) memory_limit_bytes: Option<u64>,
    pub(super) memory_held: Option<std::fs::File>,
    pub(super) memory_problems: Vec<String>,
}

impl Statics {
    /// Open files kept (they count against the descriptor budget).
    pub(super) fn held(&self) -> usize {
        usize::from(self.cpus_held.is_some()) + usize::from(self.memory_held.is_some())
    }
}

/// What a `devices.list` read found (the job's, else its steps').
#[derive(Debug)]
pub(super) struct Devices {
    pub(super) minors: Vec<(u32, u32)>,
    pub(super) problems: Vec<String>,
    pub(super) path: PathBuf,
}

/// Where a job's CPU time is read.
#[derive(Debug, Default)]
pub(super) enum UsageFile {
    /// By path on each read: not opened yet, no descriptor to spare, the sum over the steps
    /// (the job folder lacks the file), or nothing to read.
    #[default]
    ByPath,
    /// The job folder's file, kept open and read again with `pread`.
    Held {
        file: std::fs::File,
        path: PathBuf,
        v2: bool,
    },
}

/// One reading of a job's CPU time, with what it reported.
#[derive(Clone, Debug, Default)]
pub(super) struct UsageRead {
    pub(super) ns: Option<u64>,
    pub(super) problems: Vec<String>,
}

impl JobCache {
    pub(super) fn new(now: u64, hash: u64) -> JobCache {
        JobCache {
            first_seen: now,
            hash,
            relayout: true,
            next_static: now,
            next_env: now,
            next_oar: now,
            next_usage: now,
            ..JobCache::default()
        }
    }

    /// The job's folders changed (found in another hierarchy, or gone from one): its files are
    /// opened again and its static data read again on this scan.
    pub(super) fn reopen(&mut self, now: u64) {
        self.next_static = now;
        if let Some(s) = &mut self.statics {
            // Files of folders that may have changed: open them again.
            s.cpus_held = None;
            s.memory_held = None;
        }
        self.devices = None;
        self.usage = UsageFile::ByPath;
        self.usage_now = None;
    }

    /// The same id in a new folder: a new job (a requeued job gets new cgroups; ids come back
    /// after a reset of Slurm's counter). Starts afresh, keeping what this scan listed so far.
    pub(super) fn restart(&mut self, now: u64) {
        let mut fresh = JobCache::new(now, self.hash);
        if self.seen == now {
            fresh.seen = now;
            fresh.listed_in = self.listed_in;
            for h in Slot::ALL {
                if self.listed_in & h.bit() != 0 {
                    fresh.ino[h.index()] = self.ino[h.index()];
                    *fresh.found.slot(h) = self.found.slot(h).take();
                }
            }
            if self.listed_in != 0 {
                fresh.found.uid = self.found.uid;
                fresh.found.user = self.found.user.take();
                fresh.found.sluid = self.found.sluid.take();
            }
        }
        *self = fresh;
    }

    /// Files the job holds open (they count against the descriptor budget).
    pub(super) fn held_files(&self) -> usize {
        usize::from(matches!(self.usage, UsageFile::Held { .. }))
            + self.statics.as_ref().map_or(0, Statics::held)
    }

    /// Reads the CPU time again from the open file, if due; otherwise the read is left to
    /// [`Ctx::read_job`] (by path).
    pub(super) fn read_held_usage(&mut self, now: u64, every: u64, buf: &mut Vec<u8>) {
        if self.usage_now.is_some() && now < self.next_usage {
            return;
        }
        self.usage_now = None;
        self.next_usage = next_in_phase(now, self.hash % every, every);
        let UsageFile::Held { file, path, v2 } = &self.usage else {
            return;
        };
        cgroup::counted(cgroup::Call::Pread);
        match cgroup::read_again(file, buf) {
            Ok(text) => self.usage_now = Some(parse_usage(text, *v2, path)),
            // Gone (ENODEV: the cgroup was removed) or failing: read by path, which tells
            // whether the job ended or the file is bad.
            Err(_) => self.usage = UsageFile::ByPath,
        }
    }
}

/// Jobs (with their output slots) by the scan at which they are to be read.
pub(super) type Visits = BTreeMap<u64, Vec<(JobKey, usize)>>;

/// Puts `key` in the bucket of scan `at`, made from a spare one if new.
fn queue(due: &mut BTreeMap<u64, Vec<JobKey>>, spare: &mut Vec<Vec<JobKey>>, at: u64, key: JobKey) {
    due.entry(at)
        .or_insert_with(|| spare.pop().unwrap_or_default())
        .push(key);
}

/// The first scan after `now` whose number is `phase` modulo `period`: spreads periodic work
/// over the scans of a period.
pub(super) fn next_in_phase(now: u64, phase: u64, period: u64) -> u64 {
    let period = period.max(1);
    let t = now + 1;
    t + (phase + period - t % period) % period
}

/// Parses `cpuacct.usage` (ns) or v2 `cpu.stat` (`usage_usec`).
pub(super) fn parse_usage(text: &str, v2: bool, path: &Path) -> UsageRead {
    let ns = if v2 {
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us.saturating_mul(1000))
    } else {
        text.trim().parse::<u64>().ok()
    };
    match ns {
        Some(ns) => UsageRead {
            ns: Some(ns),
            problems: Vec::new(),
        },
        None => {
            let what = if v2 {
                "a usage_usec line"
            } else {
                "a CPU time in nanoseconds"
            };
            UsageRead {
                ns: None,
                problems: vec![format!(
                    "{}: expected {what}, found {:?}",
                    path.display(),
                    shorten(text)
                )],
            }
        }
    }
}

/// The jobs known. Found by hashing the key (one multiplication, see [`KeyHasher`]): every
/// listed job is looked up on every scan, which in an ordered map cost hundreds of comparisons
/// per job. The output order is kept beside, sorted again only when a job came or went.
/// Boxed: a pass over the jobs touches only the parts of each entry that it reads.
///
/// Step 1 of a scan visits only the jobs whose CPU time is due, from a queue of the times set
/// (`next_usage`, pushed by whoever sets it: an entry whose job was removed or rescheduled
/// since is skipped when it comes up), and the files the jobs hold open are counted by the
/// scan's reads of the jobs, which see every job kept (see [`Cache::read_held_usage`]).
#[derive(Debug, Default)]
pub(super) struct Cache {
    pub(super) map: HashMap<JobKey, Box<JobCache>, std::hash::BuildHasherDefault<KeyHasher>>,
    /// The keys in output order; `None` after a job was added or removed.
    pub(super) order: Option<Vec<JobKey>>,
    /// The jobs by `next_usage` as set (a scan's bucket is taken whole when it comes).
    pub(super) due: BTreeMap<u64, Vec<JobKey>>,
    /// Emptied buckets, for reuse.
    pub(super) spare: Vec<Vec<JobKey>>,
    /// The files the jobs kept hold open, as of the end of the last scan's reads.
    pub(super) held: usize,
    /// Counts the scans that read every job (the others read only the jobs due): the output
    /// slots stay where such a scan put them until the next.
    pub(super) epoch: u64,
    /// Each job (with its output slot) by the scan at which it is to be read next, when
    /// nothing else changes (see [`Ctx::next_visit`](super::read::Ctx::next_visit)).
    pub(super) visits: Visits,
    pub(super) visit_spare: Vec<Vec<(JobKey, usize)>>,
    /// `visits` holds every job, each in its slot of the output (no scopes merged, no job
    /// left out), as of the user database's and the record folder's generations kept here.
    pub(super) visits_valid: bool,
    pub(super) generations: (u64, u64),
    /// The length of the list the last scan returned.
    pub(super) slots: usize,
}

impl Cache {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[cfg(test)]
    pub(super) fn contains_key(&self, key: &JobKey) -> bool {
        self.map.contains_key(key)
    }

    #[cfg(test)]
    pub(super) fn get(&self, key: &JobKey) -> Option<&JobCache> {
        self.map.get(key).map(|e| &**e)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &JobCache> {
        self.map.values().map(|e| &**e)
    }

    /// Step 1 of a scan: the CPU time of each job due (by [`Cache::due`]) read again from its
    /// open file (see [`JobCache::read_held_usage`]). Returns how many files the jobs hold
    /// open: the last scan's count, less the files that failed here.
    pub(super) fn read_held_usage(&mut self, now: u64, every: u64, buf: &mut Vec<u8>) -> usize {
        while let Some(bucket) = self.due.first_entry() {
            if *bucket.key() > now {
                break;
            }
            let (due, mut keys) = bucket.remove_entry();
            for key in keys.drain(..) {
                let Some(e) = self.map.get_mut(&key) else {
                    continue;
                };
                if e.next_usage != due {
                    continue;
                }
                let was_held = matches!(e.usage, UsageFile::Held { .. });
                e.read_held_usage(now, every, buf);
                if was_held && !matches!(e.usage, UsageFile::Held { .. }) {
                    self.held = self.held.saturating_sub(1);
                }
                queue(&mut self.due, &mut self.spare, e.next_usage, key);
            }
            self.spare.push(keys);
        }
        self.held
    }

    /// After the job of `key` was read: its CPU time's next read queued if its time changed
    /// from `next_usage` (the time before the read).
    pub(super) fn queue_usage(
        (due, spare): (&mut BTreeMap<u64, Vec<JobKey>>, &mut Vec<Vec<JobKey>>),
        key: JobKey,
        e: &JobCache,
        next_usage: u64,
    ) {
        if e.next_usage != next_usage {
            queue(due, spare, e.next_usage, key);
        }
    }

    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.order = None;
        self.due.clear();
        self.held = 0;
        self.visits.clear();
        self.visits_valid = false;
    }

    /// Empties the visits (their lists kept for reuse).
    pub(super) fn clear_visits(&mut self) {
        while let Some((_, mut list)) = self.visits.pop_first() {
            list.clear();
            self.visit_spare.push(list);
        }
        self.visits_valid = false;
    }

    /// Queues the visit of the job of `key`, in output slot `n`, at scan `at`.
    pub(super) fn queue_visit(
        (visits, spare): (&mut Visits, &mut Vec<Vec<(JobKey, usize)>>),
        at: u64,
        key: JobKey,
        n: usize,
    ) {
        visits
            .entry(at)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push((key, n));
    }

    /// The entry of `key`, made with `new` if absent.
    pub(super) fn entry(&mut self, key: JobKey, new: impl FnOnce() -> JobCache) -> &mut JobCache {
        let order = &mut self.order;
        self.map.entry(key).or_insert_with(|| {
            *order = None;
            Box::new(new())
        })
    }

    pub(super) fn remove(&mut self, key: &JobKey) {
        if self.map.remove(key).is_some() {
            self.order = None;
        }
    }

    /// The keys in output order (job ids in numeric order, by scheduler).
    pub(super) fn order(&mut self) -> Vec<JobKey> {
        match self.order.take() {
            Some(order) => order,
            None => {
                let mut keys: Vec<JobKey> = self.map.keys().copied().collect();
                keys.sort_unstable();
                keys
            }
        }
    }
}

/// Hashes a [`JobKey`] from its precomputed words with one multiplication (the constant of
/// rustc's FxHasher). Job folders are made by the scheduler (root), so their names are not a
/// way to force collisions; a collision would only cost time anyway.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}
