//! Turns a [`Snapshot`] into Prometheus metrics. The only module that knows prometheus-client's
//! types; names and help texts come from `joulebook_common`, so they are defined once.

use crate::sampler::{Shared, Snapshot};
use crate::sources::{Domain, SourceKind};
use joulebook_common::{self as names, Kind, MetricDef};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Error;
use std::sync::Arc;

/// Version and revision published in `joulebook_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = match option_env!("JOULEBOOK_REVISION") {
    Some(r) => r,
    None => "unknown",
};

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn unit(def: &MetricDef) -> Option<Unit> {
    match def.unit {
        names::Unit::Joules => Some(Unit::Joules),
        names::Unit::Seconds => Some(Unit::Seconds),
        names::Unit::Bytes => Some(Unit::Bytes),
        names::Unit::Watts => Some(Unit::Other("watts".into())),
        names::Unit::None => None,
    }
}

fn metric_type(def: &MetricDef) -> MetricType {
    match def.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Info => MetricType::Info,
    }
}

/// Writes one family: its descriptor, then each sample.
fn family<'a, V: Copy>(
    enc: &mut DescriptorEncoder,
    def: &MetricDef,
    samples: impl IntoIterator<Item = (Labels<'a>, V)>,
    mut write: impl FnMut(prometheus_client::encoding::MetricEncoder, V) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let u = unit(def);
    let mut m = enc.encode_descriptor(def.base, def.help, u.as_ref(), metric_type(def))?;
    for (labels, v) in samples {
        debug_assert_eq!(labels.len(), def.labels.len(), "{}", def.base);
        write(m.encode_family(&labels)?, v)?;
    }
    Ok(())
}

fn counters<'a>(
    enc: &mut DescriptorEncoder,
    def: &MetricDef,
    samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> Result<(), Error> {
    family(enc, def, samples, |m, v| ConstCounter::new(v).encode(m))
}

fn gauges<'a>(
    enc: &mut DescriptorEncoder,
    def: &MetricDef,
    samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> Result<(), Error> {
    family(enc, def, samples, |m, v| ConstGauge::new(v).encode(m))
}

fn infos<'a>(
    enc: &mut DescriptorEncoder,
    def: &MetricDef,
    samples: impl IntoIterator<Item = Labels<'a>>,
) -> Result<(), Error> {
    let u = unit(def);
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(def.base, def.help, u.as_ref(), MetricType::Info)?;
    for labels in samples {
        Info::new(labels).encode(m.encode_family(&Vec::<(&str, &str)>::new())?)?;
    }
    Ok(())
}

/// Encodes a snapshot. Separate from the collector so tests and benchmarks can call it directly.
pub fn encode_snapshot(s: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), Error> {
    use names::labels as l;
    let domain_metrics = [
        (Domain::RaplPackage, &names::RAPL_PACKAGE),
        (Domain::RaplCore, &names::RAPL_CORE),
        (Domain::RaplUncore, &names::RAPL_UNCORE),
        (Domain::RaplDram, &names::RAPL_DRAM),
        (Domain::RaplPsys, &names::RAPL_PSYS),
        (Domain::EstimatedCpu, &names::ESTIMATED_CPU),
        (Domain::EstimatedDram, &names::ESTIMATED_DRAM),
        (Domain::Gpu, &names::GPU_ENERGY),
        (Domain::Bmc, &names::BMC_ENERGY),
    ];
    for (domain, def) in domain_metrics {
        let samples = s
            .channels
            .iter()
            .filter(|(id, _)| id.domain == domain)
            .map(|(id, j)| {
                let labels: Labels = match def.labels.first() {
                    Some(label) => vec![(*label, id.device.as_str())],
                    None => vec![],
                };
                (labels, *j)
            });
        counters(enc, def, samples)?;
    }
    if let Some(tdp) = s.estimate_tdp_watts {
        gauges(enc, &names::ESTIMATED_CPU_TDP, [(vec![], tdp)])?;
    }

    gauges(
        enc,
        &names::GPU_POWER,
        s.gpus.iter().filter_map(|g| {
            g.power_watts
                .map(|w| (vec![(l::GPU_UUID, g.uuid.as_str())], w))
        }),
    )?;
    gauges(
        enc,
        &names::GPU_POWER_LIMIT,
        s.gpus.iter().filter_map(|g| {
            g.power_limit_watts
                .map(|w| (vec![(l::GPU_UUID, g.uuid.as_str())], w))
        }),
    )?;
    let indices: Vec<String> = s.gpus.iter().map(|g| g.index.to_string()).collect();
    infos(
        enc,
        &names::GPU_INFO,
        s.gpus.iter().zip(&indices).map(|(g, i)| {
            vec![
                (l::GPU_UUID, g.uuid.as_str()),
                (l::INDEX, i.as_str()),
                (l::MODEL, g.model.as_str()),
                (l::PCI_BUS_ID, g.pci_bus_id.as_str()),
            ]
        }),
    )?;
    infos(
        enc,
        &names::GPU_ENERGY_METHOD,
        s.gpus.iter().map(|g| {
            let method = if g.energy_counter {
                "counter"
            } else {
                "power_integration"
            };
            vec![(l::GPU_UUID, g.uuid.as_str()), (l::METHOD, method)]
        }),
    )?;

    if let Some(b) = &s.bmc {
        if let Some(w) = b.power_watts {
            gauges(enc, &names::BMC_POWER, [(vec![], w)])?;
        }
        if let Some(m) = b.method {
            infos(
                enc,
                &names::BMC_ENERGY_METHOD,
                [vec![
                    (l::METHOD, m.as_str()),
                    (l::PROTOCOL, b.protocol.as_str()),
                ]],
            )?;
        }
        counters(
            enc,
            &names::BMC_GAP_SECONDS,
            [(vec![], b.gap_seconds_total)],
        )?;
    }

    counters(
        enc,
        &names::NODE_ENERGY,
        s.node
            .iter()
            .map(|n| (vec![(l::COMPONENT, n.component.as_str())], n.joules)),
    )?;
    infos(
        enc,
        &names::NODE_COMPONENT_INFO,
        s.node.iter().map(|n| {
            vec![
                (l::COMPONENT, n.component.as_str()),
                (l::METHOD, n.method.as_str()),
                (l::SOURCE, n.source.as_str()),
            ]
        }),
    )?;
    let ni = &s.node_info;
    infos(
        enc,
        &names::NODE_INFO,
        [vec![
            (l::HOSTNAME, ni.hostname.as_str()),
            (l::CPU_MODEL, ni.cpu_model.as_str()),
            (l::CPU_VENDOR, ni.cpu_vendor.as_str()),
        ]],
    )?;
    gauges(
        enc,
        &names::NODE_PHYSICAL_CORES,
        [(vec![], ni.physical_cores as f64)],
    )?;
    gauges(
        enc,
        &names::NODE_LOGICAL_CPUS,
        [(vec![], ni.logical_cpus as f64)],
    )?;
    gauges(enc, &names::NODE_SOCKETS, [(vec![], ni.sockets() as f64)])?;
    gauges(enc, &names::NODE_MEMORY, [(vec![], ni.memory_bytes as f64)])?;
    if let Some((tdp, _)) = s.cpu_tdp_watts {
        gauges(enc, &names::NODE_CPU_TDP, [(vec![], tdp)])?;
    }

    let health = &s.health;
    let src = |k: &SourceKind| vec![(l::SOURCE, k.as_str())];
    gauges(
        enc,
        &names::SOURCE_ENABLED,
        health
            .iter()
            .map(|(k, h)| (src(k), f64::from(u8::from(h.enabled)))),
    )?;
    gauges(
        enc,
        &names::SOURCE_UP,
        health
            .iter()
            .filter(|(_, h)| h.enabled)
            .map(|(k, h)| (src(k), f64::from(u8::from(h.up)))),
    )?;
    gauges(
        enc,
        &names::SAMPLE_DURATION,
        health
            .iter()
            .filter(|(_, h)| h.enabled)
            .map(|(k, h)| (src(k), h.duration_s)),
    )?;
    counters(
        enc,
        &names::SAMPLES,
        health
            .iter()
            .filter(|(_, h)| h.enabled)
            .map(|(k, h)| (src(k), h.samples as f64)),
    )?;
    counters(
        enc,
        &names::COUNTER_WRAPS,
        health
            .iter()
            .filter(|(_, h)| h.enabled)
            .map(|(k, h)| (src(k), h.wraps as f64)),
    )?;
    // Every reason is published from the start (at 0), so rate() sees the first drop.
    let dropped = health.iter().filter(|(_, h)| h.enabled).flat_map(|(k, h)| {
        crate::energy::DropReason::ALL.into_iter().map(move |r| {
            (
                vec![(l::SOURCE, k.as_str()), (l::REASON, r.as_str())],
                h.dropped.get(&r).copied().unwrap_or(0) as f64,
            )
        })
    });
    counters(enc, &names::SAMPLES_DROPPED, dropped)?;
    infos(
        enc,
        &names::BUILD_INFO,
        [vec![(l::VERSION, VERSION), (l::REVISION, REVISION)]],
    )?;
    gauges(enc, &names::SAMPLE_INTERVAL, [(vec![], s.interval_s)])?;
    if s.last_sample_unix > 0.0 {
        gauges(
            enc,
            &names::LAST_SAMPLE_TIMESTAMP,
            [(vec![], s.last_sample_unix)],
        )?;
    }
    Ok(())
}

/// Registered once; encodes whatever snapshot is current at scrape time.
#[derive(Debug)]
pub struct SnapshotCollector {
    shared: Shared,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let snap: Arc<Snapshot> = match self.shared.read() {
            Ok(g) => Arc::clone(&g),
            // A panic while holding the lock cannot leave a half-written Arc: use it.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        encode_snapshot(&snap, &mut encoder)
    }
}

/// A registry holding the snapshot collector.
pub fn registry(shared: Shared) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(SnapshotCollector { shared }));
    r
}

/// The exposition formats served on /metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// The classic Prometheus text format, version 0.0.4.
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// Content negotiation on the Accept header: OpenMetrics when the client lists it (as
    /// Prometheus does), the classic text format otherwise (curl, promtool, older scrapers).
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
}

pub fn encode(registry: &Registry, format: Format) -> Result<String, Error> {
    let mut out = String::with_capacity(8 * 1024);
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry)?,
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?,
    }
    Ok(out)
}
