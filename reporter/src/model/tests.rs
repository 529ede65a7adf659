use super::*;
use crate::data::{GpuData, Name, Placement};

fn job(id: &str, user: &str, account: &str, name: &str, joules: f64, core_s: f64) -> JobData {
    JobData {
        cluster: Name::default(),
        job_id: id.into(),
        user: user.into(),
        account: account.into(),
        job_name: name.into(),
        energy: ByComponent {
            cpu: joules,
            ..ByComponent::default()
        },
        core_seconds: core_s,
        placements: vec![Placement {
            instance: "n1:9977".into(),
            core_seconds: core_s,
            gpu_seconds: 0.0,
            alloc_cpus: 4.0,
            alloc_memory_bytes: Some(8e9),
        }],
        ..JobData::default()
    }
}

fn dataset() -> Dataset {
    Dataset {
        period: Some(Period {
            start: 0,
            end: 86_400,
        }),
        jobs: vec![
            job("1", "ann", "p", "dev-a", 3.6e6, 3600.0),
            job("2", "ann", "p", "final", 7.2e6, 3600.0),
            job("3", "bo", "p", "dev-b", 1.8e6, 7200.0),
            job("4", "cy", "q", "x", 3.6e6, 36_000.0),
        ],
        nodes: vec![NodeData {
            cluster: String::new(),
            instance: "n1:9977".into(),
            hostname: None,
            energy: ByComponent {
                cpu: 36e6,
                ..ByComponent::default()
            },
            unallocated: ByComponent {
                cpu: 19.8e6,
                ..ByComponent::default()
            },
            cpu_tdp_watts: Some(200.0),
            physical_cores: Some(20.0),
            memory_bytes: Some(100e9),
            seconds_reported: None,
        }],
        ..Dataset::default()
    }
}

fn opts(scope: ScopeKind) -> Options {
    Options {
        scope,
        cluster: None,
        generated_at: 0,
        anonymize_users: false,
        zone: Zone::utc(),
        all_jobs: true,
    }
}

#[test]
fn headline_equivalents() {
    let r = build(&dataset(), &Config::default(), &opts(ScopeKind::Cluster));
    assert!((r.headline.it_energy_kwh - 10.0).abs() < 1e-12);
    assert!((r.headline.facility_energy_kwh - 15.6).abs() < 1e-12);
    // 15.6 kWh × 44.2 g/kWh
    assert!((r.headline.co2e_kg - 0.68952).abs() < 1e-12);
    assert!((r.headline.households_for_a_year - 15.6 / 4792.0).abs() < 1e-15);
    assert!((r.headline.households_daily - 15.6 / (4792.0 / 365.0)).abs() < 1e-12);
    assert_eq!(r.headline.jobs, 4);
    assert!((r.idle.as_ref().map(|i| i.share).unwrap_or(0.0) - 0.55).abs() < 1e-12);
}

#[test]
fn green_algorithms_by_hand() {
    let r = build(
        &dataset(),
        &Config::default(),
        &opts(ScopeKind::User("cy".into())),
    );
    let e = r.estimates.total.expect("estimates");
    // 36,000 core-s × (200 W / 20 cores) + 8 GB × 0.3725 W/GB × (36,000 / 4) s
    let want = (36_000.0 * 10.0 + 8.0 * 0.3725 * 9000.0) / 3.6e6;
    assert!((e.green_algorithms_kwh - want).abs() < 1e-12);
    // CodeCarbon: node CPU power 36 MJ / 1 day, + 100 GB × 0.375 W/GB, during 9,000 s.
    let cc = 9000.0 * (36e6 / 86_400.0 + 100.0 * 0.375) / 3.6e6;
    assert!((e.codecarbon_kwh - cc).abs() < 1e-12);
    assert_eq!(r.top_jobs.len(), 1);
    assert!(r.idle.is_none());
}

/// The same data in a period ten times as long, the node reporting on one day of it (as in a
/// yearly report of a node that ran for a day): its mean power, and so the CodeCarbon-style
/// estimate and its GPUs' unallocated hours, are those of that day, not diluted over the period.
#[test]
fn mean_power_over_the_days_a_node_reported() {
    let day = dataset();
    let mut long = dataset();
    long.period = Some(Period {
        start: 0,
        end: 10 * 86_400,
    });
    let gpu = GpuData {
        instance: "n1:9977".into(),
        gpu_uuid: "GPU-1".into(),
        samples_present: 10.0,
        samples_allocated: 4.0,
        ..GpuData::default()
    };
    long.gpus = vec![gpu.clone()];
    let user = opts(ScopeKind::User("cy".into()));
    let cluster = opts(ScopeKind::Cluster);
    let cc = |ds: &Dataset| {
        let r = build(ds, &Config::default(), &user);
        r.estimates.total.expect("estimates").codecarbon_kwh
    };
    let gpu_hours = |ds: &Dataset| {
        let r = build(ds, &Config::default(), &cluster);
        r.idle.expect("idle").gpus[0].unallocated_hours
    };
    // Unknown days: the period (the energy of one day over ten).
    assert!(cc(&long) < cc(&day) / 2.0);
    assert!((gpu_hours(&long) - 0.6 * 240.0).abs() < 1e-9);
    long.nodes[0].seconds_reported = Some(86_400.0);
    assert!((cc(&long) - cc(&day)).abs() < 1e-12);
    assert!((gpu_hours(&long) - 0.6 * 24.0).abs() < 1e-9);
}

#[test]
fn final_run_by_pattern_config_or_largest() {
    let mut cfg = Config::default();
    let r = build(&dataset(), &cfg, &opts(ScopeKind::Cluster));
    let p = r.dev_vs_final.iter().find(|d| d.project == "p").expect("p");
    assert_eq!(
        (p.chosen_by.as_str(), p.final_jobs.clone()),
        ("largest job", vec!["2".to_string()])
    );
    assert!((p.ratio.unwrap_or(0.0) - 12.6 / 7.2).abs() < 1e-12);
    cfg.best_run.job_name_pattern = Some("^dev".into());
    let r = build(&dataset(), &cfg, &opts(ScopeKind::Cluster));
    let p = r.dev_vs_final.iter().find(|d| d.project == "p").expect("p");
    assert_eq!(
        (p.chosen_by.as_str(), p.final_jobs.clone()),
        ("pattern", vec!["1".to_string()])
    );
    cfg.best_run.jobs.insert("p".into(), vec!["3".into()]);
    let r = build(&dataset(), &cfg, &opts(ScopeKind::Cluster));
    let p = r.dev_vs_final.iter().find(|d| d.project == "p").expect("p");
    assert_eq!(p.chosen_by, "configured");
    assert!((p.ratio.unwrap_or(0.0) - 7.0).abs() < 1e-12);
}

#[test]
fn rankings_and_anonymisation() {
    let mut o = opts(ScopeKind::Cluster);
    o.anonymize_users = true;
    let r = build(&dataset(), &Config::default(), &o);
    let names: Vec<&str> = r.users.rows.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["User 1", "User 2", "User 3"]);
    // ann (most energy) ties bo on core-hours behind cy: ranks 2 and 3 share 2.5.
    assert_eq!(r.users.rows[0].rank_core_hours, 2.5);
    assert!(r.top_jobs.iter().all(|j| j.user.starts_with("User ")));
    assert!(r.users.spearman.is_some());
}

#[test]
fn ml_co2_is_na_without_gpus_with_its_footnote() {
    let mut ds = dataset();
    ds.jobs[3].gpu_seconds = 7200.0;
    ds.jobs[3].placements[0].gpu_seconds = 7200.0;
    let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
    let row = |n: &str| {
        r.estimates
            .projects
            .iter()
            .find(|e| e.name == n)
            .cloned()
            .expect("row")
    };
    // p ran CPU-only jobs: n/a, not 0 kWh; q used 2 GPU-hours at the default 200 W.
    assert_eq!((row("p").ml_co2_kwh, row("p").ml_co2_ratio), (None, None));
    assert!((row("q").ml_co2_kwh.unwrap_or(0.0) - 0.4).abs() < 1e-12);
    assert_eq!(r.estimates.ml_co2_footnote.as_deref(), Some(ML_CO2_NA));
    let all = r.estimates.total.expect("total");
    assert!(all.ml_co2_kwh.is_some());
    // Every job with a GPU: no footnote.
    for j in &mut ds.jobs {
        j.gpu_seconds = 3600.0;
    }
    let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
    assert!(r.estimates.ml_co2_footnote.is_none());
}

#[test]
fn unmeasured_components_and_node_names() {
    let mut ds = dataset();
    ds.unmeasured = vec!["other".into()];
    let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
    let measured: Vec<(&str, bool)> = r
        .components
        .iter()
        .map(|c| (c.component.as_str(), c.measured))
        .collect();
    assert_eq!(
        measured,
        [
            ("cpu", true),
            ("dram", true),
            ("gpu", true),
            ("other", false)
        ]
    );
    let idle = r.idle.as_ref().expect("idle");
    assert!(!idle.by_component[3].measured && idle.by_component[0].measured);
    assert_eq!(r.unmeasured, ["other"]);
    // The node without its port, or by the hostname its exporter publishes.
    assert_eq!(
        (idle.nodes[0].instance.as_str(), idle.nodes[0].node.as_str()),
        ("n1:9977", "n1")
    );
    ds.nodes[0].hostname = Some("gpu01".into());
    let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
    assert_eq!(r.idle.expect("idle").nodes[0].node, "gpu01");
}

#[test]
fn empty_dataset_says_no_data() {
    let ds = Dataset {
        period: Some(Period {
            start: 0,
            end: 86_400,
        }),
        ..Dataset::default()
    };
    let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
    assert!(!r.has_data);
    assert!(r.notes.iter().any(|n| n.starts_with("No data")));
}

/// The owner figures the exporter would publish for `ds`'s jobs: one pair per (node, account,
/// user), the sums of its jobs there.
fn owners_of(ds: &Dataset) -> Vec<crate::data::OwnerData> {
    let mut by: BTreeMap<(String, String, String), crate::data::OwnerData> = BTreeMap::new();
    for j in &ds.jobs {
        for p in &j.placements {
            let o = by
                .entry((
                    p.instance.to_string(),
                    j.account.to_string(),
                    j.user.to_string(),
                ))
                .or_insert_with(|| crate::data::OwnerData {
                    cluster: j.cluster.clone(),
                    instance: p.instance.clone(),
                    account: j.account.clone(),
                    user: j.user.clone(),
                    ..Default::default()
                });
            // One placement a job here: its energy is the placement's.
            o.energy = o.energy.plus(&j.energy);
            o.core_seconds += p.core_seconds;
            o.gpu_seconds += p.gpu_seconds;
            o.elapsed_seconds += p.elapsed_seconds();
            o.memory_byte_seconds += p.alloc_memory_bytes.unwrap_or(0.0) * p.elapsed_seconds();
        }
    }
    by.into_values().collect()
}

#[test]
fn owner_counters_give_the_totals_the_jobs_give() {
    let by_jobs = dataset();
    let mut by_owners = dataset();
    by_owners.owners = Some(owners_of(&by_owners));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9);
    for scope in [
        ScopeKind::Cluster,
        ScopeKind::Project("p".into()),
        ScopeKind::User("ann".into()),
    ] {
        let mut o = opts(scope.clone());
        o.anonymize_users = true;
        let (a, b) = (
            build(&by_jobs, &Config::default(), &o),
            build(&by_owners, &Config::default(), &o),
        );
        assert_eq!(a.totals_from, TotalsFrom::Jobs);
        assert_eq!(b.totals_from, TotalsFrom::OwnerCounters);
        for (ra, rb) in [(&a.projects, &b.projects), (&a.users, &b.users)] {
            assert_eq!(ra.rows.len(), rb.rows.len(), "{scope:?}");
            for (x, y) in ra.rows.iter().zip(&rb.rows) {
                assert_eq!((&x.name, x.jobs), (&y.name, y.jobs), "{scope:?}");
                assert!(close(x.energy_kwh, y.energy_kwh), "{scope:?} {x:?} {y:?}");
                assert!(close(x.core_hours, y.core_hours), "{scope:?}");
                assert!(close(x.share, y.share), "{scope:?}");
            }
        }
        let (ea, eb) = (&a.estimates, &b.estimates);
        let rows = |e: &Estimates| {
            e.projects
                .iter()
                .chain(&e.users)
                .chain(&e.total)
                .map(|r| (r.name.clone(), r.green_algorithms_kwh, r.codecarbon_kwh))
                .collect::<Vec<_>>()
        };
        for (x, y) in rows(ea).into_iter().zip(rows(eb)) {
            assert_eq!(x.0, y.0);
            assert!(x.1 > 0.0 && close(x.1, y.1), "{scope:?} GA {x:?} {y:?}");
            assert!(
                x.2 > 0.0 && close(x.2, y.2),
                "{scope:?} CodeCarbon {x:?} {y:?}"
            );
        }
        assert_eq!(rows(ea).len(), rows(eb).len());
        assert!(close(
            a.headline.jobs_energy_kwh,
            b.headline.jobs_energy_kwh
        ));
        assert!(b
            .notes
            .iter()
            .any(|n| n.contains("per-owner counters of 1 nodes")));
        assert!(!a.notes.iter().any(|n| n.contains("per-owner counters")));
    }
}

#[test]
fn owner_counters_decide_the_totals_where_they_differ_from_the_jobs() {
    // Energy and core-seconds the jobs' series missed (a job cut at the period's start, say):
    // the owner counters' figures are the ones shown, the job counts are the jobs'.
    let mut ds = dataset();
    let mut owners = owners_of(&ds);
    for o in &mut owners {
        if o.account == "q" {
            o.energy.cpu += 3.6e6;
            o.core_seconds += 3600.0;
        }
    }
    ds.owners = Some(owners);
    let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
    let q = r.projects.rows.iter().find(|r| r.name == "q").unwrap();
    assert!((q.energy_kwh - 2.0).abs() < 1e-12, "{q:?}");
    assert!((q.core_hours - 11.0).abs() < 1e-12, "{q:?}");
    assert_eq!(q.jobs, 1);
    assert!((r.headline.jobs_energy_kwh - 5.5).abs() < 1e-12);
    let dev = r.dev_vs_final.iter().find(|d| d.project == "q").unwrap();
    assert!((dev.total_kwh - 2.0).abs() < 1e-12, "{dev:?}");
}

#[test]
fn a_summary_counts_the_jobs_it_was_given_and_lists_none() {
    let mut ds = dataset();
    ds.owners = Some(owners_of(&ds));
    let count = |account: &str, user: &str, jobs| crate::data::JobCount {
        account: account.into(),
        user: user.into(),
        jobs,
        claimed: jobs / 10,
    };
    ds.job_counts = Some(vec![
        count("p", "ann", 20),
        count("p", "bo", 3),
        count("q", "cy", 1),
    ]);
    ds.jobs.clear();
    let r = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
    assert!(r.summary);
    assert_eq!(r.headline.jobs, 24);
    assert!((r.headline.core_hours - 14.0).abs() < 1e-12);
    let jobs: Vec<(&str, usize)> = r
        .projects
        .rows
        .iter()
        .map(|p| (p.name.as_str(), p.jobs))
        .collect();
    assert_eq!(jobs, vec![("p", 23), ("q", 1)]);
    assert!(r.top_jobs.is_empty() && r.dev_vs_final.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("Summary report")));
    // 2 of 20 of ann's jobs claim their project.
    assert!(r
        .notes
        .iter()
        .any(|n| n.starts_with("2 of 24 jobs (8.3 %)")));
    let ann = build(
        &ds,
        &Config::default(),
        &opts(ScopeKind::User("ann".into())),
    );
    assert_eq!(ann.headline.jobs, 20);
    assert_eq!(ann.headline.nodes, 1);
    let full = build(&dataset(), &Config::default(), &opts(ScopeKind::Cluster));
    assert!(!full.summary && !full.dev_vs_final.is_empty());
}

#[test]
fn a_bounded_job_list_is_the_first_rows_of_the_full_one() {
    let ds = dataset();
    let full = build(&ds, &Config::default(), &opts(ScopeKind::Cluster));
    assert!(full.top_jobs_all);
    assert_eq!(full.top_jobs.len(), 4);
    let cfg = Config {
        top_n: 2,
        ..Config::default()
    };
    for (scope, want) in [
        (ScopeKind::Cluster, vec!["2", "1"]),
        (ScopeKind::User("ann".into()), vec!["2", "1"]),
        (ScopeKind::Project("q".into()), vec!["4"]),
    ] {
        let mut o = opts(scope.clone());
        o.all_jobs = false;
        let r = build(&ds, &cfg, &o);
        let ids: Vec<&str> = r.top_jobs.iter().map(|j| j.job_id.as_str()).collect();
        assert_eq!(ids, want, "{scope:?}");
        // Ties (jobs 1 and 4 have 1 kWh each) go to the lower id, as in the full list; ann's
        // and q's jobs all fit.
        assert_eq!(r.top_jobs_all, scope != ScopeKind::Cluster, "{scope:?}");
    }
    let mut o = opts(ScopeKind::Cluster);
    o.all_jobs = false;
    let cfg3 = Config {
        top_n: 3,
        ..Config::default()
    };
    let r = build(&ds, &cfg3, &o);
    let ids: Vec<&str> = r.top_jobs.iter().map(|j| j.job_id.as_str()).collect();
    let full_ids: Vec<&str> = full.top_jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, full_ids[..3]);
}
