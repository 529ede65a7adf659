//! PromQL: everything the report needs, aggregated by the server, in a bounded number of queries
//! (about 20 plus 2 per day and family of node counters, independent of the number of jobs).
//!
//! # Increase of a counter over the period `(S, E]`
//!
//! For one series, `value(last sample ≤ E) − value(last sample ≤ S)`, where a series with no
//! sample in `[S − lookback, S]` counts from zero (joulebook creates job counters at 0). Never
//! `increase()`, whose extrapolation to the window edges invents energy a job never used (up to
//! half a scrape interval at each end). For jobs, evaluated at `E` with `R = E − S`:
//!
//! ```text
//! sum by (cluster, instance, job_id, component) (last_over_time(X[R]))              # end
//! sum by (cluster, instance, job_id, component) (last_over_time(X[LB] offset R))    # start
//! sum by (cluster, instance, job_id) (resets(joulebook_job_joules_total[R+LB])) > 0 # restarts
//! ```
//!
//! The subtraction happens here, per series (a job crossing `S` has both rows; a job that
//! started later only the first). The (node, job) pairs whose energy counter went down (an
//! exporter restart) are computed from their raw samples by [`crate::counter::increase`], which
//! tells a resume from the state file from a reset to zero; one restart touches the jobs of one
//! node. The server reads each job series about twice.
//!
//! Node and unallocated energy are collected per day (the daily chart) and per series:
//! `last_over_time(X[1d])` and `resets(X[1d+LB]) > 0` at each day's end, chained here (each
//! day's base is the previous day's last value, so the days add up to the period exactly and a
//! gap longer than the lookback inside the period loses nothing); a day whose counter went down
//! is computed from that day's raw samples.

use crate::counter;
use crate::data::{Dataset, DayData, GpuData, JobData, NodeData, Placement};
use crate::period::Period;
use crate::prom::{Client, Labels, PromError, Sample};
use joulebook_common::{self as c, labels as l, MetricDef};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How far back the `job` subcommand looks for a job given without dates: ten years, beyond any
/// retention.
pub const JOB_SEARCH_SPAN_S: i64 = 3650 * 86_400;
/// The window counted at each step of that search.
pub const JOB_SEARCH_STEP_S: i64 = 31 * 86_400;

/// Label added by Prometheus to every scraped series: the node.
pub const INSTANCE: &str = "instance";
/// Optional external or target label naming the cluster.
pub const CLUSTER: &str = "cluster";

/// What to collect.
#[derive(Clone, Debug)]
pub struct Scope {
    pub period: Period,
    /// Seconds searched before `S` for a counter's starting value; longer than the scrape interval.
    pub lookback: i64,
    pub cluster: Option<String>,
    /// Collect this job only (the `job` subcommand).
    pub job_id: Option<String>,
    /// Concurrent queries.
    pub parallelism: usize,
}

/// Escapes a PromQL double-quoted string.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn label(labels: &Labels, name: &str) -> String {
    labels.get(name).map(str::to_string).unwrap_or_default()
}

pub struct Collector<'a> {
    client: &'a Client,
    scope: Scope,
    resets_seen: AtomicUsize,
    notes: Mutex<Vec<String>>,
    /// Components of the node counter series met.
    components: Mutex<BTreeSet<String>>,
}

impl<'a> Collector<'a> {
    pub fn new(client: &'a Client, scope: Scope) -> Collector<'a> {
        Collector {
            client,
            scope,
            resets_seen: AtomicUsize::new(0),
            notes: Mutex::new(Vec::new()),
            components: Mutex::new(BTreeSet::new()),
        }
    }

    fn r(&self) -> i64 {
        self.scope.period.seconds()
    }

    /// The period as a range for gauges and counts: one millisecond short, so that a sample
    /// exactly at the start is outside on every engine (Prometheus 2.x ranges are closed at the
    /// start, VictoriaMetrics' are open; the increases do not depend on it).
    fn range(&self) -> String {
        format!("{}ms", self.r() * 1000 - 1)
    }

    /// `name{cluster="…",job_id="…"}` with the scope's filters.
    fn sel(&self, m: &MetricDef) -> String {
        let mut ms = Vec::new();
        if let Some(cl) = &self.scope.cluster {
            ms.push(format!("{CLUSTER}={}", quote(cl)));
        }
        if let Some(j) = &self.scope.job_id {
            if m.labels.contains(&l::JOB_ID) {
                ms.push(format!("{}={}", l::JOB_ID, quote(j)));
            }
        }
        format!("{}{{{}}}", m.name(), ms.join(","))
    }

    fn at_end(&self, q: &str) -> Result<Vec<Sample>, PromError> {
        self.client.vector(q, self.scope.period.end)
    }

    fn note(&self, s: String) {
        if let Ok(mut n) = self.notes.lock() {
            if !n.contains(&s) {
                n.push(s);
            }
        }
    }

    /// Largest value of a gauge over the period, by labels.
    fn gauge_max(&self, m: &MetricDef, by: &[&str]) -> Result<Vec<Sample>, PromError> {
        self.at_end(&format!(
            "max by ({}) (max_over_time({}[{}]))",
            by.join(", "),
            self.sel(m),
            self.range()
        ))
    }

    /// Jobs with their energy, time and placements inside the period.
    ///
    /// Cost: the server reads each job series about twice (its last value over the period, and
    /// one shared `resets` pass over every job counter family); the subtraction of the starting
    /// value happens here, per series. Independent queries run in parallel.
    pub fn jobs(&self) -> Result<Vec<JobData>, PromError> {
        let r = self.r();
        let lb = self.scope.lookback;
        let range = self.range();
        let series_by = [CLUSTER, INSTANCE, l::JOB_ID];
        let counters = [
            c::JOB_ENERGY,
            c::JOB_CORE_SECONDS,
            c::JOB_GPU_SECONDS,
            c::JOB_CPU_SECONDS,
        ];
        let by_of = |m: &MetricDef| {
            let mut by = series_by.join(", ");
            if m.labels.contains(&l::COMPONENT) {
                by.push_str(", ");
                by.push_str(l::COMPONENT);
            }
            by
        };
        let mut queries: Vec<String> = Vec::new();
        for m in &counters {
            let (by, sel) = (by_of(m), self.sel(m));
            queries.push(format!("sum by ({by}) (last_over_time({sel}[{r}s]))"));
            queries.push(format!(
                "sum by ({by}) (last_over_time({sel}[{lb}s] offset {r}s))"
            ));
        }
        // One pass over the energy counters finds every (node, job) whose counters went down:
        // a restart resets all the counters of one exporter at once, so the job's time
        // counters on that node are then taken from raw samples too. (One query over all the
        // families would be cheaper still, but Prometheus refuses `resets` over several
        // metric names: their label sets collide once the names are dropped.)
        queries.push(format!(
            "sum by ({}) (resets({}[{}s])) > 0",
            series_by.join(", "),
            self.sel(&c::JOB_ENERGY),
            r + lb
        ));
        for m in [c::JOB_ALLOCATED_CPUS, c::JOB_ALLOCATED_MEMORY] {
            queries.push(format!(
                "max by ({}) (max_over_time({}[{range}]))",
                series_by.join(", "),
                self.sel(&m)
            ));
        }
        queries.push(format!(
            "max by ({CLUSTER}, {}, {}, {}, {}, {}, {}, {}) (last_over_time({}[{range}]))",
            l::JOB_ID,
            l::SCHEDULER,
            l::USER,
            l::ACCOUNT,
            l::PARTITION,
            l::JOB_NAME,
            l::METADATA,
            self.sel(&c::JOB_INFO),
        ));
        self.client.progress().stage("jobs", queries.len());
        let end = self.scope.period.end;
        let mut results = par_map(&queries, self.scope.parallelism, |q| {
            self.client.vector(q, end)
        })?
        .into_iter();
        let mut next = || results.next().unwrap_or_default();

        // Per series: last − base, and the flagged series from raw samples.
        let mut per_family: Vec<Vec<(Labels, f64)>> = Vec::new();
        let lasts: Vec<(Vec<Sample>, Vec<Sample>)> =
            counters.iter().map(|_| (next(), next())).collect();
        let flagged: BTreeSet<(String, String, String)> =
            next().into_iter().map(|s| place_key(&s.labels)).collect();
        for (m, (last, base)) in counters.iter().zip(lasts) {
            let base: BTreeMap<Labels, f64> =
                base.into_iter().map(|s| (s.labels, s.value)).collect();
            let mut rows: Vec<(Labels, f64)> = last
                .into_iter()
                .filter(|s| !flagged.contains(&place_key(&s.labels)))
                .map(|s| {
                    let b = base.get(&s.labels).copied();
                    (s.labels, counter::increase(b, [s.value]))
                })
                .collect();
            for k in &flagged {
                rows.extend(self.slow_series(m, k)?);
            }
            per_family.push(rows);
        }
        let alloc_cpus = next();
        let alloc_mem = next();
        let info = next();

        let mut jobs: BTreeMap<(String, String), JobData> = BTreeMap::new();
        let mut places: BTreeMap<(String, String, String), Placement> = BTreeMap::new();
        for (f, rows) in per_family.into_iter().enumerate() {
            for (lb, v) in rows {
                let k = place_key(&lb);
                let job = jobs
                    .entry((k.0.clone(), k.1.clone()))
                    .or_insert_with(|| JobData {
                        cluster: k.0.clone(),
                        job_id: k.1.clone(),
                        ..JobData::default()
                    });
                let pl = places.entry(k.clone()).or_insert_with(|| Placement {
                    instance: k.2.clone(),
                    ..Placement::default()
                });
                match f {
                    0 => {
                        if !job.energy.add(&label(&lb, l::COMPONENT), v) {
                            self.note(format!(
                                "energy of unknown component {:?} ignored",
                                label(&lb, l::COMPONENT)
                            ));
                        }
                    }
                    1 => pl.core_seconds += v,
                    2 => pl.gpu_seconds += v,
                    _ => job.cpu_seconds += v,
                }
            }
        }
        for s in alloc_cpus {
            if let Some(pl) = places.get_mut(&place_key(&s.labels)) {
                pl.alloc_cpus = s.value;
            }
        }
        for s in alloc_mem {
            if let Some(pl) = places.get_mut(&place_key(&s.labels)) {
                pl.alloc_memory_bytes = Some(s.value);
            }
        }
        for ((cl, id, _), pl) in places {
            if let Some(j) = jobs.get_mut(&(cl, id)) {
                j.core_seconds += pl.core_seconds;
                j.gpu_seconds += pl.gpu_seconds;
                j.placements.push(pl);
            }
        }
        for s in info {
            let k = (label(&s.labels, CLUSTER), label(&s.labels, l::JOB_ID));
            if let Some(j) = jobs.get_mut(&k) {
                j.scheduler = label(&s.labels, l::SCHEDULER);
                j.user = label(&s.labels, l::USER);
                j.account = label(&s.labels, l::ACCOUNT);
                j.partition = label(&s.labels, l::PARTITION);
                j.job_name = label(&s.labels, l::JOB_NAME);
                j.metadata = label(&s.labels, l::METADATA);
            }
        }
        // A job whose series only lingered through its grace period did nothing in the period.
        Ok(jobs
            .into_values()
            .filter(|j| j.energy.total() > 0.0 || j.core_seconds > 0.0)
            .collect())
    }

    /// The period's increase of every series of `m` on one (cluster, instance, job) from raw
    /// samples: the slow path for counters that went down.
    fn slow_series(
        &self,
        m: &MetricDef,
        (cluster, job_id, instance): &(String, String, String),
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

    /// Node facts (TDP, cores, memory, hostname) by (cluster, instance).
    pub fn node_facts(&self) -> Result<BTreeMap<(String, String), NodeData>, PromError> {
        self.client.progress().stage("node facts", 4);
        let by = [CLUSTER, INSTANCE];
        let mut nodes: BTreeMap<(String, String), NodeData> = BTreeMap::new();
        for (m, f) in [
            (c::NODE_CPU_TDP, 0usize),
            (c::NODE_PHYSICAL_CORES, 1),
            (c::NODE_MEMORY, 2),
        ] {
            for s in self.gauge_max(&m, &by)? {
                let n = node_entry(&mut nodes, &s.labels);
                let v = Some(s.value);
                match f {
                    0 => n.cpu_tdp_watts = v,
                    1 => n.physical_cores = v,
                    _ => n.memory_bytes = v,
                }
            }
        }
        // The hostname each exporter publishes: the node's name in the reports.
        for s in self.gauge_max(&c::NODE_INFO, &[CLUSTER, INSTANCE, l::HOSTNAME])? {
            if let Some(h) = s.labels.get(l::HOSTNAME).filter(|h| !h.is_empty()) {
                node_entry(&mut nodes, &s.labels).hostname = Some(h.to_string());
            }
        }
        Ok(nodes)
    }

    /// GPUs with their power limits and how often a job held them.
    pub fn gpus(&self) -> Result<Vec<GpuData>, PromError> {
        self.client.progress().stage("GPUs", 4);
        let r = self.range();
        let by = [CLUSTER, INSTANCE, l::GPU_UUID];
        let mut gpus: BTreeMap<(String, String, String), GpuData> = BTreeMap::new();
        let k = |lb: &Labels| {
            (
                label(lb, CLUSTER),
                label(lb, INSTANCE),
                label(lb, l::GPU_UUID),
            )
        };
        let info = self.at_end(&format!(
            "max by ({CLUSTER}, {INSTANCE}, {}, {}) (max_over_time({}[{r}]))",
            l::GPU_UUID,
            l::MODEL,
            self.sel(&c::GPU_INFO)
        ))?;
        for s in info {
            let key = k(&s.labels);
            gpus.insert(
                key.clone(),
                GpuData {
                    cluster: key.0,
                    instance: key.1,
                    gpu_uuid: key.2,
                    model: label(&s.labels, l::MODEL),
                    ..GpuData::default()
                },
            );
        }
        for s in self.gauge_max(&c::GPU_POWER_LIMIT, &by)? {
            if let Some(g) = gpus.get_mut(&k(&s.labels)) {
                g.power_limit_watts = Some(s.value);
            }
        }
        let count = |m: &MetricDef| {
            self.at_end(&format!(
                "sum by ({}) (count_over_time({}[{r}]))",
                by.join(", "),
                self.sel(m)
            ))
        };
        for s in count(&c::GPU_INFO)? {
            if let Some(g) = gpus.get_mut(&k(&s.labels)) {
                g.samples_present = s.value;
            }
        }
        for s in count(&c::JOB_GPU_INFO)? {
            if let Some(g) = gpus.get_mut(&k(&s.labels)) {
                g.samples_allocated = s.value;
            }
        }
        Ok(gpus.into_values().collect())
    }

    /// Node and unallocated energy per node and per day, chained across days (module doc).
    pub fn node_energy(
        &self,
        nodes: &mut BTreeMap<(String, String), NodeData>,
    ) -> Result<Vec<DayData>, PromError> {
        let days = self.scope.period.days();
        let mut out: Vec<DayData> = days
            .iter()
            .map(|d| DayData {
                period: *d,
                ..DayData::default()
            })
            .collect();
        for (fam, unalloc) in [(c::NODE_ENERGY, false), (c::UNALLOCATED_ENERGY, true)] {
            let per_series = self.chained(&fam, &days)?;
            for (labels, per_day) in per_series {
                let comp = label(&labels, l::COMPONENT);
                if !unalloc {
                    self.seen_component(&comp);
                }
                let n = node_entry(nodes, &labels);
                let mut known = true;
                for (d, v) in out.iter_mut().zip(&per_day) {
                    let (target, node_target) = if unalloc {
                        (&mut d.unallocated, &mut n.unallocated)
                    } else {
                        (&mut d.energy, &mut n.energy)
                    };
                    known &= target.add(&comp, *v);
                    node_target.add(&comp, *v);
                }
                if !known {
                    self.note(format!("energy of unknown component {comp:?} ignored"));
                }
            }
        }
        Ok(out)
    }

    /// Per series of `m`, its increase in each of `days`.
    fn chained(
        &self,
        m: &MetricDef,
        days: &[Period],
    ) -> Result<Vec<(Labels, Vec<f64>)>, PromError> {
        let lb = self.scope.lookback;
        let sel = self.sel(m);
        let p = self.client.progress();
        p.stage(&format!("{} by day", m.name()), 1 + 2 * days.len());
        let base: BTreeMap<Labels, f64> = self
            .client
            .vector(
                &format!("last_over_time({sel}[{lb}s])"),
                self.scope.period.start,
            )?
            .into_iter()
            .map(|s| (s.labels, s.value))
            .collect();
        struct Day {
            last: BTreeMap<Labels, f64>,
            reset: BTreeSet<Labels>,
        }
        let per_day = par_map(days, self.scope.parallelism, |d| {
            let len = d.seconds();
            let last = self
                .client
                .vector(&format!("last_over_time({sel}[{len}s])"), d.end)?
                .into_iter()
                .map(|s| (s.labels, s.value))
                .collect();
            let reset = self
                .client
                .vector(&format!("resets({sel}[{}s]) > 0", len + lb), d.end)?
                .into_iter()
                .map(|s| s.labels)
                .collect();
            Ok(Day { last, reset })
        })?;
        let mut keys: BTreeSet<Labels> = base.keys().cloned().collect();
        for d in &per_day {
            keys.extend(d.last.keys().cloned());
        }
        let mut out = Vec::new();
        for k in keys {
            let mut prev = base.get(&k).copied();
            let mut row = Vec::with_capacity(days.len());
            for (d, day) in days.iter().zip(&per_day) {
                let Some(&last) = day.last.get(&k) else {
                    row.push(0.0);
                    continue;
                };
                let v = if day.reset.contains(&k) {
                    self.resets_seen.fetch_add(1, Ordering::Relaxed);
                    let raw = self.client.matrix(
                        &format!("{}[{}s]", exact_selector(m, &k), d.seconds()),
                        d.end,
                    )?;
                    let start = d.start as f64;
                    counter::increase(
                        prev,
                        raw.iter()
                            .flat_map(|s| s.samples.iter())
                            .filter(|(t, _)| *t > start)
                            .map(|(_, v)| *v),
                    )
                } else {
                    counter::increase(prev, [last])
                };
                row.push(v);
                prev = Some(last);
            }
            out.push((k, row));
        }
        Ok(out)
    }

    /// Everything a report needs.
    pub fn dataset(&self) -> Result<Dataset, PromError> {
        let mut nodes = self.node_facts()?;
        let days = self.node_energy(&mut nodes)?;
        let gpus = self.gpus()?;
        let jobs = self.jobs()?;
        self.client.progress().finish();
        Ok(Dataset {
            period: Some(self.scope.period),
            jobs,
            nodes: nodes.into_values().collect(),
            gpus,
            days,
            notes: self.finish_notes(),
            unmeasured: self.unmeasured(),
        })
    }

    /// One job (the `job` subcommand): its figures and the facts of the nodes it ran on.
    pub fn job_dataset(&self) -> Result<Dataset, PromError> {
        let mut nodes = self.node_facts()?;
        let jobs = self.jobs()?;
        let instances: BTreeSet<&str> = jobs
            .iter()
            .flat_map(|j| j.placements.iter().map(|p| p.instance.as_str()))
            .collect();
        // Node energy over the window, for the CodeCarbon-style whole-node figure.
        for (lb, v) in self.chained(&c::NODE_ENERGY, &[self.scope.period])? {
            if instances.contains(label(&lb, INSTANCE).as_str()) {
                self.seen_component(&label(&lb, l::COMPONENT));
                let total = v.iter().sum();
                node_entry(&mut nodes, &lb)
                    .energy
                    .add(&label(&lb, l::COMPONENT), total);
            }
        }
        nodes.retain(|(_, i), _| instances.contains(i.as_str()));
        // GPU power limits of those nodes, for the Green Algorithms and ML CO2 estimates.
        let mut gpus = self.gpus()?;
        gpus.retain(|g| instances.contains(g.instance.as_str()));
        self.client.progress().finish();
        Ok(Dataset {
            period: Some(self.scope.period),
            jobs,
            nodes: nodes.into_values().collect(),
            gpus,
            days: Vec::new(),
            notes: self.finish_notes(),
            unmeasured: self.unmeasured(),
        })
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

    fn seen_component(&self, comp: &str) {
        if let Ok(mut s) = self.components.lock() {
            s.insert(comp.to_string());
        }
    }

    /// Components no node series had, if any node series was met.
    fn unmeasured(&self) -> Vec<String> {
        let seen = self
            .components
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if seen.is_empty() {
            return Vec::new();
        }
        c::Component::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|c| !seen.contains(*c))
            .map(str::to_string)
            .collect()
    }

    fn finish_notes(&self) -> Vec<String> {
        let mut notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        let r = self.resets_seen.load(Ordering::Relaxed);
        if r > 0 {
            notes.push(format!(
                "{r} counter series of nodes whose exporter restarted in the period were computed from raw samples, telling a resume from saved state from a reset to zero."
            ));
        }
        notes
    }
}

/// (cluster, job_id, instance) of a series' labels.
fn place_key(lb: &Labels) -> (String, String, String) {
    (
        label(lb, CLUSTER),
        label(lb, l::JOB_ID),
        label(lb, INSTANCE),
    )
}

fn node_entry<'m>(
    nodes: &'m mut BTreeMap<(String, String), NodeData>,
    lb: &Labels,
) -> &'m mut NodeData {
    let k = (label(lb, CLUSTER), label(lb, INSTANCE));
    nodes.entry(k.clone()).or_insert_with(|| NodeData {
        cluster: k.0,
        instance: k.1,
        ..NodeData::default()
    })
}

/// A selector matching exactly one series: its name and every label.
fn exact_selector(m: &MetricDef, labels: &Labels) -> String {
    let mut ms: Vec<String> = vec![format!("__name__={}", quote(&m.name()))];
    for (k, v) in labels.iter() {
        ms.push(format!("{k}={}", quote(v)));
    }
    format!("{{{}}}", ms.join(","))
}

/// Runs `f` on every item with at most `threads` in flight; the first error wins.
pub fn par_map<T: Sync, R: Send, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R, E>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                let failed = r.is_err();
                if let Ok(mut res) = results.lock() {
                    res[i] = Some(r);
                }
                if failed {
                    // Stop handing out work; the threads finish what they hold.
                    next.store(items.len(), Ordering::Relaxed);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::with_capacity(items.len());
    let mut first_err = None;
    for r in results {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {}
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn par_map_keeps_order_and_reports_errors() {
        let v: Vec<u32> = (0..50).collect();
        let r: Result<Vec<u32>, ()> = par_map(&v, 4, |x| Ok(x * 2));
        assert_eq!(r.unwrap(), v.iter().map(|x| x * 2).collect::<Vec<_>>());
        let r: Result<Vec<u32>, u32> = par_map(&v, 3, |x| if *x == 7 { Err(7) } else { Ok(*x) });
        assert_eq!(r, Err(7));
    }
}
