//! The jobs' figures over the period (module doc of `collect`: last − base per series, raw
//! samples for the (node, job) pairs whose counters went down), and the search of a job's window.

use super::*;
use std::collections::HashMap;

impl Collector<'_> {
    /// Jobs with their energy, time and placements inside the period, and the scrapes in which
    /// a job held each GPU (`joulebook_job_gpu_info`, a series per job and GPU).
    ///
    /// Cost: the server reads each job series once (its last value over the period), and the
    /// energy series of the nodes not left out by `starts` a second time (the `resets` pass);
    /// the subtraction of the starting value happens here, per series. Independent queries run
    /// in parallel.
    ///
    /// Rounds: the job series of `instances` (the nodes met, see [`Round::plan`]) are read a
    /// group of nodes at a time when the period holds more than [`NODE_DAYS_PER_QUERY`] node-days,
    /// so that no answer grows with the cluster and only one round's answers are held at once;
    /// every series of a (node, job) falls in one round, and a job on several nodes sums its
    /// placements across rounds as it does within one. A round the server refuses as too large
    /// (its limit on the series or samples of one query, or the cap on one answer) is read again
    /// in halves, down to one node, and the reporter says so on stderr.
    ///
    /// `reads`: what is read besides each job's energy, info and GPU holdings.
    pub fn jobs(
        &self,
        instances: &[String],
        starts: &CounterStarts,
        reads: JobReads,
    ) -> Result<(Vec<JobData>, GpuCounts), PromError> {
        let mut acc = Jobs::default();
        let counters = self.job_counters(reads.times_listed.is_none());
        self.in_rounds("job", &self.job_series(), instances, |round| {
            self.jobs_round(round, starts, counters, reads.allocations, &mut acc)
        })?;
        let Jobs {
            jobs: mut out,
            gpu_counts,
            flagged,
            ..
        } = acc;
        for j in &mut out {
            j.placements.sort_by(|a, b| a.instance.cmp(&b.instance));
            for pl in &j.placements {
                j.core_seconds += pl.core_seconds;
                j.gpu_seconds += pl.gpu_seconds;
            }
        }
        // A job whose series only lingered through its grace period did nothing in the period.
        out.retain(|j| j.energy.total() > 0.0 || j.core_seconds > 0.0);
        // In the order of their keys, whatever the rounds' order (in place: no second list).
        out.sort_unstable_by(|a, b| (&a.cluster, &a.job_id).cmp(&(&b.cluster, &b.job_id)));
        out.shrink_to_fit();
        if let Some(n) = reads.times_listed {
            self.listed_times(&mut out, n, &flagged)?;
        }
        Ok((out, gpu_counts))
    }

    /// One round of [`Collector::jobs`]: the job series of `round`, added to `acc` once every
    /// query of the round has been answered (a refused round leaves `acc` as it was).
    fn jobs_round(
        &self,
        round: &Round,
        starts: &CounterStarts,
        counters: &[MetricDef],
        allocations: bool,
        acc: &mut Jobs,
    ) -> Result<(), PromError> {
        let (queries, resets_pass) = self.job_queries(round, starts, counters, allocations);
        self.client.progress().stage("jobs", queries.len());
        let mut results = self.all_at_end(&queries)?.into_iter();
        let mut next = || results.next().unwrap_or_default();

        // Per series: last − base, and the flagged series from raw samples.
        let lasts: Vec<(Vec<Sample>, Vec<Sample>)> =
            counters.iter().map(|_| (next(), next())).collect();
        let flagged: BTreeSet<PairKey> = match resets_pass {
            true => next().into_iter().map(|s| place_key(&s.labels)).collect(),
            false => BTreeSet::new(),
        };
        let mut per_family: Vec<Vec<(Labels, f64)>> = Vec::new();
        for (m, (last, base)) in counters.iter().zip(lasts) {
            per_family.push(self.increases(m, last, base, &flagged, |_| true)?);
        }
        acc.add_counters(per_family, |s| self.note(s));
        if allocations {
            let (alloc_cpus, alloc_mem) = (next(), next());
            acc.add_allocations(alloc_cpus, alloc_mem);
        }
        acc.add_info(next());
        add_gpu_held(&mut acc.gpu_counts, next());
        acc.flagged.extend(flagged);
        Ok(())
    }

    /// The scrapes in which a job held each GPU of the round's nodes (`shard`), summed by the
    /// server over `joulebook_job_gpu_info` (a series per job and GPU); [`add_gpu_held`] adds
    /// the answer up.
    pub(super) fn gpu_held_query(&self, shard: Option<&str>) -> String {
        format!(
            "sum by ({CLUSTER}, {INSTANCE}, {}) (count_over_time({}[{}]))",
            l::GPU_UUID,
            self.sel_in(&c::JOB_GPU_INFO, shard),
            self.range()
        )
    }

    /// Every job series of the scope (the cluster's, when one is given): the selector whose
    /// instances [`Collector::jobs`] reads in rounds.
    pub(super) fn job_series(&self) -> String {
        self.series_matching("joulebook_job_.+")
    }

    /// The job counters a collection reads in its rounds: the CPU time only for one job (the
    /// `job` subcommand's efficiency line; no report section uses it); the core- and
    /// GPU-seconds only with `times` (else read afterwards for the jobs listed).
    fn job_counters(&self, times: bool) -> &'static [MetricDef] {
        match (&self.scope.job_id, times) {
            (Some(_), _) => &JOB_COUNTERS,
            (None, true) => &JOB_COUNTERS[..3],
            (None, false) => &JOB_COUNTERS[..1],
        }
    }

    /// A round's queries, answered in this order: last and base of each of `counters`, the (node, job) pairs whose energy went down, allocated CPUs and
    /// allocated memory (if `allocations`), job info, the scrapes of each GPU held by a job.
    ///
    /// In a report, a series whose last value is 0 is not returned (`> 0`): it adds nothing (a
    /// counter that went down to 0 is on a flagged pair, read from raw samples), and about a
    /// third of the rows are such zeros (the GPU energy and GPU-seconds of CPU jobs). The `job`
    /// subcommand keeps them: it shows every node a job was placed on.
    ///
    /// The second value says whether the `resets` pass is among them (not when every node of
    /// the round only grew since before the window).
    fn job_queries(
        &self,
        round: &Round,
        starts: &CounterStarts,
        counters: &[MetricDef],
        allocations: bool,
    ) -> (Vec<String>, bool) {
        let matcher = round.matcher();
        let shard = matcher.as_deref();
        let r = self.r();
        let lb = self.scope.lookback;
        let range = self.range();
        let series_by = [CLUSTER, INSTANCE, l::JOB_ID];
        let mut queries: Vec<String> = Vec::new();
        // Series as they are, not summed by the engine: grouping hundreds of thousands of
        // series by four labels cost VictoriaMetrics about a third of a job query; the rows
        // are keyed and added here (series differing only in other labels add up as a `sum by`
        // would).
        for m in counters {
            let nonzero = self.scope.job_id.is_none();
            queries.extend(self.increase_queries(&self.sel_in(m, shard), lb, nonzero));
        }
        // One pass over the energy counters finds every (node, job) whose counters went down:
        // a restart resets all the counters of one exporter at once, so the job's time
        // counters on that node are then taken from raw samples too. (One query over all the
        // families would be cheaper still, but Prometheus refuses `resets` over several
        // metric names: their label sets collide once the names are dropped.) Nodes whose
        // counters only grew since before the window are left out: nothing of theirs went down.
        let from = self.scope.period.start - lb;
        let pass = match round {
            // Every node listed is left out of the rest: none of its nodes has a marker.
            Round::Rest(_) => Resets::Matcher(matcher.clone().unwrap_or_default()),
            Round::Nodes(g) => Self::resets_scope(starts, from, Some(g), None),
            Round::All(_) => Self::resets_scope(starts, from, None, None),
        }
        .pass();
        if let Some(m) = &pass {
            queries.push(format!(
                "sum by ({}) (resets({}[{}s])) > 0",
                series_by.join(", "),
                self.sel_in(&c::JOB_ENERGY, m.as_deref()),
                r + lb
            ));
        }
        let gauges = [c::JOB_ALLOCATED_CPUS, c::JOB_ALLOCATED_MEMORY];
        for m in gauges.iter().filter(|_| allocations) {
            queries.push(format!("max_over_time({}[{range}])", self.sel_in(m, shard)));
        }
        queries.push(format!(
            "max by ({CLUSTER}, {}) (last_over_time({}[{range}]))",
            info_labels(),
            self.sel_in(&c::JOB_INFO, shard),
        ));
        queries.push(self.gpu_held_query(shard));
        (queries, pass.is_some())
    }

    /// The period's increase of every series of `m` on one (cluster, instance, job) from raw
    /// samples: the slow path for counters that went down.
    pub(super) fn slow_series(
        &self,
        m: &MetricDef,
        (cluster, job_id, instance): &PairKey,
    ) -> Result<Vec<(Labels, f64)>, PromError> {
        let (r, lb, end) = (self.r(), self.scope.lookback, self.scope.period.end);
        let sel = format!(
            "{}{{{CLUSTER}={},{INSTANCE}={},{}={}}}",
            m.name(),
            quote(cluster),
            quote(instance),
            l::JOB_ID,
            quote(job_id)
        );
        let base: BTreeMap<Labels, f64> = self
            .client
            .vector(&format!("last_over_time({sel}[{lb}s] offset {r}s)"), end)?
            .into_iter()
            .map(|s| (s.labels, s.value))
            .collect();
        let start = (end - r) as f64;
        let mut out = Vec::new();
        for series in self.client.matrix(&format!("{sel}[{r}s]"), end)? {
            let b = base.get(&series.labels).copied();
            let v = counter::increase(
                b,
                series
                    .samples
                    .iter()
                    .filter(|(t, _)| *t > start)
                    .map(|(_, v)| *v),
            );
            out.push((series.labels, v));
        }
        self.resets_seen.fetch_add(out.len(), Ordering::Relaxed);
        Ok(out)
    }

    /// The window holding a job's samples when no dates are given (the `job` subcommand): one
    /// query over [`JOB_SEARCH_SPAN_S`] before `now` says whether the job exists at all, then
    /// windows of [`JOB_SEARCH_STEP_S`] are counted back from `now` until the job's are found.
    /// Every query reads the job's series only (found by their `job_id` in the index), so a
    /// window without the job costs an index lookup. `None`: no sample of the job anywhere.
    pub fn locate_job(&self, now: i64) -> Result<Option<Period>, PromError> {
        let sel = self.sel(&c::JOB_CORE_SECONDS);
        let exists = self.client.vector(
            &format!("count(last_over_time({sel}[{JOB_SEARCH_SPAN_S}s]))"),
            now,
        )?;
        if exists.iter().all(|s| s.value <= 0.0) {
            return Ok(None);
        }
        let mut found: Option<Period> = None;
        let mut end = now;
        while end > now - JOB_SEARCH_SPAN_S {
            let start = end - JOB_SEARCH_STEP_S;
            let n = self.client.vector(
                &format!("count(count_over_time({sel}[{JOB_SEARCH_STEP_S}s]))"),
                end,
            )?;
            if n.iter().any(|s| s.value > 0.0) {
                found = Some(Period {
                    start,
                    end: found.map_or(end, |f| f.end),
                });
            } else if found.is_some() {
                break;
            }
            end = start;
        }
        Ok(found)
    }

    /// The first and last sample times of a job's core-seconds counter inside the scope's
    /// period (Unix seconds), to narrow the `job` subcommand's window to the job's life.
    pub fn job_lifetime(&self) -> Result<Option<(f64, f64)>, PromError> {
        let q = format!("{}[{}s]", self.sel(&c::JOB_CORE_SECONDS), self.r());
        let raw = self.client.matrix(&q, self.scope.period.end)?;
        let ts = raw.iter().flat_map(|s| s.samples.iter().map(|(t, _)| *t));
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for t in ts {
            lo = lo.min(t);
            hi = hi.max(t);
        }
        Ok((lo <= hi).then_some((lo, hi)))
    }
}

/// What [`Collector::jobs`] reads of each job besides its energy, info and GPU holdings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobReads {
    /// Each placement's allocated CPUs and memory. Only the per-job estimates use them, so a
    /// report whose estimates come from the owner counters leaves them out: two series a job
    /// fewer to scan (docs/PERFORMANCE.md, section 5).
    pub allocations: bool,
    /// Whose core- and GPU-seconds: `None`, every job's, in the rounds; `Some(n)`, only those
    /// of the jobs that a report listing its `n` first can show, read afterwards by job id
    /// ([`Collector::listed_times`]). A job is then met by its energy alone.
    pub times_listed: Option<usize>,
}

impl JobReads {
    /// Everything: what sums over the jobs need.
    pub const ALL: JobReads = JobReads {
        allocations: true,
        times_listed: None,
    };
}

/// The job counters read per series, in the order [`Jobs::add_counters`] takes their rows (the
/// CPU time last: [`Collector::job_counters`] leaves it out of reports).
const JOB_COUNTERS: [MetricDef; 4] = [
    c::JOB_ENERGY,
    c::JOB_CORE_SECONDS,
    c::JOB_GPU_SECONDS,
    c::JOB_CPU_SECONDS,
];

/// The labels of the job info series read, besides the cluster: all but the ids a report does
/// not show (SLUID, uid).
fn info_labels() -> String {
    c::JOB_INFO
        .labels
        .iter()
        .filter(|n| ![l::SLUID, l::UID].contains(n))
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of the placement on `instance` among a job's `places`, made empty if the job had
/// none there (the list grown by one only: a job has almost always one placement).
pub(super) fn placement_on(
    places: &mut Vec<Placement>,
    instance: &str,
    names: &mut Interner,
) -> usize {
    if let Some(at) = places.iter().position(|p| p.instance == instance) {
        return at;
    }
    places.reserve_exact(1);
    places.push(Placement {
        instance: names.get(instance),
        ..Placement::default()
    });
    places.len() - 1
}

/// Scrapes in which a job held each GPU, by (cluster, instance, GPU).
pub type GpuCounts = BTreeMap<(String, String, String), f64>;

/// Adds the rows of a [`Collector::gpu_held_query`] to `counts`.
pub(super) fn add_gpu_held(counts: &mut GpuCounts, rows: Vec<Sample>) {
    for s in rows {
        let k = (
            label(&s.labels, CLUSTER),
            label(&s.labels, INSTANCE),
            label(&s.labels, l::GPU_UUID),
        );
        *counts.entry(k).or_default() += s.value;
    }
}

/// The jobs and their placements met so far, over the rounds.
///
/// Memory: what a long period holds is about one [`JobData`] a job, so the jobs are kept in
/// one list (found through `index`) with their placements inside them (almost always one, its
/// `Vec` sized exactly), not in maps of jobs and of placements moved into a list at the end.
#[derive(Default)]
pub(super) struct Jobs {
    /// Cluster and node names, interned across rounds.
    names: Interner,
    jobs: Vec<JobData>,
    /// Each job's place in `jobs`, by cluster and id.
    index: HashMap<Name, HashMap<Name, usize>>,
    gpu_counts: GpuCounts,
    /// The (node, job) pairs whose energy counter went down, read from raw samples.
    flagged: BTreeSet<PairKey>,
}

impl Jobs {
    /// The job of a series (its cluster and id), if met.
    fn find(&self, lb: &Labels) -> Option<usize> {
        let by_id = self.index.get(labels_str(lb, CLUSTER))?;
        by_id.get(labels_str(lb, l::JOB_ID)).copied()
    }

    /// The job and placement of a series (its cluster, id and node), made empty if new.
    fn placement(&mut self, lb: &Labels) -> (&mut JobData, usize) {
        let i = match self.find(lb) {
            Some(i) => i,
            None => {
                let cluster = self.names.get(labels_str(lb, CLUSTER));
                let job_id = Name::from(labels_str(lb, l::JOB_ID));
                let by_id = self.index.entry(cluster.clone()).or_default();
                by_id.insert(job_id.clone(), self.jobs.len());
                self.jobs.push(JobData {
                    cluster,
                    job_id,
                    ..JobData::default()
                });
                self.jobs.len() - 1
            }
        };
        let job = &mut self.jobs[i];
        let at = placement_on(
            &mut job.placements,
            labels_str(lb, INSTANCE),
            &mut self.names,
        );
        (job, at)
    }

    /// The placement of a series already met, if any.
    fn placement_met(&mut self, lb: &Labels) -> Option<&mut Placement> {
        let i = self.find(lb)?;
        let instance = labels_str(lb, INSTANCE);
        self.jobs[i]
            .placements
            .iter_mut()
            .find(|p| p.instance == instance)
    }

    /// Adds each family's increase per series (rows in the order of [`JOB_COUNTERS`]).
    fn add_counters(&mut self, per_family: Vec<Vec<(Labels, f64)>>, note: impl Fn(String)) {
        for (f, rows) in per_family.into_iter().enumerate() {
            for (lb, v) in rows {
                let (job, at) = self.placement(&lb);
                match f {
                    0 => {
                        if !job.energy.add(labels_str(&lb, l::COMPONENT), v) {
                            note(format!(
                                "energy of unknown component {:?} ignored",
                                label(&lb, l::COMPONENT)
                            ));
                        }
                    }
                    1 => job.placements[at].core_seconds += v,
                    2 => job.placements[at].gpu_seconds += v,
                    _ => job.cpu_seconds += v,
                }
            }
        }
    }

    /// Adds the allocations of the placements already met.
    fn add_allocations(&mut self, alloc_cpus: Vec<Sample>, alloc_mem: Vec<Sample>) {
        // The largest of the series of a placement (one, unless scraped under two names).
        for s in alloc_cpus {
            if let Some(pl) = self.placement_met(&s.labels) {
                pl.alloc_cpus = pl.alloc_cpus.max(s.value);
            }
        }
        for s in alloc_mem {
            if let Some(pl) = self.placement_met(&s.labels) {
                let m = pl.alloc_memory_bytes.map_or(s.value, |m| m.max(s.value));
                pl.alloc_memory_bytes = Some(m);
            }
        }
    }

    /// Adds the info labels of the jobs already met.
    fn add_info(&mut self, info: Vec<Sample>) {
        for s in info {
            if let Some(i) = self.find(&s.labels) {
                let (names, j) = (&mut self.names, &mut self.jobs[i]);
                let mut get = |n: &str| names.get(labels_str(&s.labels, n));
                j.scheduler = get(l::SCHEDULER);
                j.user = get(l::USER);
                j.account = get(l::ACCOUNT);
                j.partition = get(l::PARTITION);
                j.job_name = get(l::JOB_NAME);
                j.metadata = get(l::METADATA);
            }
        }
    }
}
