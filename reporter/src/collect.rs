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
//! node. The server reads each job series once, and the energy series of nodes whose counters may
//! have gone down (see below) a second time.
//!
//! Node and unallocated energy are collected per day (the daily chart) and per series:
//! `resets(X[1d+LB])` (the day's one pass over the samples: the series present, and those that
//! went down) and `last_over_time(X[LB])` at each day's end (read near the end only; a series
//! silent there is read over the day, its node's series only), chained here (each
//! day's base is the previous day's last value, so the days add up to the period exactly and a
//! gap longer than the lookback inside the period loses nothing); a day whose counter went down
//! is computed from that day's raw samples.
//!
//! The `resets` passes (job counters over the period, node counters over each day) read every
//! sample; they are skipped for the nodes whose restart marker says their counters only grew
//! since before the window ([`crate::starts`]): their `last − base` is exact. On a day, a skipped
//! node's series missing near the day's end are those known at the period's start or at any
//! day's end (an exporter keeps publishing a series once it exists), read over that day.

use crate::counter;
use crate::data::{Dataset, DayData, GpuData, Interner, JobData, Name, NodeData, Placement};
use crate::period::{Period, Zone};
use crate::prom::{Client, Labels, PromError, Sample};
use crate::starts::CounterStarts;
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
    /// The site's time zone: the days are its local days.
    pub zone: Zone,
    /// Seconds searched before `S` for a counter's starting value; longer than the scrape interval.
    pub lookback: i64,
    pub cluster: Option<String>,
    /// Collect this job only (the `job` subcommand).
    pub job_id: Option<String>,
    /// Concurrent queries.
    pub parallelism: usize,
    /// Nodes whose job series one round of job queries reads (`--nodes-per-query`); `None`:
    /// [`auto_nodes_per_query`].
    pub nodes_per_query: Option<usize>,
}

/// Node-days of job series that one round of job queries reads when `--nodes-per-query` is not
/// given: at 25 jobs a node a day about 37,000 jobs, whose job-energy answer (about 125 bytes a
/// row, a row per component) stays well under the default 64 MiB cap on one answer.
pub const NODE_DAYS_PER_QUERY: i64 = 1_500;

/// Nodes per round of job queries for a period of `seconds`: all of them (one round, the queries
/// unchanged) up to [`NODE_DAYS_PER_QUERY`] node-days, else as many as fit it, at least one.
pub fn auto_nodes_per_query(nodes: usize, seconds: i64) -> usize {
    let days = (seconds + 86_399) / 86_400;
    let per = (NODE_DAYS_PER_QUERY / days.max(1)).max(1) as usize;
    if nodes <= per {
        usize::MAX
    } else {
        per
    }
}

/// Escapes a string for an RE2 regular expression (then quoted with [`quote`]).
fn regex_literal(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            o.push('\\');
        }
        o.push(ch);
    }
    o
}

/// The instance matchers of the rounds of job queries: `instances` in groups of `per`, then one
/// round for every other instance (jobs on a node whose facts are missing), so the rounds
/// partition the job series whatever the list holds. One round, no matcher, when `per` covers
/// them all.
pub fn shard_matchers(instances: &[String], per: usize) -> Vec<Option<String>> {
    if instances.len() <= per {
        return vec![None];
    }
    let alt = |group: &[String]| {
        group
            .iter()
            .map(|i| regex_literal(i))
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut out: Vec<Option<String>> = instances
        .chunks(per.max(1))
        .map(|g| Some(format!("{INSTANCE}=~{}", quote(&alt(g)))))
        .collect();
    out.push(Some(format!("{INSTANCE}!~{}", quote(&alt(instances)))));
    out
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
    labels_str(labels, name).to_string()
}

fn labels_str<'l>(labels: &'l Labels, name: &str) -> &'l str {
    labels.get(name).unwrap_or_default()
}

/// (cluster, job_id, instance) of a job's series on one node.
type PlaceKey = (Name, Name, Name);

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
        self.sel_in(m, None)
    }

    /// The matcher leaving out the nodes whose counters only grew since `from` (no `resets`
    /// pass needed), with `shard`'s; `None` when both are empty.
    fn unless_grown(starts: &CounterStarts, from: i64, shard: Option<&str>) -> Option<String> {
        let grown = starts.grown_since(from);
        let skip = (!grown.is_empty()).then(|| {
            let alt: Vec<String> = grown.iter().map(|i| regex_literal(i)).collect();
            format!("{INSTANCE}!~{}", quote(&alt.join("|")))
        });
        match (shard, skip) {
            (Some(a), Some(b)) => Some(format!("{a},{b}")),
            (a, b) => a.map(str::to_string).or(b),
        }
    }

    /// The restart marker of every node near the period's end ([`crate::starts`]).
    pub fn counter_starts(
        &self,
        nodes: &BTreeMap<(String, String), NodeData>,
    ) -> Result<CounterStarts, PromError> {
        let rows = self.at_end(&format!(
            "max by ({CLUSTER}, {INSTANCE}) (last_over_time({}[{}s]))",
            self.sel(&c::COUNTERS_START_TIME),
            self.scope.lookback
        ))?;
        Ok(CounterStarts::new(
            rows.into_iter().map(|s| {
                (
                    (label(&s.labels, CLUSTER), label(&s.labels, INSTANCE)),
                    s.value,
                )
            }),
            nodes.keys().cloned(),
        ))
    }

    /// [`Collector::sel`] with one more matcher (a round of job queries: [`shard_matchers`]).
    fn sel_in(&self, m: &MetricDef, shard: Option<&str>) -> String {
        let mut ms: Vec<String> = shard.map(str::to_string).into_iter().collect();
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
    /// Cost: the server reads each job series once (its last value over the period), and the
    /// energy series of the nodes not left out by `starts` a second time (the `resets` pass);
    /// the subtraction of the starting value happens here, per series. Independent queries run
    /// in parallel.
    ///
    /// Rounds: the job series of `instances` (the nodes met, see [`shard_matchers`]) are read a
    /// group of nodes at a time when the period holds more than [`NODE_DAYS_PER_QUERY`] node-days,
    /// so that no answer grows with the cluster and only one round's answers are held at once;
    /// every series of a (node, job) falls in one round, and a job on several nodes sums its
    /// placements across rounds as it does within one.
    pub fn jobs(
        &self,
        instances: &[String],
        starts: &CounterStarts,
    ) -> Result<Vec<JobData>, PromError> {
        let per = match (&self.scope.job_id, self.scope.nodes_per_query) {
            (Some(_), _) => usize::MAX,
            (None, Some(n)) => n.max(1),
            (None, None) => auto_nodes_per_query(instances.len(), self.r()),
        };
        let mut names = Interner::default();
        let mut jobs: BTreeMap<(Name, Name), JobData> = BTreeMap::new();
        let mut places: BTreeMap<PlaceKey, Placement> = BTreeMap::new();
        for shard in shard_matchers(instances, per) {
            self.jobs_round(shard.as_deref(), starts, &mut names, &mut jobs, &mut places)?;
        }
        for ((cl, id, _), pl) in places {
            if let Some(j) = jobs.get_mut(&(cl, id)) {
                j.core_seconds += pl.core_seconds;
                j.gpu_seconds += pl.gpu_seconds;
                j.placements.push(pl);
            }
        }
        // A job whose series only lingered through its grace period did nothing in the period.
        // Moved out one by one (the map's nodes freed as they go) into a list sized once, not
        // grown by doubling beside the map.
        let mut out = Vec::with_capacity(jobs.len());
        while let Some((_, mut j)) = jobs.pop_first() {
            if j.energy.total() > 0.0 || j.core_seconds > 0.0 {
                j.placements.shrink_to_fit();
                out.push(j);
            }
        }
        out.shrink_to_fit();
        Ok(out)
    }

    /// One round of [`Collector::jobs`]: the job series matching `shard` (all when `None`),
    /// added to `jobs` and `places`.
    fn jobs_round(
        &self,
        shard: Option<&str>,
        starts: &CounterStarts,
        names: &mut Interner,
        jobs: &mut BTreeMap<(Name, Name), JobData>,
        places: &mut BTreeMap<PlaceKey, Placement>,
    ) -> Result<(), PromError> {
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
            let (by, sel) = (by_of(m), self.sel_in(m, shard));
            queries.push(format!("sum by ({by}) (last_over_time({sel}[{r}s]))"));
            queries.push(format!(
                "sum by ({by}) (last_over_time({sel}[{lb}s] offset {r}s))"
            ));
        }
        // One pass over the energy counters finds every (node, job) whose counters went down:
        // a restart resets all the counters of one exporter at once, so the job's time
        // counters on that node are then taken from raw samples too. (One query over all the
        // families would be cheaper still, but Prometheus refuses `resets` over several
        // metric names: their label sets collide once the names are dropped.) Nodes whose
        // counters only grew since before the window are left out: nothing of theirs went down.
        let unless = Self::unless_grown(starts, self.scope.period.start - lb, shard);
        queries.push(format!(
            "sum by ({}) (resets({}[{}s])) > 0",
            series_by.join(", "),
            self.sel_in(&c::JOB_ENERGY, unless.as_deref()),
            r + lb
        ));
        for m in [c::JOB_ALLOCATED_CPUS, c::JOB_ALLOCATED_MEMORY] {
            queries.push(format!(
                "max by ({}) (max_over_time({}[{range}]))",
                series_by.join(", "),
                self.sel_in(&m, shard)
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
            self.sel_in(&c::JOB_INFO, shard),
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

        // Job ids repeat across this round's answers only: interned for the round.
        let mut ids = Interner::default();
        let mut key = |lb: &Labels| -> PlaceKey {
            (
                names.get(labels_str(lb, CLUSTER)),
                ids.get(labels_str(lb, l::JOB_ID)),
                names.get(labels_str(lb, INSTANCE)),
            )
        };
        for (f, rows) in per_family.into_iter().enumerate() {
            for (lb, v) in rows {
                let k = key(&lb);
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
            if let Some(pl) = places.get_mut(&key(&s.labels)) {
                pl.alloc_cpus = s.value;
            }
        }
        for s in alloc_mem {
            if let Some(pl) = places.get_mut(&key(&s.labels)) {
                pl.alloc_memory_bytes = Some(s.value);
            }
        }
        for s in info {
            let k = (
                names.get(labels_str(&s.labels, CLUSTER)),
                Name::from(labels_str(&s.labels, l::JOB_ID)),
            );
            if let Some(j) = jobs.get_mut(&k) {
                let mut get = |n: &str| names.get(labels_str(&s.labels, n));
                j.scheduler = get(l::SCHEDULER);
                j.user = get(l::USER);
                j.account = get(l::ACCOUNT);
                j.partition = get(l::PARTITION);
                j.job_name = get(l::JOB_NAME);
                j.metadata = get(l::METADATA);
            }
        }
        Ok(())
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

    /// The selector of the devices of the AMD and Intel GPU sources.
    fn drm_gpu_devices(&self) -> String {
        let sel = self.sel(&c::ENERGY_DEVICE_INFO);
        let inner = sel
            .strip_suffix('}')
            .and_then(|s| s.split_once('{'))
            .map_or("", |(_, m)| m);
        let sep = if inner.is_empty() { "" } else { "," };
        format!(
            "{}{{{inner}{sep}{}=~\"amdgpu|intel_gpu\"}}",
            c::ENERGY_DEVICE_INFO.name(),
            l::SOURCE,
        )
    }

    /// `q` with its `device` label copied to `gpu_uuid`.
    fn device_as_gpu(q: &str) -> String {
        format!(
            "label_replace({q}, \"{}\", \"$1\", \"{}\", \"(.*)\")",
            l::GPU_UUID,
            l::DEVICE
        )
    }

    /// GPUs (NVIDIA's, then AMD's and Intel's) with their power limits and how often a job
    /// held them.
    pub fn gpus(&self) -> Result<Vec<GpuData>, PromError> {
        self.client.progress().stage("GPUs", 6);
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
        // AMD and Intel GPUs: the devices of their sources, `device` as their `gpu_uuid` (the
        // label their energy and `joulebook_job_gpu_info` carry).
        let devices = self.drm_gpu_devices();
        for s in self.at_end(&Self::device_as_gpu(&format!(
            "max by ({CLUSTER}, {INSTANCE}, {}, {}) (max_over_time({devices}[{r}]))",
            l::DEVICE,
            l::MODEL,
        )))? {
            let key = k(&s.labels);
            gpus.entry(key.clone()).or_insert_with(|| GpuData {
                cluster: key.0,
                instance: key.1,
                gpu_uuid: key.2,
                model: label(&s.labels, l::MODEL),
                ..GpuData::default()
            });
        }
        for s in self.at_end(&Self::device_as_gpu(&format!(
            "sum by ({CLUSTER}, {INSTANCE}, {}) (count_over_time({devices}[{r}]))",
            l::DEVICE
        )))? {
            if let Some(g) = gpus.get_mut(&k(&s.labels)) {
                g.samples_present = s.value;
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
        starts: &CounterStarts,
    ) -> Result<Vec<DayData>, PromError> {
        let days = self.scope.zone.days(&self.scope.period);
        let mut out: Vec<DayData> = days
            .iter()
            .map(|d| DayData {
                period: *d,
                ..DayData::default()
            })
            .collect();
        for (fam, unalloc) in [(c::NODE_ENERGY, false), (c::UNALLOCATED_ENERGY, true)] {
            let per_series = self.chained(&fam, &days, starts)?;
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

    /// Per series of `m`, its increase in each of `days`; the `resets` pass skips the nodes
    /// whose counters only grew since before the day (`starts`).
    fn chained(
        &self,
        m: &MetricDef,
        days: &[Period],
        starts: &CounterStarts,
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
        /// A day's `resets` answer (the series seen, and how often each went down) and last
        /// values near its end.
        struct NearEnd {
            seen: Vec<(Labels, f64)>,
            last: BTreeMap<Labels, f64>,
        }
        let near_end = par_map(days, self.scope.parallelism, |d| {
            let len = d.seconds();
            // The one pass over the day's samples: which series had samples (and which went
            // down), every one of them in the answer, 0 when it did not go down; not for the
            // nodes whose counters only grew since before the day.
            let unless = Self::unless_grown(starts, d.start - lb, None);
            let seen: Vec<(Labels, f64)> = self
                .client
                .vector(
                    &format!(
                        "resets({}[{}s])",
                        self.sel_in(m, unless.as_deref()),
                        len + lb
                    ),
                    d.end,
                )?
                .into_iter()
                .map(|s| (s.labels, s.value))
                .collect();
            // Every series' last value, read near the day's end only.
            let near = lb.min(len);
            let last: BTreeMap<Labels, f64> = self
                .client
                .vector(&format!("last_over_time({sel}[{near}s])"), d.end)?
                .into_iter()
                .map(|s| (s.labels, s.value))
                .collect();
            Ok(NearEnd { seen, last })
        })?;
        // The series of the nodes without a pass that a day may hold: those known anywhere.
        let mut known: BTreeSet<Labels> = base.keys().cloned().collect();
        for n in &near_end {
            known.extend(n.last.keys().cloned());
        }
        let items: Vec<(&Period, NearEnd)> = days.iter().zip(near_end).collect();
        let per_day = par_map(
            &items,
            self.scope.parallelism,
            |(d, NearEnd { seen, last })| {
                // A series silent near the day's end (its node down or gone) is read over the
                // whole day, its node's series only.
                let (len, near, from) = (d.seconds(), lb.min(d.seconds()), d.start - lb);
                let mut last = last.clone();
                let silent: BTreeSet<String> = seen
                    .iter()
                    .map(|(k, _)| k)
                    .chain(
                        known
                            .iter()
                            .filter(|k| starts.has_grown_since(&label(k, INSTANCE), from)),
                    )
                    .filter(|k| !last.contains_key(*k))
                    .map(|k| regex_literal(&label(k, INSTANCE)))
                    .collect();
                if !silent.is_empty() && near < len {
                    let alt = silent.into_iter().collect::<Vec<_>>().join("|");
                    let only = format!("{INSTANCE}=~{}", quote(&alt));
                    let whole = self.sel_in(m, Some(&only));
                    for s in self
                        .client
                        .vector(&format!("last_over_time({whole}[{len}s])"), d.end)?
                    {
                        last.entry(s.labels).or_insert(s.value);
                    }
                }
                let reset = seen
                    .iter()
                    .filter(|(_, v)| *v > 0.0)
                    .map(|(k, _)| k.clone())
                    .collect();
                Ok(Day { last, reset })
            },
        )?;
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
        let starts = self.counter_starts(&nodes)?;
        let days = self.node_energy(&mut nodes, &starts)?;
        let gpus = self.gpus()?;
        // Each name once, though several clusters may use it: a round matches it in all of them.
        let instances: Vec<String> = nodes
            .keys()
            .map(|(_, i)| i.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let jobs = self.jobs(&instances, &starts)?;
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
        let jobs = self.jobs(&[], &CounterStarts::default())?;
        let instances: BTreeSet<&str> = jobs
            .iter()
            .flat_map(|j| j.placements.iter().map(|p| p.instance.as_str()))
            .collect();
        // Node energy over the window, for the CodeCarbon-style whole-node figure.
        for (lb, v) in self.chained(
            &c::NODE_ENERGY,
            &[self.scope.period],
            &CounterStarts::default(),
        )? {
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
    fn rounds_of_job_queries_partition_the_instances() {
        let names: Vec<String> = ["a.x:9977", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shard_matchers(&names, 5), vec![None]);
        assert_eq!(shard_matchers(&names, usize::MAX), vec![None]);
        let m = shard_matchers(&names, 2);
        assert_eq!(
            m,
            vec![
                Some(r#"instance=~"a\\.x:9977|b""#.to_string()),
                Some(r#"instance=~"c|d""#.to_string()),
                Some(r#"instance=~"e""#.to_string()),
                Some(r#"instance!~"a\\.x:9977|b|c|d|e""#.to_string()),
            ]
        );
        assert_eq!(regex_literal("n(1)|[2]*"), r"n\(1\)\|\[2\]\*");
    }

    #[test]
    fn rounds_follow_node_days() {
        // A month of 40 nodes is one round; of 1,000 nodes, rounds of 48; a year, of 4.
        assert_eq!(auto_nodes_per_query(40, 31 * 86_400), usize::MAX);
        assert_eq!(auto_nodes_per_query(1_000, 31 * 86_400), 48);
        assert_eq!(auto_nodes_per_query(1_000, 365 * 86_400), 4);
        assert_eq!(auto_nodes_per_query(10, 3_650 * 86_400), 1);
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
