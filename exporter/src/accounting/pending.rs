//! Deferred charging: a cycle whose jobs are the last cycle's adds its node energy and the CPU
//! time read to a pending sum, and [`Accounting::settle`] charges the sum in one split. The
//! exporter settles before each snapshot it publishes, so with the state file (a snapshot per
//! save) a steady node's jobs are walked once per save instead of once per cycle.
//!
//! Rules:
//! - A cycle is deferred only while one split of the sum is the sum of the cycles' splits but
//!   for rounding: the allocation policy (the usage policy splits each cycle by its own CPU
//!   time and baseline); the same running jobs in the same order, by non-zero revisions (which
//!   cover their CPUs, memory limits and metadata); no GPU held (a job's GPUs change without a
//!   new revision); the records unchanged; no finished job due to be dropped.
//! - What is pending belongs to the jobs it was summed for: a change settles it, with their
//!   records (which hold what they held), before the changed cycle is charged.
//! - The CPU time read while deferred is kept per job and charged at the settle, so a job that
//!   ends before it loses none of it.
//!
//! Invariant: after every settle, jobs plus unallocated equal the node exactly, per component.
//! A job's share of a sum is `floor(Σ energy × weight / total)`, never less than the sum of its
//! per-cycle floors and at most one µJ per split term and cycle more: the remainder that went to
//! unallocated cycle by cycle goes to the jobs instead.

use super::{charge, cpu_since, Accounting, Held, JobRecord};
use crate::attribution::{CpuPolicy, JobShare, NodeDelta};
use crate::jobs::Job;

#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Cycles added since the last settle.
    cycles: u32,
    /// The node's energy over them, and their length.
    delta: NodeDelta,
    /// Per running job (in the order of the last walk): CPU time read over them, ns, and the
    /// last value read (what its record's `last_cpu_ns` becomes at the settle).
    cpu: Vec<u64>,
    last_cpu: Vec<Option<u64>>,
    /// Per running job: the position of its record in the map's order.
    record: Vec<usize>,
    /// Unix and monotonic time of the last cycle added.
    now: f64,
    t_mono: f64,
}

impl Pending {
    /// Starts the walk of `jobs` running jobs (nothing may be pending).
    pub(super) fn start(&mut self, jobs: usize) {
        debug_assert_eq!(self.cycles, 0, "a walk with cycles pending");
        self.cpu.clear();
        self.cpu.resize(jobs, 0);
        self.last_cpu.clear();
        self.last_cpu.resize(jobs, None);
        self.record.clear();
        self.record.resize(jobs, usize::MAX);
    }

    /// Running job `j` has the record at position `i`, whose last CPU time read is `last_cpu`.
    pub(super) fn held_by(&mut self, j: usize, i: usize, last_cpu: Option<u64>) {
        if let (Some(r), Some(l)) = (self.record.get_mut(j), self.last_cpu.get_mut(j)) {
            *r = i;
            *l = last_cpu;
        }
    }

    /// Adds a cycle of the same jobs: the node's energy, and each job's CPU time read since the
    /// last ([`cpu_since`], as a walk counts it).
    pub(super) fn add(&mut self, delta: &NodeDelta, running: &[Job], now: f64, t_mono: f64) {
        if self.cycles == 0 {
            self.delta.clone_from(delta);
        } else {
            self.delta.add(delta);
        }
        self.cycles += 1;
        self.now = now;
        self.t_mono = t_mono;
        for ((job, sum), last) in running.iter().zip(&mut self.cpu).zip(&mut self.last_cpu) {
            *sum += cpu_since(last, job.cpu_usage_ns);
        }
    }
}

impl Accounting {
    /// Whether this cycle of `running` may be deferred (see the module's rules).
    pub(super) fn can_defer(&self, t_mono: f64, running: &[Job]) -> bool {
        self.opts.policy == CpuPolicy::Allocation
            && !running.is_empty()
            && !self.records_changed
            && !self.gpus_held
            && self.walk.len() == self.jobs.len()
            && self.pending.record.len() == running.len()
            && t_mono - self.first_end <= self.opts.grace_s
            && running.len() == self.revisions.len()
            && running
                .iter()
                .zip(&self.revisions)
                .all(|(j, &r)| j.revision != 0 && j.revision == r && j.gpus.is_empty())
    }

    /// Nothing is pending: the counters are up to date.
    pub fn settled(&self) -> bool {
        self.pending.cycles == 0
    }

    /// Charges what [`Accounting::update_deferred`] left pending; nothing when nothing is.
    pub fn settle(&mut self) {
        let p = &mut self.pending;
        if p.cycles == 0 {
            return;
        }
        // The split, with the shares of the records' holdings (what the jobs held throughout).
        let (unallocated, held) = {
            let records: Vec<(&str, &JobRecord)> =
                self.jobs.iter().map(|(id, r)| (&**id, r)).collect();
            let mut shares = Vec::with_capacity(p.record.len());
            // (A record is never missing while cycles are pending; were one, its share would
            // hold nothing and the weights would be made again, so no share moves.)
            let mut same = true;
            for (&i, &d) in p.record.iter().zip(&p.cpu) {
                let share = match records.get(i) {
                    Some(&(id, rec)) => JobShare {
                        id,
                        cpus: &rec.cpus,
                        gpus: &rec.gpus,
                        memory_bytes: rec.memory_bytes,
                        cpu_time_delta_ns: d,
                    },
                    None => {
                        same = false;
                        JobShare {
                            id: "",
                            cpus: &[],
                            gpus: &[],
                            memory_bytes: None,
                            cpu_time_delta_ns: d,
                        }
                    }
                };
                shares.push(share);
            }
            let held: Vec<Held> = shares.iter().map(Held::of_share).collect();
            let baselines = self.baseline.baselines();
            let unallocated = self.attributor.split(
                &p.delta,
                &self.topology,
                &shares,
                self.opts.policy,
                &baselines,
                same,
            );
            (unallocated, held)
        };
        let mut recs: Vec<&mut JobRecord> = self.jobs.values_mut().collect();
        for (&i, &last) in p.record.iter().zip(&p.last_cpu) {
            if let Some(rec) = recs.get_mut(i) {
                rec.last_cpu_ns = last;
            }
        }
        charge(
            &mut recs,
            &p.record,
            self.attributor.shares(),
            &held,
            &p.cpu,
            p.delta.interval_s,
            (&mut self.owners, p.now, p.t_mono),
        );
        self.owners.expire(p.t_mono);
        self.unallocated.saturating_add_assign(&unallocated);
        p.cycles = 0;
        p.cpu.fill(0);
    }
}
