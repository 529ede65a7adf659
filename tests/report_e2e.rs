//! End-to-end tests of `joulebook-report` against a real Prometheus 2.42 (backfilled with
//! promtool) and VictoriaMetrics on 127.0.0.1, a real SMTP server (aiosmtpd) and headless
//! Chromium. The data come from `scenario.rs`, whose ground truth gives the expected figures.
//!
//! Golden files: `tests/golden/report-2026-10.{md,json}`; refresh with `UPDATE_GOLDEN=1`.
//! A missing promtool, prometheus, victoria-metrics, python3 with aiosmtpd or chromium fails the
//! test with the package to install.

use joulebook_common as c;
use joulebook_tests::prometheus::{backfill_openmetrics, VictoriaMetrics};
use joulebook_tests::scenario::{self, Scenario};
use joulebook_tests::smtp::SmtpSink;
use joulebook_tests::{binary, free_port, http_get, repo_root};
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

/// `report` with "now" at `now` (Unix seconds).
fn report_at(args: &[&str], now: i64) -> Output {
    Command::new(binary("joulebook-report"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", now.to_string())
        .env_remove("JOULEBOOK_PROMETHEUS_URL")
        .output()
        .expect("run joulebook-report")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "joulebook-report failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn month_report(url: &str, out: &Path, extra: &[&str]) -> Value {
    let out_s = out.to_string_lossy().to_string();
    let mut args = vec!["--prometheus", url, "--month", "2026-10", "--out", &out_s];
    args.extend_from_slice(extra);
    ok(&report(&args));
    let stem = std::fs::read_dir(out)
        .expect("out dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    serde_json::from_str(&std::fs::read_to_string(stem).expect("read json")).expect("parse json")
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

fn golden(name: &str, actual: &str) {
    let path = repo_root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir golden");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output; if the change is intended, refresh with UPDATE_GOLDEN=1.\n--- actual:\n{actual}",
        path.display()
    );
}

fn job<'v>(r: &'v Value, id: &str) -> &'v Value {
    r["top_jobs"]
        .as_array()
        .expect("top_jobs")
        .iter()
        .find(|j| j["job_id"] == id)
        .unwrap_or_else(|| panic!("job {id} missing from the report"))
}

/// Where the test keeps artefacts worth a look (PNG screenshots): target/report-e2e.
fn artefacts() -> PathBuf {
    let d = repo_root().join("target/report-e2e");
    std::fs::create_dir_all(&d).expect("artefact dir");
    d
}

#[test]
fn month_report_from_prometheus_matches_ground_truth() {
    let s = scenario::generate();
    let prom = prometheus(&s);
    let dir = tempfile::tempdir().expect("out");
    let r = month_report(&prom.url(), dir.path(), &[]);

    // Each job: exactly the exporter's counters inside October (short job, boundary crossings,
    // both restarts included).
    for (id, want) in &s.job_energy_oct {
        let got = job(&r, id)["energy_j"].as_f64().expect("energy_j");
        assert!(
            close(got, *want, 1e-9),
            "job {id}: report {got} J, counters {want} J"
        );
    }
    for (id, want) in &s.job_core_seconds_oct {
        let got = job(&r, id)["core_hours"].as_f64().expect("core_hours") * 3600.0;
        assert!(
            close(got, *want, 1e-9),
            "job {id}: report {got} core-s, counters {want}"
        );
    }
    assert_eq!(r["headline"]["jobs"], s.job_energy_oct.len());
    // Cluster: the counters' figure exactly, and the physical energy within the stated bound.
    let it = r["headline"]["it_energy_j"].as_f64().expect("it_energy_j");
    for n in r["idle"]["nodes"].as_array().expect("nodes") {
        // Shown by host name: the instance without the scrape port.
        let name = n["node"].as_str().unwrap_or_default();
        assert_eq!(
            n["instance"].as_str(),
            Some(scenario::instance(name).as_str()),
            "{n}"
        );
        let got = n["node_kwh"].as_f64().unwrap_or(0.0) * 3.6e6;
        let want = s.node_energy_oct_by_node[name];
        assert!(
            close(got, want, 1e-9),
            "node {name}: report {got} J, counters {want} J"
        );
    }
    assert!(
        close(it, s.node_energy_oct, 1e-9),
        "node energy {it} vs counters {}",
        s.node_energy_oct
    );
    assert!(
        (it - s.node_energy_physical_oct).abs() <= s.node_energy_bound,
        "node energy {it} J is {} J from the physical {} J, beyond the bound {} J",
        it - s.node_energy_physical_oct,
        s.node_energy_physical_oct,
        s.node_energy_bound
    );
    // Days add up to the month.
    let days: f64 = r["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .map(|d| d["total_kwh"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        close(days * 3.6e6, it, 1e-9),
        "days {days} kWh vs month {it} J"
    );
    assert_eq!(r["daily"].as_array().map(Vec::len), Some(31));

    // Every field is documented in the JSON Schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("reporter/report.schema.json")).expect("schema"),
    )
    .expect("schema parses");
    documented(&r, &schema, "$");

    // Golden Markdown and JSON.
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    let json = std::fs::read_to_string(dir.path().join("report.json")).expect("json");
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("html");
    golden("report-2026-10.md", &md);
    golden("report-2026-10.json", &json);

    // Node names without the scrape port in every format (the golden files hold them too).
    for (what, text) in [("markdown", &md), ("html", &html)] {
        assert!(!text.contains(":9977"), "{what} shows a scrape port");
        assert!(
            text.contains("| n1 |") || text.contains(">n1</td>"),
            "{what}"
        );
    }
    for g in r["idle"]["gpus"].as_array().expect("gpus") {
        assert!(!g["node"].as_str().unwrap_or(":").contains(':'), "{g}");
    }
    // ML CO2 is n/a, with its footnote, for CPU-only projects (proj-c ran no GPU job).
    let proj_c = r["estimates"]["projects"]
        .as_array()
        .expect("estimate rows")
        .iter()
        .find(|e| e["name"] == "proj-c")
        .expect("proj-c");
    assert!(proj_c["ml_co2_kwh"].is_null() && proj_c["ml_co2_ratio"].is_null());
    assert!(r["estimates"]["ml_co2_footnote"].is_string());
    assert!(md.contains("| project proj-c | 17.9 | 24.4 | 1.36× | 38.0 | n/a † | n/a |"));
    assert!(md.contains("\n† ML CO2 Impact counts GPU-hours"), "{md}");
    assert!(html.contains("n/a&nbsp;†") && html.contains("† ML CO2 Impact counts GPU-hours"));
    // `other`: no BMC on this cluster, nothing measures it.
    let other = |rows: &Value| {
        rows.as_array()
            .expect("component rows")
            .iter()
            .find(|c| c["component"] == "other")
            .cloned()
            .expect("other")
    };
    assert_eq!(other(&r["components"])["measured"], false);
    assert_eq!(other(&r["idle"]["by_component"])["measured"], false);
    assert_eq!(
        other(&r["components"])
            .get("energy_kwh")
            .and_then(Value::as_f64),
        Some(0.0)
    );
    assert!(
        md.contains("| other | not measured on this cluster | – |"),
        "{md}"
    );
    assert!(html.contains("not measured on this cluster"));
    assert_eq!(r["unmeasured"], serde_json::json!(["other"]));

    // Hostile names are escaped in every format.
    assert!(
        !md.contains("<script>") && md.contains("&lt;script&gt;"),
        "markdown escaping"
    );
    assert!(md.contains("proj\\|pipe"), "markdown pipe escaping");
    assert!(
        !html.contains("<script>") && html.contains("&lt;script&gt;"),
        "html escaping"
    );
    assert!(!html.contains("<b>\"q\""), "html escaping of the job name");
    assert!(r["top_jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .any(|j| j["user"] == "<script>alert(1)</script>"));
    for png in ["report-daily.png", "report-projects.png"] {
        let b = std::fs::read(dir.path().join(png)).expect(png);
        assert!(b.starts_with(b"\x89PNG"), "{png} is a PNG");
        assert!(html.contains(png), "html references {png}");
    }
    // No temporary file left.
    for e in std::fs::read_dir(dir.path()).expect("dir").flatten() {
        assert!(
            !e.file_name().to_string_lossy().starts_with('.'),
            "leftover {:?}",
            e.file_name()
        );
    }

    // A project report holds that project's jobs only.
    let pdir = tempfile::tempdir().expect("out");
    let p = month_report(
        &prom.url(),
        pdir.path(),
        &["--project", "proj-a", "--format", "json"],
    );
    let ids: Vec<&str> = p["top_jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["job_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|i| ["1001", "1002", "1003"].contains(i)));
    assert!(p["idle"].is_null());
    // Anonymised users.
    let adir = tempfile::tempdir().expect("out");
    let a = month_report(
        &prom.url(),
        adir.path(),
        &["--anonymize-users", "--format", "json,md"],
    );
    let a_md = std::fs::read_to_string(adir.path().join("report.md")).expect("md");
    assert!(!a_md.contains("alice") && a_md.contains("User 1"));
    assert!(a["users"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .all(|u| u["name"].as_str().is_some_and(|n| n.starts_with("User "))));

    // The job subcommand.
    let out = ok(&report(&[
        "--prometheus",
        &prom.url(),
        "--from",
        "2026-10-15",
        "--to",
        "2026-10-25",
        "job",
        "1009",
    ]));
    let want = s.job_energy_oct["1009"] / 3.6e6;
    assert!(
        out.contains(&format!("{want:.3} kWh")),
        "job 1009 should show {want:.3} kWh:\n{out}"
    );
    assert!(
        out.contains("Green Algorithms:") && out.contains("Core-hours:"),
        "{out}"
    );
    // ML CO2 of the two-node job uses each node's GPU power limit: 24 h × (700 W + 400 W).
    let out = ok(&report(&[
        "--prometheus",
        &prom.url(),
        "--from",
        "2026-10-15",
        "--to",
        "2026-10-25",
        "job",
        "1008",
    ]));
    assert!(out.contains("ML CO2:                 26.400 kWh"), "{out}");
    let out = report(&[
        "--prometheus",
        &prom.url(),
        "--from",
        "2026-10-15",
        "--to",
        "2026-10-25",
        "job",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    job_found_without_dates(&prom.url(), &s);

    // An empty period says so.
    let edir2 = tempfile::tempdir().expect("out");
    let o = report(&[
        "--prometheus",
        &prom.url(),
        "--month",
        "2025-01",
        "--out",
        &edir2.path().to_string_lossy(),
    ]);
    ok(&o);
    let empty_md = std::fs::read_to_string(edir2.path().join("report.md")).expect("md");
    assert!(empty_md.contains("No data"), "{empty_md}");

    // Screenshot of the HTML in headless Chromium, kept for a look.
    screenshot(
        &dir.path().join("report.html"),
        &artefacts().join("report-2026-10.png"),
    );
    std::fs::copy(
        dir.path().join("report.html"),
        artefacts().join("report.html"),
    )
    .expect("copy");
    for png in ["report-daily.png", "report-projects.png"] {
        std::fs::copy(dir.path().join(png), artefacts().join(png)).expect("copy");
    }

    // Mail through a real SMTP server.
    mail_to_smtp(&prom.url());
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

/// Every object key of `v` is a property of `schema` (recursively through arrays).
fn documented(v: &Value, schema: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            let props = &schema["properties"];
            for (k, x) in m {
                assert!(
                    props.get(k).is_some(),
                    "{path}.{k} is not in reporter/report.schema.json"
                );
                documented(x, &props[k], &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => {
            for x in a {
                documented(x, &schema["items"], &format!("{path}[]"));
            }
        }
        _ => {}
    }
}

fn screenshot(html: &Path, png: &Path) {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!("chromium not found: install Debian's `chromium` (scripts/install-test-deps)")
        });
    let profile = tempfile::tempdir().expect("profile");
    let _ = std::fs::remove_file(png);
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    let bytes = std::fs::read(png).unwrap_or_else(|e| {
        panic!(
            "chromium wrote no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "screenshot looks empty"
    );
}

fn mail_to_smtp(prom_url: &str) {
    let sink = SmtpSink::start(&[]);
    let port = sink.port;
    let dir = tempfile::tempdir().expect("smtp dir");
    let cfg = dir.path().join("site.yaml");
    std::fs::write(
        &cfg,
        format!(
            "site_name: Test <cluster>\nsmtp:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  from: joulebook <report@example.org>\nrecipients:\n  admins: [admin@example.org]\n  projects:\n    proj-a: [lead-a@example.org]\n  users:\n    alice: [alice@example.org]\n"
        ),
    )
    .expect("config");
    let o = report(&[
        "--prometheus",
        prom_url,
        "--month",
        "2026-10",
        "--config",
        &cfg.to_string_lossy(),
        "email",
    ]);
    ok(&o);
    // --dry-run writes the same messages as .eml files and sends nothing.
    let outbox = dir.path().join("outbox");
    ok(&report(&[
        "--prometheus",
        prom_url,
        "--month",
        "2026-10",
        "--config",
        &cfg.to_string_lossy(),
        "--out",
        &outbox.to_string_lossy(),
        "email",
        "--dry-run",
    ]));
    let mut eml: Vec<String> = std::fs::read_dir(&outbox)
        .expect("outbox")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    eml.sort();
    assert_eq!(
        eml,
        [
            "report-project-proj-a-to-lead-a_example.org.eml",
            "report-to-admin_example.org.eml",
            "report-user-alice-to-alice_example.org.eml"
        ]
    );
    let msgs = sink.received();
    let to: Vec<&str> = msgs.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        to,
        [
            "admin@example.org",
            "alice@example.org",
            "lead-a@example.org"
        ]
    );
    for (to, m) in &msgs {
        assert!(
            m.contains("multipart/alternative"),
            "{to}: not multipart/alternative"
        );
        assert!(
            m.contains("multipart/related"),
            "{to}: no multipart/related"
        );
        assert!(m.contains("Content-Type: text/plain"), "{to}: no text part");
        assert!(m.contains("Content-Type: text/html"), "{to}: no html part");
        assert!(
            m.contains("Content-Type: image/png") && m.contains("Content-ID: <projects>"),
            "{to}: no inline chart"
        );
        let html = decode_parts(m, "html");
        assert!(
            !html.is_empty() && !html.contains("<script>"),
            "{to}: unescaped name in the HTML part"
        );
    }
    let alice = &msgs[1].1;
    let decoded = decode_parts(alice, "");
    assert!(
        decoded.contains("train-final") || decoded.contains("1001"),
        "alice's mail lacks her job"
    );
    assert!(
        !decoded.contains("1003") && !decoded.contains("bob"),
        "alice's mail shows bob's job"
    );
    let admin = decode_parts(&msgs[0].1, "html");
    assert!(
        admin.contains("cid:daily") && admin.contains("&lt;script&gt;"),
        "admin mail"
    );
    // The mail shows what the files show: nodes by name, `other` not measured, ML CO2 n/a.
    assert!(
        admin.contains(">n1</td>") && !admin.contains(":9977"),
        "{admin}"
    );
    assert!(admin.contains("not measured on this cluster"), "{admin}");
    assert!(
        admin.contains("† ML CO2 Impact counts GPU-hours"),
        "{admin}"
    );
    let text = decode_parts(&msgs[0].1, "plain");
    assert!(
        text.contains("other: not measured on this cluster"),
        "{text}"
    );
}

/// The decoded text parts of a message whose subtype starts with `subtype` ("" for all), parsed
/// by Python's email package (an independent MIME parser).
fn decode_parts(m: &str, subtype: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys,email\nm=email.message_from_string(sys.stdin.read())\nfor p in m.walk():\n  if p.get_content_maintype()=='text' and p.get_content_subtype().startswith(sys.argv[1]): print(p.get_payload(decode=True).decode())", subtype])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(m.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3 email parser");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn victoria_metrics_gives_the_same_report() {
    let s = scenario::generate();
    let vm = victoria_metrics(&s);
    let prom = prometheus(&s);
    let (d1, d2) = (
        tempfile::tempdir().expect("out"),
        tempfile::tempdir().expect("out"),
    );
    let a = month_report(&vm.url(), d1.path(), &["--format", "json"]);
    let b = month_report(&prom.url(), d2.path(), &["--format", "json"]);
    assert_same(&a, &b, "$");
    job_found_without_dates(&vm.url(), &s);
}

/// Job queries read a node at a time (`--nodes-per-query 1`, one round per node plus the round
/// of the nodes without facts) or two at a time on VictoriaMetrics: the report is the one read
/// in a single round, restarts' slow path and jobs on several nodes included (issue 17).
#[test]
fn job_queries_in_rounds_give_the_same_report() {
    let s = scenario::generate();
    let prom = prometheus(&s);
    let vm = victoria_metrics(&s);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("out")).collect();
    let whole = month_report(&prom.url(), dirs[0].path(), &["--format", "json"]);
    let rounds = month_report(
        &prom.url(),
        dirs[1].path(),
        &["--format", "json", "--nodes-per-query", "1"],
    );
    assert_same(&whole, &rounds, "$");
    let vm_rounds = month_report(
        &vm.url(),
        dirs[2].path(),
        &["--format", "json", "--nodes-per-query", "2"],
    );
    assert_same(&whole, &vm_rounds, "$");
    assert!(whole["headline"]["jobs"].as_u64().unwrap_or(0) > 0);
}

/// A node silent at a day's end (n3's exporter is down from 19 d 12:00:30 for 20 min, scrapes
/// every 600 s): with a lookback of 700 s its last sample is outside the window read near the
/// period's end, so that day is read over the whole day for n3; the report equals the one whose
/// 1-hour lookback sees the sample near the end.
#[test]
fn node_silent_at_a_day_end_loses_nothing() {
    let s = scenario::generate();
    let prom = prometheus(&s);
    let run = |lookback: &str| {
        let dir = tempfile::tempdir().expect("out");
        let out = dir.path().to_string_lossy().to_string();
        ok(&report(&[
            "--prometheus",
            &prom.url(),
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-20T12:20:00Z",
            "--lookback",
            lookback,
            "--format",
            "json",
            "--out",
            &out,
        ]));
        let json = std::fs::read_dir(dir.path())
            .expect("out dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .expect("a JSON report");
        serde_json::from_str::<Value>(&std::fs::read_to_string(json).expect("read"))
            .expect("parse json")
    };
    let (short, long) = (run("700s"), run("1h"));
    assert!(short["headline"]["it_energy_kwh"].as_f64().unwrap_or(0.0) > 0.0);
    assert_same(&short, &long, "$");
}

/// The JSON report of `args` (with `--format json` and a fresh `--out`).
fn json_report(url: &str, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("out");
    let out = dir.path().to_string_lossy().to_string();
    let mut all = vec!["--prometheus", url, "--format", "json", "--out", &out];
    all.extend_from_slice(args);
    ok(&report(&all));
    let text = std::fs::read_to_string(dir.path().join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("parse json")
}

fn it_joules(r: &Value) -> f64 {
    r["headline"]["it_energy_j"].as_f64().expect("it_energy_j")
}

/// `--timezone Europe/Paris`: October is Paris' October (2026-09-30T22:00Z to 2026-10-31T23:00Z),
/// its 31 daily rows are Paris days (Sunday 25 October lasts 25 hours) that add up to the month,
/// and each row holds the energy between two local midnights: a UTC report over those instants
/// gives the same. The config's `timezone` does the same as the flag, which wins over it.
#[test]
fn month_in_a_time_zone_has_local_days() {
    let s = scenario::generate();
    let prom = prometheus(&s);
    let url = prom.url();
    let dir = tempfile::tempdir().expect("out");
    let r = month_report(&url, dir.path(), &["--timezone", "Europe/Paris"]);
    assert_eq!(r["period"]["start"], "2026-10-01T00:00:00+02:00");
    assert_eq!(r["period"]["end"], "2026-11-01T00:00:00+01:00");
    assert_eq!(r["period"]["label"], "2026-10");
    // SOURCE_DATE_EPOCH is 2026-11-01T00:00:00Z.
    assert_eq!(r["generated_at"], "2026-11-01T01:00:00+01:00");
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(
        md.contains("period 2026-10-01T00:00:00+02:00 to 2026-11-01T00:00:00+01:00"),
        "{md}"
    );

    let daily = r["daily"].as_array().expect("daily");
    assert_eq!(daily.len(), 31);
    for (i, d) in daily.iter().enumerate() {
        assert_eq!(d["date"], format!("2026-10-{:02}", i + 1));
    }
    let it = it_joules(&r);
    assert!(it > 0.0);
    let days: f64 = daily
        .iter()
        .map(|d| d["total_kwh"].as_f64().unwrap_or(0.0) * 3.6e6)
        .sum();
    assert!(close(days, it, 1e-9), "days {days} J vs month {it} J");
    let whole = json_report(
        &url,
        &[
            "--from",
            "2026-09-30T22:00:00Z",
            "--to",
            "2026-10-31T23:00:00Z",
        ],
    );
    assert!(
        close(it_joules(&whole), it, 1e-9),
        "{} vs {it}",
        it_joules(&whole)
    );
    // The first day, the 25-hour day and the last day, between their local midnights in UTC.
    for (i, from, to) in [
        (0, "2026-09-30T22:00:00Z", "2026-10-01T22:00:00Z"),
        (24, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"),
        (30, "2026-10-30T23:00:00Z", "2026-10-31T23:00:00Z"),
    ] {
        let day = daily[i]["total_kwh"].as_f64().expect("total_kwh") * 3.6e6;
        let w = it_joules(&json_report(&url, &["--from", from, "--to", to]));
        assert!(close(day, w, 1e-9), "day {} J, {from} to {to} {w} J", i + 1);
    }

    // The config's key, and the flag over it.
    let cfg_dir = tempfile::tempdir().expect("cfg");
    let cfg = |zone: &str| {
        let p = cfg_dir
            .path()
            .join(format!("{}.yaml", zone.replace('/', "-")));
        std::fs::write(&p, format!("timezone: {zone}\n")).expect("write config");
        p.to_string_lossy().to_string()
    };
    let paris = cfg("Europe/Paris");
    let by_key = json_report(&url, &["--month", "2026-10", "--config", &paris]);
    assert_same(&by_key, &r, "$");
    let new_york = cfg("America/New_York");
    let flag_wins = json_report(
        &url,
        &[
            "--month",
            "2026-10",
            "--config",
            &new_york,
            "--timezone",
            "Europe/Paris",
        ],
    );
    assert_same(&flag_wins, &r, "$");

    // The job summary prints its window in the zone.
    let out = ok(&report(&[
        "--prometheus",
        &url,
        "--from",
        "2026-10-15",
        "--to",
        "2026-10-25",
        "--timezone",
        "Europe/Paris",
        "job",
        "1009",
    ]));
    let seen = out
        .lines()
        .find(|l| l.starts_with("Seen:"))
        .expect("a Seen line");
    assert!(
        !seen.contains('Z') && seen.matches("+02:00").count() == 2,
        "{seen}"
    );
}

/// A time zone that is not in the IANA database is a usage error (exit 2) naming the flag or the
/// file and key, and the value.
#[test]
fn unknown_time_zone_exits_2_naming_the_flag_or_key() {
    let dir = tempfile::tempdir().expect("cfg");
    let cfg = dir.path().join("site.yaml");
    std::fs::write(&cfg, "timezone: Europe/Pariss\n").expect("write");
    let cfg = cfg.to_string_lossy().to_string();
    let base = [
        "--prometheus",
        "http://127.0.0.1:1",
        "--month",
        "2026-10",
        "--out",
    ];
    let out = dir.path().join("out").to_string_lossy().to_string();
    let mut args = base.to_vec();
    args.extend([out.as_str(), "--timezone", "Mars/Olympus_Mons"]);
    let o = report(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--timezone \"Mars/Olympus_Mons\" is not a time zone of the IANA database"),
        "{err}"
    );
    let mut args = base.to_vec();
    args.extend([out.as_str(), "--config", &cfg]);
    let o = report(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("site.yaml") && err.contains("timezone: \"Europe/Pariss\" is not a time zone"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists(), "nothing written");
}

/// The restart marker (`joulebook_counters_start_time_seconds`, issue 17): the report of exporters
/// that publish it is the report of older exporters that do not, n2's resume from its state file
/// and n3's restart without it (Oct 20, inside the month) included, and the marker spared the
/// `resets` passes it may: n1 and n2 (no start from zero since a week before the data) are left
/// out of every pass, n3 out of none of the job counters' and only of the days after its restart.
#[test]
fn restart_marker_spares_the_resets_passes_and_changes_no_figure() {
    let with = prometheus_opts(&scenario::generate().openmetrics, None, true);
    let without = prometheus(&scenario::generate_without_marker());
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("out")).collect();
    let mut fast = month_report(&with.url(), dirs[0].path(), &["--format", "json"]);
    let mut slow = month_report(&without.url(), dirs[1].path(), &["--format", "json"]);
    // The notes say how many series were read from raw samples: without the marker, those of
    // n2's resume (counters a little below what was scraped) too; with it, n3's only.
    let raw_note = |r: &mut Value| {
        let notes = r["notes"].take();
        let n: Vec<&str> = notes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .filter(|n| n.contains("computed from raw samples"))
            .collect();
        assert_eq!(n.len(), 1, "{notes}");
        n[0].split(' ').next().unwrap_or_default().to_string()
    };
    assert_eq!(
        (raw_note(&mut fast), raw_note(&mut slow)),
        ("10".into(), "22".into())
    );
    assert_same(&fast, &slow, "$");
    assert!(fast["headline"]["jobs"].as_u64().unwrap_or(0) > 0);

    let resets: Vec<String> = with
        .queries()
        .into_iter()
        .filter(|q| q.contains("resets("))
        .collect();
    let (n1, n2, n3) = (
        scenario::instance("n1"),
        scenario::instance("n2"),
        scenario::instance("n3"),
    );
    let skips = |q: &str, i: &str| {
        q.split_once("instance!~\"").is_some_and(|(_, rest)| {
            rest.split('"')
                .next()
                .is_some_and(|alt| alt.split('|').any(|x| x.replace('\\', "") == i))
        })
    };
    let job = c::JOB_ENERGY.name();
    let job_passes: Vec<&String> = resets.iter().filter(|q| q.contains(&job)).collect();
    let day_passes: Vec<&String> = resets.iter().filter(|q| !q.contains(&job)).collect();
    assert_eq!(job_passes.len(), 1, "{resets:#?}");
    // Node and unallocated counters, a pass a day each.
    assert_eq!(day_passes.len(), 2 * 31, "{resets:#?}");
    for q in resets.iter() {
        assert!(skips(q, &n1) && skips(q, &n2), "n1 and n2 read: {q}");
    }
    assert!(!skips(job_passes[0], &n3), "{}", job_passes[0]);
    let n3_skipped = day_passes.iter().filter(|q| skips(q, &n3)).count();
    // n3 came back at Oct 20 12:20:30: the days whose start, less the 1 h lookback and the hour
    // of clock allowance, is past it (Oct 21 to 31) skip it, both families.
    assert_eq!(n3_skipped, 2 * 11, "{day_passes:#?}");
}

/// One node (100 W of unallocated CPU, scraped every 600 s, Oct 1 to 4) whose exporter is down
/// from Oct 2 23:45 to Oct 3 00:25 and resumes from its state file, so its marker stays a month
/// old: with a 700 s lookback its series are silent near Oct 2's end and the node has no
/// `resets` pass; its series, known from other days' ends, are read over Oct 2. Each day keeps
/// its own energy, as without the marker (issue 17).
#[test]
fn node_without_resets_pass_silent_at_a_day_end_loses_nothing() {
    let (oct1, step) = (scenario::OCT_START, 600);
    let down = (oct1 + 2 * 86_400 - 900, oct1 + 2 * 86_400 + 1_500);
    let data = |marker: bool| {
        let sel = |m: &joulebook_common::MetricDef, extra: &str| {
            format!(
                "{}{{cluster=\"c1\",instance=\"solo:9977\"{extra}}}",
                m.name()
            )
        };
        let mut om = String::new();
        for (m, kind) in [
            (c::NODE_ENERGY, "counter"),
            (c::UNALLOCATED_ENERGY, "counter"),
            (c::COUNTERS_START_TIME, "gauge"),
        ] {
            if kind == "gauge" && !marker {
                continue;
            }
            let family = m.name().trim_end_matches("_total").to_string();
            om.push_str(&format!("# TYPE {family} {kind}\n"));
            let mut t = oct1 - 86_400;
            while t <= oct1 + 4 * 86_400 {
                if t < down.0 || t >= down.1 {
                    let (sel, v) = if kind == "gauge" {
                        (sel(&m, ""), (oct1 - 30 * 86_400) as f64)
                    } else {
                        // 100 W from 10 MJ at Sep 30 00:00, through the downtime too.
                        (
                            sel(&m, ",component=\"cpu\""),
                            1e7 + 100.0 * (t - oct1 + 86_400) as f64,
                        )
                    };
                    om.push_str(&format!("{sel} {v} {t}\n"));
                }
                t += step;
            }
        }
        om.push_str("# EOF\n");
        om
    };
    let with = prometheus_opts(&data(true), None, true);
    let without_marker = prometheus_opts(&data(false), None, false);
    let run = |url: &str| {
        let dir = tempfile::tempdir().expect("out");
        let out = dir.path().to_string_lossy().to_string();
        ok(&report(&[
            "--prometheus",
            url,
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-04",
            "--lookback",
            "700s",
            "--format",
            "json",
            "--out",
            &out,
        ]));
        let json = std::fs::read_dir(dir.path())
            .expect("out dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .expect("a JSON report");
        serde_json::from_str::<Value>(&std::fs::read_to_string(json).expect("read"))
            .expect("parse json")
    };
    let (fast, slow) = (run(&with.url()), run(&without_marker.url()));
    assert_same(&fast, &slow, "$");
    let daily: Vec<f64> = fast["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .map(|d| d["idle_kwh"].as_f64().unwrap_or(f64::NAN))
        .collect();
    // Oct 2 ends with the last sample before the downtime (23:40), Oct 3 takes the rest.
    let kwh = |s: f64| 100.0 * s / 3.6e6;
    let expect = [
        kwh(86_400.0),
        kwh(86_400.0 - 1_200.0),
        kwh(86_400.0 + 1_200.0),
    ];
    assert_eq!(daily.len(), 3, "{daily:?}");
    for (d, e) in daily.iter().zip(expect) {
        assert!(close(*d, e, 1e-9), "{daily:?} vs {expect:?}");
    }
    let resets: Vec<String> = with
        .queries()
        .into_iter()
        .filter(|q| q.contains("resets("))
        .collect();
    assert!(
        !resets.is_empty() && resets.iter().all(|q| q.contains("instance!~\"solo:9977\"")),
        "{resets:#?}"
    );
}

fn assert_same(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                close(x, y, 1e-9),
                "{path}: {x} vs {y} (first report vs second)"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_same(p, q, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                assert_same(v, &y[k], &format!("{path}.{k}"));
            }
            assert_eq!(x.len(), y.len(), "{path}: keys");
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

#[test]
fn unreachable_server_fails_cleanly_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("out");
    let port = free_port();
    let t = Instant::now();
    let o = report(&[
        "--prometheus",
        &format!("http://127.0.0.1:{port}"),
        "--month",
        "2026-10",
        "--attempts",
        "3",
        "--out",
        &dir.path().to_string_lossy(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot reach") && err.contains("3 attempts"),
        "{err}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "no backoff between attempts"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "files written"
    );
}

#[test]
fn bad_config_and_usage_exit_2_with_the_key_and_line() {
    let dir = tempfile::tempdir().expect("cfg");
    let cfg = dir.path().join("site.yaml");
    std::fs::write(&cfg, "site_name: x\npeu:\n  value: 1.2\n").expect("write");
    let o = report(&[
        "--prometheus",
        "http://127.0.0.1:1",
        "--month",
        "2026-10",
        "--out",
        "x",
        "--config",
        &cfg.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("site.yaml") && err.contains("peu"), "{err}");
    let o = report(&[
        "--prometheus",
        "http://127.0.0.1:1",
        "--month",
        "2026-13",
        "--out",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("YYYY-MM"));
}

/// Writes the scenario's OpenMetrics to $JOULEBOOK_SCENARIO_DUMP (a debugging aid).
#[test]
fn dump_scenario_when_asked() {
    if let Some(p) = std::env::var_os("JOULEBOOK_SCENARIO_DUMP") {
        std::fs::write(p, scenario::generate().openmetrics).expect("dump");
    }
}

/// bcrypt of "joulebook-test" (cost 4), for Prometheus' basic_auth_users.
const BCRYPT: &str = "$2b$04$8eRxXipbkhaseaoyxUvXGuxabnhYE9jDnHw2suHfr634MeAG.mNky";

fn openssl(dir: &Path, args: &[&str]) {
    need("openssl", "openssl");
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn tls_with_site_ca_and_basic_auth() {
    let certs = tempfile::tempdir().expect("certs");
    let d = certs.path();
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=joulebook test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    std::fs::write(d.join("password"), "joulebook-test\n").expect("password");
    std::fs::write(d.join("wrong"), "nope\n").expect("password");
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  reader: {BCRYPT}\n",
        d.join("srv.pem").display(),
        d.join("srv.key").display()
    );
    let s = scenario::generate();
    let prom = prometheus_with(&s, Some(&web));
    let url = format!("https://127.0.0.1:{}", prom.port);
    let out = tempfile::tempdir().expect("out");
    let ca = d.join("ca.pem").to_string_lossy().to_string();
    let pw = d.join("password").to_string_lossy().to_string();
    let r = month_report(
        &url,
        out.path(),
        &[
            "--format",
            "json",
            "--ca-file",
            &ca,
            "--basic-auth-user",
            "reader",
            "--basic-auth-password-file",
            &pw,
        ],
    );
    let it = r["headline"]["it_energy_j"].as_f64().expect("it_energy_j");
    assert!(close(it, s.node_energy_oct, 1e-9));

    let o_dir = out.path().join("x").to_string_lossy().to_string();
    let wrong = d.join("wrong").to_string_lossy().to_string();
    let o = report(&[
        "--prometheus",
        &url,
        "--month",
        "2026-10",
        "--out",
        &o_dir,
        "--ca-file",
        &ca,
        "--basic-auth-user",
        "reader",
        "--basic-auth-password-file",
        &wrong,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refused the credentials"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = report(&[
        "--prometheus",
        &url,
        "--month",
        "2026-10",
        "--out",
        &o_dir,
        "--attempts",
        "1",
        "--basic-auth-user",
        "reader",
        "--basic-auth-password-file",
        &pw,
    ]);
    assert_eq!(o.status.code(), Some(1), "an unknown CA must be refused");
    assert!(!Path::new(&o_dir).exists(), "nothing written on failure");
}

#[test]
fn failing_server_is_retried_then_reported() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 65536];
            let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let dir = tempfile::tempdir().expect("out");
    let o = report(&[
        "--prometheus",
        &format!("http://127.0.0.1:{port}"),
        "--month",
        "2026-10",
        "--attempts",
        "3",
        "--out",
        &dir.path().to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("HTTP 503") && err.contains("3 attempts"),
        "{err}"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one request per attempt"
    );
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

/// How a fake Prometheus on 127.0.0.1 treats each connection.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Accepts and never answers.
    Silent,
    /// Sends the headers and part of the body, then neither sends more nor closes.
    StallsMidBody,
    /// A complete HTTP answer (200, right Content-Length) whose JSON stops in the middle.
    TruncatedJson,
    /// A 200 announcing more bytes than it sends, then closes.
    ClosesEarly,
}

/// The start of a valid answer, cut inside the result list.
const PARTIAL_JSON: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"n1"},"value":[1793491200,"#;

/// Reads one whole request (headers and the Content-Length body), so that closing the socket
/// afterwards is a clean FIN, not a reset for unread data.
fn read_request(conn: &mut std::net::TcpStream) {
    use std::io::Read;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..header_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < header_end + len {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A fake Prometheus on 127.0.0.1 that misbehaves on every connection; its URL. Stalled
/// connections are held open until the test process ends.
fn misbehaving_prometheus(how: Misbehaviour) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in listener.incoming().flatten() {
            let body = PARTIAL_JSON.as_bytes();
            match how {
                Misbehaviour::Silent => {}
                Misbehaviour::StallsMidBody | Misbehaviour::ClosesEarly => {
                    read_request(&mut conn);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len() + 1000
                    );
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(body);
                    let _ = conn.flush();
                }
                Misbehaviour::TruncatedJson => {
                    read_request(&mut conn);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(body);
                    let _ = conn.flush();
                }
            }
            match how {
                Misbehaviour::Silent | Misbehaviour::StallsMidBody => held.push(conn),
                Misbehaviour::TruncatedJson | Misbehaviour::ClosesEarly => {
                    let _ = conn.shutdown(std::net::Shutdown::Both);
                }
            }
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Runs `joulebook-report` and kills it if it has not given up within `limit` (a hang is the
/// failure under test, so the test itself stays bounded).
fn report_bounded(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(binary("joulebook-report"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1793491200")
        .env_remove("JOULEBOOK_PROMETHEUS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run joulebook-report");
    let t = Instant::now();
    loop {
        match child.try_wait().expect("wait for joulebook-report") {
            Some(_) => break,
            None if t.elapsed() > limit => {
                let _ = child.kill();
                let o = child.wait_with_output().expect("collect output");
                panic!(
                    "joulebook-report still running after {limit:?}: it does not give up\n{}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    child.wait_with_output().expect("collect output")
}

/// The reporter against `how`: exit 1, one error naming the server and the query and containing
/// every `expect`, nothing on stdout, and an earlier report in --out left as it was.
fn fails_cleanly_against(how: Misbehaviour, extra: &[&str], expect: &[&str]) {
    let url = misbehaving_prometheus(how);
    let dir = tempfile::tempdir().expect("out");
    let earlier = dir.path().join("report.json");
    std::fs::write(&earlier, "{\"earlier\": true}\n").expect("earlier report");
    let out = dir.path().to_string_lossy().to_string();
    let mut args = vec![
        "--prometheus",
        &url,
        "--month",
        "2026-10",
        "--attempts",
        "2",
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    let o = report_bounded(&args, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "one message: {err}");
    assert!(err.contains(&url) && err.contains("query: "), "{err}");
    assert!(err.contains("2 attempts"), "{err}");
    for e in expect {
        assert!(err.contains(e), "{e:?} missing from: {err}");
    }
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["report.json"], "files in --out");
    assert_eq!(
        std::fs::read_to_string(&earlier).expect("earlier report"),
        "{\"earlier\": true}\n",
        "the earlier report was touched"
    );
}

#[test]
fn silent_server_times_out_with_the_flag_and_writes_nothing() {
    fails_cleanly_against(
        Misbehaviour::Silent,
        &["--timeout", "1"],
        &["no complete answer within 1 s", "--timeout"],
    );
}

#[test]
fn server_stalling_mid_answer_times_out_and_writes_nothing() {
    fails_cleanly_against(
        Misbehaviour::StallsMidBody,
        &["--timeout", "1"],
        &["no complete answer within 1 s", "--timeout"],
    );
}

#[test]
fn truncated_json_is_reported_and_writes_nothing() {
    fails_cleanly_against(
        Misbehaviour::TruncatedJson,
        &[],
        &[
            "cut its answer short",
            "HTTP 200, the JSON stops after 108 bytes",
        ],
    );
}

#[test]
fn answer_shorter_than_its_content_length_is_reported_and_writes_nothing() {
    fails_cleanly_against(
        Misbehaviour::ClosesEarly,
        &[],
        &[
            "cut its answer short",
            "the connection closed after 108 bytes",
        ],
    );
}
