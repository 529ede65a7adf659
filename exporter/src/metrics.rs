//! Turns a [`Snapshot`] into Prometheus metrics. The only module that knows prometheus-client's
//! types; names and help texts come from `joulebook_common`, so they are defined once.

use crate::snapshot::{Shared, Snapshot};
use crate::sources::hwmon_sensors::Role as HwmonRole;
use crate::sources::{Domain, SourceKind};
use joulebook_common::{self as names, Kind, MetricDef};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;
use std::fmt::Error;

use crate::build_info::{REVISION, VERSION};

const NO_LABELS: [(&str, &str); 0] = [];

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

/// Writes one family: its descriptor, then each sample. Labels are any label set (arrays avoid
/// a heap allocation per sample, which matters at thousands of job series).
fn family<L: EncodeLabelSet, V: Copy>(
    enc: &mut DescriptorEncoder,
    def: &MetricDef,
    samples: impl IntoIterator<Item = (L, V)>,
    mut write: impl FnMut(prometheus_client::encoding::MetricEncoder, V) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let u = unit(def);
    let mut m = enc.encode_descriptor(def.base, def.help, u.as_ref(), metric_type(def))?;
    for (labels, v) in samples {
        write(m.encode_family(&labels)?, v)?;
    }
    Ok(())
}

fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    def: &MetricDef,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), Error> {
    family(enc, def, samples, |m, v| ConstCounter::new(v).encode(m))
}

fn gauges<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    def: &MetricDef,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), Error> {
    family(enc, def, samples, |m, v| ConstGauge::new(v).encode(m))
}

fn infos<L: EncodeLabelSet + Clone + std::hash::Hash + Eq>(
    enc: &mut DescriptorEncoder,
    def: &MetricDef,
    samples: impl IntoIterator<Item = L>,
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
    encode_channels(s, enc)?;
    encode_gpus(s, enc)?;
    encode_devices(s, enc)?;
    encode_bmc(s, enc)?;
    encode_node(s, enc)?;
    encode_jobs(s, enc)?;
    encode_health(s, enc)
}

/// The energy counters of each source's channels, by domain.
fn encode_channels(s: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), Error> {
    let domain_metrics = [
        (Domain::RaplPackage, &names::RAPL_PACKAGE),
        (Domain::RaplCore, &names::RAPL_CORE),
        (Domain::RaplUncore, &names::RAPL_UNCORE),
        (Domain::RaplDram, &names::RAPL_DRAM),
        (Domain::RaplPsys, &names::RAPL_PSYS),
        (Domain::EstimatedCpu, &names::ESTIMATED_CPU),
        (Domain::EstimatedDram, &names::ESTIMATED_DRAM),
        (Domain::Gpu, &names::GPU_ENERGY),
        (Domain::AmdGpu, &names::AMDGPU_ENERGY),
        (Domain::AmdApu, &names::AMD_APU_ENERGY),
        (Domain::IntelGpu, &names::INTEL_GPU_ENERGY),
        (Domain::GraceSocket, &names::GRACE_SOCKET_ENERGY),
        (Domain::GraceCpuRail, &names::GRACE_CPU_RAIL_ENERGY),
        (Domain::GraceSysioRail, &names::GRACE_SYSIO_RAIL_ENERGY),
        (Domain::GraceModule, &names::GRACE_MODULE_ENERGY),
        (Domain::Bmc, &names::BMC_ENERGY),
    ];
    for (domain, def) in domain_metrics {
        let samples = s
            .channels
            .iter()
            .filter(|(id, _)| id.domain == domain)
            .map(|(id, j)| {
                let labels: Vec<(&str, Cow<str>)> = match def.labels {
                    [] => vec![],
                    // RAPL: the socket, and the die where the dies have their own counters.
                    [socket, die] => match (id.device.socket(), id.device.die()) {
                        (Some(s), Some(d)) => {
                            vec![
                                (*socket, s.to_string().into()),
                                (*die, d.to_string().into()),
                            ]
                        }
                        (Some(s), None) => vec![(*socket, s.to_string().into())],
                        (None, _) => vec![(*socket, id.device.label())],
                    },
                    [label, ..] => vec![(*label, id.device.label())],
                };
                (labels, *j)
            });
        counters(enc, def, samples)?;
    }
    if let Some(tdp) = s.estimate_tdp_watts {
        gauges(enc, &names::ESTIMATED_CPU_TDP, [(NO_LABELS, tdp)])?;
    }
    Ok(())
}

/// GPU power, limits, identities and energy methods.
fn encode_gpus(s: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), Error> {
    use names::labels as l;
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
    // What links a part jobs hold (MIG instance, AMD partition, MI250X die) to its device.
    infos(
        enc,
        &names::GPU_PART_INFO,
        s.partitions.iter().flat_map(|d| {
            d.parts.iter().map(move |p| {
                [
                    (l::GPU_UUID, p.id.as_str()),
                    (l::PARENT_GPU_UUID, d.device.as_str()),
                ]
            })
        }),
    )?;
    Ok(())
}

/// hwmon sensors and the energy devices found.
fn encode_devices(s: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), Error> {
    use names::labels as l;
    counters(
        enc,
        &names::HWMON_ENERGY,
        s.channels.iter().filter_map(|(id, j)| {
            let role = HwmonRole::of(id.domain)?;
            Some((
                [
                    (l::SENSOR, id.device.label()),
                    (l::ROLE, role.as_str().into()),
                ],
                *j,
            ))
        }),
    )?;
    infos(
        enc,
        &names::ENERGY_DEVICE_INFO,
        s.devices.iter().map(|(kind, d)| {
            vec![
                (l::SOURCE, Cow::from(kind.as_str())),
                (l::DEVICE, d.channel.device.label()),
                (l::NAME, d.name.as_str().into()),
                (l::MODEL, d.model.as_str().into()),
                (l::METHOD, d.method.into()),
            ]
        }),
    )?;
    Ok(())
}

/// The BMC's power, method, gaps and clamps.
fn encode_bmc(s: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), Error> {
    use names::labels as l;
    if let Some(b) = &s.bmc {
        if let Some(w) = b.power_watts {
            gauges(enc, &names::BMC_POWER, [(NO_LABELS, w)])?;
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
            [(NO_LABELS, b.gap_seconds_total)],
        )?;
        counters(
            enc,
            &names::OTHER_CLAMPS,
            [(NO_LABELS, s.other_clamps as f64)],
        )?;
    }
    Ok(())
}

/// Node energy per component and the node's static facts.
fn encode_node(s: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), Error> {
    use names::labels as l;
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
        [(NO_LABELS, ni.physical_cores as f64)],
    )?;
    gauges(
        enc,
        &names::NODE_LOGICAL_CPUS,
        [(NO_LABELS, ni.logical_cpus as f64)],
    )?;
    gauges(
        enc,
        &names::NODE_SOCKETS,
        [(NO_LABELS, ni.sockets() as f64)],
    )?;
    gauges(
        enc,
        &names::NODE_MEMORY,
        [(NO_LABELS, ni.memory_bytes as f64)],
    )?;
    if let Some((tdp, _)) = s.cpu_tdp_watts {
        gauges(enc, &names::NODE_CPU_TDP, [(NO_LABELS, tdp)])?;
    }
    Ok(())
}

/// Source health, build, interval and last sample time.
fn encode_health(s: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), Error> {
    use names::labels as l;
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
    gauges(enc, &names::SAMPLE_INTERVAL, [(NO_LABELS, s.interval_s)])?;
    if s.last_sample_unix > 0.0 {
        gauges(
            enc,
            &names::LAST_SAMPLE_TIMESTAMP,
            [(NO_LABELS, s.last_sample_unix)],
        )?;
    }
    if s.counters_start_unix > 0.0 {
        gauges(
            enc,
            &names::COUNTERS_START_TIME,
            [(NO_LABELS, s.counters_start_unix)],
        )?;
    }
    Ok(())
}

/// Per-job and unallocated series. Job energy is published for the components the node has.
fn encode_jobs(s: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), Error> {
    use names::labels as l;
    if s.jobs_running.is_none() {
        return Ok(());
    }
    let components: Vec<_> = s.node.iter().map(|n| n.component).collect();
    counters(
        enc,
        &names::JOB_ENERGY,
        s.jobs.iter().flat_map(|(id, r)| {
            components.iter().map(move |c| {
                (
                    [(l::JOB_ID, &**id), (l::COMPONENT, c.as_str())],
                    r.uj[*c] as f64 / 1e6,
                )
            })
        }),
    )?;
    counters(
        enc,
        &names::UNALLOCATED_ENERGY,
        s.unallocated
            .iter()
            .filter(|(c, _)| components.contains(c))
            .map(|(c, j)| ([(l::COMPONENT, c.as_str())], *j)),
    )?;
    infos(
        enc,
        &names::JOB_INFO,
        s.jobs.iter().map(|(id, r)| {
            let m = &r.meta;
            [
                (l::JOB_ID, &**id),
                (l::SCHEDULER, m.scheduler.as_str()),
                (l::USER, m.user.as_str()),
                (l::ACCOUNT, m.account.as_str()),
                (l::PARTITION, m.partition.as_str()),
                (l::JOB_NAME, m.job_name.as_str()),
                (l::SLUID, m.sluid.as_str()),
                (l::UID, m.uid.as_str()),
                (l::METADATA, m.metadata.as_str()),
            ]
        }),
    )?;
    infos(
        enc,
        &names::JOB_GPU_INFO,
        s.jobs.iter().flat_map(|(id, r)| {
            r.gpus
                .iter()
                .map(move |g| [(l::JOB_ID, &**id), (l::GPU_UUID, g.as_str())])
        }),
    )?;
    let per_job = |f: fn(&crate::accounting::JobRecord) -> f64| {
        s.jobs
            .iter()
            .map(move |(id, r)| ([(l::JOB_ID, &**id)], f(r)))
    };
    counters(enc, &names::JOB_CPU_SECONDS, per_job(|r| r.cpu_seconds))?;
    counters(enc, &names::JOB_CORE_SECONDS, per_job(|r| r.core_seconds))?;
    counters(enc, &names::JOB_GPU_SECONDS, per_job(|r| r.gpu_seconds))?;
    gauges(
        enc,
        &names::JOB_ALLOCATED_CPUS,
        per_job(|r| r.cpus.len() as f64),
    )?;
    gauges(
        enc,
        &names::JOB_ALLOCATED_GPUS,
        per_job(|r| r.gpus.len() as f64),
    )?;
    gauges(
        enc,
        &names::JOB_ALLOCATED_MEMORY,
        s.jobs
            .iter()
            .filter_map(|(id, r)| r.memory_bytes.map(|b| ([(l::JOB_ID, &**id)], b as f64))),
    )?;
    gauges(
        enc,
        &names::JOBS_RUNNING,
        s.jobs_running.map(|n| (NO_LABELS, n as f64)),
    )?;
    encode_owners(s, &components, enc)
}

/// Per (account, user) totals, energy for the components the node has (as the jobs'); each
/// pair's series carry `since`, the whole Unix second its counters started from zero.
fn encode_owners(
    s: &Snapshot,
    components: &[joulebook_common::Component],
    enc: &mut DescriptorEncoder,
) -> Result<(), Error> {
    use names::labels as l;
    let since: Vec<String> = s
        .owners
        .iter()
        .map(|(_, o)| format!("{}", o.start_unix().floor() as i64))
        .collect();
    let owners = || s.owners.iter().zip(since.iter().map(String::as_str));
    counters(
        enc,
        &names::OWNER_ENERGY,
        owners().flat_map(|(((a, u), o), since)| {
            components.iter().map(move |c| {
                (
                    [
                        (l::ACCOUNT, &**a),
                        (l::USER, &**u),
                        (l::SINCE, since),
                        (l::COMPONENT, c.as_str()),
                    ],
                    o.uj[*c] as f64 / 1e6,
                )
            })
        }),
    )?;
    let per_owner = |f: fn(&crate::owners::OwnerTotals) -> f64| {
        owners().map(move |(((a, u), o), since)| {
            (
                [(l::ACCOUNT, &**a), (l::USER, &**u), (l::SINCE, since)],
                f(o),
            )
        })
    };
    counters(enc, &names::OWNER_CPU_SECONDS, per_owner(|o| o.cpu_seconds))?;
    counters(
        enc,
        &names::OWNER_CORE_SECONDS,
        per_owner(|o| o.core_seconds),
    )?;
    counters(enc, &names::OWNER_GPU_SECONDS, per_owner(|o| o.gpu_seconds))?;
    counters(
        enc,
        &names::OWNER_ELAPSED_SECONDS,
        per_owner(|o| o.elapsed_seconds),
    )?;
    counters(
        enc,
        &names::OWNER_MEMORY_BYTE_SECONDS,
        per_owner(|o| o.memory_byte_seconds),
    )?;
    counters(enc, &names::OWNER_JOBS, per_owner(|o| o.jobs as f64))?;
    Ok(())
}

/// Registered once; encodes whatever snapshot is current at scrape time.
#[derive(Debug)]
pub struct SnapshotCollector {
    shared: Shared,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        encode_snapshot(&crate::snapshot::latest(&self.shared), &mut encoder)
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
