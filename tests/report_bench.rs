//! The reporter's benchmark: 200 nodes, 80,000 jobs, 300 users, a month (October 2026, scraped
//! every 600 s so that the backfill fits this machine), in a real Prometheus. Ignored by default
//! (it writes about 3 GB and takes minutes); run it with
//!
//! ```text
//! cargo build --release -p joulebook-reporter
//! JOULEBOOK_REPORT_BIN=target/release/joulebook-report \
//!     cargo test -p joulebook-tests --test report_bench -- --ignored --nocapture
//! ```
//!
//! It prints the report's wall time and peak resident memory (GNU time) and fails above 60 s or
//! 1 GB.

use joulebook_common as c;
use joulebook_common::MetricDef;
use joulebook_tests::prometheus::{backfill_openmetrics, Prometheus};
use joulebook_tests::scenario::{OCT_END, OCT_START};
use joulebook_tests::{binary, repo_root};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

const USERS: usize = 300;
const PROJECTS: usize = 40;
const GPUS: usize = 2;

/// The simulated cluster: the test's defaults, or `JOULEBOOK_BENCH_*` for `bench/report-cost`.
struct Shape {
    nodes: usize,
    jobs: usize,
    scrape: i64,
    start: i64,
    end: i64,
    /// Timestamps in milliseconds and no `# EOF` (Prometheus text, for VictoriaMetrics' import)
    /// instead of OpenMetrics seconds (for promtool).
    millis: bool,
    /// Users whose jobs a node runs (each with one project); 0: any of the [`USERS`], a new
    /// user for nearly every job on a node (the owner counters' worst case).
    users_per_node: usize,
    /// Write the owner counters (an exporter from before them has none).
    owners: bool,
}

impl Shape {
    fn month() -> Shape {
        Shape {
            nodes: 200,
            jobs: 80_000,
            scrape: 600,
            start: OCT_START - 6 * 3600,
            end: OCT_END + 6 * 3600,
            millis: false,
            users_per_node: 0,
            owners: true,
        }
    }

    /// `JOULEBOOK_BENCH_{NODES,JOBS,SCRAPE,DAYS,START,FORMAT,USERS_PER_NODE,OWNERS}`: the period
    /// starts at START (Unix seconds; 1 October 2026 by default) and lasts DAYS days, with 6
    /// hours of data either side.
    fn from_env() -> Shape {
        let var = |k: &str, d: i64| {
            std::env::var(format!("JOULEBOOK_BENCH_{k}"))
                .ok()
                .map(|v| {
                    v.parse::<i64>().unwrap_or_else(|_| {
                        panic!("JOULEBOOK_BENCH_{k}={v:?}: expected an integer")
                    })
                })
                .unwrap_or(d)
        };
        let (days, start) = (var("DAYS", 31), var("START", OCT_START));
        Shape {
            nodes: var("NODES", 20) as usize,
            jobs: var("JOBS", 8000) as usize,
            scrape: var("SCRAPE", 600),
            start: start - 6 * 3600,
            end: start + days * 86_400 + 6 * 3600,
            millis: std::env::var("JOULEBOOK_BENCH_FORMAT").as_deref() == Ok("prometheus"),
            users_per_node: var("USERS_PER_NODE", 0) as usize,
            owners: var("OWNERS", 1) != 0,
        }
    }
}

struct Job {
    id: usize,
    node: usize,
    user: usize,
    project: usize,
    start: i64,
    end: i64,
    cpus: f64,
    gpus: usize,
    watts: c::PerComponent<f64>,
}

/// A small deterministic generator (no dependency, same data every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn schedule(sh: &Shape) -> Vec<Job> {
    let mut rng = Lcg(42);
    let per_node = sh.jobs / sh.nodes;
    let span = (sh.end - sh.start) as f64;
    let mut jobs = Vec::with_capacity(sh.jobs);
    for node in 0..sh.nodes {
        let mut t = sh.start as f64;
        let mean = span / per_node as f64;
        for _ in 0..per_node {
            let d = mean * (0.2 + 1.2 * rng.next());
            let busy = d * (0.6 + 0.35 * rng.next());
            let gpus = if rng.next() < 0.5 {
                0
            } else {
                1 + (rng.next() * GPUS as f64) as usize % GPUS
            };
            let id = 100_000 + jobs.len();
            let user = match sh.users_per_node {
                0 => (id * 7919) % USERS,
                k => (node * k + (id * 7919) % k) % USERS,
            };
            jobs.push(Job {
                id,
                node,
                user,
                project: user % PROJECTS,
                start: t as i64,
                end: (t + busy) as i64,
                cpus: (4 + (rng.next() * 60.0) as usize) as f64,
                gpus,
                watts: c::PerComponent::from([
                    50.0 + 150.0 * rng.next(),
                    5.0 + 20.0 * rng.next(),
                    gpus as f64 * 300.0 * rng.next(),
                    0.0,
                ]),
            });
            t += d;
        }
    }
    jobs
}

/// A sample's timestamp as written: seconds, or milliseconds for Prometheus text.
struct Ts(i64, bool);
impl std::fmt::Display for Ts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.1 {
            write!(f, "{}000", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn write_openmetrics(path: &std::path::Path, sh: &Shape, jobs: &[Job]) -> std::io::Result<u64> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let lines = write_node_counters(&mut w, sh, jobs)?
        + write_node_gauges(&mut w, sh)?
        + if sh.owners {
            write_owner_counters(&mut w, sh, jobs)?
        } else {
            0
        }
        + write_job_counters(&mut w, sh, jobs)?
        + write_job_gauges(&mut w, sh, jobs)?;
    if !sh.millis {
        writeln!(w, "# EOF")?;
    }
    w.flush()?;
    Ok(lines)
}

/// The labels of node `n`.
fn node_labels(n: usize) -> String {
    format!("cluster=\"big\",instance=\"node{n:03}:9977\",job=\"joulebook\"")
}

/// Scrapes happen at `k × scrape + SCRAPE_PHASE_S`, as a real Prometheus spreads its targets
/// over the interval: never on a day's first second, where VictoriaMetrics 1.79 misses the
/// series that start there (docs/PERFORMANCE.md, section 5).
const SCRAPE_PHASE_S: i64 = 7;

/// The first scrape after `t`.
fn scrape_after(t: i64, scrape: i64) -> i64 {
    ((t - SCRAPE_PHASE_S).div_euclid(scrape) + 1) * scrape + SCRAPE_PHASE_S
}

/// The last scrape at or before `t`.
fn scrape_until(t: i64, scrape: i64) -> i64 {
    (t - SCRAPE_PHASE_S).div_euclid(scrape) * scrape + SCRAPE_PHASE_S
}

/// The scrapes from the first after `from` to the last at or before `to`.
fn scrapes_between(sh: &Shape, from: i64, to: i64) -> impl Iterator<Item = Ts> {
    let (scrape, ms) = (sh.scrape, sh.millis);
    (scrape_after(from, scrape)..=scrape_until(to, scrape))
        .step_by(scrape as usize)
        .map(move |t| Ts(t, ms))
}

/// Every scrape of the period.
fn scrapes(sh: &Shape) -> impl Iterator<Item = Ts> {
    scrapes_between(sh, sh.start, sh.end)
}

/// A job's series run from the first scrape after its start to two scrapes after its end.
fn job_scrapes(sh: &Shape, j: &Job) -> impl Iterator<Item = Ts> {
    scrapes_between(sh, j.start, j.end + 2 * sh.scrape)
}

/// Seconds job `j` has run at scrape `t`.
fn elapsed(j: &Job, t: &Ts) -> f64 {
    (t.0.min(j.end) - j.start) as f64
}

/// A node's idle power by component, watts: its unallocated energy.
const IDLE_W: [f64; 4] = [120.0, 16.0, 200.0, 0.0];

/// How long a pair's owner counters outlive its last job (`OWNER_EXPIRY_S`): a job that starts
/// later opens a new run.
const OWNER_EXPIRY_S: i64 = c::OWNER_EXPIRY_S as i64;

/// What `rate` (per second of a job's run) adds up to over `jobs` (in start order), asked at
/// scrapes in time order: the jobs ended are added once, so a scrape costs the jobs running.
struct Accrual<'j, F> {
    jobs: &'j [&'j Job],
    rate: F,
    started: usize,
    ended: f64,
    running: Vec<&'j Job>,
}

impl<'j, F: Fn(&Job) -> f64> Accrual<'j, F> {
    fn new(jobs: &'j [&'j Job], rate: F) -> Self {
        Accrual {
            jobs,
            rate,
            started: 0,
            ended: 0.0,
            running: Vec::new(),
        }
    }

    /// The sum at scrape `t`, not before the last one asked.
    fn at(&mut self, t: i64) -> f64 {
        while self.started < self.jobs.len() && self.jobs[self.started].start < t {
            self.running.push(self.jobs[self.started]);
            self.started += 1;
        }
        let (rate, ended) = (&self.rate, &mut self.ended);
        self.running.retain(|j| {
            let done = j.end <= t;
            if done {
                *ended += rate(j) * (j.end - j.start) as f64;
            }
            !done
        });
        self.ended
            + self
                .running
                .iter()
                .map(|j| (self.rate)(j) * elapsed(j, &Ts(t, false)))
                .sum::<f64>()
    }
}

/// Each node's jobs, in start order.
fn by_node<'j>(sh: &Shape, jobs: &'j [Job]) -> Vec<Vec<&'j Job>> {
    let mut out: Vec<Vec<&Job>> = vec![Vec::new(); sh.nodes];
    for j in jobs {
        out[j.node].push(j);
    }
    out
}

/// Node and unallocated counters: the unallocated energy is the idle power's, the node's that
/// plus its jobs' (jobs + unallocated = node at every scrape, as the exporter keeps them).
fn write_node_counters(w: &mut impl Write, sh: &Shape, jobs: &[Job]) -> std::io::Result<u64> {
    let mut lines = 0u64;
    let start = sh.start;
    let nodes = by_node(sh, jobs);
    for (m, with_jobs) in [(c::NODE_ENERGY, true), (c::UNALLOCATED_ENERGY, false)] {
        writeln!(w, "# TYPE {} counter", m.name().trim_end_matches("_total"))?;
        for (n, node_jobs) in nodes.iter().enumerate() {
            let l = node_labels(n);
            for (k, comp) in c::Component::ALL.into_iter().enumerate() {
                let mut jobs = Accrual::new(node_jobs, |j: &Job| j.watts[comp]);
                for t in scrapes(sh) {
                    let mut v = IDLE_W[k] * (t.0 - start) as f64;
                    if with_jobs {
                        v += jobs.at(t.0);
                    }
                    writeln!(w, "{}{{{l},component=\"{comp}\"}} {v} {t}", m.name())?;
                    lines += 1;
                }
            }
        }
    }
    Ok(lines)
}

/// One run of a pair's owner counters on a node: its jobs, from the first's start until the
/// pair expires after the last's end.
struct Run<'j> {
    node: usize,
    jobs: Vec<&'j Job>,
    start: i64,
    until: i64,
}

/// The owner runs of every node: a pair's jobs in start order, a new run when a job starts
/// after the pair expired.
fn owner_runs<'j>(sh: &Shape, jobs: &'j [Job]) -> Vec<Run<'j>> {
    let mut runs: Vec<Run> = Vec::new();
    for (n, node_jobs) in by_node(sh, jobs).into_iter().enumerate() {
        let mut open: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
        for j in node_jobs {
            let pair = (j.project, j.user);
            match open.get(&pair).map(|&i| &mut runs[i]) {
                Some(r) if j.start <= r.until => {
                    r.jobs.push(j);
                    r.until = r.until.max(j.end + OWNER_EXPIRY_S);
                }
                _ => {
                    open.insert(pair, runs.len());
                    runs.push(Run {
                        node: n,
                        jobs: vec![j],
                        start: j.start,
                        until: j.end + OWNER_EXPIRY_S,
                    });
                }
            }
        }
    }
    runs
}

/// The owner counters of every run (`joulebook_owner_*_total{account,user,since}`), published
/// at the scrapes while one of its jobs runs or ended less than the exporter's grace period
/// before: two scrapes, as the job series (the grace must exceed the scrape interval).
fn write_owner_counters(w: &mut impl Write, sh: &Shape, jobs: &[Job]) -> std::io::Result<u64> {
    // Each run's labels and published scrapes, made once for all its series.
    let runs: Vec<Published> = owner_runs(sh, jobs)
        .into_iter()
        .map(|r| {
            let j = r.jobs[0];
            let labels = format!(
                "{},account=\"proj{:02}\",user=\"user{:03}\",since=\"{}\"",
                node_labels(r.node),
                j.project,
                j.user,
                r.start
            );
            // The run's jobs' spans with their grace, merged (they are in start order).
            let mut spans: Vec<(i64, i64)> = Vec::new();
            for j in &r.jobs {
                let (from, to) = (j.start, (j.end + 2 * sh.scrape).min(sh.end));
                match spans.last_mut() {
                    Some(last) if from <= last.1 => last.1 = last.1.max(to),
                    _ => spans.push((from, to)),
                }
            }
            let times = spans
                .into_iter()
                .flat_map(|(from, to)| scrapes_between(sh, from, to))
                .collect();
            Published {
                jobs: r.jobs,
                labels,
                times,
            }
        })
        .collect();
    let header = |w: &mut dyn Write, m: &MetricDef| {
        writeln!(w, "# TYPE {} counter", m.name().trim_end_matches("_total"))
    };
    let mut lines = 0u64;
    header(w, &c::OWNER_ENERGY)?;
    for comp in c::Component::ALL {
        let component = format!(",component=\"{comp}\"");
        let rate = |j: &Job| j.watts[comp];
        lines += write_run_series(w, &runs, &c::OWNER_ENERGY, &component, rate, false)?;
    }
    type Rate = fn(&Job) -> f64;
    let rates: [(MetricDef, Rate); 5] = [
        (c::OWNER_CORE_SECONDS, |j| j.cpus),
        (c::OWNER_GPU_SECONDS, |j| j.gpus as f64),
        (c::OWNER_CPU_SECONDS, |j| 0.7 * j.cpus),
        (c::OWNER_ELAPSED_SECONDS, |_| 1.0),
        (c::OWNER_MEMORY_BYTE_SECONDS, |j| j.cpus * 4e9),
    ];
    for (m, rate) in rates {
        header(w, &m)?;
        lines += write_run_series(w, &runs, &m, "", rate, false)?;
    }
    header(w, &c::OWNER_JOBS)?;
    lines += write_run_series(w, &runs, &c::OWNER_JOBS, "", |_| 0.0, true)?;
    Ok(lines)
}

/// An owner run as published: its jobs, labels and scrapes.
struct Published<'j> {
    jobs: Vec<&'j Job>,
    labels: String,
    times: Vec<Ts>,
}

/// One sample of `m{labels<extra>}` per published scrape of every run: what `rate` accrued
/// over its jobs, or with `count` the jobs started.
fn write_run_series(
    w: &mut dyn Write,
    runs: &[Published],
    m: &MetricDef,
    extra: &str,
    rate: impl Fn(&Job) -> f64 + Copy,
    count: bool,
) -> std::io::Result<u64> {
    let mut lines = 0;
    for r in runs {
        let mut jobs = Accrual::new(&r.jobs, rate);
        for t in &r.times {
            let v = jobs.at(t.0);
            let v = if count { jobs.started as f64 } else { v };
            writeln!(w, "{}{{{}{extra}}} {v} {t}", m.name(), r.labels)?;
            lines += 1;
        }
    }
    Ok(lines)
}

/// The nodes' and their GPUs' gauges.
fn write_node_gauges(w: &mut impl Write, sh: &Shape) -> std::io::Result<u64> {
    let mut lines = 0u64;
    // The restart marker: the counters above started from zero at the data's start, as a fresh
    // exporter's would (no restart in the benchmark).
    let start = sh.start;
    for (m, v) in [
        (c::NODE_PHYSICAL_CORES, 64.0),
        (c::NODE_CPU_TDP, 560.0),
        (c::NODE_MEMORY, 512e9),
        (c::COUNTERS_START_TIME, start as f64),
    ] {
        writeln!(w, "# TYPE {} gauge", m.name())?;
        for n in 0..sh.nodes {
            let l = node_labels(n);
            for t in scrapes(sh) {
                writeln!(w, "{}{{{l}}} {v} {t}", m.name())?;
                lines += 1;
            }
        }
    }
    for (m, info) in [(c::GPU_INFO, true), (c::GPU_POWER_LIMIT, false)] {
        writeln!(w, "# TYPE {} gauge", m.name())?;
        for n in 0..sh.nodes {
            let l = node_labels(n);
            for g in 0..GPUS {
                let extra = if info {
                    format!(",index=\"{g}\",model=\"NVIDIA A100-SXM4-80GB\",pci_bus_id=\"0000:0{g}:00.0\"")
                } else {
                    String::new()
                };
                let v = if info { 1.0 } else { 400.0 };
                for t in scrapes(sh) {
                    writeln!(
                        w,
                        "{}{{{l},gpu_uuid=\"GPU-{n:03}-{g}\"{extra}}} {v} {t}",
                        m.name()
                    )?;
                    lines += 1;
                }
            }
        }
    }
    Ok(lines)
}

/// The jobs' energy and seconds.
fn write_job_counters(w: &mut impl Write, sh: &Shape, jobs: &[Job]) -> std::io::Result<u64> {
    let mut lines = 0u64;
    writeln!(
        w,
        "# TYPE {} counter",
        c::JOB_ENERGY.name().trim_end_matches("_total")
    )?;
    for j in jobs {
        let l = node_labels(j.node);
        for comp in c::Component::ALL {
            for t in job_scrapes(sh, j) {
                writeln!(
                    w,
                    "{}{{{l},job_id=\"{}\",component=\"{comp}\"}} {} {t}",
                    c::JOB_ENERGY.name(),
                    j.id,
                    j.watts[comp] * elapsed(j, &t)
                )?;
                lines += 1;
            }
        }
    }
    for (m, rate) in [
        (c::JOB_CORE_SECONDS, 0usize),
        (c::JOB_GPU_SECONDS, 1),
        (c::JOB_CPU_SECONDS, 2),
    ] {
        writeln!(w, "# TYPE {} counter", m.name().trim_end_matches("_total"))?;
        for j in jobs {
            let l = node_labels(j.node);
            let r = [j.cpus, j.gpus as f64, 0.7 * j.cpus][rate];
            for t in job_scrapes(sh, j) {
                writeln!(
                    w,
                    "{}{{{l},job_id=\"{}\"}} {} {t}",
                    m.name(),
                    j.id,
                    r * elapsed(j, &t)
                )?;
                lines += 1;
            }
        }
    }
    Ok(lines)
}

/// The jobs' info, allocations and GPUs.
fn write_job_gauges(w: &mut impl Write, sh: &Shape, jobs: &[Job]) -> std::io::Result<u64> {
    let mut lines = 0u64;
    writeln!(w, "# TYPE {} gauge", c::JOB_INFO.name())?;
    for j in jobs {
        let l = node_labels(j.node);
        let (user, project) = (j.user, j.project);
        for t in job_scrapes(sh, j) {
            writeln!(w, "{}{{{l},job_id=\"{}\",scheduler=\"slurm\",user=\"user{user:03}\",account=\"proj{project:02}\",partition=\"gpu\",job_name=\"run-{}\"}} 1 {t}", c::JOB_INFO.name(), j.id, j.id % 97)?;
            lines += 1;
        }
    }
    for (m, k) in [
        (c::JOB_ALLOCATED_CPUS, 0usize),
        (c::JOB_ALLOCATED_GPUS, 1),
        (c::JOB_ALLOCATED_MEMORY, 2),
    ] {
        writeln!(w, "# TYPE {} gauge", m.name())?;
        for j in jobs {
            let l = node_labels(j.node);
            let v = [j.cpus, j.gpus as f64, j.cpus * 4e9][k];
            for t in job_scrapes(sh, j) {
                writeln!(w, "{}{{{l},job_id=\"{}\"}} {v} {t}", m.name(), j.id)?;
                lines += 1;
            }
        }
    }
    writeln!(w, "# TYPE {} gauge", c::JOB_GPU_INFO.name())?;
    for j in jobs {
        let l = node_labels(j.node);
        for g in 0..j.gpus {
            for t in job_scrapes(sh, j) {
                writeln!(
                    w,
                    "{}{{{l},job_id=\"{}\",gpu_uuid=\"GPU-{:03}-{g}\"}} 1 {t}",
                    c::JOB_GPU_INFO.name(),
                    j.id,
                    j.node
                )?;
                lines += 1;
            }
        }
    }
    Ok(lines)
}

#[test]
#[ignore = "benchmark: minutes and gigabytes; run with --ignored"]
fn month_of_200_nodes_80000_jobs() {
    let dir = repo_root().join("target/report-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let t = Instant::now();
    let shape = Shape::month();
    let jobs = schedule(&shape);
    let om = dir.join("data.om");
    let lines = write_openmetrics(&om, &shape, &jobs).expect("write openmetrics");
    println!(
        "generated {lines} samples of {} jobs in {:?}",
        jobs.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let data = dir.join("tsdb");
    backfill_openmetrics(&om, &data);
    let _ = std::fs::remove_file(&om);
    println!("backfilled in {:?}", t.elapsed());
    let prom = Prometheus::start(&data, &[]);
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(
            // A release build of the reporter, e.g. target/release/joulebook-report, while the
            // test itself runs in the debug profile.
            std::env::var_os("JOULEBOOK_REPORT_BIN")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| binary("joulebook-report")),
        )
        .args(["--prometheus", &prom.url(), "--month", "2026-10"])
        .args(["--format", "json,md,html"])
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .expect("GNU time (Debian `time`)");
    let wall = t.elapsed();
    drop(prom);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rss_kb: f64 = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.parse().ok())
        .expect("GNU time output");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/report.json")).expect("json"))
            .expect("parse");
    println!(
        "report: {:.1} s wall, {:.0} MB peak resident, {} jobs, {} users, {:.0} kWh",
        wall.as_secs_f64(),
        rss_kb / 1024.0,
        report["headline"]["jobs"],
        report["users"]["rows"].as_array().map_or(0, Vec::len),
        report["headline"]["it_energy_kwh"].as_f64().unwrap_or(0.0)
    );
    assert!(report["headline"]["jobs"].as_u64().unwrap_or(0) >= 79_000);
    assert!(wall < Duration::from_secs(60), "report took {wall:?}");
    assert!(rss_kb < 1024.0 * 1024.0, "report used {rss_kb} kB");
}

/// The data of `bench/report-cost`: writes the cluster that `JOULEBOOK_BENCH_*` describe to
/// `JOULEBOOK_BENCH_OUT` (nothing else: the script loads it and runs the reporters).
#[test]
#[ignore = "data generator of bench/report-cost"]
fn write_bench_data() {
    let Some(out) = std::env::var_os("JOULEBOOK_BENCH_OUT") else {
        panic!("set JOULEBOOK_BENCH_OUT (bench/report-cost does)");
    };
    let shape = Shape::from_env();
    let jobs = schedule(&shape);
    let lines = write_openmetrics(std::path::Path::new(&out), &shape, &jobs).expect("write data");
    println!("samples={lines} jobs={}", jobs.len());
}
