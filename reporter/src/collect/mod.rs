//! PromQL: everything the report needs, aggregated by the server, in a bounded number of queries
//! (about 30 plus 2 per day and family of node counters, independent of the number of jobs).
//!
//! # Increase of a counter over the period `(S, E]`
//!
//! For one series, `value(last sample ≤ E) − value(last sample ≤ S)`, where a series with no
//! sample in `[S − lookback, S]` counts from zero (joulebook creates job counters at 0). Never
//! `increase()`, whose extrapolation to the window edges invents energy a job never used (up to
//! half a scrape interval at each end). For jobs, evaluated at `E` with `R = E − S`:
//!
//! ```text
//! last_over_time(X[R]) > 0                                                         # end
//! last_over_time(X[LB] offset R)                                                     # start
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

mod counts;
mod gpus;
mod jobs;
mod listed;
mod nodes;
mod owners;

pub use jobs::JobReads;
pub use owners::owner_gaps;

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
    /// Take the project and user totals from the owner counters where they are exact
    /// (`--totals-from owners`); `false`: sum the jobs (`--totals-from jobs`).
    pub owner_totals: bool,
    /// No job lists: with the owner totals, count the jobs in the server instead of reading
    /// them (`--summary`).
    pub summary: bool,
    /// The reports made list only their `n` first jobs (`--job-list top`): with the owner
    /// totals, only those jobs' core- and GPU-seconds are read ([`JobReads::times_listed`]).
    pub listed: Option<usize>,
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

/// The most instance names one matcher lists (about 7 KB), so that a query stays well under
/// VictoriaMetrics' limit on its length (`-search.maxQueryLen`, 16 KB by default).
pub const MAX_NODES_PER_MATCHER: usize = 500;

/// What a `resets` pass reads: [`Collector::resets_scope`].
#[derive(Clone, Debug, PartialEq)]
pub enum Resets {
    /// Nothing: every node concerned only grew.
    Skip,
    /// Every series.
    All,
    /// The series this instance matcher selects.
    Matcher(String),
}

impl Resets {
    /// The pass's extra matcher for [`Collector::sel_in`]: `None` for no pass at all,
    /// `Some(None)` for every series.
    pub fn pass(self) -> Option<Option<String>> {
        match self {
            Resets::Skip => None,
            Resets::All => Some(None),
            Resets::Matcher(m) => Some(Some(m)),
        }
    }
}

/// One round of job queries: the job series of a group of nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Round<'a> {
    /// Every series, no instance matcher.
    All(&'a [String]),
    /// The series of these instances.
    Nodes(&'a [String]),
    /// The series of every instance not in the list (jobs on a node whose facts are missing).
    Rest(&'a [String]),
}

impl<'a> Round<'a> {
    /// `instances` in groups of `per` (at most [`MAX_NODES_PER_MATCHER`]), then, unless the
    /// list is `complete` (every instance with job series), the round of every other instance,
    /// so the rounds partition the job series whatever the list holds; one round,
    /// [`Round::All`], when `per` covers them all.
    pub fn plan(instances: &'a [String], per: usize, complete: bool) -> Vec<Round<'a>> {
        let per = per.clamp(1, MAX_NODES_PER_MATCHER);
        if instances.len() <= per {
            return vec![Round::All(instances)];
        }
        let mut out: Vec<Round> = instances.chunks(per).map(Round::Nodes).collect();
        if !complete {
            out.push(Round::Rest(instances));
        }
        out
    }

    /// The instance matcher of the round's queries.
    pub fn matcher(&self) -> Option<String> {
        let alt = |group: &[String]| {
            group
                .iter()
                .map(|i| regex_literal(i))
                .collect::<Vec<_>>()
                .join("|")
        };
        match self {
            Round::All(_) => None,
            Round::Nodes(g) => Some(format!("{INSTANCE}=~{}", quote(&alt(g)))),
            Round::Rest(all) => Some(format!("{INSTANCE}!~{}", quote(&alt(all)))),
        }
    }

    /// Smaller rounds covering the same series (for a round the server refused as too large):
    /// a group in two halves; the whole in both halves of the list and the rest. `None` for
    /// one node, or the rest (no list to halve).
    pub fn split(&self) -> Option<Vec<Round<'a>>> {
        match *self {
            Round::All(all) if !all.is_empty() => {
                let (a, b) = all.split_at(all.len().div_ceil(2));
                Some(
                    [Round::Nodes(a), Round::Nodes(b), Round::Rest(all)]
                        .into_iter()
                        .filter(|r| !matches!(r, Round::Nodes(g) if g.is_empty()))
                        .collect(),
                )
            }
            Round::Nodes(g) if g.len() > 1 => {
                let (a, b) = g.split_at(g.len() / 2);
                Some(vec![Round::Nodes(a), Round::Nodes(b)])
            }
            _ => None,
        }
    }

    /// Nodes named by the round (0 for the whole and the rest).
    pub fn nodes(&self) -> usize {
        match self {
            Round::Nodes(g) => g.len(),
            _ => 0,
        }
    }
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
type PairKey = (String, String, String);

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

    /// Every series whose name matches the regular expression `names`, in the scope's cluster.
    fn series_matching(&self, names: &str) -> String {
        let cluster = match &self.scope.cluster {
            Some(cl) => format!(",{CLUSTER}={}", quote(cl)),
            None => String::new(),
        };
        format!("{{__name__=~{}{cluster}}}", quote(names))
    }

    /// Which series of `within` (a round's nodes, at most [`MAX_NODES_PER_MATCHER`]; every node
    /// when `None`) a `resets` pass since `from` must read: those of the nodes whose counters
    /// may have gone down, i.e. all but the nodes whose counters only grew since before `from`
    /// ([`crate::starts`]). `complete`: every instance with series of the family (from
    /// [`Collector::instances_of`]), which allows the short positive form. The shortest exact
    /// matcher is chosen, never listing more than [`MAX_NODES_PER_MATCHER`] names.
    fn resets_scope(
        starts: &CounterStarts,
        from: i64,
        within: Option<&[String]>,
        complete: Option<&[String]>,
    ) -> Resets {
        let grown: BTreeSet<&str> = starts.grown_since(from).into_iter().collect();
        let named = |names: &[String], limit: usize| {
            let left: Vec<String> = names
                .iter()
                .filter(|i| !grown.contains(i.as_str()))
                .map(|i| regex_literal(i))
                .collect();
            match left.len() {
                0 => Some(Resets::Skip),
                n if n <= limit => Some(Resets::Matcher(format!(
                    "{INSTANCE}=~{}",
                    quote(&left.join("|"))
                ))),
                _ => None,
            }
        };
        // A round's own nodes that need the pass (a round names no more than the bound).
        if let Some(g) = within {
            return named(g, usize::MAX).unwrap_or(Resets::Skip);
        }
        if let Some(r) = complete.and_then(|all| named(all, MAX_NODES_PER_MATCHER)) {
            return r;
        }
        if grown.is_empty() || grown.len() > MAX_NODES_PER_MATCHER {
            return Resets::All;
        }
        let left_out: Vec<String> = grown.iter().map(|i| regex_literal(i)).collect();
        Resets::Matcher(format!("{INSTANCE}!~{}", quote(&left_out.join("|"))))
    }

    /// Every instance with series matching `selector` between `from` and the period's end, from
    /// the index (`None` when the server cannot say: the callers then use slower exact forms).
    fn instances_of(&self, selector: &str, from: i64) -> Option<Vec<String>> {
        self.client
            .label_values(INSTANCE, selector, from, self.scope.period.end)
            .ok()
    }

    /// Calls `f` with each round of a read of `selector`'s series by node (the job series, the
    /// owner series): `instances` (the nodes met) or, when they need several rounds, every
    /// instance with such series from the index ([`Round::plan`]). A round the server refuses
    /// as too large is read again in halves, down to one node, and the reporter says so on
    /// stderr; `f` must leave what it adds to unchanged when it fails.
    fn in_rounds(
        &self,
        what: &str,
        selector: &str,
        instances: &[String],
        mut f: impl FnMut(&Round) -> Result<(), PromError>,
    ) -> Result<(), PromError> {
        let per = match (&self.scope.job_id, self.scope.nodes_per_query) {
            (Some(_), _) => usize::MAX,
            (None, Some(n)) => n.max(1),
            (None, None) => auto_nodes_per_query(instances.len(), self.r()),
        };
        // Every instance with such series, from the index, so that no round has to match
        // "every node not listed" (a matcher as long as the node list).
        let complete = if instances.len() > per.clamp(1, MAX_NODES_PER_MATCHER) {
            self.instances_of(selector, self.scope.period.start - self.scope.lookback)
        } else {
            None
        };
        let mut todo = match &complete {
            Some(all) => Round::plan(all, per, true),
            None => Round::plan(instances, per, false),
        };
        todo.reverse();
        while let Some(round) = todo.pop() {
            match f(&round) {
                Err(e) if e.is_too_large() => {
                    let Some(parts) = round.split() else {
                        return Err(e);
                    };
                    eprintln!(
                        "joulebook-report: note: the server refused the {what} queries of {} as too large; reading them in {} smaller rounds (--nodes-per-query sets the size)",
                        match round.nodes() {
                            0 => "all nodes".to_string(),
                            n => format!("{n} nodes"),
                        },
                        parts.len()
                    );
                    todo.extend(parts.into_iter().rev());
                }
                r => r?,
            }
        }
        Ok(())
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

    /// [`Collector::sel`] with one more matcher (a round of job queries: [`Round::matcher`]).
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

    /// The query of a gauge's largest value over the period, by labels.
    fn gauge_max(&self, m: &MetricDef, by: &[&str]) -> String {
        format!(
            "max by ({}) (max_over_time({}[{}]))",
            by.join(", "),
            self.sel(m),
            self.range()
        )
    }

    /// The answers to `queries`, each at the period's end, in order, asked in parallel
    /// (`--parallelism`): independent queries, such as the facts' (each reads every sample of
    /// its few series over the period, so they are not asked one after the other).
    fn all_at_end(&self, queries: &[String]) -> Result<Vec<Vec<Sample>>, PromError> {
        par_map(queries, self.scope.parallelism, |q| self.at_end(q))
    }

    /// The two queries of the increase of the counters `sel` over the period (module doc): the
    /// last value in the period (only those above 0 with `nonzero`), and the last value in the
    /// `lookback` before its start.
    fn increase_queries(&self, sel: &str, lookback: i64, nonzero: bool) -> [String; 2] {
        let r = self.r();
        let above = if nonzero { " > 0" } else { "" };
        [
            format!("last_over_time({sel}[{r}s]){above}"),
            format!("last_over_time({sel}[{lookback}s] offset {r}s)"),
        ]
    }

    /// Each series' increase over the period, of family `m`: `last − base` from the two
    /// answers of [`Self::increase_queries`], but from raw samples for the series of the
    /// `flagged` (node, job) pairs (those of them that `slow` accepts; the others are left out).
    fn increases(
        &self,
        m: &MetricDef,
        last: Vec<Sample>,
        base: Vec<Sample>,
        flagged: &BTreeSet<PairKey>,
        slow: impl Fn(&PairKey) -> bool,
    ) -> Result<Vec<(Labels, f64)>, PromError> {
        let base: BTreeMap<Labels, f64> = base.into_iter().map(|s| (s.labels, s.value)).collect();
        let mut rows: Vec<(Labels, f64)> = last
            .into_iter()
            .filter(|s| flagged.is_empty() || !flagged.contains(&place_key(&s.labels)))
            .map(|s| {
                let b = base.get(&s.labels).copied();
                (s.labels, counter::increase(b, [s.value]))
            })
            .collect();
        for k in flagged.iter().filter(|k| slow(k)) {
            rows.extend(self.slow_series(m, k)?);
        }
        Ok(rows)
    }

    /// Everything a report needs.
    pub fn dataset(&self) -> Result<Dataset, PromError> {
        let mut nodes = self.node_facts()?;
        let starts = self.counter_starts(&nodes)?;
        let days = self.node_energy(&mut nodes, &starts)?;
        let mut gpus = self.gpus()?;
        // Each name once, though several clusters may use it: a round matches it in all of them.
        let instances: Vec<String> = nodes
            .keys()
            .map(|(_, i)| i.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // The owner totals, where they add up (`--totals-from owners`, `--summary`).
        let owners = if self.scope.owner_totals {
            self.owner_totals(&instances, &nodes)?
        } else {
            None
        };
        if self.scope.summary && owners.is_none() {
            self.note("A full report, not a summary: a summary needs the owner counters.".into());
        }
        // A summary counts the jobs in the server instead of reading them.
        if self.scope.summary && owners.is_some() {
            let (counts, held) = self.job_counts(&instances)?;
            Self::add_allocations(&mut gpus, &held);
            let mut ds = self.finish(Vec::new(), nodes, gpus, days);
            ds.owners = owners;
            ds.job_counts = Some(counts);
            return Ok(ds);
        }
        // With the owner totals the estimates come from them (no job's allocations) and only
        // the jobs listed need their core- and GPU-seconds.
        let reads = match owners {
            None => JobReads::ALL,
            Some(_) => JobReads {
                allocations: false,
                times_listed: self.scope.listed,
            },
        };
        let (jobs, held) = self.jobs(&instances, &starts, reads)?;
        Self::add_allocations(&mut gpus, &held);
        let mut ds = self.finish(jobs, nodes, gpus, days);
        ds.owners = owners;
        Ok(ds)
    }

    /// One job (the `job` subcommand): its figures and the facts of the nodes it ran on.
    pub fn job_dataset(&self) -> Result<Dataset, PromError> {
        let mut nodes = self.node_facts()?;
        let (jobs, held) = self.jobs(&[], &CounterStarts::default(), JobReads::ALL)?;
        let instances: BTreeSet<&str> = jobs
            .iter()
            .flat_map(|j| j.placements.iter().map(|p| p.instance.as_str()))
            .collect();
        // Node energy over the window, for the CodeCarbon-style whole-node figure (one pass
        // over every node's series: nothing is known of their restarts).
        for (lb, v) in self.chained(
            &c::NODE_ENERGY,
            &[self.scope.period],
            &CounterStarts::default(),
            None,
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
        Self::add_allocations(&mut gpus, &held);
        Ok(self.finish(jobs, nodes, gpus, Vec::new()))
    }

    /// The collected figures with the notes and unmeasured components met; progress ends.
    fn finish(
        &self,
        jobs: Vec<JobData>,
        nodes: BTreeMap<(String, String), NodeData>,
        gpus: Vec<GpuData>,
        days: Vec<DayData>,
    ) -> Dataset {
        self.client.progress().finish();
        Dataset {
            period: Some(self.scope.period),
            jobs,
            nodes: nodes.into_values().collect(),
            gpus,
            days,
            notes: self.finish_notes(),
            unmeasured: self.unmeasured(),
            owners: None,
            job_counts: None,
        }
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
fn place_key(lb: &Labels) -> PairKey {
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
mod tests;
