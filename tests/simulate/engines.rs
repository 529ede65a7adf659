//! The output read back by real engines: promtool and Prometheus, PromQL over the owner
//! counters, VictoriaMetrics.

use super::*;

/// The small run backfilled into a fresh Prometheus, with the folder holding its data (dropped
/// after it).
fn small_in_prometheus() -> (&'static Run, tempfile::TempDir, Prometheus) {
    let run = small();
    let dir = tempfile::tempdir().unwrap();
    let tsdb = dir.path().join("tsdb");
    backfill_openmetrics(&run.out, &tsdb);
    let prom = Prometheus::start(&tsdb, &[]);
    (run, dir, prom)
}

#[test]
fn promtool_backfills_it_and_prometheus_answers_like_the_truth() {
    let (run, _dir, prom) = small_in_prometheus();
    let t = &run.truth;
    let end = t["end_unix"].as_i64().unwrap();
    // Every job's energy: its largest value over the period, per node and component.
    let got = prom.query("max_over_time(joulebook_job_joules_total[1d])", end);
    let mut by: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for (l, v) in got {
        by.insert(
            (
                l["job_id"].clone(),
                l["instance"].trim_end_matches(":9977").to_string(),
                l["component"].clone(),
            ),
            v,
        );
    }
    let mut compared = 0;
    for j in t["jobs"].as_array().unwrap() {
        for (node, comps) in j["by_node"].as_object().unwrap() {
            for (c, v) in comps.as_object().unwrap() {
                let key = (
                    j["id"].as_str().unwrap().to_string(),
                    node.clone(),
                    c.clone(),
                );
                assert_eq!(by.get(&key).copied(), v.as_f64(), "{key:?}");
                compared += 1;
            }
        }
    }
    assert!(compared > 100);
    // The cluster's node energy and unallocated energy at the end.
    for (metric, field) in [
        ("joulebook_node_joules_total", "node_j"),
        ("joulebook_unallocated_joules_total", "unallocated_j"),
    ] {
        let got = prom.query(
            &format!("sum by (component) ({metric}{{cluster=\"testlab\"}})"),
            end,
        );
        assert_eq!(
            got.len(),
            t["components"].as_array().unwrap().len(),
            "{metric}"
        );
        for (l, v) in got {
            let want = t["totals"][field][&l["component"]].as_f64().unwrap();
            assert!(
                (v - want).abs() <= 1e-6 * want.max(1.0),
                "{metric} {l:?}: {v} vs {want}"
            );
        }
    }
    // An account's energy by joining job_info, as the reporter does.
    let got = prom.query(
        "sum by (account) (max_over_time(joulebook_job_joules_total[1d]) * on (instance, job_id) group_left(account) max_over_time(joulebook_job_info[1d]))",
        end,
    );
    for (l, v) in got {
        let want = t["accounts"][&l["account"]]["total_j"].as_f64().unwrap();
        assert!((v - want).abs() <= 1e-6 * want, "{l:?}: {v} vs {want}");
    }
    drop(prom);
}

/// The small run's output with `edit` applied to each line, backfilled into a fresh Prometheus
/// in `dir` (folder `name`).
fn edited_in_prometheus(
    run: &Run,
    dir: &std::path::Path,
    name: &str,
    edit: impl Fn(&str) -> Option<String>,
) -> Prometheus {
    let text: String = run
        .text
        .lines()
        .filter_map(edit)
        .map(|l| format!("{l}\n"))
        .collect();
    let om = dir.join(format!("{name}.om"));
    std::fs::write(&om, text).unwrap();
    let tsdb = dir.join(name);
    backfill_openmetrics(&om, &tsdb);
    Prometheus::start(&tsdb, &[])
}

/// The small run's report for its day from `prom` (JSON), with `args` added.
fn day_report(prom: &Prometheus, args: &[&str]) -> Value {
    window_report(prom, ("2025-03-03", "2025-03-04"), args)
}

/// The report of `(from, to)` from `prom` (JSON), with `args` added.
fn window_report(prom: &Prometheus, (from, to): (&str, &str), args: &[&str]) -> Value {
    let mut all = vec!["--from", from, "--to", to];
    all.extend_from_slice(args);
    json_report(&prom.url(), &all)
}

/// The per-owner counters, read by PromQL from a real Prometheus, give the same project and user
/// totals (energy, core- and GPU-hours) as the reporter's sums over the jobs of the same data.
#[test]
fn owner_counters_give_the_reports_project_and_user_totals() {
    let (run, _dir, prom) = small_in_prometheus();
    let report = day_report(&prom, &["--totals-from", "jobs"]);
    assert_eq!(report["totals_from"], "jobs");
    // The counters start at 0 with the simulation and never go down (the restart resumes from
    // the state file): their largest value is the period's increase.
    let end = run.truth["end_unix"].as_i64().unwrap();
    let total = |metric: &str, by: &str| -> BTreeMap<String, f64> {
        let q = format!("sum by ({by}) (max_over_time({metric}[1d]))");
        prom.query(&q, end)
            .into_iter()
            .map(|(l, v)| (l.get(by).cloned().unwrap_or_default(), v))
            .collect()
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9);
    let mut compared = 0;
    for (section, by) in [("projects", "account"), ("users", "user")] {
        let energy = total("joulebook_owner_joules_total", by);
        let core = total("joulebook_owner_core_seconds_total", by);
        let gpu = total("joulebook_owner_gpu_seconds_total", by);
        let jobs = total("joulebook_owner_jobs_total", by);
        let rows = report[section]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), energy.len(), "{section}: {energy:?}");
        for r in rows {
            let name = r["name"].as_str().unwrap();
            let kwh = r["energy_kwh"].as_f64().unwrap();
            assert!(
                close(energy[name] / 3.6e6, kwh),
                "{section} {name}: {energy:?} vs {kwh} kWh"
            );
            let ch = r["core_hours"].as_f64().unwrap();
            assert!(
                close(core[name] / 3600.0, ch),
                "{section} {name}: core {core:?} vs {ch}"
            );
            let gh = r["gpu_hours"].as_f64().unwrap();
            assert!(
                close(gpu[name] / 3600.0, gh),
                "{section} {name}: gpu {gpu:?} vs {gh}"
            );
            // A job on several nodes starts once on each; a job that did nothing is not listed.
            assert!(
                jobs[name] >= r["jobs"].as_f64().unwrap(),
                "{section} {name}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 4, "{compared}");
}

/// A report takes its project and user totals and estimates from the owner counters where
/// they add up to every node's energy less its unallocated energy, and they are what the sums
/// over the jobs give; its job lists are the same. It reads no job's allocation gauges then
/// (the estimates come from the owner counters): a report of the data without them is the
/// same. With one node's owner counters missing it sums the jobs, allocations read, and says
/// why.
#[test]
fn the_report_takes_its_totals_from_the_owner_counters_where_they_add_up() {
    let (run, dir, prom) = small_in_prometheus();
    // Also a window that starts and ends while pairs run (their runs' values at its start are
    // subtracted).
    let half = ("2025-03-03T09:00:00Z", "2025-03-03T15:00:00Z");
    for window in [None, Some(half)] {
        let report = |args: &[&str]| match window {
            None => day_report(&prom, args),
            Some(w) => window_report(&prom, w, args),
        };
        let owners = report(&["--totals-from", "owners"]);
        let jobs = report(&[]);
        assert!(same_totals(&owners, &jobs) >= 50);
        // The same jobs; the totals they are shares of are the owners' (close, above).
        for (section, totals) in [
            ("top_jobs", &["share"][..]),
            ("dev_vs_final", &["total_kwh", "ratio"][..]),
        ] {
            let rows = |r: &Value| -> Vec<Value> {
                let mut rows = r[section].as_array().cloned().unwrap_or_default();
                for row in &mut rows {
                    totals.iter().for_each(|f| row[f] = Value::Null);
                }
                rows
            };
            assert!(rows(&jobs).len() > 1, "{section}");
            assert_eq!(rows(&owners), rows(&jobs), "{section} of {window:?}");
        }
    }
    let jobs = day_report(&prom, &["--totals-from", "jobs"]);
    let mut owners = day_report(&prom, &["--totals-from", "owners"]);
    drop(prom);

    // The same data without the jobs' allocation gauges: the same report from the owners.
    let prom = edited_in_prometheus(run, dir.path(), "no-allocations", |l| {
        (!l.starts_with("joulebook_job_allocated_")).then(|| l.to_string())
    });
    let mut without = day_report(&prom, &["--totals-from", "owners"]);
    for r in [&mut owners, &mut without] {
        r["generated_at"] = Value::Null;
    }
    assert_eq!(without, owners);
    drop(prom);

    // One node's owner counters lost (an exporter from before them, say).
    let prom = edited_in_prometheus(run, dir.path(), "dropped", |l| {
        let owner_of_cpu01 =
            l.starts_with("joulebook_owner_") && l.contains("instance=\"cpu01:9977\"");
        (!owner_of_cpu01).then(|| l.to_string())
    });
    let partial = day_report(&prom, &["--totals-from", "owners"]);
    assert_eq!(partial["totals_from"], "jobs");
    // A summary asked for there is the full report, and says so.
    let full = day_report(&prom, &["--summary"]);
    assert_eq!(full["summary"], false);
    assert!(full["notes"]
        .to_string()
        .contains("A full report, not a summary"));
    assert_eq!(full["top_jobs"], jobs["top_jobs"]);
    let notes = partial["notes"].to_string();
    assert!(
        notes.contains("not the owner counters: testlab/cpu01:9977 cpu: owners 0.000 J"),
        "{notes}"
    );
    assert_eq!(partial["projects"], jobs["projects"]);
    // Summed over the jobs, the estimates need each job's allocations: read again.
    assert_eq!(partial["estimates"], jobs["estimates"]);
}

/// A summary reads no job yet has the full report's figures: projects and users (job counts
/// included), estimates, headline, idle nodes and GPUs; only the job lists are left out.
#[test]
fn a_summary_has_the_full_reports_figures_without_the_job_lists() {
    let (_run, _dir, prom) = small_in_prometheus();
    let half = ("2025-03-03T09:00:00Z", "2025-03-03T15:00:00Z");
    for window in [("2025-03-03", "2025-03-04"), half] {
        let full = window_report(&prom, window, &["--totals-from", "owners"]);
        let summary = window_report(&prom, window, &["--summary"]);
        assert_eq!(full["summary"], false);
        assert_eq!(summary["summary"], true);
        assert_eq!(summary["totals_from"], "owner_counters");
        assert!(full["top_jobs"].as_array().is_some_and(|j| j.len() > 5));
        assert_eq!(summary["top_jobs"], serde_json::json!([]));
        assert_eq!(summary["dev_vs_final"], serde_json::json!([]));
        for section in [
            "projects",
            "users",
            "estimates",
            "headline",
            "idle",
            "components",
        ] {
            assert_eq!(summary[section], full[section], "{section} of {window:?}");
        }
        assert!(summary["notes"]
            .to_string()
            .contains("Summary report (--summary)"));
        assert!(summary["headline"]["jobs"].as_u64().is_some_and(|n| n > 5));
        // Rounds of one node: a job on two nodes is met in two rounds and counted once.
        let rounds = window_report(&prom, window, &["--summary", "--nodes-per-query", "1"]);
        assert_eq!(rounds["projects"], summary["projects"], "{window:?}");
        assert_eq!(rounds["headline"], summary["headline"], "{window:?}");
    }
}

/// `--job-list top` lists the first `top_n` jobs of the full list (10 by default) and says it
/// does; every other figure is the full report's.
#[test]
fn a_bounded_job_list_is_the_head_of_the_full_one() {
    let (_run, _dir, prom) = small_in_prometheus();
    let full = day_report(&prom, &[]);
    let top = day_report(&prom, &["--job-list", "top"]);
    let jobs = full["top_jobs"].as_array().unwrap();
    assert!(jobs.len() > 10, "{}", jobs.len());
    assert_eq!(full["top_jobs_all"], true);
    assert_eq!(top["top_jobs_all"], false);
    assert_eq!(top["top_jobs"].as_array().unwrap()[..], jobs[..10]);
    for section in [
        "projects",
        "users",
        "estimates",
        "headline",
        "dev_vs_final",
        "idle",
    ] {
        assert_eq!(top[section], full[section], "{section}");
    }
}

/// With the owner totals, a bounded list reads the core- and GPU-seconds of only the jobs it
/// can show (the first of the cluster, of each project and of each user): in every scope its
/// list is still the head of the full one, times included, and every other figure the full
/// report's; also in a window that jobs cross (their values at its start subtracted), and where
/// cpu01's exporter lost its state (its jobs' counters from raw samples, by job id too).
#[test]
fn a_bounded_job_list_from_the_owner_totals_is_the_head_of_the_full_one_in_every_scope() {
    let (_run, _dir, prom) = small_in_prometheus();
    let half = ("2025-03-03T09:00:00Z", "2025-03-03T15:00:00Z");
    for window in [("2025-03-03", "2025-03-04"), half] {
        let beyond = bounded_lists_are_heads(&prom, window);
        // The scopes' lists hold jobs that the cluster's does not: their times were read too.
        assert!(beyond > 5, "{beyond}");
    }
    drop(prom);

    let dir = tempfile::tempdir().unwrap();
    let scenario = std::fs::read_to_string(fixture("simulate/small.yaml")).unwrap();
    let restart = "{node: cpu01, at: 2025-03-03T08:30:00Z, downtime: 30s}";
    assert!(scenario.contains(restart));
    let lost = scenario.replace(restart, &restart.replace('}', ", lose_state: true}"));
    let path = dir.path().join("lost.yaml");
    std::fs::write(&path, lost).unwrap();
    let run = simulated(tempfile::tempdir().unwrap(), &path, "lost");
    let tsdb = dir.path().join("tsdb");
    backfill_openmetrics(&run.out, &tsdb);
    let prom = Prometheus::start(&tsdb, &[]);
    bounded_lists_are_heads(&prom, ("2025-03-03", "2025-03-04"));
    // The whole-node job ran across the restart: its times come from its raw samples.
    let args = [
        "--totals-from",
        "owners",
        "--user",
        "chem-u01",
        "--job-list",
    ];
    let top = day_report(&prom, &[&args[..], &["top"]].concat());
    assert!(top["notes"]
        .to_string()
        .contains("computed from raw samples"));
    let whole = top["top_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "whole-node");
    assert!(
        whole.is_some_and(|j| j["core_hours"].as_f64() > Some(20.0)),
        "{whole:?}"
    );
}

/// Checks, for the cluster, each project and each user of `window`, that the report from the
/// owner totals listing its first jobs (`--job-list top`) is the one listing every job but for
/// the list's length; returns how many jobs those lists hold beyond the cluster's own list.
fn bounded_lists_are_heads(prom: &Prometheus, window: (&str, &str)) -> usize {
    let owners = ["--totals-from", "owners"];
    let cluster = window_report(prom, window, &owners);
    let names = |section: &str| -> Vec<String> {
        let rows = cluster[section]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        rows.iter()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    };
    let (projects, users) = (names("projects"), names("users"));
    assert!(
        projects.len() >= 2 && users.len() >= 2,
        "{projects:?} {users:?}"
    );
    let scopes = std::iter::once(vec![])
        .chain(projects.iter().map(|p| vec!["--project", p.as_str()]))
        .chain(users.iter().map(|u| vec!["--user", u.as_str()]));
    let cluster_head = &cluster["top_jobs"].as_array().unwrap()[..10];
    let mut beyond_the_cluster_head = 0;
    for scope in scopes {
        let args = |list: &'static str| -> Vec<&str> {
            let mut a = owners.to_vec();
            a.extend(["--job-list", list]);
            a.extend(scope.iter().copied());
            a
        };
        let full = window_report(prom, window, &args("all"));
        let top = window_report(prom, window, &args("top"));
        assert_eq!(top["totals_from"], "owner_counters", "{scope:?} {window:?}");
        let (all, head) = (full["top_jobs"].as_array().unwrap(), &top["top_jobs"]);
        let n = all.len().min(10);
        assert_eq!(
            head.as_array().unwrap()[..],
            all[..n],
            "{scope:?} {window:?}"
        );
        assert!(all[..n]
            .iter()
            .any(|j| j["core_hours"].as_f64() > Some(0.0)));
        for section in ["projects", "users", "estimates", "headline", "dev_vs_final"] {
            assert_eq!(
                top[section], full[section],
                "{section} of {scope:?} {window:?}"
            );
        }
        let in_cluster_head = |j: &Value| cluster_head.iter().any(|c| c["job_id"] == j["job_id"]);
        beyond_the_cluster_head += all[..n].iter().filter(|j| !in_cluster_head(j)).count();
    }
    beyond_the_cluster_head
}

/// Jobs that claim their project (`metadata="environment"`) are counted in a summary's note as
/// the full report weighs them by energy: the trust warning survives reading no job.
#[test]
fn a_summary_says_how_many_jobs_only_claim_their_project() {
    let (run, dir, _prom) = small_in_prometheus();
    let prom = edited_in_prometheus(run, dir.path(), "claimed", |l| {
        Some(
            if l.starts_with("joulebook_job_info{") && l.contains("account=\"chem\"") {
                l.replace("metadata=\"prolog\"", "metadata=\"environment\"")
            } else {
                l.to_string()
            },
        )
    });
    let full = day_report(&prom, &[]);
    let summary = day_report(&prom, &["--summary"]);
    let jobs = full["headline"]["jobs"].as_u64().unwrap();
    let chem = full["projects"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "chem")
        .and_then(|r| r["jobs"].as_u64())
        .unwrap();
    assert!(chem > 0 && chem < jobs, "{chem} of {jobs}");
    let notes = |r: &Value| r["notes"].to_string();
    assert!(
        notes(&full).contains("is charged to projects only as the jobs themselves claim them"),
        "{}",
        notes(&full)
    );
    assert!(
        notes(&summary).contains(&format!("{chem} of {jobs} jobs (")),
        "{}",
        notes(&summary)
    );
}

/// Owner runs that go idle (unpublished), come back within the day, expire and start again
/// (a new `since`), and jobs across midnights: in every window, the owner totals are the jobs'.
/// `--year 2025` over the run (all of it on 3 March 2025), from the owner counters and as a
/// summary: its projects, users, estimates, jobs and headline energies are the day's report's;
/// the year has 365 daily rows, of which 3 March is the day's.
#[test]
fn a_year_of_owner_totals_or_a_summary_is_the_day_it_holds() {
    let (_run, _dir, prom) = small_in_prometheus();
    for args in [&["--totals-from", "owners"][..], &["--summary"][..]] {
        let mut all = vec!["--year", "2025"];
        all.extend_from_slice(args);
        let year = json_report(&prom.url(), &all);
        let day = day_report(&prom, args);
        assert_eq!(year["totals_from"], "owner_counters", "{args:?}");
        assert_eq!(year["summary"], day["summary"], "{args:?}");
        for section in ["projects", "users", "estimates", "top_jobs", "dev_vs_final"] {
            assert_same(
                &year[section],
                &day[section],
                &format!("{args:?} {section}"),
            );
        }
        for f in [
            "it_energy_j",
            "jobs",
            "core_hours",
            "gpu_hours",
            "unallocated_kwh",
        ] {
            let at = format!("{args:?} headline.{f}");
            assert_same(&year["headline"][f], &day["headline"][f], &at);
        }
        let days = year["daily"].as_array().expect("daily");
        assert_eq!(days.len(), 365);
        let march_3 = days.iter().find(|d| d["date"] == "2025-03-03");
        assert_same(march_3.expect("3 March"), &day["daily"][0], "daily");
    }
}

#[test]
fn owner_runs_across_idle_gaps_expiry_and_midnights_give_the_jobs_totals() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = fixture("simulate/owner-runs.yaml");
    let (out, _truth) = simulate(&scenario, dir.path(), "runs", &[]);
    let tsdb = dir.path().join("tsdb");
    backfill_openmetrics(&out, &tsdb);
    let prom = Prometheus::start(&tsdb, &[]);
    let end = "2025-03-06T00:00:00Z";
    let runs = prom.query(
        "count by (user) (count by (user, since) (last_over_time(joulebook_owner_joules_total[3d])))",
        1_741_219_200,
    );
    let runs: BTreeMap<String, f64> = runs
        .into_iter()
        .map(|(l, v)| (l["user"].clone(), v))
        .collect();
    assert_eq!(
        runs,
        BTreeMap::from([("alice".into(), 2.0), ("bob".into(), 1.0)])
    );
    let windows = [
        ("2025-03-03", "2025-03-04"),
        ("2025-03-04", "2025-03-05"),
        ("2025-03-05", "2025-03-06"),
        ("2025-03-03T21:00:00Z", "2025-03-05T13:00:00Z"),
        // alice's run is idle, unpublished, at the start, and goes on at 20:00.
        ("2025-03-03T12:00:00Z", "2025-03-04"),
        ("2025-03-03", end),
    ];
    for w in windows {
        let owners = window_report(&prom, w, &["--totals-from", "owners"]);
        let jobs = window_report(&prom, w, &[]);
        assert!(same_totals(&owners, &jobs) >= 8, "{w:?}");
    }
}

/// `owners` (a report from the owner counters) has the project and user rows and estimates of
/// `jobs` (the same report from the jobs).
/// Returns the figures compared.
fn same_totals(owners: &Value, jobs: &Value) -> usize {
    assert_eq!(owners["totals_from"], "owner_counters");
    assert_eq!(jobs["totals_from"], "jobs");
    let notes = |r: &Value| r["notes"].to_string();
    assert!(
        notes(owners).contains("per-owner counters of "),
        "{}",
        notes(owners)
    );
    let close = |a: &Value, b: &Value| {
        let (a, b) = (
            a.as_f64().unwrap_or(f64::NAN),
            b.as_f64().unwrap_or(f64::NAN),
        );
        (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-9)
    };
    let mut compared = 0;
    for section in ["projects", "users"] {
        let (a, b) = (&owners[section]["rows"], &jobs[section]["rows"]);
        assert_eq!(a.as_array().map(Vec::len), b.as_array().map(Vec::len));
        for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
            assert_eq!(x["name"], y["name"], "{section}");
            for f in ["energy_kwh", "share", "core_hours", "gpu_hours", "jobs"] {
                assert!(
                    close(&x[f], &y[f]),
                    "{section} {} {f}: {x} vs {y}",
                    x["name"]
                );
                compared += 1;
            }
        }
    }
    for section in ["projects", "users"] {
        let (a, b) = (&owners["estimates"][section], &jobs["estimates"][section]);
        for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
            for f in ["measured_kwh", "green_algorithms_kwh", "codecarbon_kwh"] {
                assert!(x[f].as_f64().unwrap() > 0.0, "{section} {f}: {x}");
                assert!(close(&x[f], &y[f]), "{section} {f}: {x} vs {y}");
                compared += 1;
            }
        }
    }
    compared
}

/// The per-owner elapsed and memory-seconds counters equal what the reporter's estimates take
/// from each job's series (core-seconds ÷ allocated CPUs, × allocated memory), added by account
/// in PromQL on a real Prometheus: a project's estimates can be made from the owner counters.
#[test]
fn owner_elapsed_and_memory_seconds_equal_the_job_series() {
    let (run, _dir, prom) = small_in_prometheus();
    let end = run.truth["end_unix"].as_i64().unwrap();
    let by_account = |q: &str| -> BTreeMap<String, f64> {
        prom.query(q, end)
            .into_iter()
            .map(|(l, v)| (l.get("account").cloned().unwrap_or_default(), v))
            .collect()
    };
    let last = |m: &str| format!("max_over_time({m}[1d])");
    let owner = |m: &str| by_account(&format!("sum by (account) ({})", last(m)));
    // A job's elapsed time on a node, with its account from `joulebook_job_info`.
    let elapsed = format!(
        "({} / on (instance, job_id) {})",
        last("joulebook_job_core_seconds_total"),
        last("joulebook_job_allocated_cpus")
    );
    let account = format!(
        "on (instance, job_id) group_left (account) {}",
        last("joulebook_job_info")
    );
    let jobs_elapsed = by_account(&format!("sum by (account) ({elapsed} * {account})"));
    let jobs_memory = by_account(&format!(
        "sum by (account) ({elapsed} * on (instance, job_id) {} * {account})",
        last("joulebook_job_allocated_memory_bytes")
    ));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    for (metric, want) in [
        ("joulebook_owner_elapsed_seconds_total", &jobs_elapsed),
        ("joulebook_owner_memory_byte_seconds_total", &jobs_memory),
    ] {
        let got = owner(metric);
        assert!(want.len() >= 2, "{metric}: {want:?}");
        assert_eq!(got.len(), want.len(), "{metric}: {got:?} vs {want:?}");
        for (a, w) in want {
            assert!(*w > 0.0, "{metric} {a}: {want:?}");
            assert!(close(got[a], *w), "{metric} {a}: {} vs {w}", got[a]);
        }
    }
}

#[test]
fn victoriametrics_imports_the_prometheus_format_and_answers_like_the_truth() {
    let run = small();
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = simulate(
        &fixture("simulate/small.yaml"),
        dir.path(),
        "vm",
        &["--format", "prometheus"],
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("# EOF"));
    let first = samples(&text).into_iter().next().unwrap();
    assert_eq!(first.ts, run.truth["start_unix"].as_i64().unwrap() * 1000);
    assert!(text.contains("# TYPE joulebook_node_joules_total counter"));

    let vm = VictoriaMetrics::start_with(&text);
    let t = &run.truth;
    let end = t["end_unix"].as_i64().unwrap();
    let got = vm.query(
        "sum by (component) (max_over_time(joulebook_job_joules_total[1d]))",
        end,
    );
    assert!(!got.is_empty());
    for (l, v) in got {
        let want = t["totals"]["jobs_j"][&l["component"]].as_f64().unwrap();
        assert!(
            (v - want).abs() <= 1e-6 * want.max(1.0),
            "{l:?}: {v} vs {want}"
        );
    }
}
