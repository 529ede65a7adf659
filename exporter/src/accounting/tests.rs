use super::*;

/// A device that is not a socket number once spread every socket's energy over all sockets
/// by CPU count: socket 0's 900 J would have gone half to socket 1's jobs. Now only the node, a
/// sensor and a socket the topology lacks (reported for the log) are spread, each only its own.
#[test]
fn a_device_that_is_no_socket_spreads_only_its_own_energy() {
    let topo = Topology {
        cpus_by_socket: vec![vec![0, 1], vec![2, 3]],
        memory_bytes: 0,
    };
    let devices = BTreeMap::from([
        (DeviceKey::Socket(0), 900),
        (DeviceKey::Die { socket: 1, die: 0 }, 100),
        (DeviceKey::sensor("pdu"), 50),
        (DeviceKey::Socket(7), 10),
    ]);
    let mut unknown = Vec::new();
    assert_eq!(
        by_socket(Some(&devices), &topo, &mut unknown),
        vec![900 + 30, 100 + 30]
    );
    assert_eq!(unknown, [7]);
    let mut unknown = Vec::new();
    let sockets = BTreeMap::from([(DeviceKey::Socket(0), 5), (DeviceKey::Socket(1), 7)]);
    assert_eq!(by_socket(Some(&sockets), &topo, &mut unknown), vec![5, 7]);
    let estimate = BTreeMap::from([(DeviceKey::Node, 11)]);
    assert_eq!(by_socket(Some(&estimate), &topo, &mut unknown), vec![5, 6]);
    assert_eq!(by_socket(None, &topo, &mut unknown), Vec::<u64>::new());
    assert!(unknown.is_empty());
}
use crate::jobs::Scheduler;
use crate::sources::Domain;
use proptest::prelude::*;

fn node() -> NodeInfo {
    let mut n = NodeInfo {
        memory_bytes: 64 << 30,
        ..Default::default()
    };
    n.cpus_by_socket.insert(0, (0..4).collect());
    n.cpus_by_socket.insert(1, (4..8).collect());
    n
}

fn job(id: &str, cpus: &[u32], gpus: &[&str], cpu_ns: u64) -> Job {
    Job {
        id: id.into(),
        scheduler: Scheduler::Slurm,
        uid: Some(1000),
        user: Some("alice".into()),
        account: Some("physics".into()),
        partition: Some("gpu".into()),
        job_name: Some("train".into()),
        sluid: None,
        metadata: crate::jobs::MetadataSource::Prolog,
        cpus: cpus.to_vec(),
        cpu_usage_ns: Some(cpu_ns),
        memory_limit_bytes: None,
        gpus: gpus.iter().map(|s| s.to_string()).collect(),
        gpu_source: None,
        revision: 0,
    }
}

fn delta(cpu: &[(&str, u64)], gpu: &[(&str, u64)], interval_s: f64) -> CycleDelta {
    let mut d = CycleDelta {
        interval_s,
        ..Default::default()
    };
    let keys = |domain, devices: &[(&str, u64)]| {
        devices
            .iter()
            .map(|(k, v)| (DeviceKey::parse(domain, k), *v))
            .collect()
    };
    d.by_component.cpu = Some(keys(Domain::RaplPackage, cpu));
    if !gpu.is_empty() {
        d.by_component.gpu = Some(keys(Domain::Gpu, gpu));
    }
    d
}

#[test]
fn jobs_get_their_share_and_the_rest_is_idle_waste() {
    let mut a = Accounting::new(AccountingOptions::default(), &node());
    let jobs = [job("1", &[0, 1], &["GPU-a"], 0), job("2", &[4], &[], 0)];
    a.update(
        0.0,
        0.0,
        &delta(
            &[("0", 400), ("1", 800)],
            &[("GPU-a", 300), ("GPU-b", 100)],
            1.0,
        ),
        &jobs,
    );
    let j1 = &a.jobs()["1"];
    let j2 = &a.jobs()["2"];
    assert_eq!(j1.uj, PerComponent::from([200, 0, 300, 0]));
    assert_eq!(j2.uj, PerComponent::from([200, 0, 0, 0]));
    // Socket 0: 2 of 4 CPUs free (200); socket 1: 3 of 4 free (600); GPU-b idle (100).
    assert_eq!(a.unallocated_uj(), PerComponent::from([800, 0, 100, 0]));
    assert_eq!(j1.core_seconds, 2.0);
    assert_eq!(j1.gpu_seconds, 1.0);
    assert_eq!(j1.meta.account, "physics");
}

/// Metadata and CPUs are compared only when the job's revision is new (or unknown, 0): a
/// new revision with new values replaces them.
#[test]
fn a_new_revision_updates_the_record_and_an_unknown_one_is_compared() {
    let mut a = Accounting::new(AccountingOptions::default(), &node());
    let d = delta(&[("0", 400)], &[], 1.0);
    let mut j = Job {
        revision: 5,
        ..job("1", &[0], &[], 0)
    };
    a.update(0.0, 0.0, &d, std::slice::from_ref(&j));
    let user = |a: &Accounting| a.jobs()["1"].meta.user.clone();
    assert_eq!(user(&a), "alice");
    j.revision = 6;
    j.user = Some("bob".into());
    j.cpus = vec![0, 1];
    a.update(1.0, 1.0, &d, std::slice::from_ref(&j));
    assert_eq!(user(&a), "bob");
    assert_eq!(&*a.jobs()["1"].cpus, &[0, 1]);
    j.revision = 0;
    j.user = Some("carol".into());
    a.update(2.0, 2.0, &d, std::slice::from_ref(&j));
    assert_eq!(user(&a), "carol");
}

#[test]
fn jobs_in_any_order_and_a_repeated_id_reach_their_records() {
    let mut a = Accounting::new(AccountingOptions::default(), &node());
    // Numeric order ("9" before "10") is not the map's; "3" is listed twice.
    let jobs = [
        job("9", &[0], &[], 0),
        job("10", &[1], &[], 0),
        job("3", &[4], &[], 0),
        job("3", &[5], &[], 0),
    ];
    for t in 0..3 {
        a.update(
            t as f64,
            t as f64,
            &delta(&[("0", 400), ("1", 400)], &[], 1.0),
            &jobs,
        );
    }
    assert_eq!(a.jobs()["9"].uj.cpu, 300);
    assert_eq!(a.jobs()["10"].uj.cpu, 300);
    assert_eq!(a.jobs()["3"].uj.cpu, 600);
    assert_eq!(a.jobs()["3"].core_seconds, 6.0);
    assert_eq!(a.accounted_uj().cpu, 2400);
    assert_eq!(a.running(), 3);
    a.update(3.0, 3.0, &delta(&[("0", 400)], &[], 1.0), &jobs[1..2]);
    assert_eq!(a.running(), 1);
    assert_eq!(a.jobs()["9"].ended_at, Some(3.0));
    assert_eq!(a.jobs()["10"].ended_at, None);
}

#[test]
fn estimated_cpu_is_spread_over_sockets() {
    let mut a = Accounting::new(AccountingOptions::default(), &node());
    a.update(
        0.0,
        0.0,
        &delta(&[("", 800)], &[], 1.0),
        &[job("1", &[0, 1, 2, 3], &[], 0)],
    );
    assert_eq!(a.jobs()["1"].uj.cpu, 400);
    assert_eq!(a.unallocated_uj().cpu, 400);
}

#[test]
fn finished_jobs_stay_for_the_grace_period_then_go() {
    let mut a = Accounting::new(
        AccountingOptions {
            grace_s: 10.0,
            ..Default::default()
        },
        &node(),
    );
    a.update(
        0.0,
        0.0,
        &delta(&[("0", 100)], &[], 1.0),
        &[job("1", &[0], &[], 5)],
    );
    a.update(
        1.0,
        1.0,
        &delta(&[("0", 100)], &[], 1.0),
        &[job("1", &[0], &[], 2_000_000_005)],
    );
    assert_eq!(a.jobs()["1"].cpu_seconds, 2.0);
    a.update(2.0, 2.0, &delta(&[("0", 100)], &[], 1.0), &[]);
    assert_eq!(a.jobs()["1"].ended_at, Some(2.0));
    assert_eq!(a.jobs()["1"].uj.cpu, 50);
    // The wall clock jumps back an hour: the grace period runs on the monotonic clock.
    a.update(-3600.0, 12.0, &delta(&[("0", 100)], &[], 1.0), &[]);
    assert!(a.jobs().contains_key("1"));
    a.update(-3600.0, 12.5, &delta(&[("0", 100)], &[], 1.0), &[]);
    assert!(!a.jobs().contains_key("1"));
    assert_eq!(a.accounted_uj().cpu, 500);
}

#[test]
fn anonymisation() {
    let mut a = Accounting::new(
        AccountingOptions {
            anonymize: Anonymize::Hash,
            salt: "s".into(),
            ..Default::default()
        },
        &node(),
    );
    a.update(0.0, 0.0, &delta(&[], &[], 1.0), &[job("1", &[0], &[], 0)]);
    let m = &a.jobs()["1"].meta;
    assert_eq!(m.user.len(), 16);
    assert_ne!(m.user, "alice");
    assert_eq!(m.user, hash_name("s", "alice"));
    assert_eq!(m.account, "physics");
}

#[test]
fn state_round_trip_keeps_counters() {
    let mut a = Accounting::new(AccountingOptions::default(), &node());
    a.update(
        0.0,
        0.0,
        &delta(&[("0", 400)], &[], 1.0),
        &[job("7", &[0, 1], &[], 0)],
    );
    let mut st = State::new("h");
    a.save_into(&mut st);
    let mut b = Accounting::new(AccountingOptions::default(), &node());
    b.resume(&st, 0.0, 5.0, 5.0);
    assert_eq!(b.jobs()["7"].uj, a.jobs()["7"].uj);
    assert_eq!(b.jobs()["7"].ended_at, Some(5.0));
    assert_eq!(b.jobs()["7"].meta.user, "alice");
    // The job is still running: the next scan reopens it and it keeps counting.
    b.update(
        6.0,
        6.0,
        &delta(&[("0", 400)], &[], 1.0),
        &[job("7", &[0, 1], &[], 0)],
    );
    assert_eq!(b.jobs()["7"].uj.cpu, 400);
    assert_eq!(b.jobs()["7"].ended_at, None);
    assert_eq!(b.unallocated_uj().cpu, 400);
}

proptest! {
    /// Over random job churn, at every cycle and for every component, what the jobs and
    /// unallocated gained equals what the node gained; no counter ever decreases. A twin fed
    /// the same jobs with a revision of their own (as discovery gives them), which takes the
    /// paths of the cycles whose jobs are the last cycle's (no search for new ids, the last
    /// walk reused), ends every cycle with the same counters.
    #[test]
    fn jobs_plus_unallocated_equal_the_node(
        cycles in proptest::collection::vec(
            (proptest::collection::vec((0u32..6, proptest::collection::vec(0u32..10, 0..4), 0u8..3), 0..5),
             0u64..1_000_000, 0u64..1_000_000, 0u64..500_000, 0u64..500_000),
            1..40),
    ) {
        let mut a = Accounting::new(AccountingOptions { grace_s: 3.0, ..Default::default() }, &node());
        let mut twin = Accounting::new(AccountingOptions { grace_s: 3.0, ..Default::default() }, &node());
        let mut node_total = PerComponent::<u64>::default();
        let mut last: BTreeMap<String, PerComponent<u64>> = BTreeMap::new();
        for (t, (jobs, s0, s1, g0, g1)) in cycles.into_iter().enumerate() {
            let mut seen = std::collections::BTreeSet::new();
            let running: Vec<Job> = jobs.into_iter().filter(|(id, _, _)| seen.insert(*id)).map(|(id, cpus, g)| {
                let gpus: Vec<&str> = match g { 0 => vec![], 1 => vec!["GPU-0"], _ => vec!["GPU-0", "GPU-1"] };
                job(&id.to_string(), &cpus, &gpus, t as u64 * 1000)
            }).collect();
            // A revision per (id, CPUs), as discovery's cover the CPUs: one the twin saw
            // before means the same CPUs, whose split weights are then kept.
            let revised: Vec<Job> = running.iter().map(|j| Job {
                revision: j.id.parse::<u64>().map_or(0, |id| {
                    1 + id + 8 * j.cpus.iter().fold(0, |code, &c| code * 11 + u64::from(c) + 1)
                }),
                ..j.clone()
            }).collect();
            let d = delta(&[("0", s0), ("1", s1)], &[("GPU-0", g0), ("GPU-1", g1)], 1.0);
            node_total.cpu += s0 + s1;
            node_total.gpu += g0 + g1;
            a.update(t as f64, t as f64, &d, &running);
            twin.update(t as f64, t as f64, &d, &revised);
            prop_assert_eq!(a.accounted_uj(), node_total);
            for x in [&a, &twin] {
                prop_assert_eq!(x.running(), x.jobs().values().filter(|j| j.ended_at.is_none()).count());
            }
            let counters = |x: &Accounting| -> Vec<(String, PerComponent<u64>, f64, Option<f64>)> {
                x.jobs().iter().map(|(k, r)| (k.to_string(), r.uj, r.cpu_seconds, r.ended_at)).collect()
            };
            prop_assert_eq!(counters(&twin), counters(&a));
            prop_assert_eq!(twin.owners().accounted_uj(), a.owners().accounted_uj());
            // The owners' counters gain exactly what the jobs gain: owners + unallocated = node.
            let mut by_owner = a.owners().accounted_uj();
            by_owner.saturating_add_assign(&a.unallocated_uj());
            prop_assert_eq!(by_owner, node_total);
            for (id, rec) in a.jobs() {
                if let Some(prev) = last.get(&**id) {
                    for (c, now) in rec.uj.iter() { prop_assert!(*now >= prev[c]); }
                }
            }
            last = a.jobs().iter().map(|(k, v)| (k.to_string(), v.uj)).collect();
        }
    }
}

/// Energy, CPU-, core- and GPU-seconds, jobs, elapsed and memory byte-seconds.
type Sums = (PerComponent<u64>, f64, f64, f64, u64, f64, f64);

/// The per-owner counters are the sums of their jobs' counters (energy to the µJ, seconds and
/// jobs started), a job is counted once however long it runs, and they survive a restart through
/// the state file.
#[test]
fn owner_totals_are_the_sums_of_their_jobs() {
    let opts = AccountingOptions {
        grace_s: 1e9,
        ..Default::default()
    };
    let mut a = Accounting::new(opts.clone(), &node());
    let mut bob = job("9", &[4, 5], &["GPU-1"], 0);
    bob.user = Some("bob".into());
    bob.memory_limit_bytes = Some(8 << 30);
    for t in 0..5u64 {
        let d = delta(
            &[("0", 1_000 + t), ("1", 777)],
            &[("GPU-0", 50), ("GPU-1", 60)],
            1.0,
        );
        let mut running = vec![job("7", &[0, 1], &["GPU-0"], t * 1_000_000), bob.clone()];
        if t >= 2 {
            running.push(job("8", &[2], &[], t * 3_000_000));
        }
        bob.cpu_usage_ns = bob.cpu_usage_ns.map(|n| n + 250_000_000);
        a.update(t as f64, t as f64, &d, &running);
    }
    let check = |a: &Accounting| {
        let mut want: BTreeMap<(String, String), Sums> = BTreeMap::new();
        for (id, rec) in a.jobs() {
            let w = want
                .entry((rec.meta.account.clone(), rec.meta.user.clone()))
                .or_default();
            w.0.saturating_add_assign(&rec.uj);
            w.1 += rec.cpu_seconds;
            w.2 += rec.core_seconds;
            w.3 += rec.gpu_seconds;
            w.4 += 1;
            // Each job holds the same CPUs and memory throughout (a resumed record keeps
            // neither): 2 CPUs for 7 and 9, 1 for 8; 8 GiB for 9 (bob) only.
            let (cpus, memory) = match &**id {
                "8" => (1.0, 0.0),
                "9" => (2.0, (8u64 << 30) as f64),
                _ => (2.0, 0.0),
            };
            let elapsed = rec.core_seconds / cpus;
            w.5 += elapsed;
            w.6 += memory * elapsed;
        }
        let got: BTreeMap<(String, String), Sums> = a
            .owners()
            .iter()
            .map(|((acc, u), o)| {
                let v = (
                    o.uj,
                    o.cpu_seconds,
                    o.core_seconds,
                    o.gpu_seconds,
                    o.jobs,
                    o.elapsed_seconds,
                    o.memory_byte_seconds,
                );
                ((acc.to_string(), u.to_string()), v)
            })
            .collect();
        assert_eq!(got, want);
    };
    check(&a);
    let alice = a.owners().get("physics", "alice").unwrap();
    assert_eq!(alice.jobs, 2);
    assert_eq!(alice.core_seconds, 2.0 * 5.0 + 3.0);
    assert!(alice.uj.cpu > 0 && alice.uj.gpu > 0);
    assert_eq!(a.owners().get("physics", "bob").unwrap().cpu_seconds, 1.0);

    let mut st = State::new("n1");
    a.save_into(&mut st);
    let mut b = Accounting::new(opts, &node());
    b.resume(&st, 0.0, 10.0, 3.0);
    check(&b);
    // Resumed jobs are not counted again when they run on.
    b.update(
        11.0,
        4.0,
        &delta(&[("0", 10)], &[], 1.0),
        &[job("7", &[0, 1], &["GPU-0"], 0)],
    );
    assert_eq!(b.owners().get("physics", "alice").unwrap().jobs, 2);
    check(&b);
}

/// A published copy of the records, made again into the last copy, equals the records: the
/// same job in the same place keeps its strings (no reference count touched), a job whose
/// metadata changed takes the new one, and jobs that came or went are added or cut.
#[test]
fn records_copied_into_the_last_copy_equal_the_records() {
    let mut a = Accounting::new(AccountingOptions::default(), &node());
    let d = delta(&[("0", 400), ("1", 80)], &[("GPU-0", 30)], 1.0);
    let running = [job("1", &[0, 1], &["GPU-0"], 5), job("2", &[4], &[], 7)];
    a.update(0.0, 0.0, &d, &running);
    let mut copy = Vec::new();
    copy_records(a.jobs(), &mut copy);
    let listed = |c: &Vec<(Arc<str>, JobRecord)>| {
        c.iter()
            .map(|(k, r)| (k.to_string(), r.clone()))
            .collect::<Vec<_>>()
    };
    let expected = |a: &Accounting| {
        a.jobs()
            .iter()
            .map(|(k, r)| (k.to_string(), r.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&copy), expected(&a));
    let meta = Arc::clone(&copy[0].1.meta);
    a.update(1.0, 1.0, &d, &running);
    copy_records(a.jobs(), &mut copy);
    assert_eq!(listed(&copy), expected(&a));
    assert!(
        Arc::ptr_eq(&copy[0].1.meta, &meta),
        "the same job keeps its metadata"
    );
    assert_eq!(copy[0].1.uj.cpu, a.jobs()["1"].uj.cpu);
    // Job 1 renamed, job 2 gone (kept for its grace period), job 3 new.
    let mut renamed = job("1", &[0, 1], &["GPU-0"], 9);
    renamed.job_name = Some("eval".into());
    a.update(2.0, 2.0, &d, &[renamed, job("3", &[5], &[], 1)]);
    copy_records(a.jobs(), &mut copy);
    assert_eq!(listed(&copy), expected(&a));
    assert_eq!(copy[0].1.meta.job_name, "eval");
    assert_eq!(copy.len(), 3);
    a.update(3_000.0, 3_000.0, &d, &[]);
    a.update(4_000.0, 4_000.0, &d, &[]);
    copy_records(a.jobs(), &mut copy);
    assert!(copy.is_empty() && a.jobs().is_empty());
}

/// A job seen with `revision`, as discovery gives it (deferral needs one).
fn revised(id: &str, cpus: &[u32], cpu_ns: u64, revision: u64) -> Job {
    Job {
        revision,
        ..job(id, cpus, &[], cpu_ns)
    }
}

/// Cycles of the same jobs are charged at the settle, not as they come; when a job ends before
/// the settle, what is pending (its energy and the CPU time read meanwhile) is charged to the
/// jobs that ran then, and the changed cycle to the jobs running in it: each job ends with what
/// charging every cycle gives it, to the rounding.
#[test]
fn deferred_cycles_are_charged_to_the_jobs_that_ran_in_them() {
    let mut lazy = Accounting::new(AccountingOptions::default(), &node());
    let mut eager = Accounting::new(AccountingOptions::default(), &node());
    let d = delta(&[("0", 1_000_003), ("1", 500_001)], &[], 1.0);
    let both = |t: u64| {
        [
            revised("1", &[0, 1], t * 300, 11),
            revised("2", &[4], t * 700, 12),
        ]
    };
    // Without revisions, every cycle is charged as it comes.
    let unrevised = |jobs: &[Job]| -> Vec<Job> {
        jobs.iter()
            .map(|j| Job {
                revision: 0,
                ..j.clone()
            })
            .collect()
    };
    for t in 0..4u64 {
        let (now, jobs) = (t as f64, both(t));
        lazy.update_deferred(now, now, &d, &jobs);
        eager.update(now, now, &d, &unrevised(&jobs));
    }
    // Cycles 1 to 3 had the first cycle's jobs: pending, nothing charged yet.
    assert!(!lazy.settled());
    let first = lazy.jobs()["1"].uj;
    assert_eq!(first, PerComponent::from([500_001, 0, 0, 0]));
    assert_eq!(lazy.jobs()["1"].cpu_seconds, 0.0);
    // Job 2 ends (its folder is gone at the scan of cycle 4): the pending cycles are charged to
    // both jobs, cycle 4 to job 1 alone.
    let one = [revised("1", &[0, 1], 4 * 300, 11)];
    lazy.update_deferred(4.0, 4.0, &d, &one);
    eager.update(4.0, 4.0, &d, &unrevised(&one));
    assert!(lazy.settled(), "a change settles");
    for id in ["1", "2"] {
        let (l, e) = (&lazy.jobs()[id], &eager.jobs()[id]);
        assert_eq!(l.cpu_seconds, e.cpu_seconds, "job {id}");
        assert_eq!(l.core_seconds, e.core_seconds, "job {id}");
        assert_eq!(l.ended_at, e.ended_at, "job {id}");
        for (c, uj) in l.uj.iter() {
            // Three cycles merged, one floor per socket each: at most 2 µJ a cycle more.
            assert!(
                (e.uj[c]..=e.uj[c] + 6).contains(uj),
                "job {id} {c:?}: {uj} against {}",
                e.uj[c]
            );
        }
    }
    assert_eq!(lazy.jobs()["2"].cpu_seconds, 3.0 * 700e-9);
    assert_eq!(lazy.accounted_uj(), eager.accounted_uj());
    let owner = |a: &Accounting| {
        a.owners()
            .get("physics", "alice")
            .map(|o| (o.cpu_seconds, o.jobs))
    };
    let ((l_cpu, l_jobs), (e_cpu, e_jobs)) = (owner(&lazy).unwrap(), owner(&eager).unwrap());
    assert_eq!(l_jobs, e_jobs);
    // The same CPU time, added in another order.
    assert!((l_cpu - e_cpu).abs() < 1e-15, "{l_cpu} against {e_cpu}");
}

proptest! {
    /// Deferred cycles settled at random points, over jobs that stay for stretches and change
    /// (new, ended, other CPUs, a GPU taken): after every settle the jobs plus unallocated equal
    /// the node exactly, per component and per owner, and each job has what charging every cycle
    /// gives it, but for the remainders of the merged splits (never less, and at most one µJ per
    /// socket and cycle merged more); its times and end are the same.
    #[test]
    fn settled_counters_are_the_eager_counters(
        steps in proptest::collection::vec(
            (proptest::option::weighted(0.3, proptest::collection::vec((0u32..6, proptest::collection::vec(0u32..8, 0..4), 0u8..6), 0..5)),
             0u64..1_000_000, 0u64..1_000_000, 0u64..300_000, any::<bool>(), 0u64..5),
            1..40),
    ) {
        let opts = AccountingOptions { grace_s: 3.0, ..Default::default() };
        let mut lazy = Accounting::new(opts.clone(), &node());
        let mut eager = Accounting::new(opts, &node());
        let mut node_total = PerComponent::<u64>::default();
        let mut jobs: Vec<(u32, Vec<u32>, u8)> = Vec::new();
        let mut merged = 0u64;
        for (t, (change, s0, s1, g, settle, cpu_step)) in steps.into_iter().enumerate() {
            if let Some(new) = change {
                let mut seen = std::collections::BTreeSet::new();
                jobs = new.into_iter().filter(|(id, _, _)| seen.insert(*id)).collect();
            }
            let running: Vec<Job> = jobs.iter().map(|(id, cpus, g)| {
                // One in six holds a GPU (such cycles are never deferred).
                let gpus: &[&str] = if *g == 0 { &["GPU-0"] } else { &[] };
                Job {
                    // A revision per (id, CPUs), as in `jobs_plus_unallocated_equal_the_node`.
                    revision: 1 + u64::from(*id) + 8 * cpus.iter().fold(0, |code, &c| code * 11 + u64::from(c) + 1),
                    ..job(&id.to_string(), cpus, gpus, t as u64 * 1000 + cpu_step * u64::from(*id))
                }
            }).collect();
            let d = delta(&[("0", s0), ("1", s1)], &[("GPU-0", g)], 1.0);
            node_total.cpu += s0 + s1;
            node_total.gpu += g;
            let was_settled = lazy.settled();
            lazy.update_deferred(t as f64, t as f64, &d, &running);
            // Without revisions, every cycle is charged as it comes.
            let unrevised: Vec<Job> = running.iter().map(|j| Job { revision: 0, ..j.clone() }).collect();
            eager.update(t as f64, t as f64, &d, &unrevised);
            merged += u64::from(!was_settled || !lazy.settled());
            if !settle {
                continue;
            }
            lazy.settle();
            prop_assert_eq!(lazy.accounted_uj(), node_total);
            let mut by_owner = lazy.owners().accounted_uj();
            by_owner.saturating_add_assign(&lazy.unallocated_uj());
            prop_assert_eq!(by_owner, node_total);
            prop_assert_eq!(lazy.running(), eager.running());
            let ids = |a: &Accounting| a.jobs().keys().map(|k| k.to_string()).collect::<Vec<_>>();
            prop_assert_eq!(ids(&lazy), ids(&eager));
            for (id, l) in lazy.jobs() {
                let e = &eager.jobs()[id];
                prop_assert_eq!(l.ended_at, e.ended_at);
                prop_assert!((l.cpu_seconds - e.cpu_seconds).abs() < 1e-9);
                prop_assert!((l.core_seconds - e.core_seconds).abs() < 1e-9);
                for (c, uj) in l.uj.iter() {
                    prop_assert!((e.uj[c]..=e.uj[c] + 2 * merged).contains(uj), "job {} {:?}: {} against {}", id, c, uj, e.uj[c]);
                }
            }
        }
    }
}
