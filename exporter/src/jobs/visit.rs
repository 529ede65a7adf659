//! Step 3 of a scan: which jobs are read, and how little. A job with nothing due keeps its
//! slot of the last scan's list but for its CPU time ([`Ctx::read_steady`]); when the jobs are
//! the last scan's in the same slots and nothing every job depends on changed (the user
//! database, the record folder, the GPU inputs), only the jobs whose visit is due are read
//! at all ([`read_due`]): a job is queued, after each read, for the first scan at which any of
//! its reads is due ([`Ctx::next_visit`]), so no read is postponed past its time.
//! Invariant: after every scan the list is what reading every job would give (tested against
//! a scan that reads every job).

use super::*;

impl Ctx<'_> {
    /// The job in slot `n` as of this scan when nothing of it is due: its last read, on the
    /// last scan, wrote this slot (`out`) and reported no problem, and none of the inputs of
    /// [`Ctx::read_job`] changed since (its static data, environment, record, OAR resources
    /// and the user database not due or not changed, the GPU inputs steady). Then only the
    /// CPU time (read again from the open file when due, in step 1) is written, and `true`
    /// returned; `false` leaves the job to [`Ctx::read_job`]. A scan of 1,000 jobs visits
    /// each one, so this is what most jobs cost.
    pub(super) fn read_steady(
        &self,
        key: &JobKey,
        e: &mut JobCache,
        n: usize,
        out: &mut Job,
    ) -> bool {
        let now = self.now;
        let Some(u) = &e.usage_now else {
            return false;
        };
        let last_scan = e.written == Some((self.slot_epoch, n));
        let statics_kept = e.statics.is_some() && now < e.next_static;
        let record_kept = self.opts.record_dir.is_none()
            || key.scheduler == Scheduler::UserSlice
            || e.record_generation == self.records.generation;
        let env_kept = e.env.is_some() || key.scheduler == Scheduler::UserSlice || now < e.next_env;
        let oar_kept = key.scheduler != Scheduler::Oar
            || self.opts.oar_resources_dir.is_none()
            || e.oar_resources.is_some()
            || now < e.next_oar;
        let inputs = e.revision_inputs(self.passwd.generation());
        let steady = last_scan
            && e.clean
            && !e.relayout
            && self.gpus_steady
            && statics_kept
            && record_kept
            && env_kept
            && oar_kept
            && u.problems.is_empty()
            && e.revision != 0
            && out.revision == e.revision
            && inputs == e.revision_inputs;
        if steady {
            out.cpu_usage_ns = u.ns;
        }
        steady
    }

    /// The scan at which job `e`, read on this one, is to be read again if nothing else
    /// changes (its folders, the user database, the record folder, the GPU inputs): its next
    /// CPU-time read, static data, search for the environment or OAR resources, whichever
    /// comes first; the next scan when its read reported a problem (repeated on every scan).
    pub(super) fn next_visit(&self, key: &JobKey, e: &JobCache) -> u64 {
        let now = self.now;
        if !e.clean || e.relayout || e.usage_now.is_none() || e.statics.is_none() {
            return now + 1;
        }
        let mut at = e.next_usage.min(e.next_static);
        if e.env.is_none() && key.scheduler != Scheduler::UserSlice {
            at = at.min(e.next_env);
        }
        let oar = key.scheduler == Scheduler::Oar && self.opts.oar_resources_dir.is_some();
        if oar && e.oar_resources.is_none() {
            at = at.min(e.next_oar);
        }
        at.max(now + 1)
    }
}

/// Step 3 of a scan: reads each job listed on it (what changed, and what is due) into `jobs`,
/// whose slot `n` is overwritten by the n-th job read; jobs not listed, or whose folder
/// vanished, lose their cache. When the jobs are the last scan's and none of what every job
/// depends on changed (the user database, the record folder, the GPU inputs), only the jobs
/// due are read ([`read_due`]).
pub(super) fn read_listed(ctx: &mut Ctx<'_>, cache: &mut Cache, jobs: &mut Vec<Job>, quiet: bool) {
    let generations = (ctx.passwd.generation(), ctx.records.generation);
    let same_list = jobs.len() == cache.slots;
    if quiet
        && same_list
        && ctx.gpus_steady
        && cache.visits_valid
        && cache.generations == generations
    {
        read_due(ctx, cache, jobs);
        return;
    }
    let now = ctx.now;
    let mut n = 0;
    let mut ended = Vec::new();
    let order = cache.order();
    cache.clear_visits();
    ctx.slot_epoch = cache.epoch;
    cache.epoch += 1;
    // The files held open by the jobs kept (see `Cache::read_held_usage`).
    let mut held = 0;
    for key in &order {
        let Some(e) = cache.map.get_mut(key) else {
            continue;
        };
        if quiet {
            // Listed again as on the last scan, in the same hierarchies.
            e.seen = now;
        }
        if e.seen != now {
            ended.push(*key);
            continue;
        }
        // A hierarchy listed on this scan that no longer lists the job: its folder there
        // is gone.
        for h in Slot::ALL {
            let listed = ctx.listed_now[h.index()];
            if listed && e.listed_in & h.bit() == 0 && e.found.slot(h).take().is_some() {
                e.ino[h.index()] = None;
                e.relayout = true;
            }
        }
        if n == jobs.len() {
            jobs.push(Job::empty(key.scheduler));
        }
        let queues = (&mut cache.due, &mut cache.spare);
        match read_one(ctx, queues, key, e, n, &mut jobs[n]) {
            Ok(()) => {
                e.written = Some((cache.epoch, n));
                held += e.held_files();
                let at = ctx.next_visit(key, e);
                Cache::queue_visit((&mut cache.visits, &mut cache.visit_spare), at, *key, n);
                n += 1;
            }
            Err(Vanished) => ended.push(*key),
        }
    }
    jobs.truncate(n);
    let merged = merge_scopes(jobs);
    cache.order = Some(order);
    cache.held = held;
    cache.visits_valid = !merged && ended.is_empty();
    cache.slots = jobs.len();
    cache.generations = generations;
    // Ended jobs lose their cache (and close their files), so a reused id starts afresh.
    for key in &ended {
        cache.remove(key);
    }
}

/// One job into its slot `out`: kept as it is, but for its CPU time, when nothing of it is
/// due ([`Ctx::read_steady`]), else read ([`Ctx::read_job`]); a new time of its next CPU-time
/// read is queued.
fn read_one(
    ctx: &mut Ctx<'_>,
    queues: (&mut BTreeMap<u64, Vec<JobKey>>, &mut Vec<Vec<JobKey>>),
    key: &JobKey,
    e: &mut JobCache,
    n: usize,
    out: &mut Job,
) -> Result<(), Vanished> {
    if ctx.read_steady(key, e, n, out) {
        return Ok(());
    }
    let problems = ctx.problems.len();
    let next_usage = e.next_usage;
    ctx.read_job(key, e, out)?;
    e.clean = ctx.problems.len() == problems;
    Cache::queue_usage(queues, *key, e, next_usage);
    Ok(())
}

/// Step 3 of a scan whose jobs are the last scan's, in the same slots: reads only the jobs
/// whose visit is due ([`Cache::visits`]); the others keep their slots as they are, which is
/// what reading them would write. A job whose folder vanished meanwhile is taken out of
/// `jobs` and loses its cache (the next scan then reads every job).
fn read_due(ctx: &mut Ctx<'_>, cache: &mut Cache, jobs: &mut Vec<Job>) {
    let now = ctx.now;
    ctx.slot_epoch = cache.epoch;
    let mut ended: Vec<(usize, JobKey)> = Vec::new();
    while let Some(bucket) = cache.visits.first_entry() {
        if *bucket.key() > now {
            break;
        }
        let (_, mut list) = bucket.remove_entry();
        for (key, n) in list.drain(..) {
            let (Some(e), Some(out)) = (cache.map.get_mut(&key), jobs.get_mut(n)) else {
                continue;
            };
            e.seen = now;
            let held = e.held_files();
            let queues = (&mut cache.due, &mut cache.spare);
            match read_one(ctx, queues, &key, e, n, out) {
                Ok(()) => {
                    e.written = Some((cache.epoch, n));
                    cache.held = (cache.held + e.held_files()).saturating_sub(held);
                    let at = ctx.next_visit(&key, e);
                    Cache::queue_visit((&mut cache.visits, &mut cache.visit_spare), at, key, n);
                }
                Err(Vanished) => {
                    cache.held = cache.held.saturating_sub(held);
                    ended.push((n, key));
                }
            }
        }
        cache.visit_spare.push(list);
    }
    if ended.is_empty() {
        return;
    }
    ended.sort_unstable_by_key(|&(n, _)| std::cmp::Reverse(n));
    for (n, key) in ended {
        jobs.remove(n);
        cache.remove(&key);
    }
    cache.visits_valid = false;
    cache.slots = jobs.len();
}

#[cfg(test)]
mod tests;
