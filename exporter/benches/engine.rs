//! The per-job cost outside discovery: one engine cycle (sources + attribution + accounting) with
//! N jobs given in memory, the snapshot, and the `/metrics` encode, at 1, 64 and 1,000 jobs on a
//! 128-CPU two-socket node; and accounting alone over five cycles of 1,000 steady jobs (with
//! revisions, as discovery gives them), each charged as it comes or the five charged at once as
//! the live loop does between two saves (`accounting/pending.rs`). Discovery from cgroups is
//! measured by `benches/jobs.rs`.
//! Run: `cargo bench -p joulebook-exporter --bench engine`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use joulebook_exporter::accounting::{Accounting, AccountingOptions};
use joulebook_exporter::attribution::CycleDelta;
use joulebook_exporter::engine::Engine;
use joulebook_exporter::jobs::{Job, MetadataSource, Scheduler};
use joulebook_exporter::metrics::{self, Format};
use joulebook_exporter::node::NodeInfo;
use joulebook_exporter::sampler::Sampler;
use joulebook_exporter::sources::DeviceKey;
use joulebook_exporter::testing::FakeRapl;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

fn node() -> NodeInfo {
    let mut n = NodeInfo {
        hostname: "bench".into(),
        physical_cores: 128,
        logical_cpus: 128,
        memory_bytes: 512 << 30,
        ..Default::default()
    };
    n.cpus_by_socket.insert(0, (0..64).collect());
    n.cpus_by_socket.insert(1, (64..128).collect());
    n
}

fn jobs(n: usize) -> Vec<Job> {
    (0..n)
        .map(|j| Job {
            id: (100_000 + j).to_string(),
            scheduler: Scheduler::Slurm,
            uid: Some(1000 + (j % 50) as u32),
            user: Some(format!("user{}", j % 50)),
            account: Some(format!("project{}", j % 12)),
            partition: Some("cpu".into()),
            job_name: Some(format!("job-{j}")),
            sluid: None,
            metadata: MetadataSource::Prolog,
            cpus: vec![(j % 128) as u32],
            cpu_usage_ns: Some(j as u64 * 1000),
            memory_limit_bytes: Some(4 << 30),
            gpus: vec![],
            gpu_source: None,
            revision: 0,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    for n in [1usize, 64, 1000] {
        let sampler = Sampler::new(
            vec![Box::new(FakeRapl::new(2, 200_000_000))],
            vec![],
            node(),
            None,
            1.0,
        );
        let mut engine = Engine::new(sampler, None, Some(AccountingOptions::default()));
        let js = jobs(n);
        let mut t = 0.0;
        group.bench_with_input(BenchmarkId::new("cycle", n), &n, |b, _| {
            b.iter(|| {
                t += 1.0;
                engine.cycle_with_jobs(t, t, &js)
            })
        });
        group.bench_with_input(BenchmarkId::new("snapshot", n), &n, |b, _| {
            b.iter(|| engine.snapshot(t))
        });
        let shared = Arc::new(RwLock::new(Arc::new(engine.snapshot(t))));
        let registry = metrics::registry(shared);
        group.bench_with_input(BenchmarkId::new("encode", n), &n, |b, _| {
            b.iter(|| metrics::encode(&registry, Format::OpenMetrics))
        });
    }
    group.finish();
    five_cycles(c);
}

/// Accounting of 1,000 steady jobs over five 1 s cycles: each charged as it comes, or charged
/// together at the fifth.
fn five_cycles(c: &mut Criterion) {
    let mut group = c.benchmark_group("accounting");
    let js: Vec<Job> = jobs(1000)
        .into_iter()
        .enumerate()
        .map(|(i, j)| Job {
            revision: i as u64 + 1,
            ..j
        })
        .collect();
    let mut delta = CycleDelta {
        interval_s: 1.0,
        ..Default::default()
    };
    delta.by_component.cpu = Some(BTreeMap::from([
        (DeviceKey::Socket(0), 150_000_000),
        (DeviceKey::Socket(1), 140_000_000),
    ]));
    delta.by_component.dram = Some(BTreeMap::from([
        (DeviceKey::Socket(0), 20_000_000),
        (DeviceKey::Socket(1), 19_000_000),
    ]));
    for (name, settle_every) in [("charged each cycle", 1), ("charged every 5th", 5)] {
        let mut acc = Accounting::new(AccountingOptions::default(), &node());
        let mut t = 0.0;
        group.bench_function(BenchmarkId::new(name, 1000), |b| {
            b.iter(|| {
                for k in 1..=5 {
                    t += 1.0;
                    acc.update_deferred(t, t, &delta, &js);
                    if k % settle_every == 0 {
                        acc.settle();
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
