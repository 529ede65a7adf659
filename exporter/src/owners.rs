//! Per-owner totals: cumulative counters per (account, user) on this node (energy by component,
//! CPU time, core- and GPU-seconds, elapsed and memory-seconds, jobs), so that a report sums a few series per node instead of
//! every job's. Fed by [`crate::accounting`] with exactly the deltas its job counters get, in the
//! same cycle, so the energy is equal to the µJ: what all owners gained (live and expired) equals
//! what all jobs gained (published and retired), at every cycle; the seconds are the same f64
//! increments (equal up to the rounding of a different summation order).
//!
//! Bounds: account and user can come from a job's environment (untrusted), so at most
//! [`MAX_OWNERS`] pairs are kept; the jobs of any further pair count under [`OVERFLOW`], so no
//! energy is lost. A pair is published while it has a running job and for the jobs' grace period
//! after ([`Owners::published`]); idle, it keeps its counters unpublished, and after [`EXPIRY_S`]
//! without a job it is dropped: if it comes back its counters start again from zero.
//!
//! Runs: every series of a pair carries `since`, the whole Unix second its counters last started
//! from zero (kept across a resume), so each run of the counters is its own series and only
//! grows: a reader takes `last − base` per series with no pass over the samples.

use crate::state::{uj_fields, uj_map, Fields, OwnerOut, OwnerState, Part};
use joulebook_common::{Component, PerComponent};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most (account, user) pairs kept on one node.
pub const MAX_OWNERS: usize = 512;

/// Account and user of the pair that takes the jobs of pairs beyond [`MAX_OWNERS`].
pub const OVERFLOW: &str = "(other)";

/// Seconds without a running job after which a pair is dropped: [`joulebook_common::OWNER_EXPIRY_S`].
pub const EXPIRY_S: f64 = joulebook_common::OWNER_EXPIRY_S;

/// (account, user), as published on the job's `joulebook_job_info`.
pub type OwnerKey = (Arc<str>, Arc<str>);

/// One pair's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnerTotals {
    /// Energy by component, µJ.
    pub uj: PerComponent<u64>,
    pub cpu_seconds: f64,
    pub core_seconds: f64,
    pub gpu_seconds: f64,
    /// Jobs' elapsed time, added over the jobs, seconds.
    pub elapsed_seconds: f64,
    /// Jobs' allocated memory × elapsed time, byte-seconds.
    pub memory_byte_seconds: f64,
    /// Jobs that started (first ran) on this node under the pair.
    pub jobs: u64,
    /// Unix time the counters above last started from zero (see the module doc).
    start_unix: f64,
    /// Last cycle with a running job of the pair, on the sampler's monotonic clock (for the
    /// expiry, immune to clock jumps) and in Unix time (for the state file).
    last_active_mono: f64,
    last_active_unix: f64,
}

impl OwnerTotals {
    /// Unix time the pair's counters last started from zero: when the pair was kept (first
    /// seen, or back after expiring), or the saved start on a resume.
    pub fn start_unix(&self) -> f64 {
        self.start_unix
    }
}

#[derive(Debug, Default)]
struct OwnerSlot {
    totals: OwnerTotals,
    /// The generation of the pair kept here; 0 when none is.
    generation: u64,
}

/// Where a pair's counters are, kept by a job so that its later cycles find them without
/// comparing strings: valid while that pair is kept (a slot reused by another pair has another
/// generation). The job drops it when its account or user changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    slot: usize,
    generation: u64,
}

/// What one running job gained in one cycle.
pub struct Gain<'a> {
    pub uj: &'a PerComponent<u64>,
    pub cpu_seconds: f64,
    pub core_seconds: f64,
    pub gpu_seconds: f64,
    /// The cycle's length (the job ran through it), seconds.
    pub elapsed_seconds: f64,
    /// The job's memory limit × the cycle's length, byte-seconds.
    pub memory_byte_seconds: f64,
    /// The job's first cycle on this node.
    pub started: bool,
}

#[derive(Debug, Default)]
pub struct Owners {
    /// By account, then user (two levels, so a job's pair is found by its strings): where the
    /// pair's counters are in `slots`.
    map: BTreeMap<Arc<str>, BTreeMap<Arc<str>, usize>>,
    /// The counters; a dropped pair's slot is reused (with a new generation).
    slots: Vec<OwnerSlot>,
    free: Vec<usize>,
    generations: u64,
    len: usize,
    /// Energy of the pairs dropped after [`EXPIRY_S`], µJ: with it, owners can be checked
    /// against the jobs at any time.
    expired: PerComponent<u64>,
    /// The last cycle's time on the monotonic clock (of the last [`Owners::expire`]).
    last_cycle_mono: f64,
}

impl Owners {
    /// The pairs, by account then user.
    pub fn iter(&self) -> impl Iterator<Item = (OwnerKey, &OwnerTotals)> {
        self.map.iter().flat_map(move |(a, us)| {
            us.iter().filter_map(move |(u, &i)| {
                let o = &self.slots.get(i)?.totals;
                Some(((a.clone(), u.clone()), o))
            })
        })
    }

    /// The pairs published: those with a running job in one of the cycles of the last `grace`
    /// seconds (a finished job's last value is scraped like the job's own counters). An idle
    /// pair keeps its run, unpublished, until [`EXPIRY_S`]: its series have gaps, never a value
    /// that went down.
    pub fn published(&self, grace: f64) -> impl Iterator<Item = (OwnerKey, &OwnerTotals)> {
        let now = self.last_cycle_mono;
        self.iter()
            .filter(move |(_, o)| now - o.last_active_mono <= grace)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, account: &str, user: &str) -> Option<&OwnerTotals> {
        Some(&self.slots.get(self.index(account, user)?)?.totals)
    }

    fn index(&self, account: &str, user: &str) -> Option<usize> {
        self.map.get(account)?.get(user).copied()
    }

    /// Energy of every pair ever kept (live and expired), µJ per component.
    pub fn accounted_uj(&self) -> PerComponent<u64> {
        let mut t = self.expired;
        for (_, o) in self.iter() {
            t.saturating_add_assign(&o.uj);
        }
        t
    }

    /// Where the pair's counters are, created at zero (started at `now`) when new; [`OVERFLOW`]'s
    /// when [`MAX_OWNERS`] pairs are kept. Looked up by the strings; with the [`OwnerRef`] a job
    /// kept (every cycle of a running job but its first), by position. A job counted under
    /// [`OVERFLOW`] keeps no reference, so it gets its own pair once there is room.
    fn entry(
        &mut self,
        cached: &mut Option<OwnerRef>,
        account: &str,
        user: &str,
        now: f64,
    ) -> usize {
        if let Some(r) = *cached {
            if self
                .slots
                .get(r.slot)
                .is_some_and(|s| s.generation == r.generation)
            {
                return r.slot;
            }
        }
        let known = self.index(account, user);
        let (slot, own) = match known {
            Some(i) => (i, true),
            None if self.len < MAX_OWNERS => (self.create(account, user, now), true),
            None => (
                self.create(OVERFLOW, OVERFLOW, now),
                (account, user) == (OVERFLOW, OVERFLOW),
            ),
        };
        *cached = own.then(|| OwnerRef {
            slot,
            generation: self.slots[slot].generation,
        });
        slot
    }

    /// Creates the pair at zero, started at Unix time `now`, unless it exists; returns its slot.
    fn create(&mut self, account: &str, user: &str, now: f64) -> usize {
        if let Some(i) = self.index(account, user) {
            return i;
        }
        self.len += 1;
        self.generations += 1;
        let fresh = OwnerSlot {
            totals: OwnerTotals {
                start_unix: now,
                ..Default::default()
            },
            generation: self.generations,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = fresh;
                i
            }
            None => {
                self.slots.push(fresh);
                self.slots.len() - 1
            }
        };
        self.map
            .entry(Arc::from(account))
            .or_default()
            .insert(Arc::from(user), i);
        i
    }

    /// Adds one running job's gain of one cycle to its pair (its published account and user).
    pub fn add(&mut self, owner: (&str, &str), g: Gain<'_>, now: f64, t_mono: f64) {
        self.add_cached(&mut None, owner, g, now, t_mono);
    }

    /// [`Owners::add`], with the reference the job keeps to its pair (see [`OwnerRef`]).
    pub fn add_cached(
        &mut self,
        cached: &mut Option<OwnerRef>,
        (account, user): (&str, &str),
        g: Gain<'_>,
        now: f64,
        t_mono: f64,
    ) {
        let i = self.entry(cached, account, user, now);
        let o = &mut self.slots[i].totals;
        o.uj.saturating_add_assign(g.uj);
        o.cpu_seconds += g.cpu_seconds;
        o.core_seconds += g.core_seconds;
        o.gpu_seconds += g.gpu_seconds;
        o.elapsed_seconds += g.elapsed_seconds;
        o.memory_byte_seconds += g.memory_byte_seconds;
        o.jobs += u64::from(g.started);
        o.last_active_mono = t_mono;
        o.last_active_unix = now;
    }

    /// Drops the pairs without a running job for [`EXPIRY_S`].
    pub fn expire(&mut self, t_mono: f64) {
        self.last_cycle_mono = t_mono;
        let Owners {
            map,
            slots,
            free,
            len,
            expired,
            ..
        } = self;
        for us in map.values_mut() {
            us.retain(|_, &mut i| {
                let Some(s) = slots.get_mut(i) else {
                    return false;
                };
                if t_mono - s.totals.last_active_mono > EXPIRY_S {
                    expired.saturating_add_assign(&s.totals.uj);
                    *len -= 1;
                    *s = OwnerSlot::default();
                    free.push(i);
                    false
                } else {
                    true
                }
            });
        }
        self.map.retain(|_, us| !us.is_empty());
    }

    /// Restores the pairs of a state file (at most [`MAX_OWNERS`]; the time already spent idle
    /// before the restart counts towards the expiry). Each keeps its saved start; one without
    /// (a file written before it existed), or with a non-finite or future one, takes
    /// `counters_start`, the node's counters start time (its counters were created at or after it
    /// and have only grown since).
    pub fn resume(&mut self, saved: &[OwnerState], counters_start: f64, now: f64, t_mono: f64) {
        self.last_cycle_mono = t_mono;
        for s in saved.iter().take(MAX_OWNERS) {
            let start_unix = s
                .start_unix
                .filter(|v| v.is_finite() && *v <= now)
                .unwrap_or(counters_start);
            let mut o = OwnerTotals {
                cpu_seconds: s.cpu_seconds,
                core_seconds: s.core_seconds,
                gpu_seconds: s.gpu_seconds,
                elapsed_seconds: s.elapsed_seconds,
                memory_byte_seconds: s.memory_byte_seconds,
                jobs: s.jobs,
                last_active_mono: t_mono - (now - s.last_active_unix).clamp(0.0, 1e9),
                last_active_unix: s.last_active_unix,
                start_unix,
                ..Default::default()
            };
            for c in Component::ALL {
                if let Some(uj) = s.joules_uj.get(c.as_str()) {
                    o.uj[c] = *uj;
                }
            }
            let i = self.create(&s.account, &s.user, start_unix);
            self.slots[i].totals = o;
        }
    }

    /// The pairs, to be saved.
    pub fn save(&self) -> Vec<OwnerState> {
        self.iter().map(|(k, o)| owner_state(&k, o)).collect()
    }
}

/// A pair's counters as the state file writes them.
fn owner_out<'a>((account, user): &'a OwnerKey, o: &OwnerTotals) -> OwnerOut<'a, Fields<u64, 4>> {
    OwnerOut {
        account,
        user,
        joules_uj: uj_fields(&o.uj),
        cpu_seconds: o.cpu_seconds,
        core_seconds: o.core_seconds,
        gpu_seconds: o.gpu_seconds,
        elapsed_seconds: o.elapsed_seconds,
        memory_byte_seconds: o.memory_byte_seconds,
        jobs: o.jobs,
        last_active_unix: o.last_active_unix,
        start_unix: Some(o.start_unix),
    }
}

/// A pair's counters as the state file keeps them.
fn owner_state(key: &OwnerKey, o: &OwnerTotals) -> OwnerState {
    let out = owner_out(key, o);
    OwnerState {
        account: out.account.to_string(),
        user: out.user.to_string(),
        joules_uj: uj_map(&o.uj),
        cpu_seconds: out.cpu_seconds,
        core_seconds: out.core_seconds,
        gpu_seconds: out.gpu_seconds,
        elapsed_seconds: out.elapsed_seconds,
        memory_byte_seconds: out.memory_byte_seconds,
        jobs: out.jobs,
        last_active_unix: out.last_active_unix,
        start_unix: out.start_unix,
    }
}

/// Every pair's counters (as [`Owners::iter`] gives them, cloned), written as the state's
/// `owners` list without an [`OwnerState`] of strings each.
pub struct SavedOwners(pub Vec<(OwnerKey, OwnerTotals)>);

impl Part for SavedOwners {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'[');
        for (i, (k, o)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            owner_out(k, o).write_json(out)?;
        }
        out.push(b']');
        Ok(())
    }

    fn non_finite(&self) -> Option<(String, f64)> {
        self.0
            .iter()
            .enumerate()
            .find_map(|(i, (k, o))| owner_out(k, o).non_finite(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gain(uj: &PerComponent<u64>, started: bool) -> Gain<'_> {
        Gain {
            uj,
            cpu_seconds: 1.0,
            core_seconds: 2.0,
            gpu_seconds: 0.5,
            elapsed_seconds: 1.0,
            memory_byte_seconds: 4e9,
            started,
        }
    }

    #[test]
    fn pairs_beyond_the_bound_count_under_overflow_and_nothing_is_lost() {
        let mut o = Owners::default();
        for i in 0..MAX_OWNERS + 10 {
            o.add(
                ("a", &format!("u{i}")),
                gain(&[1, 0, 0, 0].into(), true),
                0.0,
                0.0,
            );
        }
        assert_eq!(o.len(), MAX_OWNERS + 1);
        assert_eq!(o.iter().count(), MAX_OWNERS + 1);
        let over = o.get(OVERFLOW, OVERFLOW).unwrap();
        assert_eq!((over.uj.cpu, over.jobs), (10, 10));
        assert_eq!(o.accounted_uj(), [(MAX_OWNERS + 10) as u64, 0, 0, 0].into());
    }

    #[test]
    fn an_idle_pair_expires_after_a_day_and_keeps_the_check_exact() {
        let mut o = Owners::default();
        o.add(("p", "alice"), gain(&[5, 6, 7, 8].into(), true), 0.0, 100.0);
        o.add(
            ("q", "bob"),
            gain(&[1, 1, 1, 1].into(), true),
            0.0,
            100.0 + EXPIRY_S,
        );
        o.expire(100.0 + EXPIRY_S);
        assert_eq!(o.len(), 2, "not idle for more than the expiry yet");
        o.expire(101.0 + EXPIRY_S);
        assert_eq!(o.len(), 1);
        assert!(o.get("q", "bob").is_some());
        assert_eq!(o.accounted_uj(), [6, 7, 8, 9].into());
    }

    /// A job's reference to its pair goes stale when the pair expires and its slot is taken by
    /// another: the job's next gain creates its pair again instead of feeding the other one.
    #[test]
    fn a_kept_reference_to_an_expired_pair_is_not_used() {
        let mut o = Owners::default();
        let mut alice = None;
        o.add_cached(
            &mut alice,
            ("p", "alice"),
            gain(&[5, 0, 0, 0].into(), true),
            0.0,
            0.0,
        );
        assert!(alice.is_some());
        o.expire(1.0 + EXPIRY_S);
        assert!(o.is_empty());
        let mut bob = None;
        o.add_cached(
            &mut bob,
            ("q", "bob"),
            gain(&[7, 0, 0, 0].into(), true),
            0.0,
            2.0,
        );
        assert_eq!(
            bob.map(|r| r.slot),
            alice.map(|r| r.slot),
            "the slot is reused"
        );
        o.add_cached(
            &mut alice,
            ("p", "alice"),
            gain(&[1, 0, 0, 0].into(), false),
            0.0,
            3.0,
        );
        assert_eq!(o.get("q", "bob").unwrap().uj.cpu, 7);
        assert_eq!(o.get("p", "alice").unwrap().uj.cpu, 1);
        assert_eq!(o.accounted_uj().cpu, 13);
        // Kept while valid: the same pair again, without its strings being looked up.
        let before = alice;
        o.add_cached(
            &mut alice,
            ("p", "alice"),
            gain(&[1, 0, 0, 0].into(), false),
            0.0,
            4.0,
        );
        assert_eq!(alice, before);
        assert_eq!(o.get("p", "alice").unwrap().uj.cpu, 2);
    }

    /// A job counted under the overflow pair keeps no reference, so it moves to its own pair
    /// once an expiry makes room.
    #[test]
    fn a_job_under_overflow_gets_its_pair_when_there_is_room() {
        let mut o = Owners::default();
        for i in 0..MAX_OWNERS {
            o.add(
                ("a", &format!("u{i}")),
                gain(&[1, 0, 0, 0].into(), true),
                0.0,
                0.0,
            );
        }
        let mut late = None;
        o.add_cached(
            &mut late,
            ("b", "late"),
            gain(&[1, 0, 0, 0].into(), true),
            0.0,
            5.0,
        );
        assert!(late.is_none());
        assert!(o.get("b", "late").is_none());
        o.expire(1.0 + EXPIRY_S);
        o.add_cached(
            &mut late,
            ("b", "late"),
            gain(&[1, 0, 0, 0].into(), false),
            0.0,
            6.0,
        );
        assert_eq!(o.get("b", "late").unwrap().uj.cpu, 1);
        assert!(late.is_some());
    }

    #[test]
    fn save_and_resume_keep_counters_and_idle_time() {
        let mut o = Owners::default();
        o.add(
            ("p", "alice"),
            gain(&[5, 6, 7, 8].into(), true),
            910.0,
            50.0,
        );
        o.add(
            ("p", "alice"),
            gain(&[1, 0, 0, 0].into(), false),
            960.0,
            60.0,
        );
        let saved = o.save();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].last_active_unix, 960.0);
        assert_eq!(saved[0].start_unix, Some(910.0));
        let mut r = Owners::default();
        // Restarted at Unix 2,000, monotonic 7: idle 1,040 s so far.
        r.resume(&saved, 100.0, 2_000.0, 7.0);
        let t = r.get("p", "alice").unwrap();
        assert_eq!(t.start_unix(), 910.0, "the saved start, not the fallback");
        assert_eq!(t.uj, [6, 6, 7, 8].into());
        assert_eq!((t.jobs, t.core_seconds, t.cpu_seconds), (1, 4.0, 2.0));
        assert_eq!((t.elapsed_seconds, t.memory_byte_seconds), (2.0, 8e9));
        r.expire(7.0 + EXPIRY_S - 1_040.0);
        assert_eq!(r.len(), 1);
        r.expire(7.0 + EXPIRY_S - 1_039.0);
        assert!(r.is_empty());
        assert_eq!(r.iter().count(), 0);
    }

    /// A pair's start is the Unix time of the cycle that kept it, the same while it lives; the
    /// overflow pair's too.
    #[test]
    fn a_pair_starts_at_the_cycle_that_keeps_it_and_keeps_its_start_while_it_lives() {
        let mut o = Owners::default();
        o.add(
            ("p", "alice"),
            gain(&[1, 0, 0, 0].into(), true),
            1_000.0,
            5.0,
        );
        assert_eq!(o.get("p", "alice").unwrap().start_unix(), 1_000.0);
        for k in 1..5 {
            let k = f64::from(k);
            o.add(
                ("p", "alice"),
                gain(&[1, 0, 0, 0].into(), false),
                1_000.0 + k * 3_600.0,
                5.0 + k * 3_600.0,
            );
            o.expire(5.0 + k * 3_600.0);
        }
        let alice = o.get("p", "alice").unwrap();
        assert_eq!((alice.start_unix(), alice.uj.cpu), (1_000.0, 5));

        for i in 1..MAX_OWNERS {
            o.add(
                ("a", &format!("u{i}")),
                gain(&[1, 0, 0, 0].into(), true),
                2_000.0,
                6.0,
            );
        }
        o.add(
            ("b", "late"),
            gain(&[1, 0, 0, 0].into(), true),
            3_000.0,
            7.0,
        );
        o.add(
            ("b", "later"),
            gain(&[1, 0, 0, 0].into(), true),
            4_000.0,
            8.0,
        );
        assert_eq!(o.get(OVERFLOW, OVERFLOW).unwrap().start_unix(), 3_000.0);
        assert_eq!(o.get("a", "u1").unwrap().start_unix(), 2_000.0);
    }

    /// A pair that expires and comes back starts again from zero, with a later start: a reader
    /// sees the restart in the start, whatever the counters' values.
    #[test]
    fn an_expired_pair_that_comes_back_gets_a_new_later_start() {
        let mut o = Owners::default();
        o.add(
            ("p", "alice"),
            gain(&[9, 0, 0, 0].into(), true),
            1_000.0,
            0.0,
        );
        o.expire(1.0 + EXPIRY_S);
        assert!(o.get("p", "alice").is_none());
        let back = 1_002.0 + EXPIRY_S;
        o.add(
            ("p", "alice"),
            gain(&[4, 0, 0, 0].into(), true),
            back,
            2.0 + EXPIRY_S,
        );
        let alice = o.get("p", "alice").unwrap();
        assert_eq!((alice.start_unix(), alice.uj.cpu, alice.jobs), (back, 4, 1));
        let saved = o.save();
        assert_eq!(saved[0].start_unix, Some(back));
    }

    /// A pair is published while it has a job and for the grace period after; idle, it keeps its
    /// run unpublished (same start, same counters) and a job within the day goes on with it.
    #[test]
    fn an_idle_pair_is_not_published_but_keeps_its_run() {
        let mut o = Owners::default();
        let names = |o: &Owners, grace| {
            o.published(grace)
                .map(|((_, u), _)| u.to_string())
                .collect::<Vec<_>>()
        };
        let cycle = |o: &mut Owners, user: &str, t: f64| {
            o.add(
                ("p", user),
                gain(&[5, 0, 0, 0].into(), false),
                1_000.0 + t,
                t,
            );
        };
        cycle(&mut o, "alice", 0.0);
        cycle(&mut o, "bob", 0.0);
        o.expire(0.0);
        assert_eq!(names(&o, 180.0), ["alice", "bob"]);
        // Bob's job ended; alice's runs on.
        for t in [60.0, 180.0, 181.0] {
            cycle(&mut o, "alice", t);
            o.expire(t);
        }
        assert_eq!(names(&o, 180.0), ["alice"]);
        assert_eq!(names(&o, 181.0), ["alice", "bob"]);
        // Bob comes back within the day: the same run goes on from its value.
        let t = EXPIRY_S - 1.0;
        cycle(&mut o, "bob", t);
        o.expire(t);
        assert_eq!(names(&o, 180.0), ["bob"]);
        let bob = o.get("p", "bob").unwrap();
        assert_eq!((bob.start_unix(), bob.uj.cpu), (1_000.0, 10));
        // A resume keeps what is published: the idle pair stays unpublished.
        let saved = o.save();
        let mut r = Owners::default();
        r.resume(&saved, 0.0, 1_000.0 + t + 10.0, t + 10.0);
        assert_eq!(names(&r, 180.0), ["bob"]);
        assert_eq!(r.len(), 2);
    }

    /// A saved pair without a start (a file written before it existed), or with one that is not
    /// finite or in the future, takes the node's counters start; the others keep theirs.
    #[test]
    fn resuming_a_pair_without_a_usable_start_takes_the_counters_start() {
        let pair = |user: &str, start_unix| OwnerState {
            account: "p".into(),
            user: user.into(),
            joules_uj: [("cpu".to_string(), 7)].into(),
            last_active_unix: 1_900.0,
            start_unix,
            ..Default::default()
        };
        let saved = [
            pair("old", None),
            pair("nan", Some(f64::NAN)),
            pair("inf", Some(f64::INFINITY)),
            pair("future", Some(2_000.5)),
            pair("kept", Some(1_500.0)),
            pair("now", Some(2_000.0)),
        ];
        let mut r = Owners::default();
        r.resume(&saved, 1_200.0, 2_000.0, 10.0);
        let start = |u: &str| r.get("p", u).unwrap().start_unix();
        for u in ["old", "nan", "inf", "future"] {
            assert_eq!(start(u), 1_200.0, "{u}");
        }
        assert_eq!((start("kept"), start("now")), (1_500.0, 2_000.0));
        assert_eq!(r.get("p", "old").unwrap().uj.cpu, 7);
        // What a resumed pair saves is its start, taken or kept.
        let again: BTreeMap<_, _> = r
            .save()
            .into_iter()
            .map(|s| (s.user, s.start_unix))
            .collect();
        assert_eq!(again["old"], Some(1_200.0));
        assert_eq!(again["kept"], Some(1_500.0));
    }
}
