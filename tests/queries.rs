//! Every PromQL expression joulebook ships — each dashboard panel target and template variable,
//! each recording and alerting rule (`joulebook_tests::promql::all_expressions`) — runs against a
//! real Prometheus holding a simulated month, and must return data: a panel or rule that
//! returns nothing fails. The month is `tests/fixtures/simulate/month.yaml`, which has a reason
//! for every alert; the recording rules are backfilled over it with promtool, level by level
//! (a rule that reads another rule's series is evaluated after it). Alerts are then checked for
//! where they fire: on the nodes the month gives them a reason to, and on no other.
//!
//! Needs promtool and prometheus (scripts/install-test-deps). Builds the release exporter, as
//! the demo does: the debug build simulates the month nine times slower.

use joulebook_tests::prometheus::{backfill_openmetrics, Labels, Prometheus, Series};
use joulebook_tests::promql::{all_expressions, metric_names, Expression, Origin};
use joulebook_tests::{fixture, repo_root};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How often the backfilled recording rules are evaluated, seconds: the interval of the one
/// group that sets one (the 7-day baseline), and enough for the others, whose windows are 5 m or
/// more (Prometheus' default 1 m would only make the backfill slower).
const EVAL_INTERVAL_S: u32 = 300;

/// Resolution of the subquery that looks for data over the whole month: a coarse grid first,
/// then, for an expression that found nothing on it, a fine one. Every alert's reason in
/// month.yaml lasts at least 30 minutes, so the 5-minute grid sees it.
const COARSE_STEP: &str = "1h";
const FINE_STEP: &str = "5m";

fn release_exporter() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--bin",
            "joulebook-exporter",
        ])
        .current_dir(repo_root())
        .status()
        .expect("run cargo");
    assert!(st.success(), "cargo build --release failed");
    repo_root().join("target/release/joulebook-exporter")
}

fn simulate(dir: &Path) -> (PathBuf, Value) {
    let out = dir.join("month.om");
    let truth = dir.join("truth.json");
    let o = Command::new(release_exporter())
        .args(["simulate", "--scenario"])
        .arg(fixture("simulate/month.yaml"))
        .arg("--out")
        .arg(&out)
        .arg("--truth")
        .arg(&truth)
        .output()
        .expect("run the exporter");
    assert!(
        o.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let t = serde_json::from_str(&std::fs::read_to_string(&truth).expect("truth")).expect("JSON");
    (out, t)
}

/// The recording rules by level: level 0 reads only the exporter's metrics, level n reads a
/// rule of level n − 1.
fn levels(exprs: &[Expression]) -> Vec<Vec<&Expression>> {
    let rules: BTreeMap<String, &Expression> = exprs
        .iter()
        .filter_map(|e| match &e.origin {
            Origin::Recording(r) => Some((r.clone(), e)),
            _ => None,
        })
        .collect();
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    while level.len() < rules.len() {
        let before = level.len();
        for (name, e) in &rules {
            if level.contains_key(name.as_str()) {
                continue;
            }
            let deps: Vec<String> = metric_names(&e.expr)
                .into_iter()
                .filter(|m| rules.contains_key(m))
                .collect();
            if deps.iter().all(|d| level.contains_key(d.as_str())) {
                let l = deps
                    .iter()
                    .map(|d| level[d.as_str()] + 1)
                    .max()
                    .unwrap_or(0);
                level.insert(name, l);
            }
        }
        assert!(
            level.len() > before,
            "recording rules read each other in a cycle"
        );
    }
    let mut out: Vec<Vec<&Expression>> = vec![];
    for (name, l) in level {
        if out.len() <= l {
            out.resize(l + 1, vec![]);
        }
        out[l].push(rules[name]);
    }
    out
}

fn describe(e: &Expression) -> String {
    let file = e
        .file
        .strip_prefix(repo_root())
        .unwrap_or(&e.file)
        .display()
        .to_string();
    match &e.origin {
        Origin::Recording(r) => format!("{file}: recording rule {r}"),
        Origin::Alert(a) => format!("{file}: alert {a}"),
        Origin::Panel { panel, ref_id, .. } => format!("{file}: panel {panel:?} target {ref_id}"),
        Origin::Variable { name, .. } => format!("{file}: variable ${name}"),
    }
}

/// The series `expr` returned at some point of the month: a subquery over the whole period.
fn over_month(prom: &Prometheus, expr: &str, days: i64, end: i64, step: &str) -> Vec<Series> {
    prom.query(&format!("count_over_time(({expr})[{days}d:{step}])"), end)
}

/// Each alert's `for`, in seconds (0 without one), from the shipped rule files.
fn alert_holds() -> BTreeMap<String, i64> {
    #[derive(serde::Deserialize)]
    struct File {
        groups: Vec<Group>,
    }
    #[derive(serde::Deserialize)]
    struct Group {
        rules: Vec<Rule>,
    }
    #[derive(serde::Deserialize)]
    struct Rule {
        alert: Option<String>,
        #[serde(rename = "for")]
        hold: Option<String>,
    }
    let seconds = |d: &str| {
        let (n, unit) = d.split_at(d.len() - 1);
        let n: i64 = n.parse().unwrap_or_else(|_| panic!("for: {d}"));
        n * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => panic!("for: {d}: unit s, m or h expected"),
        }
    };
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(repo_root().join("deploy/prometheus/rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            let f: File = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for r in f.groups.into_iter().flat_map(|g| g.rules) {
                if let Some(a) = r.alert {
                    out.insert(a, r.hold.as_deref().map_or(0, seconds));
                }
            }
        }
    }
    out
}

/// The series for which the alert `expr` fires at some point of `[start, end]`, evaluated every
/// `EVAL_INTERVAL_S` as Prometheus evaluates rules: the expression must return the series at
/// every evaluation for `hold` seconds (the rule's `for`), not just once.
fn firing(prom: &Prometheus, expr: &str, hold: i64, start: i64, end: i64) -> Vec<Labels> {
    let step = i64::from(EVAL_INTERVAL_S);
    prom.query_range(expr, start, end, EVAL_INTERVAL_S)
        .into_iter()
        .filter(|(_, points)| {
            let mut run_start: Option<i64> = None;
            let mut last = i64::MIN;
            points.iter().any(|(t, _)| {
                if *t != last + step {
                    run_start = Some(*t);
                }
                last = *t;
                run_start.is_some_and(|s| t - s >= hold)
            })
        })
        .map(|(labels, _)| labels)
        .collect()
}

fn instances(series: &[Labels]) -> BTreeSet<String> {
    series
        .iter()
        .filter_map(|l| l.get("instance"))
        .map(|i| i.trim_end_matches(":9977").to_string())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// What the month's faults cost, from the truth: a healthy node with a BMC counts exactly what
/// its hardware drew, `other` included; a GPU counter jump loses one interval of the GPU, which
/// the BMC still sees, so the node's total is whole (before the fix, `other` also took the GPU's
/// energy during the NVML outage, which RAPL and NVML then added again).
fn check_truth(t: &Value) {
    let node = |name: &str| {
        t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name}"))
            .clone()
    };
    let total = |e: &Value| -> f64 {
        e.as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum()
    };
    let gpu01 = node("gpu01");
    for (c, v) in gpu01["energy_j"].as_object().unwrap() {
        let hw = gpu01["hardware_j"][c].as_f64().unwrap();
        assert!(
            (v.as_f64().unwrap() - hw).abs() < 1e-3,
            "gpu01 {c}: {v} vs {hw}"
        );
    }
    assert!(gpu01["energy_j"]["other"].as_f64().unwrap() > 0.0);
    let gpu02 = node("gpu02");
    let lost =
        gpu02["hardware_j"]["gpu"].as_f64().unwrap() - gpu02["energy_j"]["gpu"].as_f64().unwrap();
    // One 30 s interval of two GPUs, 55-400 W each.
    assert!(
        (3000.0..=30000.0).contains(&lost),
        "gpu02 lost {lost} J of GPU energy"
    );
    let (e, hw) = (total(&gpu02["energy_j"]), total(&gpu02["hardware_j"]));
    assert!(
        (e - hw).abs() < 1.0,
        "gpu02: the node counted {e} J, its hardware drew {hw} J"
    );
}

#[test]
fn every_dashboard_and_rule_expression_returns_data_from_a_simulated_month() {
    let dir = tempfile::tempdir().unwrap();
    let (om, truth) = simulate(dir.path());
    check_truth(&truth);
    let clock = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1} s  {what}", clock.elapsed().as_secs_f64());
    let tsdb = dir.path().join("tsdb");
    backfill_openmetrics(&om, &tsdb);
    phase("backfilled");
    std::fs::remove_file(&om).unwrap();
    let start = truth["start_unix"].as_i64().unwrap();
    let end = truth["end_unix"].as_i64().unwrap();
    let days = (end - start + 86399) / 86400;
    let mut prom = Prometheus::start(&tsdb, &[]);

    let exprs = all_expressions(&repo_root());
    let levels = levels(&exprs);
    assert!(levels.len() >= 2, "rules that read rules: {}", levels.len());
    for (l, rules) in levels.iter().enumerate() {
        let rules: Vec<(String, String)> = rules
            .iter()
            .map(|r| match &r.origin {
                Origin::Recording(name) => (name.clone(), r.expr.clone()),
                _ => unreachable!("levels holds recording rules"),
            })
            .collect();
        prom.backfill_rules(&rules, start, end, EVAL_INTERVAL_S);
        phase(&format!("recording rules of level {l} backfilled"));
    }

    let mut empty = vec![];
    let for_of = alert_holds();
    let mut fired: BTreeMap<String, Vec<Labels>> = BTreeMap::new();
    for e in &exprs {
        assert!(!e.pending, "{}: reads a pending metric", describe(e));
        // Alerts hold for short spells: only the fine grid is sure to see them.
        let mut got = match e.origin {
            Origin::Alert(_) => vec![],
            _ => over_month(&prom, &e.expr, days, end, COARSE_STEP),
        };
        if got.is_empty() {
            got = over_month(&prom, &e.expr, days, end, FINE_STEP);
        }
        if got.is_empty() {
            empty.push(format!(
                "{}\n    {}",
                describe(e),
                e.expr.replace('\n', "\n    ")
            ));
        }
        if let Origin::Alert(a) = &e.origin {
            let hold = *for_of
                .get(a)
                .unwrap_or_else(|| panic!("no alert {a} in the rule files"));
            fired.insert(a.clone(), firing(&prom, &e.expr, hold, start, end));
        }
    }
    phase("queried");
    assert!(
        empty.is_empty(),
        "{} of {} expressions return nothing over the simulated month:\n{}",
        empty.len(),
        exprs.len(),
        empty.join("\n")
    );

    assert_alerts_fire_where_expected(&fired);

    // The recorded series agree with the data they come from: the month's node energy from the
    // backfilled power rule equals the exporter's counters (within the rate's extrapolation).
    let node_j: f64 = truth["totals"]["node_j"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    let recorded = prom.query(
        &format!("sum(sum_over_time(cluster:joulebook_node_power_watts:rate5m[{days}d])) * 300"),
        end,
    );
    let from_rule = recorded[0].1;
    assert!(
        (from_rule - node_j).abs() < 0.02 * node_j,
        "energy from the recorded power {from_rule} J vs the truth {node_j} J"
    );
}

/// Each alert fired (`fired`: the labels of its firing series, by alert) where month.yaml gives it
/// a reason to, and nowhere else (Prometheus would fire it: its condition holds for the rule's
/// `for`).
fn assert_alerts_fire_where_expected(fired: &BTreeMap<String, Vec<Labels>>) {
    let want: [(&str, &[&str]); 7] = [
        ("JoulebookIdleGpuDrawingPower", &["ws01"]),
        ("JoulebookIdleNodeAboveBaseline", &["ws01"]),
        ("JoulebookExporterDown", &["ws01"]),
        ("JoulebookSourceDown", &["gpu02"]),
        ("JoulebookSamplesDropped", &["gpu02"]),
        ("JoulebookNoJobsSeen", &["spare01"]),
        ("JoulebookSamplerStuck", &["spare01"]),
    ];
    for (alert, nodes) in want {
        let got = fired
            .get(alert)
            .unwrap_or_else(|| panic!("no alert {alert}"));
        assert_eq!(instances(got), set(nodes), "{alert}: {got:?}");
    }
    let source_down = &fired["JoulebookSourceDown"];
    assert!(
        source_down.iter().all(|l| l["source"] == "nvml"),
        "{source_down:?}"
    );
    let idle_share = &fired["JoulebookClusterIdleShareHigh"];
    assert_eq!(
        idle_share
            .iter()
            .map(|l| l["cluster"].clone())
            .collect::<Vec<_>>(),
        ["querylab"]
    );
    let listed: BTreeSet<String> = fired.keys().cloned().collect();
    let checked: BTreeSet<String> = want
        .iter()
        .map(|(a, _)| a.to_string())
        .chain(["JoulebookClusterIdleShareHigh".to_string()])
        .collect();
    assert_eq!(listed, checked, "an alert without an expectation here");
}
