//! Fault matrix for the built exporter: each case breaks something mid-run and checks that the
//! exporter keeps serving, no counter goes back, jobs + unallocated still equal the node, and one
//! clear log line says what happened.

use joulebook_tests::{copy_fixture, copy_tree, fixture, write_value, Exporter, Samples};
use std::path::Path;

/// The Intel node with the Slurm v1 jobs (as in exporter_e2e).
fn node() -> tempfile::TempDir {
    let dir = copy_fixture("intel-2s");
    copy_tree(&fixture("cgroup/slurm-v1"), dir.path());
    dir
}

fn start(root: &Path, extra: &[String]) -> Exporter {
    let mut args = vec![
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.procfs={}", root.join("proc").display()),
        format!("--path.cgroupfs={}", root.join("sys/fs/cgroup").display()),
        format!("--path.rootfs={}", root.display()),
        "--source.nvml=off".into(),
        "--source.estimate=off".into(),
        "--jobs.enabled=on".into(),
        "--sample.interval=100ms".into(),
    ];
    args.extend(extra.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Exporter::start(&refs)
}

/// Counters that must never go back.
fn counters(s: &Samples) -> Vec<(String, f64)> {
    s.0.iter()
        .filter(|(k, _)| k.contains("_total") && !k.starts_with("joulebook_samples_total"))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn check_invariant(s: &Samples) {
    let node = s.must("joulebook_node_joules_total{component=\"cpu\"}");
    let jobs: f64 = s
        .family("joulebook_job_joules_total")
        .iter()
        .filter(|(k, _)| k.contains("component=\"cpu\""))
        .map(|(_, v)| v)
        .sum();
    let un = s.must("joulebook_unallocated_joules_total{component=\"cpu\"}");
    assert!(
        (jobs + un - node).abs() < 1e-6,
        "jobs {jobs} + unallocated {un} != node {node}"
    );
}

/// Runs one fault: `before` grows the counters, `fault` breaks something, `after` repairs it (or
/// not). Checks serving, monotonic counters, the invariant, and the log.
fn case(name: &str, fault: impl FnOnce(&Path), repair: impl FnOnce(&Path), log_needle: &str) {
    let dir = node();
    let root = dir.path();
    let pkg0 = root.join("sys/class/powercap/intel-rapl:0/energy_uj");
    let e = start(root, &[]);
    e.wait_samples("rapl", 2.0);
    write_value(&pkg0, 123_456_789 + 40_000_000);
    e.wait_samples("rapl", 2.0);
    let before = e.samples();
    check_invariant(&before);
    fault(root);
    // Wait for the log line (bounded): some files are re-read only periodically.
    let start = std::time::Instant::now();
    while !e.log_text().contains(log_needle) && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    e.wait_samples("jobs", 2.0);
    let during = e.samples();
    check_invariant(&during);
    repair(root);
    e.wait_samples("jobs", 3.0);
    let after = e.samples();
    check_invariant(&after);
    for (k, v) in counters(&before) {
        for s in [&during, &after] {
            if let Some(now) = s.get(&k) {
                assert!(now >= v, "{name}: {k} went back from {v} to {now}");
            }
        }
    }
    let log = e.log_text();
    let hits = log.lines().filter(|l| l.contains(log_needle)).count();
    assert!(hits >= 1, "{name}: no log line with {log_needle:?}:\n{log}");
    assert!(
        hits <= 2,
        "{name}: {hits} log lines with {log_needle:?} (one per transition):\n{log}"
    );
}

#[test]
fn a_counter_file_that_cannot_be_read() {
    case(
        "read error",
        |root| {
            let f = root.join("sys/class/powercap/intel-rapl:1/energy_uj");
            std::fs::remove_file(&f).unwrap();
            std::fs::create_dir(&f).unwrap(); // reading a directory: EISDIR
        },
        |root| {
            let f = root.join("sys/class/powercap/intel-rapl:1/energy_uj");
            std::fs::remove_dir(&f).unwrap();
            write_value(&f, 223_456_789);
        },
        "intel-rapl:1/energy_uj",
    );
}

#[test]
fn a_zone_that_vanishes() {
    case(
        "vanished zone",
        |root| std::fs::remove_dir_all(root.join("sys/class/powercap/intel-rapl:1")).unwrap(),
        |_| {},
        "source down",
    );
}

#[test]
fn a_job_cgroup_removed_mid_run() {
    case(
        "cgroup removed",
        |root| {
            for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
                let _ = std::fs::remove_dir_all(
                    root.join(format!("sys/fs/cgroup/{ctrl}/slurm_node1/uid_1000/job_101")),
                );
            }
        },
        |_| {},
        // Not an error: the job ended. Nothing is logged as a problem for it.
        "listening",
    );
}

#[test]
fn garbage_in_a_job_file() {
    case(
        "garbage cpuset",
        |root| {
            std::fs::write(
                root.join("sys/fs/cgroup/cpu,cpuacct/slurm_node1/uid_1001/job_102/cpuacct.usage"),
                "12ab\n",
            )
            .unwrap()
        },
        |_| {},
        "cpuacct.usage",
    );
}

/// With the state file, a snapshot is published at each save and a steady node's cycles between
/// saves are charged together (exporter/src/accounting/pending.rs): every scrape still shows
/// jobs + unallocated = node, and a job that ends between two saves keeps the energy of the
/// cycles it ran in, the other job gaining from then on.
#[test]
fn a_job_ending_between_saves_keeps_its_energy_and_the_node_stays_whole() {
    let dir = node();
    let root = dir.path();
    let pkg0 = root.join("sys/class/powercap/intel-rapl:0/energy_uj");
    let e = start(
        root,
        &[
            format!("--state.file={}", root.join("state.json").display()),
            "--state.save-interval=700ms".into(),
        ],
    );
    let job = |s: &Samples, id: &str| {
        s.must(&format!(
            "joulebook_job_joules_total{{job_id=\"{id}\",component=\"cpu\"}}"
        ))
    };
    // Two saves on (the second snapshot was charged after what came before), checked whole.
    let two_saves_on = || {
        e.wait_samples("jobs", 2.0);
        let s = e.samples();
        check_invariant(&s);
        s
    };
    e.wait_samples("jobs", 1.0);
    let mut uj = 123_456_789u64;
    let mut last = e.samples();
    for _ in 0..4 {
        uj += 20_000_000;
        write_value(&pkg0, uj);
        let s = two_saves_on();
        assert!(
            job(&s, "101") > job(&last, "101"),
            "job 101 gains as it runs"
        );
        last = s;
    }
    for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
        let _ = std::fs::remove_dir_all(
            root.join(format!("sys/fs/cgroup/{ctrl}/slurm_node1/uid_1000/job_101")),
        );
    }
    let ended = two_saves_on();
    assert!(job(&ended, "101") >= job(&last, "101"));
    uj += 20_000_000;
    write_value(&pkg0, uj);
    let after = two_saves_on();
    assert_eq!(
        job(&after, "101"),
        job(&ended, "101"),
        "an ended job gains nothing"
    );
    assert!(
        job(&after, "102") > job(&ended, "102"),
        "the job left gains"
    );
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_an_unwritable_one_does_not_stop_serving() {
    let dir = node();
    let root = dir.path();
    let state = root.join("state.json");
    std::fs::write(
        &state,
        "{\"format\": \"joulebook-state\", \"version\": 1, \"hostna",
    )
    .unwrap();
    let e = start(
        root,
        &[
            format!("--state.file={}", state.display()),
            "--state.save-interval=100ms".into(),
        ],
    );
    e.wait_samples("rapl", 2.0);
    let log = e.log_text();
    assert!(log.contains("set aside"), "{log}");
    let bad: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|d| d.ok())
        .filter(|d| {
            d.file_name()
                .to_string_lossy()
                .starts_with("state.json.bad-")
        })
        .collect();
    assert_eq!(bad.len(), 1, "the corrupt file is kept for inspection");
    drop(e);

    // The state path's folder is a regular file: every save fails; serving goes on, one log line.
    let blocker = root.join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let e = start(
        root,
        &[
            format!("--state.file={}", blocker.join("state.json").display()),
            "--state.save-interval=100ms".into(),
        ],
    );
    e.wait_samples("rapl", 3.0);
    let s = e.samples();
    check_invariant(&s);
    let log = e.log_text();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("cannot save the state file"))
            .count(),
        1,
        "{log}"
    );
}

/// The sequence number of slot `i` of a slotted state file, and where its payload starts
/// (layout in exporter/src/state/slots.rs: a 4 KiB header whose bytes 24..32 give the slot
/// size; per slot magic, sequence, length, checksum, payload).
fn slot(bytes: &[u8], i: usize) -> (u64, usize) {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let start = 4096 + i * word(24) as usize;
    (word(start + 8), start + 56)
}

/// A power cut in the middle of a save: the slot being written is torn (here: a byte of the
/// newest slot's state flipped). The exporter resumes from the other slot, says which slot of
/// which file was bad, and serves; with both slots bad the file is set aside.
#[test]
fn a_torn_state_slot_resumes_from_the_other_and_both_torn_set_the_file_aside() {
    let dir = node();
    let root = dir.path();
    let state = root.join("state.json");
    let pkg0 = root.join("sys/class/powercap/intel-rapl:0/energy_uj");
    let args = [
        format!("--state.file={}", state.display()),
        "--state.save-interval=100ms".into(),
    ];
    let mut e = start(root, &args);
    e.wait_samples("rapl", 2.0);
    write_value(&pkg0, 123_456_789 + 40_000_000);
    e.wait_samples("rapl", 4.0);
    let published = e
        .samples()
        .must("joulebook_node_joules_total{component=\"cpu\"}");
    assert!(published > 0.0);
    assert!(e.signal_and_wait("TERM").success());

    let mut bytes = std::fs::read(&state).unwrap();
    assert!(bytes.starts_with(b"joulebook-state slots 1\n"));
    let (newest, older) = if slot(&bytes, 0).0 > slot(&bytes, 1).0 {
        (0, 1)
    } else {
        (1, 0)
    };
    let at = slot(&bytes, newest).1 + 20;
    bytes[at] ^= 0x55;
    std::fs::write(&state, &bytes).unwrap();
    let e = start(root, &args);
    e.wait_samples("rapl", 2.0);
    let log = e.log_text();
    assert!(
        log.contains("state file had a bad slot")
            && log.contains(&state.display().to_string())
            && log.contains(&format!("slot {newest}: checksum mismatch")),
        "{log}"
    );
    // The older slot holds what was published a save earlier: the totals go on from there.
    let s = e.samples();
    check_invariant(&s);
    assert!(s.must("joulebook_node_joules_total{component=\"cpu\"}") > 0.0);
    drop(e);

    let mut bytes = std::fs::read(&state).unwrap();
    for i in [newest, older] {
        let at = slot(&bytes, i).1 + 20;
        bytes[at] ^= 0x55;
    }
    std::fs::write(&state, &bytes).unwrap();
    let e = start(root, &args);
    e.wait_samples("rapl", 2.0);
    let log = e.log_text();
    assert!(
        log.contains("set aside") && log.contains("no valid slot"),
        "{log}"
    );
    assert_eq!(
        e.samples()
            .must("joulebook_node_joules_total{component=\"cpu\"}"),
        0.0,
        "counters start again from zero"
    );
}
