//! One sampling cycle and one `/metrics` encode on the two-socket Intel fixture (9 RAPL zones
//! plus the estimate). Run: `cargo bench -p joulebook-exporter --bench sampling`.
//! CPU time and resident memory of the running binary: `bench/exporter-footprint`.

use criterion::{criterion_group, criterion_main, Criterion};
use joulebook_exporter::config::{Config, Switch};
use joulebook_exporter::metrics::{self, Format};
use joulebook_exporter::node::NodeInfo;
use joulebook_exporter::sampler::Sampler;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

fn fixture() -> PathBuf {
    joulebook_tests::fixture("intel-2s")
}

fn sampler() -> Sampler {
    let mut cfg = Config::default();
    cfg.paths.sysfs = fixture().join("sys");
    cfg.paths.procfs = fixture().join("proc");
    cfg.sources.nvml.enabled = Switch::Off;
    let node = NodeInfo::read(&cfg.paths.procfs);
    let (sources, disabled) = joulebook_exporter::app::build_sources(&cfg, &node);
    Sampler::new(sources, disabled, node, Some((300.0, "table")), 1.0)
}

fn bench(c: &mut Criterion) {
    let mut s = sampler();
    let mut t = 0.0;
    c.bench_function("sampling cycle, intel-2s (9 zones + estimate)", |b| {
        b.iter(|| {
            t += 1.0;
            s.cycle(t)
        })
    });
    let shared = Arc::new(RwLock::new(Arc::new(s.snapshot(1.0))));
    let registry = metrics::registry(shared);
    c.bench_function("encode /metrics, text 0.0.4", |b| {
        b.iter(|| metrics::encode(&registry, Format::Text))
    });
    c.bench_function("encode /metrics, OpenMetrics", |b| {
        b.iter(|| metrics::encode(&registry, Format::OpenMetrics))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
