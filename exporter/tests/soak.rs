//! Bounded soak: 20,000 jobs start and end on one 64-CPU node in accelerated time (a virtual
//! clock, 10 s per cycle). Finished jobs leave after their grace period, the published job set and
//! the process's memory stay flat, and jobs + unallocated equal the node throughout.

use joulebook_exporter::accounting::AccountingOptions;
use joulebook_exporter::engine::Engine;
use joulebook_exporter::jobs::{Job, MetadataSource, Scheduler};
use joulebook_exporter::metrics::{self, Format};
use joulebook_exporter::node::NodeInfo;
use joulebook_exporter::sampler::Sampler;
use joulebook_exporter::testing::FakeRapl;
use std::sync::{Arc, RwLock};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Job `n` of the churn: one CPU, its user and project among 300 and 20.
fn churn_job(n: u64, cpu: u32) -> Job {
    Job {
        id: format!("{}", 1_000_000 + n),
        scheduler: Scheduler::Slurm,
        uid: Some(1000),
        user: Some(format!("user{}", n % 300)),
        account: Some(format!("project{}", n % 20)),
        partition: Some("cpu".into()),
        job_name: Some(format!("job-{n}")),
        sluid: None,
        metadata: MetadataSource::Prolog,
        cpus: vec![cpu],
        cpu_usage_ns: Some(0),
        memory_limit_bytes: None,
        gpus: vec![],
        gpu_source: None,
        revision: 0,
    }
}

#[test]
fn twenty_thousand_jobs_churn_without_growth() {
    let mut node = NodeInfo {
        memory_bytes: 256 << 30,
        ..Default::default()
    };
    node.cpus_by_socket.insert(0, (0..64).collect());
    // One package at 250 W, sampled every 10 virtual seconds, wrapping every ~17 minutes.
    let rapl = FakeRapl::new(1, 2_500_000_000);
    let sampler = Sampler::new(vec![Box::new(rapl)], vec![], node, None, 10.0);
    let grace = 60.0;
    let mut engine = Engine::new(
        sampler,
        None,
        Some(AccountingOptions {
            grace_s: grace,
            ..Default::default()
        }),
    );
    // Each job holds one CPU for 10 to 50 cycles; a new job starts whenever a CPU frees up.
    let total_jobs = 20_000u64;
    let mut next_id = 0u64;
    let mut running: Vec<(Job, u64)> = Vec::new();
    let mut cycle = 0u64;
    let mut max_published = 0usize;
    let mut rss_after_warmup = 0;
    let mut peak_rss = 0;
    while next_id < total_jobs || !running.is_empty() {
        running.retain(|(_, end)| *end > cycle);
        let busy: Vec<u32> = running.iter().flat_map(|(j, _)| j.cpus.clone()).collect();
        for cpu in 0..64u32 {
            if next_id < total_jobs && !busy.contains(&cpu) {
                let job = churn_job(next_id, cpu);
                running.push((job, cycle + 10 + next_id % 41));
                next_id += 1;
            }
        }
        let jobs: Vec<Job> = running.iter().map(|(j, _)| j.clone()).collect();
        let t = cycle as f64 * 10.0;
        engine.cycle_with_jobs(t, 1.8e9 + t, &jobs);
        let acc = engine.accounting().expect("accounting on");
        // Published: running jobs plus those ended within the grace period (6 cycles), never
        // the whole history.
        max_published = max_published.max(acc.jobs().len());
        assert!(
            acc.jobs().len() <= 64 * 8,
            "{} jobs published",
            acc.jobs().len()
        );
        // The invariant, cumulatively: everything the node drew went to a job or to unallocated.
        let snap = engine.snapshot(1.8e9 + t);
        let node_uj = (snap.node[0].joules * 1e6).round() as u64;
        assert_eq!(acc.accounted_uj().cpu, node_uj, "cycle {cycle}");
        if cycle == 200 {
            rss_after_warmup = rss_kib();
        }
        if cycle > 200 {
            peak_rss = peak_rss.max(rss_kib());
        }
        cycle += 1;
    }
    // Every job has ended: after the grace period, none is left on /metrics.
    for k in 0..10 {
        let t = (cycle + k) as f64 * 10.0;
        engine.cycle_with_jobs(t, 1.8e9 + t, &[]);
    }
    let snap = engine.snapshot(0.0);
    assert!(snap.jobs.is_empty(), "{} jobs left", snap.jobs.len());
    let text = metrics::encode(
        &metrics::registry(Arc::new(RwLock::new(Arc::new(snap)))),
        Format::Text,
    )
    .unwrap();
    assert!(
        !text.contains("joulebook_job_joules_total{"),
        "job series left on /metrics"
    );
    assert!(max_published >= 64, "the churn ran: {max_published}");
    // Memory is flat once the steady state is reached (generous bound: allocator noise).
    eprintln!(
        "{cycle} cycles, {total_jobs} jobs, at most {max_published} published; RSS {rss_after_warmup} KiB after warm-up, peak {peak_rss} KiB"
    );
    assert!(
        peak_rss < rss_after_warmup + 8 * 1024,
        "RSS grew from {rss_after_warmup} KiB to {peak_rss} KiB"
    );
}
