use super::*;
use crate::data::{Name, Placement};

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
