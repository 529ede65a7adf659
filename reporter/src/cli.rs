//! Command line: `joulebook-report` (files), `joulebook-report job ID` (terminal summary) and
//! `joulebook-report email` (mail per recipient). Exit codes: 0 success, 1 the server or the mail
//! server failed, 2 bad usage or configuration.

use crate::collect::{Collector, Scope};
use crate::config::Config;
use crate::data::Dataset;
use crate::model::{self, Options, Report, ScopeKind};
use crate::period::{Period, Zone};
use crate::prom::{Client, ClientOptions};
use crate::render::{self, Renderer};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod email;
mod job;

use job::job_summary;
pub use job::{job_text, JobShown};

#[derive(Parser, Debug)]
#[command(
    name = "joulebook-report",
    version,
    about = "Energy reports of a cluster, a project or a user from joulebook's counters in Prometheus (or VictoriaMetrics, Thanos, Mimir).",
    after_help = "Examples:\n  joulebook-report --prometheus http://prom:9090 --month 2026-10 --out reports/\n  joulebook-report --prometheus http://prom:9090 --month 2026-10 --project astro --format md\n  joulebook-report --prometheus http://prom:9090 job 123456\n  joulebook-report --config site.yaml --month 2026-10 email --dry-run --out outbox/"
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    sel: SelectArgs,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One job's energy in the terminal, like Slurm's seff.
    Job { job_id: String },
    /// Mail each recipient of the config's `recipients` the report it is entitled to.
    Email(EmailArgs),
}

#[derive(Args, Debug)]
struct EmailArgs {
    /// Write one .eml file per message into --out instead of sending.
    #[arg(long)]
    dry_run: bool,
    /// Send every message again, also those the period's send record lists as delivered.
    #[arg(long)]
    resend: bool,
    /// Folder of the send record (one file per period) [default: $STATE_DIRECTORY, else --out].
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ConnArgs {
    /// Base URL of the Prometheus HTTP API (Prometheus, VictoriaMetrics, Thanos, Mimir).
    #[arg(long, global = true, env = "JOULEBOOK_PROMETHEUS_URL")]
    prometheus: Option<String>,
    /// PEM file of the CA that signed the server's certificate.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    #[arg(long, global = true)]
    basic_auth_user: Option<String>,
    #[arg(long, global = true)]
    basic_auth_password_file: Option<PathBuf>,
    #[arg(long, global = true)]
    bearer_token_file: Option<PathBuf>,
    /// Seconds per HTTP request, answer included (at least 1) [default: 120, or the config's
    /// prometheus.timeout_seconds].
    #[arg(long, global = true)]
    timeout: Option<f64>,
    /// Attempts per query before giving up (with exponential backoff from 0.5 s).
    #[arg(long, global = true, default_value_t = 4)]
    attempts: u32,
    /// Queries in flight at once.
    #[arg(long, global = true, default_value_t = 4)]
    parallelism: usize,
    /// How far before the period's start to look for a counter's starting value (e.g. 1h, 90m,
    /// 3600); must exceed the scrape interval.
    #[arg(long, global = true, default_value = "1h")]
    lookback: String,
    /// The most one answer of the server may hold, in MiB, before the report fails naming the
    /// query (at least 1) [default: 64, or the config's prometheus.max_answer_mib].
    #[arg(long, global = true)]
    max_answer_mib: Option<u64>,
    /// Nodes whose job series one round of job queries reads [default: all up to 1,500
    /// node-days in the period, else as many as fit them]: bounds each answer and the memory
    /// held for it on large clusters and long periods; the figures do not depend on it.
    #[arg(long, global = true)]
    nodes_per_query: Option<usize>,
    /// Where project and user totals come from: `jobs` (the sums over the jobs) or `owners` (the
    /// per-owner counters where they add up to each node's energy less its unallocated energy,
    /// else the jobs, with a note).
    #[arg(long, global = true, default_value = "jobs", value_parser = ["jobs", "owners"])]
    totals_from: String,
    /// A report without the job lists (top jobs, development versus final run): totals from the
    /// owner counters and job counts from the server, so that its cost follows the owner pairs
    /// rather than the jobs; where the owner counters do not add up, the full report (implies
    /// `--totals-from owners`).
    #[arg(long, global = true, conflicts_with = "totals_from")]
    summary: bool,
    /// Never draw the progress line (it is drawn only when stderr is a terminal anyway).
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Args, Debug)]
struct SelectArgs {
    /// Calendar month, YYYY-MM, previous or current (in --timezone; current: so far).
    #[arg(long, global = true, conflicts_with_all = ["from", "to", "year"])]
    month: Option<String>,
    /// Calendar year, YYYY, previous or current (in --timezone; current: so far).
    #[arg(long, global = true, conflicts_with_all = ["from", "to"])]
    year: Option<String>,
    /// Start, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (in --timezone), or with Z or an offset
    /// (2026-10-03T12:00:00+02:00).
    #[arg(long, global = true, requires = "to")]
    from: Option<String>,
    /// End (excluded), same forms as --from.
    #[arg(long, global = true, requires = "from")]
    to: Option<String>,
    /// Only series with this `cluster` label.
    #[arg(long, global = true)]
    cluster: Option<String>,
    /// Report on one project (the scheduler's account).
    #[arg(long, global = true, conflicts_with = "user")]
    project: Option<String>,
    /// Report on one user's jobs.
    #[arg(long, global = true)]
    user: Option<String>,
    /// The site's time zone, an IANA name such as Europe/Paris: months, days and every time the
    /// report prints [default: the config's timezone, else UTC].
    #[arg(long, global = true)]
    timezone: Option<String>,
    /// Site constants, recipients and SMTP (YAML).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Replace user names by "User 1", "User 2"… (for public reports).
    #[arg(long, global = true)]
    anonymize_users: bool,
}

#[derive(Args, Debug)]
struct OutArgs {
    /// Directory for the report files (created if missing).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Comma-separated formats: html, md, json.
    #[arg(
        long,
        global = true,
        default_value = "html,md,json",
        value_delimiter = ','
    )]
    format: Vec<String>,
    /// Directory of templates overriding the built-in report.html, report.md, report.txt.
    #[arg(long, global = true)]
    templates: Option<PathBuf>,
    /// The jobs the JSON report lists in `top_jobs`: `all` (every job of the scope), or `top`
    /// (the config's `top_n` first, as the HTML and Markdown show): the JSON then does not grow
    /// with the jobs.
    #[arg(long, global = true, default_value = "all", value_parser = ["all", "top"])]
    job_list: String,
}

/// An error and its exit code.
struct Fail(i32, String);

fn usage(msg: impl Into<String>) -> Fail {
    Fail(2, msg.into())
}

fn runtime(msg: impl std::fmt::Display) -> Fail {
    Fail(1, msg.to_string())
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(Fail(code, msg)) => {
            eprintln!("joulebook-report: error: {msg}");
            code
        }
    }
}

/// `1h`, `90m`, `3600s`, `3600`, `2d` → seconds.
fn parse_duration(s: &str) -> Result<i64, String> {
    let (num, mul) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    match num.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n * mul),
        _ => Err(format!(
            "--lookback {s:?}: expected a duration like 1h, 90m or 3600s"
        )),
    }
}

/// The per-request timeout: the flag, else the config, else 120 s; at least 1 s.
fn timeout(flag: Option<f64>, config: Option<f64>) -> Result<Duration, Fail> {
    let (secs, from) = match (flag, config) {
        (Some(s), _) => (s, "--timeout"),
        (None, Some(s)) => (s, "prometheus.timeout_seconds"),
        (None, None) => (120.0, "--timeout"),
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(usage(format!(
            "{from} {secs}: give seconds between 1 and 86400, e.g. 120"
        )));
    }
    Ok(Duration::from_secs_f64(secs.max(1.0)))
}

/// The cap on one answer: the flag, else the config, else the default; at least 1 MiB.
fn max_answer_mib(flag: Option<u64>, config: Option<u64>) -> Result<u64, Fail> {
    // The config's value is checked when it is loaded.
    match flag {
        Some(0) => Err(usage("--max-answer-mib 0: give at least 1 (MiB)")),
        f => Ok(f.or(config).unwrap_or(crate::prom::DEFAULT_MAX_ANSWER_MIB)),
    }
}

/// The site's zone: the flag, else the config's `timezone` (checked when it is loaded), else UTC.
fn site_zone(flag: Option<&str>, cfg: &Config) -> Result<Zone, Fail> {
    match flag {
        Some(name) => Zone::named(name).map_err(|e| usage(format!("--timezone {e}"))),
        None => Zone::named(&cfg.timezone).map_err(|e| usage(format!("timezone: {e}"))),
    }
}

/// The system clock, for `previous` and `current` periods.
fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn now() -> i64 {
    // SOURCE_DATE_EPOCH pins "generated at" for reproducible output (golden files).
    if let Some(t) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return t;
    }
    wall_clock()
}

fn run(cli: Cli) -> Result<(), Fail> {
    let cfg = match &cli.sel.config {
        Some(p) => Config::load(p).map_err(|e| usage(e.to_string()))?,
        None => Config::default(),
    };
    let zone = site_zone(cli.sel.timezone.as_deref(), &cfg)?;
    let lookback = parse_duration(&cli.conn.lookback).map_err(usage)?;
    let opts = client_options(&cli, &cfg)?;
    let client = Client::new(&opts).map_err(|e| usage(e.to_string()))?;
    let renderer = Renderer::new(cli.out.templates.as_deref()).map_err(|e| usage(e.to_string()))?;
    let scope = |period: Period, job_id: Option<String>| Scope {
        period,
        zone: zone.clone(),
        lookback,
        cluster: cli.sel.cluster.clone(),
        job_id,
        parallelism: cli.conn.parallelism.max(1),
        nodes_per_query: cli.conn.nodes_per_query,
        owner_totals: cli.conn.totals_from == "owners" || cli.conn.summary,
        summary: cli.conn.summary,
        listed: (cli.out.job_list == "top").then_some(cfg.top_n),
    };
    let t = now();
    match &cli.cmd {
        Some(Cmd::Job { job_id }) => {
            let period = match period_arg(&cli.sel, &zone, t)? {
                Some(a) => a.period,
                // No dates: find the job's time range first.
                None => {
                    let all = Period { start: t, end: t };
                    Collector::new(&client, scope(all, Some(job_id.clone())))
                        .locate_job(t)
                        .map_err(runtime)?
                        .ok_or_else(|| {
                            runtime(format!(
                                "job {job_id}: no sample of it on the server (searched the last {} days): check the id and --cluster",
                                crate::collect::JOB_SEARCH_SPAN_S / 86_400
                            ))
                        })?
                }
            };
            job_summary(&client, scope(period, Some(job_id.clone())), &cfg, job_id)
        }
        Some(Cmd::Email(args)) => {
            let asked = period_arg(&cli.sel, &zone, t)?.ok_or_else(|| {
                usage("give the period: --month YYYY-MM, --year YYYY or --from/--to")
            })?;
            let ds = asked.collect(&client, scope(asked.period, None))?;
            email::send_all(&cli, &cfg, &renderer, &ds, &asked.period, &zone, args)
        }
        None => {
            let asked = period_arg(&cli.sel, &zone, t)?.ok_or_else(|| {
                usage("give the period: --month YYYY-MM, --year YYYY or --from/--to")
            })?;
            let out = cli
                .out
                .out
                .clone()
                .ok_or_else(|| usage("give --out DIR for the report files"))?;
            let formats = formats(&cli.out.format)?;
            let ds = asked.collect(&client, scope(asked.period, None))?;
            let kind = match (&cli.sel.project, &cli.sel.user) {
                (Some(p), _) => ScopeKind::Project(p.clone()),
                (_, Some(u)) => ScopeKind::User(u.clone()),
                _ => ScopeKind::Cluster,
            };
            let report = build(&cli, &cfg, &ds, kind, &zone);
            // The report owns (or shares) all it shows: the collected jobs go before rendering.
            drop(ds);
            let files = report_files(&renderer, &report, &formats, &stem(&report.scope))?;
            write_all(&out, &files)?;
            for (name, _) in &files {
                println!("{}", out.join(name).display());
            }
            Ok(())
        }
    }
}

/// The server's URL, TLS and credentials: each flag, else its key in the config.
fn client_options(cli: &Cli, cfg: &Config) -> Result<ClientOptions, Fail> {
    let url = cli
        .conn
        .prometheus
        .clone()
        .or_else(|| cfg.prometheus.url.clone())
        .ok_or_else(|| {
            usage("no server: give --prometheus URL (or prometheus.url in the config, or JOULEBOOK_PROMETHEUS_URL)")
        })?;
    let p = &cfg.prometheus;
    let opts = ClientOptions {
        url,
        ca_file: cli.conn.ca_file.clone().or_else(|| p.ca_file.clone()),
        basic_user: cli
            .conn
            .basic_auth_user
            .clone()
            .or_else(|| p.username.clone()),
        basic_password_file: cli
            .conn
            .basic_auth_password_file
            .clone()
            .or_else(|| p.password_file.clone()),
        bearer_token_file: cli
            .conn
            .bearer_token_file
            .clone()
            .or_else(|| p.bearer_token_file.clone()),
        timeout: timeout(cli.conn.timeout, p.timeout_seconds)?,
        attempts: cli.conn.attempts,
        backoff: Duration::from_millis(500),
        progress: !cli.conn.no_progress,
        max_answer_mib: max_answer_mib(cli.conn.max_answer_mib, p.max_answer_mib)?,
    };
    Ok(opts)
}

/// The period asked for (`--year`, `--month`, `--from`/`--to`), ending at the report's time
/// (`now`) at the latest: a report holds no future, so the figures per day and per hour are of
/// the time elapsed (`--year current` is the year so far). A period that starts at or after
/// `now` is a usage error naming the flag. `None` without a period flag.
fn period_arg(sel: &SelectArgs, zone: &Zone, now: i64) -> Result<Option<Asked>, Fail> {
    let (flag, asked) = if let Some(y) = &sel.year {
        (format!("--year {y}"), zone.year(y, wall_clock()))
    } else {
        match (&sel.month, &sel.from, &sel.to) {
            (Some(m), _, _) => (format!("--month {m}"), zone.month(m, wall_clock())),
            (None, Some(f), Some(t)) => (format!("--from {f} --to {t}"), zone.between(f, t)),
            _ => return Ok(None),
        }
    };
    let period = asked.map_err(|e| usage(e.to_string()))?;
    if period.start >= now {
        return Err(usage(format!(
            "{flag}: the period starts at {}, not before now ({}): nothing to report yet",
            zone.iso(period.start),
            zone.iso(now)
        )));
    }
    if period.end <= now {
        return Ok(Some(Asked { period, cut: None }));
    }
    let note = format!(
        "The period asked for ends at {}, after this report was made: it is cut at {}, so its days, hours and means are of the time elapsed.",
        zone.iso(period.end),
        zone.iso(now)
    );
    Ok(Some(Asked {
        period: Period {
            start: period.start,
            end: now,
        },
        cut: Some(note),
    }))
}

/// A period from the command line, and the report note that says it was cut at now.
struct Asked {
    period: Period,
    cut: Option<String>,
}

impl Asked {
    /// The dataset collected over the period, with the note of its cut.
    fn collect(&self, client: &Client, scope: Scope) -> Result<Dataset, Fail> {
        let mut ds = Collector::new(client, scope).dataset().map_err(runtime)?;
        ds.notes.extend(self.cut.clone());
        Ok(ds)
    }
}

fn formats(list: &[String]) -> Result<Vec<String>, Fail> {
    let mut out = Vec::new();
    for f in list {
        let f = f.trim().to_ascii_lowercase();
        match f.as_str() {
            "html" | "md" | "json" => out.push(f),
            "markdown" => out.push("md".into()),
            other => {
                return Err(usage(format!(
                    "--format {other:?}: choose among html, md, json (comma-separated)"
                )))
            }
        }
    }
    Ok(out)
}

fn build(cli: &Cli, cfg: &Config, ds: &Dataset, kind: ScopeKind, zone: &Zone) -> Report {
    model::build(
        ds,
        cfg,
        &Options {
            scope: kind,
            cluster: cli.sel.cluster.clone(),
            generated_at: now(),
            anonymize_users: cli.sel.anonymize_users || cfg.anonymize_users,
            zone: zone.clone(),
            all_jobs: cli.out.job_list == "all",
        },
    )
}

/// File name stem of a scope: `report`, `report-project-NAME`, `report-user-NAME`.
fn stem(kind: &ScopeKind) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    match kind {
        ScopeKind::Cluster => "report".into(),
        ScopeKind::Project(p) => format!("report-project-{}", safe(p)),
        ScopeKind::User(u) => format!("report-user-{}", safe(u)),
    }
}

/// Charts of a report: (name, PNG).
fn charts(report: &Report) -> Result<Vec<(&'static str, Vec<u8>)>, Fail> {
    let mut out = Vec::new();
    if let Some(named) = crate::charts::energy_bars(report).map_err(runtime)? {
        out.push(named);
    }
    if let Some(p) = crate::charts::projects(report).map_err(runtime)? {
        out.push(("projects", p));
    }
    Ok(out)
}

/// Every file of a report, rendered in memory: (file name, bytes).
fn report_files(
    renderer: &Renderer,
    report: &Report,
    formats: &[String],
    stem: &str,
) -> Result<Vec<(String, Vec<u8>)>, Fail> {
    let mut files = Vec::new();
    let mut images = BTreeMap::new();
    let shown = report.for_display();
    if formats.iter().any(|f| f == "html" || f == "md") {
        for (name, png) in charts(report)? {
            let file = format!("{stem}-{name}.png");
            images.insert(name.to_string(), file.clone());
            files.push((file, png));
        }
    }
    for f in formats {
        let text = match f.as_str() {
            "html" => renderer.render(render::HTML, &shown, &images),
            "md" => renderer.render(render::MD, &shown, &images),
            _ => render::json(report),
        }
        .map_err(|e| usage(e.to_string()))?;
        files.push((format!("{stem}.{f}"), text.into_bytes()));
    }
    Ok(files)
}

/// Writes the files into `dir` safely (see [`crate::output`]).
fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), Fail> {
    crate::output::write_files(dir, files).map_err(runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("600"), Ok(600));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn timeout_flag_wins_over_config_and_is_checked() {
        let secs = |f, c| {
            timeout(f, c)
                .map(|d| d.as_secs_f64())
                .map_err(|Fail(code, m)| (code, m))
        };
        assert_eq!(secs(None, None), Ok(120.0));
        assert_eq!(secs(None, Some(30.0)), Ok(30.0));
        assert_eq!(secs(Some(5.0), Some(30.0)), Ok(5.0));
        assert_eq!(secs(Some(0.2), None), Ok(1.0));
        for bad in [f64::INFINITY, f64::NAN, -1.0, 0.0] {
            let (code, msg) = secs(Some(bad), None).unwrap_err();
            assert_eq!(code, 2);
            assert!(msg.starts_with("--timeout "), "{msg}");
        }
        let (_, msg) = secs(None, Some(-3.0)).unwrap_err();
        assert!(msg.starts_with("prometheus.timeout_seconds -3"), "{msg}");
    }

    #[test]
    fn timezone_flag_wins_over_config_and_a_bad_name_names_its_source() {
        let name = |flag: Option<&str>, cfg: &Config| {
            site_zone(flag, cfg)
                .map(|z| z.name().to_string())
                .map_err(|Fail(code, m)| (code, m))
        };
        let mut cfg = Config::default();
        assert_eq!(name(None, &cfg), Ok("UTC".into()));
        cfg.timezone = "Europe/Paris".into();
        assert_eq!(name(None, &cfg), Ok("Europe/Paris".into()));
        assert_eq!(
            name(Some("america/new_york"), &cfg),
            Ok("America/New_York".into())
        );
        let (code, msg) = name(Some("Europe/Pariss"), &cfg).unwrap_err();
        assert_eq!(code, 2);
        assert!(
            msg.starts_with("--timezone \"Europe/Pariss\" is not a time zone"),
            "{msg}"
        );
    }

    #[test]
    fn stems_are_safe() {
        assert_eq!(
            stem(&ScopeKind::User("../a b".into())),
            "report-user-.._a_b"
        );
        assert_eq!(stem(&ScopeKind::Cluster), "report");
    }

    #[test]
    fn answer_cap_flag_wins_over_config_then_default() {
        let cap = |f, c| max_answer_mib(f, c).map_err(|Fail(code, m)| (code, m));
        assert_eq!(cap(None, None), Ok(crate::prom::DEFAULT_MAX_ANSWER_MIB));
        assert_eq!(cap(None, Some(512)), Ok(512));
        assert_eq!(cap(Some(8), Some(512)), Ok(8));
        let (code, msg) = cap(Some(0), None).unwrap_err();
        assert_eq!(code, 2);
        assert!(msg.starts_with("--max-answer-mib 0"), "{msg}");
    }
}
