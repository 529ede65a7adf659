//! The month report from Prometheus against the scenario's ground truth: figures, golden files,
//! the JSON schema, the HTML page in Chromium, and `job ID` without dates.

use super::mail::mail_to_smtp;
use super::*;

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
    figures_match_the_counters(&r, &s);
    formats_are_documented_and_golden(&r, dir.path());
    names_are_escaped_and_no_file_is_left(&r, dir.path());
    project_and_anonymised_reports(&prom.url());
    job_command(&prom.url(), &s);
    job_found_without_dates(&prom.url(), &s);
    empty_period_says_so(&prom.url());
    keep_for_a_look(dir.path());
    mail_to_smtp(&prom.url());
}

/// Jobs, nodes, the cluster and its days: the exporter's counters inside October.
fn figures_match_the_counters(r: &Value, s: &Scenario) {
    // Each job: exactly the exporter's counters inside October (short job, boundary crossings,
    // both restarts included).
    for (id, want) in &s.job_energy_oct {
        let got = job(r, id)["energy_j"].as_f64().expect("energy_j");
        assert!(
            close(got, *want, 1e-9),
            "job {id}: report {got} J, counters {want} J"
        );
    }
    for (id, want) in &s.job_core_seconds_oct {
        let got = job(r, id)["core_hours"].as_f64().expect("core_hours") * 3600.0;
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
}

/// A file of the report written into `dir`.
fn read_out(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The JSON schema, the golden files, and what each format says of node names, ML CO2 and the
/// unmeasured `other` component.
fn formats_are_documented_and_golden(r: &Value, dir: &Path) {
    // Every field is documented in the JSON Schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("reporter/report.schema.json")).expect("schema"),
    )
    .expect("schema parses");
    documented(r, &schema, "$");

    // Golden Markdown and JSON.
    let md = read_out(dir, "report.md");
    let json = read_out(dir, "report.json");
    let html = read_out(dir, "report.html");
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
}

/// Hostile names escaped in every format, the charts written, no temporary file left.
fn names_are_escaped_and_no_file_is_left(r: &Value, dir: &Path) {
    let md = read_out(dir, "report.md");
    let html = read_out(dir, "report.html");
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
        let b = std::fs::read(dir.join(png)).expect(png);
        assert!(b.starts_with(b"\x89PNG"), "{png} is a PNG");
        assert!(html.contains(png), "html references {png}");
    }
    // No temporary file left.
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        assert!(
            !e.file_name().to_string_lossy().starts_with('.'),
            "leftover {:?}",
            e.file_name()
        );
    }
}

/// A project's report and a report with anonymised users.
fn project_and_anonymised_reports(url: &str) {
    // A project report holds that project's jobs only.
    let pdir = tempfile::tempdir().expect("out");
    let p = month_report(
        url,
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
        url,
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
}

/// `job ID` over 15–25 October.
fn job_in_october(url: &str, id: &str) -> Output {
    report(&[
        "--prometheus",
        url,
        "--from",
        "2026-10-15",
        "--to",
        "2026-10-25",
        "job",
        id,
    ])
}

/// The job subcommand: a job's energy and estimates; an unknown job fails.
fn job_command(url: &str, s: &Scenario) {
    // The job subcommand.
    let out = ok(&job_in_october(url, "1009"));
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
    let out = ok(&job_in_october(url, "1008"));
    assert!(out.contains("ML CO2:                 26.400 kWh"), "{out}");
    let out = job_in_october(url, "nope");
    assert_eq!(out.status.code(), Some(1));
}

fn empty_period_says_so(url: &str) {
    // An empty period says so.
    let edir2 = tempfile::tempdir().expect("out");
    let o = report(&[
        "--prometheus",
        url,
        "--month",
        "2025-01",
        "--out",
        &edir2.path().to_string_lossy(),
    ]);
    ok(&o);
    let empty_md = std::fs::read_to_string(edir2.path().join("report.md")).expect("md");
    assert!(empty_md.contains("No data"), "{empty_md}");
}

/// Screenshot of the HTML in headless Chromium, the page and its charts kept in the artefacts.
fn keep_for_a_look(dir: &Path) {
    screenshot(
        &dir.join("report.html"),
        &artefacts().join("report-2026-10.png"),
    );
    std::fs::copy(dir.join("report.html"), artefacts().join("report.html")).expect("copy");
    for png in ["report-daily.png", "report-projects.png"] {
        std::fs::copy(dir.join(png), artefacts().join(png)).expect("copy");
    }
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
