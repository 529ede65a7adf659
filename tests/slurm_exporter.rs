//! The exporter against a real one-node Slurm cluster (cgroup v1, as slurmd 22.05 runs here):
//! a busy and an idle job on one core each, a powercap fixture advanced by known amounts, and
//! the exporter's job metadata, per-job energy, invariant and grace-period removal checked.
//! Needs root and scripts/install-test-deps; fails (never skips) without them.

use joulebook_tests::slurm::SlurmCluster;
use joulebook_tests::{write_value, Exporter, Samples};
use std::time::Duration;

fn wait_until(e: &Exporter, what: &str, ok: impl FnMut(&Samples) -> bool) -> Samples {
    e.wait_for(what, Duration::from_secs(30), ok)
}

fn job(s: &Samples, id: &str) -> Option<f64> {
    s.get(&format!(
        "joulebook_job_joules_total{{job_id=\"{id}\",component=\"cpu\"}}"
    ))
}

#[test]
fn exporter_attributes_energy_to_real_slurm_jobs() {
    let cluster = SlurmCluster::start();
    let busy = cluster.sbatch(&[
        "-c",
        "1",
        "-J",
        "busy-job",
        "-A",
        "physics",
        "--wrap",
        "sha256sum /dev/zero",
    ]);
    let idle = cluster.sbatch(&[
        "-c",
        "1",
        "-J",
        "idle-job",
        "-A",
        "biology",
        "--wrap",
        "sleep 600",
    ]);
    cluster.wait_for_cgroup(&busy, Duration::from_secs(30));
    cluster.wait_for_cgroup(&idle, Duration::from_secs(30));

    // A one-socket powercap tree; everything else (cgroups, /proc, passwd) is the real machine.
    let sys = tempfile::tempdir().unwrap();
    let zone = sys.path().join("class/powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
    let energy = zone.join("energy_uj");
    let mut counter = 1_000_000u64;
    write_value(&energy, counter);

    let e = Exporter::start(&[
        &format!("--path.sysfs={}", sys.path().display()),
        "--source.nvml=off",
        "--source.estimate=off",
        "--jobs.enabled=on",
        "--jobs.grace-period=2s",
        "--sample.interval=200ms",
    ]);
    let s = wait_until(&e, "both jobs", |s| {
        s.get("joulebook_jobs_running") == Some(2.0)
    });
    let info = s.family("joulebook_job_info");
    let find = |id: &str| {
        info.iter()
            .find(|(k, _)| k.contains(&format!("job_id=\"{id}\"")))
            .map(|(k, _)| k.to_string())
            .unwrap_or_else(|| panic!("no job_info for {id}: {info:?}"))
    };
    let busy_info = find(&busy);
    for want in [
        "scheduler=\"slurm\"",
        "user=\"root\"",
        "account=\"physics\"",
        "partition=\"debug\"",
        "job_name=\"busy-job\"",
    ] {
        assert!(busy_info.contains(want), "{busy_info} lacks {want}");
    }
    assert!(find(&idle).contains("account=\"biology\""));
    assert_eq!(
        s.must(&format!(
            "joulebook_job_allocated_cpus{{job_id=\"{busy}\"}}"
        )),
        1.0
    );

    // Both CPUs are held, one by each job: 50 J of package energy is 25 J each, none idle.
    let base = |s: &Samples, id: &str| job(s, id).unwrap_or(0.0);
    let (b0, i0) = (base(&s, &busy), base(&s, &idle));
    let u0 = s.must("joulebook_unallocated_joules_total{component=\"cpu\"}");
    counter += 50_000_000;
    write_value(&energy, counter);
    let s = wait_until(&e, "50 J attributed", |s| {
        s.get("joulebook_node_joules_total{component=\"cpu\"}") == Some(50.0)
    });
    assert_eq!(base(&s, &busy) - b0, 25.0);
    assert_eq!(base(&s, &idle) - i0, 25.0);
    assert_eq!(
        s.must("joulebook_unallocated_joules_total{component=\"cpu\"}"),
        u0
    );
    assert_eq!(
        base(&s, &busy)
            + base(&s, &idle)
            + s.must("joulebook_unallocated_joules_total{component=\"cpu\"}"),
        s.must("joulebook_node_joules_total{component=\"cpu\"}")
    );

    // CPU time: the busy job burns its core, the idle one does not.
    let s = wait_until(&e, "CPU time", |s| {
        s.get(&format!(
            "joulebook_job_cpu_seconds_total{{job_id=\"{busy}\"}}"
        ))
        .unwrap_or(0.0)
            > 0.5
    });
    assert!(
        s.must(&format!(
            "joulebook_job_cpu_seconds_total{{job_id=\"{idle}\"}}"
        )) < 0.2
    );

    // The idle job ends: its counters stay for the grace period, its core becomes idle waste.
    cluster.scancel(&idle);
    cluster.wait_for_cgroup_gone(&idle, Duration::from_secs(20));
    let s = wait_until(&e, "one job running", |s| {
        s.get("joulebook_jobs_running") == Some(1.0)
    });
    let (b1, u1) = (
        base(&s, &busy),
        s.must("joulebook_unallocated_joules_total{component=\"cpu\"}"),
    );
    let node1 = s.must("joulebook_node_joules_total{component=\"cpu\"}");
    counter += 40_000_000;
    write_value(&energy, counter);
    let s = wait_until(&e, "40 J more", |s| {
        s.get("joulebook_node_joules_total{component=\"cpu\"}") == Some(node1 + 40.0)
    });
    assert_eq!(base(&s, &busy) - b1, 20.0);
    assert_eq!(
        s.must("joulebook_unallocated_joules_total{component=\"cpu\"}") - u1,
        20.0
    );
    wait_until(&e, "the ended job to leave /metrics", |s| {
        job(s, &idle).is_none()
    });
    cluster.scancel(&busy);
}

/// With the Prolog installed (tests/slurm/slurm-up installs deploy/slurm's), a job of `nobody`
/// that rewrites its environment (`exec env SLURM_JOB_ACCOUNT=victim-project SLURM_JOB_UID=0
/// ...`) is still published with the scheduler's user and account, marked as coming from the
/// Prolog.
#[test]
fn a_job_rewriting_its_environment_keeps_the_schedulers_user_and_account() {
    let cluster = SlurmCluster::start();
    let forger = cluster.sbatch(&[
        "--uid=nobody",
        "-c",
        "1",
        "-J",
        "forger",
        "-A",
        "chemistry",
        "--wrap",
        "exec env SLURM_JOB_ACCOUNT=victim-project SLURM_JOB_UID=0 SLURM_JOB_USER=root SLURM_JOB_PARTITION=vip sleep 600",
    ]);
    cluster.wait_for_cgroup(&forger, Duration::from_secs(30));
    let record = cluster.records_dir().join(&forger);
    let text = std::fs::read_to_string(&record)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", record.display(), cluster.logs()));
    assert!(text.contains("account=chemistry\n"), "{text}");

    let sys = tempfile::tempdir().unwrap();
    let e = Exporter::start(&[
        &format!("--path.sysfs={}", sys.path().display()),
        "--source.nvml=off",
        "--jobs.enabled=on",
        &format!("--jobs.record-dir={}", cluster.records_dir().display()),
        "--sample.interval=200ms",
    ]);
    let s = wait_until(&e, "the job", |s| {
        s.family("joulebook_job_info")
            .iter()
            .any(|(k, _)| k.contains(&format!("job_id=\"{forger}\"")))
    });
    let info = s.family("joulebook_job_info");
    let (labels, _) = info
        .iter()
        .find(|(k, _)| k.contains(&format!("job_id=\"{forger}\"")))
        .expect("job_info");
    for want in [
        "user=\"nobody\"",
        "uid=\"65534\"",
        "account=\"chemistry\"",
        "partition=\"debug\"",
        "metadata=\"prolog\"",
    ] {
        assert!(
            labels.contains(want),
            "{labels} lacks {want}\n{}",
            e.log_text()
        );
    }
    // The forged environment is reported once, naming the job.
    let log = e.log_text();
    assert!(
        log.contains(&format!("slurm job {forger}: its environment claims")),
        "{log}"
    );
    cluster.scancel(&forger);
    cluster.wait_for_cgroup_gone(&forger, Duration::from_secs(20));
    // The Epilog removes the record.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while record.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!record.exists(), "{} left behind", record.display());
}
