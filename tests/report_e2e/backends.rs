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

/// A VictoriaMetrics that refuses queries over more than 16 series (`-search.maxUniqueTimeseries`;
/// 300,000 by default, which the job-GPU series of a month of 1,000 nodes pass): the job
/// energy of the whole cluster (33 series) is refused, then that of n1 and n2 (18); the reporter
/// reads them again in halves, down to one node (n3: 15, n1 and n2: 9 each), says so on stderr,
/// and the report is the one read whole from Prometheus.
#[test]
fn rounds_the_server_refuses_as_too_large_are_read_in_halves() {
    let s = scenario::generate();
    let prom = prometheus(&s);
    need("victoria-metrics", "victoria-metrics");
    let vm =
        VictoriaMetrics::start_with_flags(&s.prom_text_ms, &["-search.maxUniqueTimeseries=16"]);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("out")).collect();
    let whole = month_report(&prom.url(), dirs[0].path(), &["--format", "json"]);
    let (halves, stderr) =
        month_report_and_stderr(&vm.url(), dirs[1].path(), &["--format", "json"]);
    assert_same(&whole, &halves, "$");
    assert!(
        stderr.contains(
            "refused the job queries of all nodes as too large; reading them in 3 smaller rounds"
        ) && stderr.contains(
            "refused the job queries of 2 nodes as too large; reading them in 2 smaller rounds"
        ),
        "{stderr}"
    );
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
        json_report(
            &prom.url(),
            &[
                "--from",
                "2026-10-01",
                "--to",
                "2026-10-20T12:20:00Z",
                "--lookback",
                lookback,
            ],
        )
    };
    let (short, long) = (run("700s"), run("1h"));
    assert!(short["headline"]["it_energy_kwh"].as_f64().unwrap_or(0.0) > 0.0);
    assert_same(&short, &long, "$");
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
        ("9".into(), "20".into())
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
    // The nodes a pass names (`instance=~"…"`), if it names them.
    let names = |q: &str| -> Option<Vec<String>> {
        let (_, rest) = q.split_once("instance=~\"")?;
        let alt = rest.split('"').next()?;
        Some(alt.split('|').map(|x| x.replace('\\', "")).collect())
    };
    let job = c::JOB_ENERGY.name();
    let job_passes: Vec<&String> = resets.iter().filter(|q| q.contains(&job)).collect();
    let day_passes: Vec<&String> = resets.iter().filter(|q| !q.contains(&job)).collect();
    assert_eq!(job_passes.len(), 1, "{resets:#?}");
    let jp = job_passes[0];
    assert!(skips(jp, &n1) && skips(jp, &n2) && !skips(jp, &n3), "{jp}");
    // Node and unallocated counters: each day's pass names the nodes that need it, n3 only,
    // until n3 came back at Oct 20 12:20:30; the days whose start, less the 1 h lookback and
    // the hour of clock allowance, is past it (Oct 21 to 31) need no pass at all.
    for q in &day_passes {
        assert_eq!(names(q), Some(vec![n3.clone()]), "{q}");
    }
    assert_eq!(day_passes.len(), 2 * 20, "{day_passes:#?}");
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
        json_report(
            url,
            &[
                "--from",
                "2026-10-01",
                "--to",
                "2026-10-04",
                "--lookback",
                "700s",
            ],
        )
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

/// Writes the scenario's OpenMetrics to $JOULEBOOK_SCENARIO_DUMP (a debugging aid).
#[test]
fn dump_scenario_when_asked() {
    if let Some(p) = std::env::var_os("JOULEBOOK_SCENARIO_DUMP") {
        std::fs::write(p, scenario::generate().openmetrics).expect("dump");
    }
}
