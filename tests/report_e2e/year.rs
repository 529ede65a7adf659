//! `--year`: a year's report is its months' reports added up, on Prometheus and VictoriaMetrics
//! (issue 17: the yearly report reads the same way as the month, with the same exactness), and
//! a year not over is the year so far.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// A section's rows (`projects.rows`, `top_jobs`, ...) as `key → row`.
fn rows_by<'v>(rows: &'v Value, key: &str) -> BTreeMap<String, &'v Value> {
    rows.as_array()
        .unwrap_or_else(|| panic!("rows keyed by {key}: {rows}"))
        .iter()
        .map(|r| (r[key].as_str().unwrap_or_default().to_string(), r))
        .collect()
}

/// `field` of every row of `section` (keyed by `key`) summed over `months`, by key.
fn summed(months: &[Value], section: &[&str], key: &str, field: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for m in months {
        let rows = section.iter().fold(m, |v, s| &v[*s]);
        for (k, r) in rows_by(rows, key) {
            *out.entry(k).or_insert(0.0) += r[field].as_f64().unwrap_or(0.0);
        }
    }
    out
}

/// Each row's `field` of `section` in `year` is the sum of the months' (every key in both).
fn rows_add_up(year: &Value, months: &[Value], section: &[&str], key: &str, field: &str) {
    let want = summed(months, section, key, field);
    let rows = section.iter().fold(year, |v, s| &v[*s]);
    let got: BTreeMap<String, f64> = rows_by(rows, key)
        .into_iter()
        .map(|(k, r)| (k, r[field].as_f64().unwrap_or(0.0)))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{section:?} keys"
    );
    for (k, w) in &want {
        assert!(
            close(got[k], *w, 1e-9),
            "{section:?} {k} {field}: year {} vs months {w}",
            got[k]
        );
    }
}

/// The data run from 30 September to 1 November 2026 (jobs crossing both month boundaries, an
/// exporter restart that lost its state): the report of 2026 holds every job whole, its energy
/// and core-hours the sum of its months', and the cluster, nodes, components, projects, users
/// and days are the three months' added up; the months' days are the year's days of those
/// dates, and its months (shown instead of the days) the months' reports' energy; what is
/// averaged over time is over the days the nodes reported. VictoriaMetrics gives the same year;
/// 2025 has no data.
#[test]
fn a_year_is_its_months_added_up() {
    let s = scenario::generate();
    let prom = prometheus(&s);
    let url = prom.url();
    let report = |args: &[&str]| json_report_at(&url, args, AFTER);
    let year = report(&["--year", "2026"]);
    assert_eq!(year["period"]["start"], "2026-01-01T00:00:00Z");
    assert_eq!(year["period"]["end"], "2027-01-01T00:00:00Z");
    assert_eq!(year["period"]["label"], "2026");
    let months: Vec<Value> = ["2026-09", "2026-10", "2026-11"]
        .iter()
        .map(|m| report(&["--month", m]))
        .collect();

    for field in [
        "it_energy_j",
        "jobs_energy_kwh",
        "unallocated_kwh",
        "core_hours",
    ] {
        let want: f64 = months
            .iter()
            .map(|m| m["headline"][field].as_f64().unwrap_or(0.0))
            .sum();
        let got = year["headline"][field].as_f64().expect(field);
        assert!(
            close(got, want, 1e-9),
            "{field}: year {got} vs months {want}"
        );
        assert!(got > 0.0, "{field}");
    }
    // Jobs: each once, whole; those crossing a boundary are in two months.
    let ids: BTreeSet<String> = months
        .iter()
        .flat_map(|m| rows_by(&m["top_jobs"], "job_id").into_keys())
        .collect();
    assert_eq!(year["headline"]["jobs"], ids.len());
    let crossing = months
        .iter()
        .map(|m| m["headline"]["jobs"].as_u64().unwrap_or(0))
        .sum::<u64>()
        - ids.len() as u64;
    assert!(crossing >= 2, "jobs crossing a month boundary: {crossing}");
    for field in ["energy_j", "core_hours", "gpu_hours"] {
        rows_add_up(&year, &months, &["top_jobs"], "job_id", field);
    }
    // A job that ran only in October is exactly the exporter's counters (month.rs checks the
    // month against them).
    let oct_only = rows_by(&year["top_jobs"], "job_id")["1009"]["energy_j"].as_f64();
    assert_eq!(oct_only, Some(s.job_energy_oct["1009"]));
    for scope in ["projects", "users"] {
        for field in ["energy_kwh", "core_hours", "gpu_hours"] {
            rows_add_up(&year, &months, &[scope, "rows"], "name", field);
        }
    }
    rows_add_up(&year, &months, &["idle", "nodes"], "node", "node_kwh");
    rows_add_up(
        &year,
        &months,
        &["idle", "by_component"],
        "component",
        "energy_kwh",
    );
    // 365 days; the months' days are the year's.
    let days = rows_by(&year["daily"], "date");
    assert_eq!(days.len(), 365);
    let mut compared = 0;
    for m in &months {
        for (date, row) in rows_by(&m["daily"], "date") {
            assert_same(row, days[&date], &format!("daily {date}"));
            compared += 1;
        }
    }
    assert_eq!(compared, 30 + 31 + 30);
    // The HTML and Markdown show the year by month: its monthly rows are its days added up, a
    // month's the month report's energy. A month of 30 or 31 days has none.
    let monthly = rows_by(&year["monthly"], "date");
    let names: Vec<String> = (1..=12).map(|m| format!("2026-{m:02}")).collect();
    assert_eq!(monthly.keys().cloned().collect::<Vec<_>>(), names);
    for (m, r) in ["2026-09", "2026-10", "2026-11"].iter().zip(&months) {
        let got = monthly[*m]["total_kwh"].as_f64().expect("total_kwh") * 3.6e6;
        let want = r["headline"]["it_energy_j"].as_f64().expect("it_energy_j");
        assert!(close(got, want, 1e-9), "{m}: {got} J vs {want} J");
        assert_eq!(r["monthly"], serde_json::json!([]));
    }
    assert_eq!(monthly["2026-05"]["total_kwh"], 0.0);
    let dir = tempfile::tempdir().expect("out");
    let out = dir.path().to_string_lossy().to_string();
    let args = [
        "--prometheus",
        &url,
        "--year",
        "2026",
        "--format",
        "md,html",
    ];
    ok(&reporter_at(AFTER)
        .args(args)
        .args(["--out", &out])
        .output()
        .expect("run joulebook-report"));
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("report.md");
    assert!(md.contains("![Monthly energy by component, idle stacked](report-monthly.png)"));
    assert!(
        md.contains("| month | cpu |") && md.contains("\n| 2026-10 | "),
        "{md}"
    );
    assert!(!md.contains("| 2026-10-01 |"), "{md}");
    assert!(dir.path().join("report-monthly.png").exists());
    assert!(!dir.path().join("report-daily.png").exists());
    // A GPU's unallocated hours are its share of the 33 days on which its node reported (30
    // September to 1 November), not of the year's 365.
    let gpus = year["idle"]["gpus"].as_array().expect("idle GPUs");
    assert!(!gpus.is_empty());
    for g in gpus {
        let share = g["unallocated_share"].as_f64().expect("unallocated_share");
        let hours = g["unallocated_hours"].as_f64().expect("unallocated_hours");
        assert!(close(hours, share * 33.0 * 24.0, 1e-9), "{g}");
    }

    let vm = victoria_metrics(&s);
    assert_same(
        &json_report_at(&vm.url(), &["--year", "2026"], AFTER),
        &year,
        "$",
    );
    let before = report(&["--year", "2025"]);
    assert_eq!(before["has_data"], false);
    assert_eq!(before["headline"]["jobs"], 0);
}

/// 2027-01-02T00:00:00Z: reports made after the data and after 2026.
const AFTER: i64 = 1_798_848_000;

/// A report made on 1 November 2026 (the tests' report time) of the year 2026 is the year so
/// far: cut at that time, and saying so; its figures are those of 1 January to 1 November, its
/// days the 304 elapsed. A year or month that starts at or after that time is a usage error
/// naming the flag.
#[test]
fn the_current_year_is_the_year_so_far() {
    let s = scenario::generate();
    let prom = prometheus(&s);
    let url = prom.url();
    let mut so_far = json_report(&url, &["--year", "2026"]);
    assert_eq!(so_far["period"]["start"], "2026-01-01T00:00:00Z");
    assert_eq!(so_far["period"]["end"], "2026-11-01T00:00:00Z");
    assert_eq!(so_far["period"]["days"], 304.0);
    assert_eq!(so_far["daily"].as_array().map(Vec::len), Some(304));
    let notes = so_far["notes"].to_string();
    assert!(
        notes.contains("The period asked for ends at 2027-01-01T00:00:00Z, after this report was made: it is cut at 2026-11-01T00:00:00Z"),
        "{notes}"
    );
    let mut between = json_report(&url, &["--from", "2026-01-01", "--to", "2026-11-01"]);
    for r in [&mut so_far, &mut between] {
        r["notes"] = Value::Null;
    }
    assert_same(&so_far, &between, "$");
    assert!(so_far["headline"]["it_energy_j"].as_f64().unwrap_or(0.0) > 0.0);

    for args in [&["--year", "2027"][..], &["--month", "2026-11"][..]] {
        let mut all = vec!["--prometheus", url.as_str(), "--out", "/nonexistent"];
        all.extend_from_slice(args);
        let o = reporter()
            .args(&all)
            .output()
            .expect("run joulebook-report");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{}: the period starts at", args.join(" "))),
            "{err}"
        );
        assert!(err.contains("not before now (2026-11-01T00:00:00Z): nothing to report yet"));
    }
}
