//! Job discovery: one scan of a synthetic two-socket, 128-CPU Slurm cgroup v1 node with 1, 64
//! and 1,000 jobs, as `bench/make-slurm-node` writes it (into a temporary folder; needs
//! python3). Steady scans (after the first), with the CPU time read on every scan
//! (`cpu_time_every: 1`, what the usage-above-baseline policy needs) and with the default;
//! and a first scan (a new `JobDiscovery`: everything read) at 1 and 64 jobs.
//! Run: `cargo bench -p joulebook-exporter --bench jobs`.
//! System calls and allocations per scan: `exporter/examples/jobs_scan.rs`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use joulebook_exporter::jobs::{JobDiscovery, JobsOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A node root with `jobs` jobs, from `bench/make-slurm-node`.
fn node(jobs: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/make-slurm-node");
    let status = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .arg(jobs.to_string())
        .status()
        .expect("python3 runs bench/make-slurm-node");
    assert!(status.success(), "{} failed", script.display());
    dir
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("jobs scan");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for jobs in [1, 64, 1000] {
        let dir = node(jobs);
        for (name, every) in [("steady, cpu time every scan", 1), ("steady, default", 0)] {
            let mut d = JobDiscovery::new(JobsOptions {
                cpu_time_every: every,
                ..JobsOptions::under_root(dir.path())
            });
            assert_eq!(d.scan(&[], &[]).jobs.len(), jobs);
            g.bench_with_input(BenchmarkId::new(name, jobs), &jobs, |b, _| {
                b.iter(|| d.scan(&[], &[]))
            });
        }
        if jobs <= 64 {
            g.bench_with_input(BenchmarkId::new("first scan", jobs), &jobs, |b, _| {
                b.iter(|| JobDiscovery::new(JobsOptions::under_root(dir.path())).scan(&[], &[]))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
