//! End-to-end tests of `joulebook-report` against a real Prometheus 2.42 (backfilled with
//! promtool) and VictoriaMetrics on 127.0.0.1, a real SMTP server (aiosmtpd) and headless
//! Chromium. The data come from `scenario.rs`, whose ground truth gives the expected figures.
//!
//! Golden files: `tests/golden/report-2026-10.{md,json}`; refresh with `UPDATE_GOLDEN=1`.
//! A missing promtool, prometheus, victoria-metrics, python3 with aiosmtpd or chromium fails the
//! test with the package to install.
//!
//! One module a topic: `month`, `mail`, `backends`, `tls`, `failures`, `zones`, `year`; the
//! servers and helpers they share are here, the JSON comparisons in `joulebook_tests`.

mod backends;
mod failures;
mod mail;
mod month;
mod tls;
mod year;
mod zones;

use joulebook_common as c;
use joulebook_tests::prometheus::{backfill_openmetrics, VictoriaMetrics};
use joulebook_tests::scenario::{self, Scenario};
use joulebook_tests::smtp::SmtpSink;
use joulebook_tests::{
    assert_same, close, free_port, http_get, json_report, json_report_at, repo_root,
    reported as ok, reporter, reporter_at,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The queries Prometheus logged ([`prometheus_opts`]), in order.
    fn queries(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("queries.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["params"]["query"].as_str().map(str::to_string))
            .collect()
    }
}

fn need(cmd: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{cmd} not found: install Debian's `{package}` (scripts/install-test-deps)"
    );
}

fn wait_ready(url: &str, child: &mut Child, what: &str) {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("{what} exited with {s}");
        }
        if let Ok((200, _, _)) = http_get(url, None) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} not ready at {url}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn prometheus(s: &Scenario) -> Server {
    prometheus_with(s, None)
}

/// Prometheus on the scenario's data; with `web`, the contents of a `--web.config.file` (TLS,
/// basic auth), in which case readiness is only checked by the port accepting connections.
fn prometheus_with(s: &Scenario, web: Option<&str>) -> Server {
    prometheus_opts(&s.openmetrics, web, false)
}

/// Prometheus on `openmetrics` (timestamped, ending in `# EOF`), as [`prometheus_with`]; with
/// `log_queries`, every query logged to the file that [`Server::queries`] reads.
fn prometheus_opts(openmetrics: &str, web: Option<&str>, log_queries: bool) -> Server {
    need("promtool", "prometheus");
    need("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    let om = dir.path().join("data.om");
    std::fs::write(&om, openmetrics).expect("write openmetrics");
    let data = dir.path().join("tsdb");
    backfill_openmetrics(&om, &data);
    let port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    let global = if log_queries {
        format!(
            "global:\n  query_log_file: {}\n",
            dir.path().join("queries.log").display()
        )
    } else {
        "global: {}\n".to_string()
    };
    std::fs::write(&cfg, global).expect("config");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let mut cmd = Command::new("prometheus");
    if let Some(w) = web {
        let p = dir.path().join("web.yml");
        std::fs::write(&p, w).expect("web config");
        cmd.arg(format!("--web.config.file={}", p.display()));
    }
    let mut child = cmd
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=3650d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    if web.is_some() {
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "prometheus did not listen"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The TSDB opens after the listener: give the backfilled blocks a moment.
        std::thread::sleep(Duration::from_secs(3));
    } else {
        wait_ready(
            &format!("http://127.0.0.1:{port}/-/ready"),
            &mut child,
            "prometheus",
        );
    }
    Server { child, port, dir }
}

fn victoria_metrics(s: &Scenario) -> VictoriaMetrics {
    need("victoria-metrics", "victoria-metrics");
    VictoriaMetrics::start_with(&s.prom_text_ms)
}

fn report(args: &[&str]) -> Output {
    report_at(args, scenario::OCT_END)
}

/// `report` on October 2026 from the server at `url`, with the further `args`.
fn report_october(url: &str, args: &[&str]) -> Output {
    let mut all = vec!["--prometheus", url, "--month", "2026-10"];
    all.extend_from_slice(args);
    report(&all)
}

/// `report` with "now" at `now` (Unix seconds).
fn report_at(args: &[&str], now: i64) -> Output {
    reporter_at(now)
        .args(args)
        .output()
        .expect("run joulebook-report")
}

fn month_report(url: &str, out: &Path, extra: &[&str]) -> Value {
    month_report_and_stderr(url, out, extra).0
}

/// [`month_report`], with what the reporter wrote on stderr.
fn month_report_and_stderr(url: &str, out: &Path, extra: &[&str]) -> (Value, String) {
    let out_s = out.to_string_lossy().to_string();
    let mut args = vec!["--prometheus", url, "--month", "2026-10", "--out", &out_s];
    args.extend_from_slice(extra);
    let o = report(&args);
    ok(&o);
    let stem = std::fs::read_dir(out)
        .expect("out dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    let json = std::fs::read_to_string(stem).expect("read json");
    (
        serde_json::from_str(&json).expect("parse json"),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn job<'v>(r: &'v Value, id: &str) -> &'v Value {
    r["top_jobs"]
        .as_array()
        .expect("top_jobs")
        .iter()
        .find(|j| j["job_id"] == id)
        .unwrap_or_else(|| panic!("job {id} missing from the report"))
}

/// `job ID` without --from/--to finds the job's time range itself, long after the job (the
/// reporter once searched only the last 31 days), on Prometheus and VictoriaMetrics alike.
fn job_found_without_dates(url: &str, s: &Scenario) {
    // Half a year after the data.
    let later = scenario::OCT_END + 182 * 86_400;
    let out = ok(&report_at(&["--prometheus", url, "job", "1009"], later));
    let want = s.job_energy_oct["1009"] / 3.6e6;
    assert!(
        out.contains(&format!("{want:.3} kWh")),
        "job 1009 found without dates should show {want:.3} kWh:\n{out}"
    );
    // Its nodes by name, `other` not measured, ML CO2 n/a for a CPU-only job.
    assert!(out.contains("Nodes:                  1 (n"), "{out}");
    assert!(!out.contains(":9977"), "{out}");
    assert!(
        out.contains("  other:                not measured on this cluster"),
        "{out}"
    );
    assert!(out.contains("ML CO2:                 n/a"), "{out}");
    // The window is the job's life, not the search's.
    assert!(out.contains("Seen:                   2026-10-"), "{out}");
    // A job that never ran is an error naming the search, with exit code 1.
    let o = report_at(&["--prometheus", url, "job", "999999"], later);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("job 999999: no sample of it"), "{err}");
}
