//! The same report however it is read: from VictoriaMetrics, in rounds of nodes, with a node
//! silent at a day's end.

use super::*;

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

/// Writes the scenario's OpenMetrics to $JOULEBOOK_SCENARIO_DUMP (a debugging aid).
#[test]
fn dump_scenario_when_asked() {
    if let Some(p) = std::env::var_os("JOULEBOOK_SCENARIO_DUMP") {
        std::fs::write(p, scenario::generate().openmetrics).expect("dump");
    }
}
