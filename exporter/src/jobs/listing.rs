//! Which hierarchies a scan lists, and what a listing records in the cache. Between full
//! listings one v1 controller is enough to know which jobs exist (every controller a scheduler
//! uses holds every job); a job folder's inode number changing is a reused id.

use super::cache::{Cache, JobCache};
use super::cgroup::{Controller, Hierarchy, PerSlot, Slot};
use super::lister::Listed;
use std::path::Path;

/// Every hierarchy is listed every this many scans (and on each scan while none holds a job);
/// in between, only those that matter (see [`Listing`]).
pub(super) const FULL_LISTING_SCANS: u64 = 30;
/// Every this many full listings, every folder is read again with `getdents64` even if no
/// inotify event said it changed (a safety net: cgroupfs reports every `mkdir` and `rmdir`).
pub(super) const FULL_LISTINGS_PER_RELIST: u64 = 10;
/// The v1 controllers in the order one is preferred for listing on every scan when several
/// hold as many jobs: cpuacct gives the CPU time, so its listing and its open files agree.
const LISTING_PREFERENCE: [Controller; 5] = [
    Controller::Cpuacct,
    Controller::Cpuset,
    Controller::Freezer,
    Controller::Memory,
    Controller::Devices,
];

/// Which hierarchies are listed on each scan. One is enough to know which jobs exist: every v1
/// controller that Slurm or OAR uses holds every job, so between full listings only the
/// controller holding the most jobs is listed, plus any other that held a job the first one
/// did not (jobs still being set up or torn down, or mixed settings), plus the v2 hierarchy.
#[derive(Debug, Default)]
pub(super) struct Listing {
    pub(super) every_scan: PerSlot<bool>,
    /// The scan of the last full listing; 0 before the first.
    last_full: u64,
    /// Full listings so far.
    pub(super) full_listings: u64,
    /// What the last listing of each hierarchy reported (repeated while it is not listed).
    pub(super) problems: PerSlot<Vec<String>>,
    /// The hierarchies listed on the last scan.
    last_listed: PerSlot<bool>,
}

impl Listing {
    pub(super) fn full_due(&self, now: u64, h: &Hierarchy) -> bool {
        let has_v1 = h.v1.iter().any(Option::is_some);
        self.last_full == 0
            || now.saturating_sub(self.last_full) >= FULL_LISTING_SCANS
            || (has_v1
                && !Controller::ALL
                    .iter()
                    .any(|c| self.every_scan[Slot::V1(*c).index()]))
    }

    /// After a full listing: which hierarchies to list until the next.
    pub(super) fn choose(&mut self, cache: &Cache, now: u64, h: &Hierarchy) {
        let listed = || {
            cache
                .values()
                .filter(|e| e.seen == now)
                .map(|e| e.listed_in)
        };
        let mut count = [0usize; Controller::ALL.len()];
        for bits in listed() {
            for (c, n) in Controller::ALL.into_iter().zip(count.iter_mut()) {
                *n += usize::from(bits & Slot::V1(c).bit() != 0);
            }
        }
        self.every_scan = [false; Slot::COUNT];
        let mut primary: Option<Controller> = None;
        for c in LISTING_PREFERENCE {
            if count[c as usize] > primary.map_or(0, |p| count[p as usize]) {
                primary = Some(c);
            }
        }
        if let Some(p) = primary {
            self.every_scan[Slot::V1(p).index()] = true;
            for bits in listed() {
                if bits & Slot::V1(p).bit() == 0 {
                    if let Some(c) = LISTING_PREFERENCE
                        .iter()
                        .find(|c| bits & Slot::V1(**c).bit() != 0)
                    {
                        self.every_scan[Slot::V1(*c).index()] = true;
                    }
                }
            }
        }
        self.every_scan[Slot::V2.index()] = h.v2.is_some();
        self.last_full = now;
        self.full_listings += 1;
    }

    /// The hierarchies due on this scan: all of them on a `full` listing, else those listed
    /// on every scan.
    pub(super) fn due(&self, full: bool, hierarchy: &Hierarchy) -> PerSlot<bool> {
        Slot::ALL.map(|h| hierarchy.root(h).is_some() && (full || self.every_scan[h.index()]))
    }

    /// The same hierarchies are due as were listed on the last scan.
    pub(super) fn due_as_last(&self, full: bool, hierarchy: &Hierarchy) -> bool {
        self.due(full, hierarchy) == self.last_listed
    }

    /// Lists the hierarchies due (see [`Listing::due`]) with `list`, which fills the
    /// hierarchy's problems; returns which were listed.
    pub(super) fn list(
        &mut self,
        full: bool,
        hierarchy: &Hierarchy,
        mut list: impl FnMut(Slot, &Path, &mut Vec<String>),
    ) -> PerSlot<bool> {
        let listed_now = self.due(full, hierarchy);
        for h in Slot::ALL {
            let (Some(root), true) = (hierarchy.root(h), listed_now[h.index()]) else {
                continue;
            };
            let found = &mut self.problems[h.index()];
            found.clear();
            list(h, root, found);
        }
        self.last_listed = listed_now;
        listed_now
    }
}

/// Records one listed job folder in the cache.
pub(super) fn note_listed(cache: &mut Cache, now: u64, h: Slot, l: &Listed<'_>) {
    let e = cache.entry(l.key, || JobCache::new(now, l.key.hash()));
    if e.seen != now {
        e.seen = now;
        e.listed_in = 0;
    }
    if e.ino[h.index()].is_some_and(|ino| ino != l.ino) {
        e.restart(now);
    }
    e.listed_in |= h.bit();
    e.ino[h.index()] = Some(l.ino);
    let slot = e.found.slot(h);
    if slot.is_none() {
        *slot = Some(l.parent.join(l.name));
        e.relayout = true;
    }
    e.found.uid = e.found.uid.or(l.uid);
    if e.found.user.is_none() {
        e.found.user = l.user.map(str::to_string);
    }
    if e.found.sluid.is_none() {
        e.found.sluid = l.sluid.map(str::to_string);
    }
}
