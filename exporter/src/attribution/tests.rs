//! Tests of [`super::attribute`] and [`super::BaselineTracker`].

// `topo(&[0..4], ..)` is a list of sockets given as CPU ranges, not a mistaken vector.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use joulebook_common::PerComponent;
use proptest::prelude::*;

fn topo(sockets: &[std::ops::Range<u32>], memory_bytes: u64) -> Topology {
    Topology {
        cpus_by_socket: sockets.iter().map(|r| r.clone().collect()).collect(),
        memory_bytes,
    }
}

fn job<'a>(id: &'a str, cpus: &'a [u32], gpus: &'a [String]) -> JobShare<'a> {
    JobShare {
        id,
        cpus,
        gpus,
        memory_bytes: None,
        cpu_time_delta_ns: 0,
    }
}

fn delta(cpu: &[u64], dram: &[u64], gpus: &[(&str, u64)], other: u64) -> NodeDelta {
    NodeDelta {
        cpu_by_socket: cpu.to_vec(),
        dram_by_socket: dram.to_vec(),
        gpu_by_uuid: gpus.iter().map(|&(u, e)| (u.to_string(), e)).collect(),
        other,
        interval_s: 1.0,
    }
}

fn alloc(d: &NodeDelta, t: &Topology, jobs: &[JobShare]) -> Attribution {
    let a = attribute(d, t, jobs, CpuPolicy::Allocation, &Baselines::default());
    assert_exact(d, &a);
    a
}

/// The invariant: per component, jobs + unallocated = node, exactly.
fn assert_exact(d: &NodeDelta, a: &Attribution) {
    let node = d.component_totals();
    for k in Component::ALL {
        let jobs: u128 = a.jobs.values().map(|v| u128::from(v[k])).sum();
        assert_eq!(
            jobs + u128::from(a.unallocated[k]),
            u128::from(node[k]),
            "component {k}: {a:?}"
        );
    }
}

fn got(a: &Attribution, id: &str) -> PerComponent<u64> {
    a.jobs[id]
}

fn uuids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn gpu_goes_to_its_holders_split_evenly_else_unallocated() {
    let d = delta(&[], &[], &[("A", 1000), ("B", 999), ("C", 500)], 0);
    let t = topo(&[], 0);
    let g1 = uuids(&["A", "B", "B", "X"]); // B twice counts once; X was not measured
    let g2 = uuids(&["B"]);
    let a = alloc(&d, &t, &[job("j1", &[], &g1), job("j2", &[], &g2)]);
    // A: 1000 to j1. B: 999 / 2 = 499 each, 1 µJ left over. C: nobody holds it.
    assert_eq!(got(&a, "j1")[GPU], 1000 + 499);
    assert_eq!(got(&a, "j2")[GPU], 499);
    assert_eq!(a.unallocated[GPU], 1 + 500);
}

#[test]
fn package_is_split_by_allocated_cpus_per_socket() {
    // Two sockets of 4 CPUs: 0-3 and 4-7.
    let t = topo(&[0..4, 4..8], 0);
    let d = delta(&[800, 1000], &[], &[], 0);
    let a = alloc(&d, &t, &[job("j1", &[0, 1, 4], &[]), job("j2", &[2], &[])]);
    // Socket 0: j1 2/4 × 800, j2 1/4 × 800, CPU 3 idle. Socket 1: j1 1/4 × 1000.
    assert_eq!(got(&a, "j1")[CPU], 400 + 250);
    assert_eq!(got(&a, "j2")[CPU], 200);
    assert_eq!(a.unallocated[CPU], 200 + 750);
}

#[test]
fn oversubscribed_cpu_is_shared_evenly() {
    let t = topo(&[0..4], 0);
    let d = delta(&[1200], &[], &[], 0);
    let a = alloc(&d, &t, &[job("j1", &[0, 1], &[]), job("j2", &[1, 2], &[])]);
    // 300 per CPU; CPU 1 is held by both: 150 each.
    assert_eq!(got(&a, "j1")[CPU], 300 + 150);
    assert_eq!(got(&a, "j2")[CPU], 150 + 300);
    assert_eq!(a.unallocated[CPU], 300);
}

#[test]
fn three_way_and_two_way_oversubscription_on_one_socket_is_exact() {
    // Holder counts 2 and 3 on one socket: the unit weight is lcm(2, 3) = 6 per CPU.
    let t = topo(&[0..2], 0);
    let d = delta(&[6_000], &[], &[], 0);
    let jobs = [
        job("a", &[0, 1], &[]),
        job("b", &[0, 1], &[]),
        job("c", &[1], &[]),
    ];
    let a = alloc(&d, &t, &jobs);
    // CPU 0: 3000 / 2 each to a, b. CPU 1: 3000 / 3 each to a, b, c.
    assert_eq!(got(&a, "a")[CPU], 1500 + 1000);
    assert_eq!(got(&a, "b")[CPU], 1500 + 1000);
    assert_eq!(got(&a, "c")[CPU], 1000);
    assert_eq!(a.unallocated[CPU], 0);
}

#[test]
fn unknown_and_repeated_cpus_count_nothing_extra() {
    let t = topo(&[0..4], 0);
    let d = delta(&[1000], &[], &[], 0);
    let a = alloc(&d, &t, &[job("j1", &[0, 0, 99, 4_000_000_000], &[])]);
    assert_eq!(got(&a, "j1")[CPU], 250);
    assert_eq!(a.unallocated[CPU], 750);
}

#[test]
fn rounding_leftover_goes_to_unallocated() {
    let t = topo(&[0..3], 0);
    let d = delta(&[1000], &[], &[], 0);
    let a = alloc(
        &d,
        &t,
        &[
            job("a", &[0], &[]),
            job("b", &[1], &[]),
            job("c", &[2], &[]),
        ],
    );
    for id in ["a", "b", "c"] {
        assert_eq!(got(&a, id)[CPU], 333);
    }
    assert_eq!(a.unallocated[CPU], 1);
}

#[test]
fn sparse_cpu_ids_are_indexed() {
    let t = Topology {
        cpus_by_socket: vec![vec![0, 2_000_000_000], vec![4_000_000_000]],
        memory_bytes: 0,
    };
    let d = delta(&[1000, 600], &[], &[], 0);
    let a = alloc(&d, &t, &[job("j", &[2_000_000_000, 4_000_000_000, 7], &[])]);
    assert_eq!(got(&a, "j")[CPU], 500 + 600);
    assert_eq!(a.unallocated[CPU], 500);
}

#[test]
fn cpu_listed_in_two_sockets_belongs_to_the_first() {
    let t = Topology {
        cpus_by_socket: vec![vec![0, 1], vec![1, 2]],
        memory_bytes: 0,
    };
    let d = delta(&[1000, 1000], &[], &[], 0);
    let a = alloc(&d, &t, &[job("j", &[1], &[])]);
    // CPU 1 is half of socket 0; socket 1 has only CPU 2.
    assert_eq!(got(&a, "j")[CPU], 500);
    assert_eq!(a.unallocated[CPU], 1500);
}

#[test]
fn sockets_outside_the_topology_are_unallocated() {
    let t = topo(&[0..2], 0);
    let d = delta(&[1000, 700], &[10, 20, 30], &[], 0);
    let a = alloc(&d, &t, &[job("j", &[0, 1], &[])]);
    assert_eq!(got(&a, "j")[CPU], 1000);
    assert_eq!(got(&a, "j")[DRAM], 10);
    assert_eq!(a.unallocated[CPU], 700);
    assert_eq!(a.unallocated[DRAM], 50);
}

#[test]
fn no_jobs_or_empty_topology_means_everything_unallocated() {
    let d = delta(&[1000, 7], &[5], &[("G", 9)], 11);
    let a = alloc(&d, &topo(&[0..4, 4..8], 1 << 30), &[]);
    assert_eq!(a.unallocated, PerComponent::from([1007, 5, 9, 11]));
    assert!(a.jobs.is_empty());
    let a = alloc(&d, &Topology::default(), &[job("j", &[0], &[])]);
    assert_eq!(a.unallocated, PerComponent::from([1007, 5, 9, 11]));
    assert_eq!(
        got(&a, "j"),
        PerComponent::default(),
        "a job that got nothing is still listed"
    );
}

#[test]
fn usage_above_baseline_splits_idle_by_allocation_and_the_rest_by_cpu_time() {
    let t = topo(&[0..4], 0);
    let d = delta(&[10_000_000], &[], &[], 0); // 10 J in 1 s
    let mut j1 = job("j1", &[0, 1], &[]);
    j1.cpu_time_delta_ns = 1_000_000_000;
    let mut j2 = job("j2", &[2], &[]);
    j2.cpu_time_delta_ns = 500_000_000;
    let b = Baselines {
        idle_watts_by_socket: vec![Some(4.0)],
    };
    let a = attribute(&d, &t, &[j1, j2], CpuPolicy::UsageAboveBaseline, &b);
    assert_exact(&d, &a);
    // Baseline 4 J by allocation: j1 2 J, j2 1 J, CPU 3 1 J unallocated.
    // Above it 6 J by CPU time 2:1: j1 4 J, j2 2 J.
    assert_eq!(got(&a, "j1")[CPU], 2_000_000 + 4_000_000);
    assert_eq!(got(&a, "j2")[CPU], 1_000_000 + 2_000_000);
    assert_eq!(a.unallocated[CPU], 1_000_000);
}

#[test]
fn usage_policy_edge_cases() {
    let t = topo(&[0..4], 0);
    let d = delta(&[10_000_000], &[], &[], 0);
    let mut j1 = job("j1", &[0, 1], &[]);
    let run = |jobs: &[JobShare], idle: Option<f64>| {
        let b = Baselines {
            idle_watts_by_socket: vec![idle],
        };
        let a = attribute(&d, &t, jobs, CpuPolicy::UsageAboveBaseline, &b);
        assert_exact(&d, &a);
        a
    };
    // No CPU time: the part above the 4 J baseline is unallocated.
    let a = run(&[j1], Some(4.0));
    assert_eq!(got(&a, "j1")[CPU], 2_000_000);
    assert_eq!(a.unallocated[CPU], 8_000_000);
    // Baseline above the energy: all of it is baseline, split by allocation.
    j1.cpu_time_delta_ns = 1;
    let a = run(&[j1], Some(50.0));
    assert_eq!(got(&a, "j1")[CPU], 5_000_000);
    // Unknown or unusable baseline: plain allocation.
    for idle in [None, Some(f64::NAN), Some(-1.0), Some(f64::INFINITY)] {
        let a = run(&[j1], idle);
        assert_eq!(got(&a, "j1")[CPU], 5_000_000, "{idle:?}");
    }
    // Zero baseline: everything by CPU time.
    let a = run(&[j1], Some(0.0));
    assert_eq!(got(&a, "j1")[CPU], 10_000_000);
}

#[test]
fn cpu_time_is_apportioned_to_sockets_by_the_jobs_cpus() {
    let t = topo(&[0..4, 4..8], 0);
    let d = delta(&[3_000_000, 3_000_000], &[], &[], 0);
    let mut j1 = job("j1", &[0, 4, 5], &[]);
    j1.cpu_time_delta_ns = 3_000_000_000; // 1 s on socket 0, 2 s on socket 1
    let mut j2 = job("j2", &[6], &[]);
    j2.cpu_time_delta_ns = 2_000_000_000; // 2 s on socket 1
    let b = Baselines {
        idle_watts_by_socket: vec![Some(2.0), Some(2.0)],
    };
    let a = attribute(&d, &t, &[j1, j2], CpuPolicy::UsageAboveBaseline, &b);
    assert_exact(&d, &a);
    // Socket 0: baseline 2 J, j1 holds 1/4 → 0.5 J; above 1 J all to j1 (only user).
    // Socket 1: baseline 2 J, j1 2/4 → 1 J, j2 1/4 → 0.5 J; above 1 J split 2 s : 2 s.
    assert_eq!(
        got(&a, "j1")[CPU],
        500_000 + 1_000_000 + 1_000_000 + 500_000
    );
    assert_eq!(got(&a, "j2")[CPU], 500_000 + 500_000);
    assert_eq!(a.unallocated[CPU], 1_500_000 + 500_000);
}

#[test]
fn dram_by_memory_when_every_job_has_a_limit() {
    let t = topo(&[0..2, 2..4], 1000);
    let d = delta(&[0, 0], &[1000, 2000], &[], 0);
    let mut j1 = job("j1", &[0], &[]);
    j1.memory_bytes = Some(250);
    let mut j2 = job("j2", &[1], &[]);
    j2.memory_bytes = Some(500);
    let a = alloc(&d, &t, &[j1, j2]);
    assert_eq!(got(&a, "j1")[DRAM], 250 + 500);
    assert_eq!(got(&a, "j2")[DRAM], 500 + 1000);
    assert_eq!(a.unallocated[DRAM], 250 + 500);

    // Limits adding up to more than the node are scaled to 100 %: 600 : 900 of 1500.
    j1.memory_bytes = Some(600);
    j2.memory_bytes = Some(900);
    let a = alloc(&d, &t, &[j1, j2]);
    assert_eq!(got(&a, "j1")[DRAM], 400 + 800);
    assert_eq!(got(&a, "j2")[DRAM], 600 + 1200);
    assert_eq!(a.unallocated[DRAM], 0);
}

#[test]
fn dram_by_cpus_when_a_job_has_no_limit_or_memory_is_unknown() {
    let d = delta(&[0, 0], &[1000, 2000], &[], 0);
    let mut j1 = job("j1", &[0], &[]);
    j1.memory_bytes = Some(900);
    let j2 = job("j2", &[1, 2], &[]);
    // j2 has no limit: by CPUs. Socket 0 (CPUs 0, 1): 500 each; socket 1: j2 has 1 of 2.
    let a = alloc(&d, &topo(&[0..2, 2..4], 1000), &[j1, j2]);
    assert_eq!(got(&a, "j1")[DRAM], 500);
    assert_eq!(got(&a, "j2")[DRAM], 500 + 1000);
    assert_eq!(a.unallocated[DRAM], 1000);
    // Node memory unknown: by CPUs too.
    let a = alloc(&d, &topo(&[0..2, 2..4], 0), &[j1]);
    assert_eq!(got(&a, "j1")[DRAM], 500);
}

#[test]
fn other_is_split_by_cpus_of_the_whole_node() {
    let t = topo(&[0..2, 2..4], 0);
    let d = delta(&[0, 0], &[], &[], 1000);
    let a = alloc(&d, &t, &[job("j1", &[0], &[]), job("j2", &[1, 2], &[])]);
    assert_eq!(got(&a, "j1")[OTHER], 250);
    assert_eq!(got(&a, "j2")[OTHER], 500);
    assert_eq!(a.unallocated[OTHER], 250);
}

#[test]
fn entries_with_the_same_id_are_added_together() {
    let t = topo(&[0..4], 0);
    let d = delta(&[1000], &[], &[], 0);
    let a = alloc(&d, &t, &[job("j", &[0], &[]), job("j", &[1], &[])]);
    assert_eq!(got(&a, "j")[CPU], 500);
    assert_eq!(a.jobs.len(), 1);
}

#[test]
fn many_oversubscription_levels_stay_exact_in_sum() {
    // Holder counts 1..=60 on one socket: their lcm overflows u64, so the unit is capped and
    // weights round down; the sum must still be exact.
    let cpus: Vec<u32> = (0..60).collect();
    let t = topo(&[0..60], 0);
    let d = delta(&[u64::MAX / 2], &[], &[], u64::MAX / 3);
    let ids: Vec<String> = (0..60).map(|i| format!("j{i}")).collect();
    // Job i holds CPUs i.., so CPU c has c + 1 holders.
    let jobs: Vec<JobShare> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| job(id, &cpus[..=i], &[]))
        .collect();
    let a = alloc(&d, &t, &jobs);
    // Nearly everything is allocated: the capped unit loses a relative 2^-32 at most.
    assert!(a.unallocated[CPU] < u64::MAX / 2 / (1 << 20), "{a:?}");
}

#[test]
fn baseline_tracker_learns_the_minimum_minute_of_the_window() {
    let mut b = BaselineTracker::new(3600.0, 60.0);
    assert_eq!(
        b.baselines().idle_watts_by_socket,
        Vec::<Option<f64>>::new()
    );
    // 10 s samples: socket 0 at 100 W then 40 W then 80 W; socket 1 at 30 W.
    let mut t = 0.0;
    let mut feed = |b: &mut BaselineTracker, w0: u64, w1: u64, n: usize| {
        for _ in 0..n {
            t += 10.0;
            b.observe(t, &[w0 * 10_000_000, w1 * 10_000_000], 10.0);
        }
    };
    feed(&mut b, 100, 30, 5);
    // Not yet one full minute: unknown.
    assert_eq!(b.learned_watts(0), None);
    feed(&mut b, 100, 30, 1);
    assert_eq!(b.learned_watts(0), Some(100.0));
    feed(&mut b, 40, 30, 6);
    feed(&mut b, 80, 30, 60);
    assert_eq!(b.learned_watts(0), Some(40.0));
    assert_eq!(b.learned_watts(1), Some(30.0));
    // A 10 s dip inside a minute is averaged away.
    feed(&mut b, 80, 30, 5);
    feed(&mut b, 0, 30, 1);
    assert_eq!(b.learned_watts(0), Some(40.0));
    // After the window has passed the 40 W minute, the minimum is the busier level.
    feed(&mut b, 80, 30, 370);
    assert_eq!(b.learned_watts(0), Some(80.0));
    // Configured values override; an unusable one does not.
    b.set_configured(vec![Some(55.0), Some(f64::NAN), Some(12.0)]);
    assert_eq!(
        b.baselines().idle_watts_by_socket,
        vec![Some(55.0), Some(30.0), Some(12.0)]
    );
    // Garbage intervals are ignored.
    b.observe(1e9, &[0, 0], f64::NAN);
    b.observe(1e9, &[0, 0], -1.0);
    assert_eq!(b.learned_watts(0), Some(80.0));
}

/// One job of a proptest scenario's pool.
#[derive(Clone, Debug)]
struct PoolJob {
    id: String,
    cpus: Vec<u32>,
    gpus: Vec<String>,
    memory_bytes: Option<u64>,
}

#[derive(Clone, Debug)]
struct Sample {
    active: Vec<bool>,
    cpu_time_ns: Vec<u64>,
    cpu: Vec<u64>,
    dram: Vec<u64>,
    gpu: Vec<Option<u64>>,
    other: u64,
    interval_s: f64,
    usage_policy: bool,
    idle_watts: Vec<Option<f64>>,
}

const GPU_POOL: usize = 6;
const MAX_JOBS: usize = 14;

fn scenario() -> impl Strategy<Value = (Topology, Vec<PoolJob>, Vec<Sample>)> {
    let topology = (
        1usize..=4,
        1usize..=128,
        prop_oneof![Just(1u32), Just(3), Just(20_000_000)],
        any::<u64>(),
        prop_oneof![Just(0u64), 1u64..1 << 40],
    )
        .prop_map(|(sockets, n, stride, seed, memory_bytes)| {
            // Contiguous blocks, or interleaved (socket = cpu mod sockets), with a stride
            // that sometimes forces the sparse index.
            let mut cpus_by_socket = vec![Vec::new(); sockets];
            for c in 0..n {
                let s = if seed % 2 == 0 {
                    c * sockets / n
                } else {
                    c % sockets
                };
                cpus_by_socket[s].push(c as u32 * stride);
            }
            (
                Topology {
                    cpus_by_socket,
                    memory_bytes,
                },
                n,
                stride,
            )
        });
    topology.prop_flat_map(|(topo, n, stride)| {
        let job = (
            0u8..10,
            // Indices past n are CPUs outside the topology.
            proptest::collection::vec(0..n as u32 + 8, 0..40),
            proptest::collection::vec(0..GPU_POOL + 2, 0..4),
            proptest::option::weighted(0.7, 0u64..1 << 39),
        )
            .prop_map(move |(id, cpus, gpus, memory_bytes)| PoolJob {
                // Ids from a small set, so some entries share an id.
                id: format!("job{id}"),
                cpus: cpus.into_iter().map(|c| c * stride).collect(),
                gpus: gpus.into_iter().map(|g| format!("GPU-{g}")).collect(),
                memory_bytes,
            });
        let sockets = topo.cpus_by_socket.len();
        let energy = prop_oneof![Just(0u64), 0u64..1 << 44];
        let sample = (
            proptest::collection::vec(any::<bool>(), MAX_JOBS),
            proptest::collection::vec(prop_oneof![Just(0u64), 0u64..1 << 40], MAX_JOBS),
            proptest::collection::vec(energy.clone(), sockets..=sockets + 1),
            proptest::collection::vec(energy.clone(), 0..=sockets),
            proptest::collection::vec(proptest::option::of(energy.clone()), GPU_POOL),
            energy,
            prop_oneof![Just(f64::NAN), 0.0f64..120.0],
            any::<bool>(),
            proptest::collection::vec(
                prop_oneof![
                    3 => proptest::option::of(0.0f64..400.0),
                    1 => Just(Some(f64::NAN)),
                    1 => Just(Some(-5.0)),
                ],
                0..=sockets + 1,
            ),
        )
            .prop_map(
                |(active, cpu_time_ns, cpu, dram, gpu, other, interval_s, usage, idle)| Sample {
                    active,
                    cpu_time_ns,
                    cpu,
                    dram,
                    gpu,
                    other,
                    interval_s,
                    usage_policy: usage,
                    idle_watts: idle,
                },
            );
        (
            Just(topo),
            proptest::collection::vec(job, 0..=MAX_JOBS),
            proptest::collection::vec(sample, 1..30),
        )
    })
}

/// A slow, obviously-correct floating-point version of the allocation rules, to check that
/// the fast integer version gives each job its exact share up to rounding.
fn reference_allocation(
    d: &NodeDelta,
    topo: &Topology,
    jobs: &[JobShare],
) -> BTreeMap<String, PerComponent<f64>> {
    use std::collections::{BTreeSet, HashMap};
    let mut socket_of: HashMap<u32, usize> = HashMap::new();
    for (s, cpus) in topo.cpus_by_socket.iter().enumerate() {
        for &c in cpus {
            socket_of.entry(c).or_insert(s);
        }
    }
    let mut in_socket = vec![0f64; topo.cpus_by_socket.len()];
    for &s in socket_of.values() {
        in_socket[s] += 1.0;
    }
    let cpu_sets: Vec<BTreeSet<u32>> = jobs
        .iter()
        .map(|j| {
            j.cpus
                .iter()
                .copied()
                .filter(|c| socket_of.contains_key(c))
                .collect()
        })
        .collect();
    let gpu_sets: Vec<BTreeSet<&String>> = jobs
        .iter()
        .map(|j| {
            j.gpus
                .iter()
                .filter(|g| d.gpu_by_uuid.contains_key(*g))
                .collect()
        })
        .collect();
    let holders = |c: u32| cpu_sets.iter().filter(|set| set.contains(&c)).count() as f64;
    let gpu_holders = |g: &String| gpu_sets.iter().filter(|set| set.contains(g)).count() as f64;
    let memory: Option<f64> = (!jobs.is_empty() && topo.memory_bytes > 0)
        .then(|| {
            jobs.iter()
                .map(|j| j.memory_bytes.map(|m| m as f64))
                .sum::<Option<f64>>()
        })
        .flatten()
        .map(|sum| sum.max(topo.memory_bytes as f64));
    let mut out: BTreeMap<String, PerComponent<f64>> = BTreeMap::new();
    for (j, job) in jobs.iter().enumerate() {
        let mut e = PerComponent::<f64>::default();
        for &c in &cpu_sets[j] {
            let s = socket_of[&c];
            let share = 1.0 / holders(c) / in_socket[s];
            e[CPU] += d.cpu_by_socket.get(s).copied().unwrap_or(0) as f64 * share;
            if memory.is_none() {
                e[DRAM] += d.dram_by_socket.get(s).copied().unwrap_or(0) as f64 * share;
            }
            e[OTHER] += d.other as f64 / holders(c) / socket_of.len() as f64;
        }
        if let Some(total) = memory {
            let dram: u64 = d.dram_by_socket.iter().sum();
            e[DRAM] = dram as f64 * job.memory_bytes.unwrap_or(0) as f64 / total;
        }
        for g in &gpu_sets[j] {
            e[GPU] += d.gpu_by_uuid[*g] as f64 / gpu_holders(g);
        }
        let slot = out.entry(job.id.to_string()).or_default();
        *slot = slot.plus(&e);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Over random topologies and job churn (jobs appearing and leaving, overlapping CPUs,
    /// shared GPUs, memory limits or not, both policies, random baselines), the jobs plus
    /// unallocated equal the node exactly per component per sample, every present job is
    /// listed, and cumulative per-job totals never decrease. An [`Attributor`] kept over the
    /// samples, reusing its weights while the same jobs run, splits as a fresh one does.
    #[test]
    fn jobs_plus_unallocated_is_the_node_exactly((topo, pool, samples) in scenario()) {
        let mut cumulative: BTreeMap<String, PerComponent<u128>> = BTreeMap::new();
        let mut kept = Attributor::default();
        let mut last_active: Option<&Vec<bool>> = None;
        for sample in &samples {
            let d = NodeDelta {
                cpu_by_socket: sample.cpu.clone(),
                dram_by_socket: sample.dram.clone(),
                gpu_by_uuid: sample
                    .gpu
                    .iter()
                    .enumerate()
                    .filter_map(|(g, e)| e.map(|e| (format!("GPU-{g}"), e)))
                    .collect(),
                other: sample.other,
                interval_s: sample.interval_s,
            };
            let jobs: Vec<JobShare> = pool
                .iter()
                .enumerate()
                .filter(|(i, _)| sample.active[*i])
                .map(|(i, p)| JobShare {
                    id: &p.id,
                    cpus: &p.cpus,
                    gpus: &p.gpus,
                    memory_bytes: p.memory_bytes,
                    cpu_time_delta_ns: sample.cpu_time_ns[i],
                })
                .collect();
            let policy = if sample.usage_policy {
                CpuPolicy::UsageAboveBaseline
            } else {
                CpuPolicy::Allocation
            };
            let b = Baselines { idle_watts_by_socket: sample.idle_watts.clone() };
            let a = attribute(&d, &topo, &jobs, policy, &b);
            let same_cpus = last_active == Some(&sample.active);
            let unallocated = kept.split(&d, &topo, &jobs, policy, &b, same_cpus);
            let (fresh, fresh_unallocated) = attribute_each(&d, &topo, &jobs, policy, &b);
            prop_assert_eq!(kept.shares(), &fresh[..]);
            prop_assert_eq!(unallocated, fresh_unallocated);
            prop_assert_eq!(unallocated, a.unallocated);
            // The same jobs again: the weights are reused.
            prop_assert_eq!(kept.split(&d, &topo, &jobs, policy, &b, true), fresh_unallocated);
            prop_assert_eq!(kept.shares(), &fresh[..]);
            last_active = Some(&sample.active);

            if policy == CpuPolicy::Allocation {
                // Each split floors once per socket (and once per GPU): a job is at most
                // that many µJ under its exact share, and never over it.
                let reference = reference_allocation(&d, &topo, &jobs);
                let entries = |id: &str| jobs.iter().filter(|j| j.id == id).count() as f64;
                let splits = (topo.cpus_by_socket.len() + d.dram_by_socket.len() + GPU_POOL + 1) as f64;
                for (id, exact) in &reference {
                    for (k, &got) in a.jobs[id].iter() {
                        let (got, exact) = (got as f64, exact[k]);
                        let slack = 1e-9 * exact + 1e-3;
                        prop_assert!(got <= exact + slack, "{} {}: {} > {}", id, k, got, exact);
                        prop_assert!(got + entries(id) * splits + slack >= exact, "{} {}: {} << {}", id, k, got, exact);
                    }
                }
            }
            let node = d.component_totals();
            for k in Component::ALL {
                let jobs_sum: u128 = a.jobs.values().map(|v| u128::from(v[k])).sum();
                prop_assert_eq!(jobs_sum + u128::from(a.unallocated[k]), u128::from(node[k]));
            }
            let expected: std::collections::BTreeSet<&str> = jobs.iter().map(|j| j.id).collect();
            let listed: std::collections::BTreeSet<&str> = a.jobs.keys().map(String::as_str).collect();
            prop_assert_eq!(expected, listed);
            for (id, e) in &a.jobs {
                let total = cumulative.entry(id.clone()).or_default();
                for k in Component::ALL {
                    let before = total[k];
                    total[k] += u128::from(e[k]);
                    prop_assert!(total[k] >= before);
                }
            }
        }
    }

    /// A job alone on the node holding every CPU and GPU gets everything under allocation.
    #[test]
    fn sole_owner_gets_everything(
        n in 1u32..=128,
        sockets in 1usize..=4,
        energies in proptest::collection::vec(0u64..1 << 50, 4),
    ) {
        let mut cpus_by_socket = vec![Vec::new(); sockets];
        for c in 0..n {
            cpus_by_socket[c as usize % sockets].push(c);
        }
        let topo = Topology { cpus_by_socket, memory_bytes: 1 << 30 };
        let cpus: Vec<u32> = (0..n).collect();
        let gpus = uuids(&["G"]);
        // Energy only on sockets that have CPUs.
        let cpu_e: Vec<u64> = (0..sockets).map(|s| if (s as u32) < n { energies[0] } else { 0 }).collect();
        let d = NodeDelta {
            cpu_by_socket: cpu_e.clone(),
            dram_by_socket: cpu_e,
            gpu_by_uuid: [("G".to_string(), energies[2])].into(),
            other: energies[3],
            interval_s: 1.0,
        };
        let a = attribute(&d, &topo, &[job("j", &cpus, &gpus)], CpuPolicy::Allocation, &Baselines::default());
        prop_assert_eq!(a.unallocated, PerComponent::default());
        prop_assert_eq!(a.jobs["j"], d.component_totals());
    }
}

/// Rough timing: `cargo test -p joulebook-exporter attribution::tests::timing -- --ignored
/// --nocapture`. Debug builds are 10-20× slower than release (see the module docs for
/// release figures, measured with the same loop in an optimised build).
#[test]
#[ignore]
fn timing_1000_jobs_128_cpus() {
    let topo = topo(&[0..64, 64..128], 512 << 30);
    let gpus: Vec<String> = (0..8).map(|g| format!("GPU-{g}")).collect();
    let d = NodeDelta {
        cpu_by_socket: vec![123_456_789, 98_765_432],
        dram_by_socket: vec![12_345_678, 9_876_543],
        gpu_by_uuid: gpus.iter().map(|g| (g.clone(), 700_000_000)).collect(),
        other: 55_555_555,
        interval_s: 1.0,
    };
    let all: Vec<u32> = (0..128).collect();
    let ids: Vec<String> = (0..1000).map(|i| format!("{}", 1_000_000 + i)).collect();
    let b = Baselines {
        idle_watts_by_socket: vec![Some(60.0), Some(60.0)],
    };
    // Job i holds CPUs [(i × width) mod 128, + width).
    for (name, width) in [
        ("every job lists all 128 CPUs", 128),
        ("each job lists 8 CPUs", 8),
    ] {
        let jobs: Vec<JobShare> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| JobShare {
                id,
                cpus: &all[(i * width) % 128..(i * width) % 128 + width],
                gpus: &gpus[i % 8..i % 8 + 1],
                memory_bytes: Some(1 << 30),
                cpu_time_delta_ns: 1_000_000 * i as u64,
            })
            .collect();
        for policy in [CpuPolicy::Allocation, CpuPolicy::UsageAboveBaseline] {
            let runs = 200;
            let start = std::time::Instant::now();
            for _ in 0..runs {
                let a = attribute(&d, &topo, &jobs, policy, &b);
                std::hint::black_box(&a);
            }
            let per = start.elapsed() / runs;
            println!("{name}, {policy:?}: {per:?} per call");
        }
    }
}
