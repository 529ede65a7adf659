//! Prometheus: the rule files (promtool check and unit tests, alerts' labels, thresholds,
//! recording rule names), the metrics they read, the scrape configuration, Alertmanager's
//! routes.

use super::*;

#[test]
fn promtool_checks_every_rule_file_and_counts_what_the_extractor_finds() {
    let files = promql::rule_files(&repo_root());
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        let o = run(
            "promtool",
            "prometheus",
            &["check", "rules", f.to_str().unwrap()],
            None,
        );
        let out = text(&o);
        assert!(
            o.status.success(),
            "promtool check rules {}:\n{out}",
            f.display()
        );
        // "SUCCESS: 36 rules found": the extractor must see every one of them.
        let n: usize = out
            .split("SUCCESS: ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected promtool output:\n{out}"));
        assert_eq!(promql::rule_expressions(f).len(), n, "{}", f.display());
    }
}

#[test]
fn promtool_unit_tests_pass() {
    let tests = yaml_files(&rules_dir().join("tests"));
    assert!(tests.len() >= 2, "{tests:?}");
    for t in &tests {
        let o = run(
            "promtool",
            "prometheus",
            &["test", "rules", t.to_str().unwrap()],
            None,
        );
        assert!(
            o.status.success(),
            "promtool test rules {}:\n{}",
            t.display(),
            text(&o)
        );
    }
}

/// The alerts, as parsed from the rule files.
fn alerts() -> Vec<Value> {
    let mut out = Vec::new();
    for f in promql::rule_files(&repo_root()) {
        let y = yaml(&f);
        for g in y["groups"].as_array().expect("groups") {
            for r in g["rules"].as_array().expect("rules") {
                if r.get("alert").is_some() {
                    out.push(r.clone());
                }
            }
        }
    }
    out
}

#[test]
fn every_alert_has_severity_category_and_annotations() {
    let alerts = alerts();
    assert!(alerts.len() >= 8);
    for a in &alerts {
        let name = a["alert"].as_str().unwrap();
        assert!(name.starts_with("Joulebook"), "{name}");
        let sev = a["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["info", "warning", "critical"].contains(&sev),
            "{name}: severity {sev:?}"
        );
        let cat = a["labels"]["category"].as_str().unwrap_or("");
        assert!(
            ["idle-waste", "exporter-health"].contains(&cat),
            "{name}: category {cat:?}"
        );
        for k in ["summary", "description", "runbook"] {
            let v = a["annotations"][k].as_str().unwrap_or("");
            assert!(v.len() > 20, "{name}: annotation {k} missing or too short");
        }
        let desc = a["annotations"]["description"].as_str().unwrap();
        assert!(
            desc.contains("$labels.instance") || desc.contains("$labels.cluster"),
            "{name}: the description names no node or cluster"
        );
    }
    let names: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    for expected in [
        "JoulebookIdleGpuDrawingPower",
        "JoulebookIdleNodeAboveBaseline",
        "JoulebookClusterIdleShareHigh",
        "JoulebookExporterDown",
        "JoulebookSourceDown",
        "JoulebookSamplesDropped",
        "JoulebookNoJobsSeen",
        "JoulebookSamplerStuck",
    ] {
        assert!(names.contains(expected), "{expected} missing");
    }
}

/// Thresholds live in recording rules `joulebook:threshold:*` holding one number, and every one
/// is read by an alert.
#[test]
fn thresholds_are_single_numbers_read_by_the_alerts() {
    let root = repo_root();
    let exprs = promql::all_expressions(&root);
    let thresholds: Vec<_> = exprs
        .iter()
        .filter(
            |e| matches!(&e.origin, Origin::Recording(r) if r.starts_with("joulebook:threshold:")),
        )
        .collect();
    assert!(thresholds.len() >= 4);
    for t in &thresholds {
        let Origin::Recording(name) = &t.origin else {
            unreachable!()
        };
        let inner = t
            .expr
            .strip_prefix("vector(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{name}: not vector(NUMBER): {}", t.expr));
        inner
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{name}: {inner} is not a number"));
        assert!(
            exprs.iter().any(|e| matches!(e.origin, Origin::Alert(_))
                && promql::metric_names(&e.expr).contains(name.as_str())),
            "{name} is read by no alert"
        );
    }
}

#[test]
fn recording_rules_are_named_level_metric_operations_and_unit_tested() {
    let root = repo_root();
    let recorded = promql::recorded_names(&promql::rule_files(&root));
    let mut tested = BTreeSet::new();
    for t in yaml_files(&rules_dir().join("tests")) {
        for case in yaml(&t)["tests"].as_array().expect("tests") {
            for p in case["promql_expr_test"].as_array().into_iter().flatten() {
                tested.extend(promql::metric_names(p["expr"].as_str().unwrap()));
            }
        }
    }
    for name in &recorded {
        let parts: Vec<&str> = name.split(':').collect();
        assert_eq!(parts.len(), 3, "{name}: not level:metric:operations");
        assert!(parts.iter().all(|p| !p.is_empty()), "{name}");
        assert!(
            parts[1].starts_with("joulebook_") || name.starts_with("joulebook:threshold:"),
            "{name}: the metric part names no joulebook metric"
        );
        assert!(
            tested.contains(name),
            "{name} has no promql_expr_test in rules/tests"
        );
    }
}

/// Each alert has a unit test where it fires and one where it does not.
#[test]
fn every_alert_is_unit_tested_firing_and_not_firing() {
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for t in yaml_files(&rules_dir().join("tests")) {
        for case in yaml(&t)["tests"].as_array().expect("tests") {
            for a in case["alert_rule_test"].as_array().into_iter().flatten() {
                let name = a["alertname"].as_str().unwrap().to_string();
                if a["exp_alerts"].as_array().is_some_and(|v| !v.is_empty()) {
                    firing.insert(name);
                } else {
                    silent.insert(name);
                }
            }
        }
    }
    for a in alerts() {
        let name = a["alert"].as_str().unwrap();
        assert!(firing.contains(name), "{name}: no unit test where it fires");
        assert!(
            silent.contains(name),
            "{name}: no unit test where it stays silent"
        );
    }
}

/// No expression of a rule or dashboard reads a metric that does not exist: every name is a
/// metric of `joulebook_common`, a recording rule of deploy/prometheus/rules, `up`, or one of
/// the pending BMC metrics.
#[test]
fn rules_and_dashboards_read_only_known_metrics() {
    let root = repo_root();
    let mut known: BTreeSet<String> = joulebook_common::ALL_METRICS
        .iter()
        .map(|m| m.name())
        .collect();
    for p in promql::PENDING_METRICS {
        assert!(
            !known.contains(*p),
            "{p} is in joulebook_common now: remove it from promql::PENDING_METRICS"
        );
    }
    known.extend(promql::recorded_names(&promql::rule_files(&root)));
    known.insert("up".into());
    known.extend(promql::PENDING_METRICS.iter().map(|s| s.to_string()));
    let exprs = promql::all_expressions(&root);
    assert!(exprs.len() > 60, "{}", exprs.len());
    for e in &exprs {
        let names = promql::metric_names(&e.expr);
        let constant =
            matches!(&e.origin, Origin::Recording(r) if r.starts_with("joulebook:threshold:"));
        assert!(
            constant || !names.is_empty(),
            "{:?} reads no metric: {}",
            e.origin,
            e.expr
        );
        for n in names {
            assert!(
                known.contains(&n),
                "{:?} in {} reads unknown metric {n}: {}",
                e.origin,
                e.file.display(),
                e.expr
            );
        }
    }
    // The BMC metrics have landed: nothing is pending any more, and the BMC panel reads them.
    assert!(exprs.iter().all(|e| !e.pending));
    assert!(exprs
        .iter()
        .any(|e| e.expr.contains("joulebook_bmc_power_watts")));
}

#[test]
fn scrape_config_is_valid_and_complete() {
    let dir = deploy("prometheus");
    let o = run(
        "promtool",
        "prometheus",
        &["check", "config", "scrape.yml"],
        Some(&dir),
    );
    assert!(o.status.success(), "{}", text(&o));
    let y = yaml(&dir.join("scrape.yml"));
    let job = y["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "joulebook")
        .expect("a scrape job named joulebook (the alerts read up{job=\"joulebook\"})");
    assert_eq!(job["honor_labels"], Value::Bool(false));
    // The shipped nodes answer only with the credentials of their web.yml (docs/install.md).
    assert_eq!(job["basic_auth"]["username"], "prometheus");
    assert!(job["basic_auth"]["password_file"].is_string());
    let interval = job["scrape_interval"].as_str().unwrap();
    let secs: u64 = interval.trim_end_matches('s').parse().unwrap();
    assert!((15..=60).contains(&secs), "{interval}");
    // file_sd targets on port 9977, each file setting `cluster`.
    let targets = yaml(&dir.join("targets/joulebook-example.yml"));
    for group in targets.as_array().unwrap() {
        assert!(group["labels"]["cluster"]
            .as_str()
            .is_some_and(|c| !c.is_empty()));
        for t in group["targets"].as_array().unwrap() {
            assert!(
                t.as_str()
                    .unwrap()
                    .ends_with(&format!(":{}", joulebook_common::DEFAULT_PORT)),
                "{t}"
            );
        }
    }
    let files = job["file_sd_configs"][0]["files"][0].as_str().unwrap();
    assert_eq!(files, "targets/joulebook-*.yml");
}

#[test]
fn alertmanager_config_is_valid_and_routes_by_category() {
    let cfg = deploy("alertmanager/alertmanager.yml");
    let cfg_s = cfg.to_str().unwrap();
    let o = run(
        "amtool",
        "prometheus-alertmanager",
        &["check-config", cfg_s],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let flag = format!("--config.file={cfg_s}");
    for (labels, receiver) in [
        (
            &[
                "category=idle-waste",
                "alertname=JoulebookIdleGpuDrawingPower",
                "severity=warning",
            ][..],
            "cluster-admins",
        ),
        (
            &[
                "category=idle-waste",
                "alertname=JoulebookClusterIdleShareHigh",
                "severity=info",
            ][..],
            "cluster-admins",
        ),
        (
            &[
                "category=exporter-health",
                "alertname=JoulebookSourceDown",
                "severity=warning",
            ][..],
            "monitoring-team",
        ),
        (
            &[
                "category=exporter-health",
                "alertname=JoulebookSamplerStuck",
                "severity=critical",
            ][..],
            "monitoring-team",
        ),
    ] {
        let verify = format!("--verify.receivers={receiver}");
        let mut args = vec!["config", "routes", "test", flag.as_str(), verify.as_str()];
        args.extend_from_slice(labels);
        let o = run("amtool", "prometheus-alertmanager", &args, None);
        assert!(
            o.status.success(),
            "{labels:?} should go to {receiver}:\n{}",
            text(&o)
        );
    }
}
