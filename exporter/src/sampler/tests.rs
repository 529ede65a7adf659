//! Tests of the sampler with fake sources.

use super::*;
use crate::energy::DropReason;
use crate::sources::{EnergyReading, RawEnergy, SourceSample};
use std::sync::{Arc, Mutex};

/// A scripted source: each sample pops the next result.
struct Script {
    kind: SourceKind,
    steps: Arc<Mutex<Vec<Result<SourceSample, SourceError>>>>,
}

impl Source for Script {
    fn kind(&self) -> SourceKind {
        self.kind
    }
    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        let mut s = self.steps.lock().unwrap();
        if s.is_empty() {
            Err(SourceError::new("script exhausted"))
        } else {
            s.remove(0)
        }
    }
}

fn rapl(values: &[(u32, u64)]) -> Result<SourceSample, SourceError> {
    Ok(SourceSample {
        energy: values
            .iter()
            .map(|(socket, uj)| EnergyReading {
                channel: ChannelId::new(Domain::RaplPackage, socket.to_string()),
                raw: RawEnergy::Wrapping {
                    uj: *uj,
                    range_uj: 1_000_000_000,
                    max_watts: 500.0,
                },
            })
            .collect(),
        ..Default::default()
    })
}

fn estimate(watts: f64) -> Result<SourceSample, SourceError> {
    Ok(SourceSample {
        energy: vec![EnergyReading {
            channel: ChannelId::new(Domain::EstimatedCpu, ""),
            raw: RawEnergy::Power { watts },
        }],
        estimate_tdp_watts: Some(100.0),
        ..Default::default()
    })
}

fn sampler(scripts: Vec<(SourceKind, Vec<Result<SourceSample, SourceError>>)>) -> Sampler {
    let sources: Vec<Box<dyn Source>> = scripts
        .into_iter()
        .map(|(kind, steps)| {
            Box::new(Script {
                kind,
                steps: Arc::new(Mutex::new(steps)),
            }) as Box<dyn Source>
        })
        .collect();
    Sampler::new(sources, vec![], NodeInfo::default(), None, 1.0)
}

fn node_joules(s: &Snapshot, c: Component) -> f64 {
    s.node
        .iter()
        .find(|n| n.component == c)
        .map_or(0.0, |n| n.joules)
}

#[test]
fn the_sources_bound_the_wait_by_their_fastest_wrap() {
    // A 10 kJ counter at a 500 W bound wraps in 20 s at the fastest: 10 s between reads.
    let zone = |range_uj| {
        Ok(SourceSample {
            energy: vec![EnergyReading {
                channel: ChannelId::new(Domain::RaplDram, "0"),
                raw: RawEnergy::Wrapping {
                    uj: 0,
                    range_uj,
                    max_watts: 500.0,
                },
            }],
            ..Default::default()
        })
    };
    let mut s = sampler(vec![
        (SourceKind::Rapl, vec![zone(10_000_000_000)]),
        (SourceKind::Hwmon, vec![zone(40_000_000_000)]),
    ]);
    assert_eq!(
        s.sources_limit_s(),
        1.0,
        "the interval before the first cycle"
    );
    s.cycle(0.0);
    assert_eq!(s.sources_limit_s(), 10.0, "the fastest of the zones");
    let mut s = sampler(vec![(SourceKind::Estimate, vec![estimate(50.0)])]);
    s.cycle(0.0);
    assert_eq!(
        s.sources_limit_s(),
        1.0,
        "power is integrated every interval"
    );
    let nvml = Ok(SourceSample {
        energy: vec![EnergyReading {
            channel: ChannelId::new(Domain::Gpu, "GPU-1"),
            raw: RawEnergy::Resetting {
                uj: 5,
                max_watts: 700.0,
            },
        }],
        ..Default::default()
    });
    let mut s = sampler(vec![(SourceKind::Nvml, vec![nvml])]);
    s.cycle(0.0);
    assert_eq!(
        s.sources_limit_s(),
        f64::INFINITY,
        "a 64-bit counter sets no bound"
    );
    s.cycle(1.0);
    assert_eq!(s.sources_limit_s(), 1.0, "a source down: the interval");
}

#[test]
fn wraps_and_sockets_add_up_and_downtime_loses_nothing() {
    let mut s = sampler(vec![(
        SourceKind::Rapl,
        vec![
            rapl(&[(0, 999_000_000), (1, 0)]),
            rapl(&[(0, 1_000_000), (1, 100_000_000)]),
            Err(SourceError::new("garbage in energy_uj")),
            rapl(&[(0, 3_000_000), (1, 300_000_000)]),
        ],
    )]);
    for t in 0..4 {
        s.cycle(t as f64);
    }
    let snap = s.snapshot(0.0);
    // Socket 0: 2 J across the wrap, then 2 J. Socket 1: 300 J (100 J, then 200 J over 2 s). The failed sample in between
    // loses nothing: the next delta spans it.
    assert_eq!(node_joules(&snap, Component::Cpu), 304.0);
    let (_, h) = &snap.health[0];
    assert_eq!(h.wraps, 1);
    assert!(h.up);
    assert_eq!(h.samples, 4);
}

#[test]
fn estimate_fills_in_until_measurement_appears_and_totals_never_go_back() {
    let mut s = sampler(vec![
        (
            SourceKind::Rapl,
            vec![
                Err(SourceError::new("permission denied")),
                Err(SourceError::new("permission denied")),
                rapl(&[(0, 0)]),
                rapl(&[(0, 5_000_000)]),
            ],
        ),
        (
            SourceKind::Estimate,
            vec![
                estimate(50.0),
                estimate(50.0),
                estimate(50.0),
                estimate(50.0),
            ],
        ),
    ]);
    s.cycle(0.0);
    s.cycle(1.0);
    let snap = s.snapshot(0.0);
    assert_eq!(node_joules(&snap, Component::Cpu), 50.0);
    assert_eq!(snap.node[0].method, Method::Estimated);
    assert!(
        !snap
            .health
            .iter()
            .find(|h| h.0 == SourceKind::Rapl)
            .unwrap()
            .1
            .up
    );
    s.cycle(2.0);
    s.cycle(3.0);
    let snap = s.snapshot(0.0);
    // The estimate's 50 J stay; the measured 5 J are added; the estimate no longer counts.
    assert_eq!(node_joules(&snap, Component::Cpu), 55.0);
    assert_eq!(snap.node[0].method, Method::Measured);
    assert_eq!(snap.node[0].source, SourceKind::Rapl);
    // The estimate is still published under its own name.
    let est = snap
        .channels
        .iter()
        .find(|(id, _)| id.domain == Domain::EstimatedCpu)
        .unwrap();
    assert_eq!(est.1, 150.0);
}

#[test]
fn implausible_deltas_are_counted_not_added() {
    let mut s = sampler(vec![(
        SourceKind::Rapl,
        vec![
            rapl(&[(0, 0)]),
            rapl(&[(0, 990_000_000)]),
            rapl(&[(0, 990_000_100)]),
        ],
    )]);
    let mut cpu = vec![];
    for t in 0..3 {
        let d = s.cycle(t as f64);
        cpu.push(d.by_component.cpu.as_ref().map(|m| m.values().sum::<u64>()));
    }
    assert_eq!(cpu, vec![Some(0), Some(0), Some(100)]);
    let snap = s.snapshot(0.0);
    assert_eq!(snap.health[0].1.dropped[&DropReason::Implausible], 1);
}

fn bmc(total_j: u64, covered_s: f64) -> Result<SourceSample, SourceError> {
    Ok(SourceSample {
        energy: vec![EnergyReading {
            channel: ChannelId::new(Domain::Bmc, ""),
            raw: RawEnergy::Resetting {
                uj: total_j * 1_000_000,
                max_watts: 0.0,
            },
        }],
        bmc: Some(crate::sources::bmc::BmcStatus {
            protocol: crate::sources::bmc::Protocol::Redfish,
            method: None,
            power_watts: None,
            gap_seconds_total: 0.0,
            covered_seconds_total: covered_s,
        }),
        ..Default::default()
    })
}

/// RAPL says 100 W every second; the BMC reports every 5 s. `other` is the BMC's energy minus
/// the measured energy over the span it covers, and a BMC below RAPL is clamped and counted.
#[test]
fn other_is_bmc_minus_measured_over_the_same_span() {
    let rapl_steps = (0..16)
        .map(|i| rapl(&[(0, (i * 100_000_000) % 1_000_000_000)]))
        .collect();
    // Totals: 0 J at t=1 (baseline), +750 J over 5 s at t=6, +750 J at t=11, +300 J at t=15.
    let mut bmc_steps = vec![];
    for t in 0..16u64 {
        bmc_steps.push(match t {
            0..=5 => bmc(0, 0.0),
            6..=10 => bmc(750, 5.0),
            11..=14 => bmc(1500, 10.0),
            _ => bmc(1800, 14.0),
        });
    }
    let mut s = sampler(vec![
        (SourceKind::Rapl, rapl_steps),
        (SourceKind::Bmc, bmc_steps),
    ]);
    let mut other = vec![];
    for t in 0..16 {
        let d = s.cycle(t as f64);
        if let Some(o) = d.by_component.other.as_ref() {
            other.push((t, o[&DeviceKey::Node]));
        }
    }
    // At t=6: 750 J − 100 W × 5 s = 250 J. At t=11 the same. At t=15: 300 J over 4 s of
    // 100 W is 400 J measured: clamped to 0.
    assert_eq!(other, vec![(6, 250_000_000), (11, 250_000_000), (15, 0)]);
    let snap = s.snapshot(0.0);
    assert_eq!(node_joules(&snap, Component::Other), 500.0);
    assert_eq!(snap.other_clamps, 1);
    assert!(snap
        .node
        .iter()
        .any(|n| n.component == Component::Other && n.source == SourceKind::Bmc));
}

/// Without a BMC, a whole-node hwmon meter (role node) is the node's meter: `other` is its
/// energy minus the measured components over the span its readings cover, and comes from
/// the hwmon source; the meter itself adds to no component.
#[test]
fn a_hwmon_node_meter_gives_other_without_a_bmc() {
    let rapl_steps = (0..6u64).map(|i| rapl(&[(0, i * 100_000_000)])).collect();
    let meter = |w: f64| {
        Ok(SourceSample {
            energy: vec![EnergyReading {
                channel: ChannelId::new(Domain::HwmonNode, "node"),
                raw: RawEnergy::Power { watts: w },
            }],
            ..Default::default()
        })
    };
    // 250 W, then the meter fails at t=3 (held), then 250 W again.
    let meter_steps = (0..6u64)
        .map(|i| match i {
            3 => Err(SourceError::new("simulated read error")),
            _ => meter(250.0),
        })
        .collect();
    let mut s = sampler(vec![
        (SourceKind::Rapl, rapl_steps),
        (SourceKind::Hwmon, meter_steps),
    ]);
    let mut other = vec![];
    for t in 0..6 {
        let d = s.cycle(t as f64);
        other.push(d.by_component.other.as_ref().map(|o| o[&DeviceKey::Node]));
    }
    // 150 W a second; at t=4 the meter's 2 s since its last reading against RAPL's 2 s.
    assert_eq!(
        other,
        vec![
            None,
            Some(150_000_000),
            Some(150_000_000),
            None,
            Some(300_000_000),
            Some(150_000_000)
        ]
    );
    let snap = s.snapshot(0.0);
    assert_eq!(
        node_joules(&snap, Component::Cpu) + node_joules(&snap, Component::Other),
        1250.0
    );
    assert!(snap
        .node
        .iter()
        .any(|n| n.component == Component::Other && n.source == SourceKind::Hwmon));
}

/// RAPL at 100 W fails from t=3 to t=7 while its counter keeps counting; the BMC, at 150 W,
/// reports every second. `other` must not take the CPU's energy of the outage as well as
/// RAPL's catch-up: the node's total equals the BMC's, and `other` is its 50 W.
#[test]
fn a_source_down_does_not_count_its_energy_twice() {
    let rapl_steps = (0..12u64)
        .map(|i| match i {
            3..=7 => Err(SourceError::new("simulated read error")),
            _ => rapl(&[(0, (i * 100_000_000) % 1_000_000_000)]),
        })
        .collect();
    let bmc_steps = (0..12u64).map(|i| bmc(150 * i, i as f64)).collect();
    let mut s = sampler(vec![
        (SourceKind::Rapl, rapl_steps),
        (SourceKind::Bmc, bmc_steps),
    ]);
    let mut other = vec![];
    for t in 0..12 {
        let d = s.cycle(t as f64);
        other.push(d.by_component.other.as_ref().map(|o| o[&DeviceKey::Node]));
    }
    // t=3..7 are held; at t=8 RAPL's 600 J catch-up arrives and the held 6 s of BMC close
    // at 6 × 50 W.
    assert_eq!(
        other,
        vec![
            None,
            Some(50_000_000),
            Some(50_000_000),
            None,
            None,
            None,
            None,
            None,
            Some(300_000_000),
            Some(50_000_000),
            Some(50_000_000),
            Some(50_000_000)
        ]
    );
    let snap = s.snapshot(0.0);
    let node = node_joules(&snap, Component::Cpu) + node_joules(&snap, Component::Other);
    // The BMC counted 150 W × 11 s (t=0 to t=11).
    assert_eq!(node, 1650.0);
    assert_eq!(snap.other_clamps, 0);
}

#[test]
fn resumed_totals_continue() {
    let mut s = sampler(vec![(
        SourceKind::Rapl,
        vec![rapl(&[(0, 10)]), rapl(&[(0, 1_000_010)])],
    )]);
    s.resume(
        0.0,
        [(
            ChannelId::new(Domain::RaplPackage, "0"),
            SourceKind::Rapl,
            7_000_000,
            None,
        )],
        [(
            Component::Cpu,
            Method::Measured,
            SourceKind::Rapl,
            7_000_000,
        )],
    );
    s.cycle(0.0);
    s.cycle(1.0);
    let snap = s.snapshot(0.0);
    assert_eq!(node_joules(&snap, Component::Cpu), 8.0);
    assert_eq!(snap.channels[0].1, 8.0);
}
