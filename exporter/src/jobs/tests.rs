//! Unit tests of `JobDiscovery` on the cgroup fixtures (tests/fixtures/cgroup) and on trees
//! built here: vanishing jobs, the cache, the cost of a steady scan, refresh periods and revisions.

use super::listing::FULL_LISTING_SCANS;
use super::*;
use joulebook_tests::{cgroup_fixture, copy_tree, environ, write_file};

fn ids(r: &ScanResult) -> Vec<&str> {
    r.jobs.iter().map(|j| j.id.as_str()).collect()
}

/// A v1 job whose cpuacct folder is removed mid-scan, after its CPU time was read from the
/// open file (Slurm tears controllers down one by one): skipped for this scan, no problem,
/// cache dropped.
#[test]
fn a_cgroup_vanishing_mid_read_is_skipped_without_a_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("slurm-v1"), dir.path());
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    let r = d.scan(&[], &[]);
    assert_eq!(ids(&r), vec!["101", "102"]);
    assert_eq!(d.cache.len(), 2);

    let victim = dir
        .path()
        .join("sys/fs/cgroup/cpu,cpuacct/slurm_node1/uid_1001/job_102");
    d.before_listing = Some(Box::new(move || {
        std::fs::remove_dir_all(&victim).expect("rm");
    }));
    let r = d.scan(&[], &[]);
    assert_eq!(r.problems, Vec::<String>::new());
    assert_eq!(ids(&r), vec!["101"]);
    let node1 =
        |id: &str| JobKey::new(Scheduler::Slurm, id).in_scope(layout::slurm::scope_of("node1"));
    assert!(!d.cache.contains_key(&node1("102")));
    assert!(d.cache.contains_key(&node1("101")));
}

/// A v2 job removed entirely between listing and reading its environment.
#[test]
fn a_v2_job_vanishing_before_its_processes_are_read_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("no-procs"), dir.path());
    let job = dir
        .path()
        .join("sys/fs/cgroup/system.slice/slurmstepd.scope/job_701");
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    d.after_listing = Some(Box::new(move || {
        let _ = std::fs::remove_dir_all(&job);
    }));
    let r = d.scan(&[], &[]);
    assert_eq!(r, ScanResult::default());
    assert!(d.cache.is_empty());
}

#[test]
fn ended_jobs_leave_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("oar3"), dir.path());
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    d.scan(&[], &[]);
    assert!(d.cache.values().all(|c| c.env.is_some()));
    std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup/oar.slice")).expect("rm");
    assert!(d.scan(&[], &[]).jobs.is_empty());
    assert!(d.cache.is_empty());
}

#[test]
fn job_keys_order_numerically() {
    let mut keys = [
        JobKey::new(Scheduler::UserSlice, "user-0"),
        JobKey::new(Scheduler::Slurm, "1000"),
        JobKey::new(Scheduler::Oar, "5"),
        JobKey::new(Scheduler::Slurm, "999"),
    ];
    keys.sort();
    let got: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(got, vec!["999", "1000", "5", "user-0"]);
}

#[test]
fn discovery_can_move_to_a_sampling_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<JobDiscovery>();
}

/// A Slurm cgroup v1 node with `n` jobs, as `bench/make-slurm-node` writes it: each job in
/// the five controllers, one process with a job environment.
pub(super) fn slurm_v1_node(root: &Path, n: u32) {
    let cg = root.join("sys/fs/cgroup");
    for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
        write_file(&cg.join(ctrl).join("cgroup.procs"), b"1\n");
    }
    for j in 0..n {
        let (id, uid, pid) = (100_000 + j, 1000 + j % 7, 10_000 + j);
        let base = format!("slurm_n1/uid_{uid}/job_{id}");
        write_file(
            &cg.join("cpuset").join(&base).join("cpuset.cpus"),
            format!("{}\n", j % 64).as_bytes(),
        );
        write_file(
            &cg.join("cpuset")
                .join(&base)
                .join("step_batch/cgroup.procs"),
            format!("{pid}\n").as_bytes(),
        );
        write_file(
            &cg.join("cpu,cpuacct").join(&base).join("cpuacct.usage"),
            format!("{}\n", u64::from(j) * 1000).as_bytes(),
        );
        write_file(
            &cg.join("memory").join(&base).join("memory.limit_in_bytes"),
            b"4294967296\n",
        );
        write_file(
            &cg.join("devices").join(&base).join("devices.list"),
            b"a *:* rwm\n",
        );
        for ctrl in ["cpu,cpuacct", "memory", "devices", "freezer"] {
            write_file(&cg.join(ctrl).join(&base).join("cgroup.procs"), b"");
        }
        write_file(
            &root.join(format!("proc/{pid}/environ")),
            &environ(&[
                ("SLURM_JOB_ID", &id.to_string()),
                ("SLURM_JOB_NAME", &format!("job-{j}")),
            ]),
        );
    }
}

fn held_files(d: &JobDiscovery) -> usize {
    d.cache
        .values()
        .filter(|e| matches!(e.usage, UsageFile::Held { .. }))
        .count()
}

/// Calls counted during `f`: opens, preads, stats, rewinds of open folders.
fn counting(f: impl FnOnce()) -> [u64; 6] {
    let before = cgroup::calls();
    f();
    let after = cgroup::calls();
    std::array::from_fn(|i| after[i] - before[i])
}

/// The steady state of a scan: no file opened per job, one `pread` per job for its CPU
/// time, and the folders of the listing replayed from memory (nothing changed in them),
/// except on the full listings, which read them again.
#[test]
fn a_steady_scan_reads_one_open_file_per_job_and_opens_almost_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 300;
    slurm_v1_node(dir.path(), n);
    let mut d = JobDiscovery::new(JobsOptions {
        cpu_time_every: 1,
        ..JobsOptions::under_root(dir.path())
    });
    let first = d.scan(&[], &[]);
    assert_eq!(first.jobs.len(), n as usize);
    assert_eq!(first.problems, Vec::<String>::new());
    assert_eq!(held_files(&d), n as usize);

    // A whole refresh period: every job's static data is read once more in it.
    let scans = STATIC_REFRESH_SCANS;
    let mut last = ScanResult::default();
    let [opens, preads, stats, rewinds, replays, static_preads] = counting(|| {
        for _ in 0..scans {
            last = d.scan(&[], &[]);
        }
    });
    assert_eq!(last, first, "cached results are the same as read results");
    let per_scan = |c: u64| c as f64 / scans as f64;
    // CPU time: exactly one pread per job and scan.
    assert_eq!(preads, u64::from(n) * scans);
    // The memory limit, read again from the file kept open since the first scan (the CPUs'
    // file, searched for on the first scan, is opened once more in this period, and kept).
    assert_eq!(static_preads, u64::from(n));
    // Static data: cpuset, memory and devices.list once per job and period. The folders
    // listed (root, slurm_n1, 7 uid folders; in the controller listed on every scan, and
    // in the other four at the full listing every 30 scans) stay open, and each hierarchy's
    // listing is replayed whole (one replay, no folder visited): nothing changed in them.
    assert!(
        opens <= u64::from(n) * 3,
        "{opens} opens in {scans} scans ({} per scan)",
        per_scan(opens)
    );
    assert!(per_scan(opens) / f64::from(n) < 0.1, "{opens} opens");
    assert!(stats <= 2 * scans, "{stats} stats");
    let full = scans / FULL_LISTING_SCANS;
    assert_eq!(rewinds, 0);
    assert_eq!(replays, scans + 4 * full);
    // The next period: the static files too are read with one pread each, opened no more.
    let [opens, preads, _, _, _, static_preads] = counting(|| {
        for _ in 0..scans {
            last = d.scan(&[], &[]);
        }
    });
    assert_eq!(last, first);
    assert_eq!(opens, 0);
    assert_eq!(preads, u64::from(n) * scans);
    assert_eq!(static_preads, 2 * u64::from(n));
    // Every FULL_LISTINGS_PER_RELIST-th full listing reads them all again.
    let [_, _, _, rewinds, ..] = counting(|| {
        for _ in 0..FULL_LISTING_SCANS * FULL_LISTINGS_PER_RELIST {
            d.scan(&[], &[]);
        }
    });
    assert_eq!(rewinds, 5 * 9);

    // Every k scans: a k-th of the jobs per scan, each job at its own scan.
    let mut d = JobDiscovery::new(JobsOptions {
        cpu_time_every: 4,
        ..JobsOptions::under_root(dir.path())
    });
    d.scan(&[], &[]);
    let [_, preads, ..] = counting(|| {
        for _ in 0..40 {
            d.scan(&[], &[]);
        }
    });
    assert_eq!(preads, u64::from(n) * 10);
    // The default reads every job on every scan up to AUTO_CPU_TIME_READS jobs, and about
    // that many per scan above.
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    d.scan(&[], &[]);
    let [_, preads, ..] = counting(|| {
        for _ in 0..30 {
            d.scan(&[], &[]);
        }
    });
    let per_scan = preads / 30;
    assert!(
        (AUTO_CPU_TIME_READS as u64 / 2..=AUTO_CPU_TIME_READS as u64).contains(&per_scan),
        "{per_scan} reads per scan"
    );
}

/// The folders are watched: a job made or removed in a folder that was being replayed is
/// seen on the next scan, and only the folder that changed is read again (the others of its
/// hierarchy replayed one by one, since the hierarchy's saved listing no longer holds).
#[test]
fn a_job_made_or_removed_in_a_watched_folder_is_seen_on_the_next_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    slurm_v1_node(dir.path(), 14);
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    for _ in 0..3 {
        assert_eq!(d.scan(&[], &[]).jobs.len(), 14);
    }
    let [_, _, _, rewinds, replays, _] = counting(|| {
        d.scan(&[], &[]);
    });
    assert_eq!(
        (rewinds, replays),
        (0, 1),
        "the hierarchy's listing replayed whole"
    );

    let cg = dir.path().join("sys/fs/cgroup");
    let new_job = "slurm_n1/uid_1000/job_200000";
    for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
        std::fs::create_dir_all(cg.join(ctrl).join(new_job)).expect("mkdir");
    }
    write_file(
        &cg.join("cpu,cpuacct").join(new_job).join("cpuacct.usage"),
        b"5\n",
    );
    let mut r = ScanResult::default();
    let [_, _, _, rewinds, replays, _] = counting(|| r = d.scan(&[], &[]));
    assert_eq!(r.jobs.len(), 15);
    let job = r.jobs.iter().find(|j| j.id == "200000").expect("new job");
    assert_eq!(job.cpu_usage_ns, Some(5));
    assert_eq!((rewinds, replays), (1, 8), "only uid_1000 is read again");

    for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
        std::fs::remove_dir_all(cg.join(ctrl).join(new_job)).expect("rm");
    }
    let r = d.scan(&[], &[]);
    assert_eq!(r.jobs.len(), 14);
    assert!(!ids(&r).contains(&"200000"));
    assert!(!d
        .cache
        .contains_key(&JobKey::new(Scheduler::Slurm, "200000")));
}

#[test]
fn cpu_time_read_every_k_scans_is_at_most_k_scans_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    slurm_v1_node(dir.path(), 20);
    let mut d = JobDiscovery::new(JobsOptions {
        cpu_time_every: 3,
        ..JobsOptions::under_root(dir.path())
    });
    d.scan(&[], &[]);
    let usage = dir
        .path()
        .join("sys/fs/cgroup/cpu,cpuacct/slurm_n1/uid_1005/job_100005/cpuacct.usage");
    std::fs::write(&usage, "777\n").expect("write");
    let mut seen_at = None;
    for i in 1..=3 {
        let r = d.scan(&[], &[]);
        let job = r.jobs.iter().find(|j| j.id == "100005").expect("job");
        if job.cpu_usage_ns == Some(777) {
            seen_at = Some(i);
            break;
        }
        assert_eq!(
            job.cpu_usage_ns,
            Some(5000),
            "the last value, until read again"
        );
    }
    assert!(seen_at.is_some(), "not read again within 3 scans");
}

/// `scontrol update` changes a running job's CPUs: picked up within the refresh period,
/// each job at its own scan of it.
#[test]
fn a_cpuset_change_is_picked_up_within_the_refresh_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("slurm-v1"), dir.path());
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    assert_eq!(d.scan(&[], &[]).jobs[0].cpus, vec![0, 1, 2, 3]);
    let job = dir
        .path()
        .join("sys/fs/cgroup/cpuset/slurm_node1/uid_1000/job_101");
    for file in ["cpuset.cpus", "cpuset.effective_cpus"] {
        std::fs::write(job.join(file), "0-5\n").expect("write");
    }
    let key = JobKey::new(Scheduler::Slurm, "101").in_scope(layout::slurm::scope_of("node1"));
    let due = d.cache.get(&key).expect("cached").next_static;
    assert!(due > 1 && due <= 1 + STATIC_REFRESH_SCANS, "{due}");
    // Into one list, reused as the engine does: the revision tells when to write again.
    let mut jobs = Vec::new();
    for scan in 2..=1 + STATIC_REFRESH_SCANS {
        d.scan_into(&[], &[], &mut jobs);
        let cpus = jobs[0].cpus.clone();
        if scan < due {
            assert_eq!(cpus, vec![0, 1, 2, 3], "scan {scan}: not read again yet");
        } else {
            assert_eq!(cpus, vec![0, 1, 2, 3, 4, 5], "scan {scan}");
        }
    }
    // Jobs are spread over the period.
    let phases: std::collections::BTreeSet<u64> = (0..200)
        .map(|i| JobKey::new(Scheduler::Slurm, (5000 + i).to_string()).hash() % 60)
        .collect();
    assert!(phases.len() > 40, "{phases:?}");
}

/// A job's revision stays while nothing it marks changes, so the list reused from scan to
/// scan is not written again; a new name in the passwd file, or an environment found
/// late, gives a new revision and the list shows the new values.
#[test]
fn revisions_change_with_the_values_they_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    slurm_v1_node(dir.path(), 3);
    let passwd = dir.path().join("etc/passwd");
    write_file(&passwd, b"ann:x:1000:1000::/home/ann:/bin/sh\n");
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    let mut jobs = Vec::new();
    d.scan_into(&[], &[], &mut jobs);
    let first: Vec<u64> = jobs.iter().map(|j| j.revision).collect();
    assert!(first.iter().all(|&r| r != 0), "{first:?}");
    assert_eq!(jobs[0].user.as_deref(), Some("ann"));
    d.scan_into(&[], &[], &mut jobs);
    assert_eq!(jobs.iter().map(|j| j.revision).collect::<Vec<_>>(), first);

    // Renamed: a longer file, so its stamp changes whatever the clock's resolution.
    write_file(&passwd, b"annabel:x:1000:1000::/home/annabel:/bin/sh\n");
    d.scan_into(&[], &[], &mut jobs);
    assert_eq!(jobs[0].user.as_deref(), Some("annabel"));
    assert_ne!(jobs[0].revision, first[0]);
    assert_eq!(
        jobs,
        d.scan(&[], &[]).jobs,
        "the same as a list read afresh"
    );

    // An environment found late: the job name appears.
    let late = dir
        .path()
        .join("sys/fs/cgroup/cpuset/slurm_n1/uid_1000/job_100000");
    let env = dir.path().join("proc/10000/environ");
    std::fs::remove_file(&env).expect("rm");
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    d.scan_into(&[], &[], &mut jobs);
    assert!(late.is_dir());
    assert_eq!(jobs[0].job_name, None);
    let before = jobs[0].revision;
    write_file(
        &env,
        &environ(&[("SLURM_JOB_ID", "100000"), ("SLURM_JOB_NAME", "late")]),
    );
    let named = (0..2 * RETRY_SCANS).find(|_| {
        d.scan_into(&[], &[], &mut jobs);
        jobs[0].job_name.as_deref() == Some("late")
    });
    assert!(named.is_some(), "no name within {} scans", 2 * RETRY_SCANS);
    assert_ne!(jobs[0].revision, before);
}

/// A job that starts while the exporter runs is read again on its next scans: Slurm
/// writes its cpuset and memory limit just after creating the folders.
#[test]
fn a_new_job_being_set_up_is_read_again_on_its_first_scans() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("slurm-v1"), dir.path());
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    d.scan(&[], &[]);
    let cg = dir.path().join("sys/fs/cgroup");
    let job = "slurm_node1/uid_1000/job_103";
    write_file(&cg.join("cpuset").join(job).join("cpuset.cpus"), b"");
    write_file(
        &cg.join("cpu,cpuacct").join(job).join("cpuacct.usage"),
        b"0\n",
    );
    let r = d.scan(&[], &[]);
    let j = r.jobs.iter().find(|j| j.id == "103").expect("job 103");
    assert_eq!((j.cpus.clone(), j.memory_limit_bytes), (vec![], None));
    // The memory controller's folder appears after the others, then the values.
    write_file(
        &cg.join("memory").join(job).join("memory.limit_in_bytes"),
        b"1048576\n",
    );
    write_file(&cg.join("cpuset").join(job).join("cpuset.cpus"), b"6-7\n");
    let r = d.scan(&[], &[]);
    let j = r.jobs.iter().find(|j| j.id == "103").expect("job 103");
    assert_eq!(
        (j.cpus.clone(), j.memory_limit_bytes),
        (vec![6, 7], Some(1_048_576))
    );
}

/// The same job id in a new folder (a requeued job, or ids reused after Slurm's counter was
/// reset) is a new job: everything is read afresh, at once.
#[test]
fn a_reused_job_id_in_a_new_folder_reads_fresh_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    copy_tree(&cgroup_fixture("slurm-v2"), root);
    let mut d = JobDiscovery::new(JobsOptions::under_root(root));
    let r = d.scan(&[], &[]);
    assert_eq!(r.jobs[0].job_name.as_deref(), Some("v2-job"));
    assert_eq!(r.jobs[0].cpu_usage_ns, Some(2_500_000_000));

    // The old folder moves away (still there, so the new one cannot get its inode number).
    let scope = root.join("sys/fs/cgroup/system.slice/node1_slurmstepd.scope");
    std::fs::rename(scope.join("job_201"), scope.join("old_201")).expect("mv");
    write_file(&scope.join("job_201/cpu.stat"), b"usage_usec 5\n");
    write_file(&scope.join("job_201/cpuset.cpus.effective"), b"7\n");
    write_file(&scope.join("job_201/step_0/cgroup.procs"), b"3999\n");
    write_file(
        &root.join("proc/3999/environ"),
        &environ(&[("SLURM_JOB_ID", "201"), ("SLURM_JOB_NAME", "second-life")]),
    );
    let r = d.scan(&[], &[]);
    assert_eq!(r.problems, Vec::<String>::new());
    let j = &r.jobs[0];
    assert_eq!(j.id, "201");
    assert_eq!(j.job_name.as_deref(), Some("second-life"));
    assert_eq!(j.account, None);
    assert_eq!(j.cpus, vec![7]);
    assert_eq!(j.cpu_usage_ns, Some(5_000));
    assert_eq!(j.memory_limit_bytes, None);
}

/// A job with no process keeps being looked at: on each of its first scans, then every
/// few scans, never on every scan for long.
#[test]
fn a_job_without_processes_gets_its_metadata_once_a_process_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("no-procs"), dir.path());
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    for _ in 0..EAGER_SCANS + 7 {
        assert_eq!(d.scan(&[], &[]).jobs[0].job_name, None);
    }
    // Past the first scans, the search (a listing of the job's folders) is not done on
    // every scan.
    let [opens, ..] = counting(|| {
        for _ in 0..RETRY_SCANS * 4 {
            d.scan(&[], &[]);
        }
    });
    // A search opens the 4 folders of the job (and reads their cgroup.procs); the static
    // data may be read once (2 files).
    assert!(
        opens <= 4 * 8 + 2,
        "{opens} opens in {} scans",
        RETRY_SCANS * 4
    );

    let task = dir
        .path()
        .join("sys/fs/cgroup/system.slice/slurmstepd.scope/job_701/step_0/user/task_0");
    write_file(&task.join("cgroup.procs"), b"7101\n");
    write_file(
        &dir.path().join("proc/7101/environ"),
        &environ(&[("SLURM_JOB_ID", "701"), ("SLURM_JOB_NAME", "late")]),
    );
    let named =
        (1..=RETRY_SCANS).find(|_| d.scan(&[], &[]).jobs[0].job_name.as_deref() == Some("late"));
    assert!(named.is_some(), "no metadata within {RETRY_SCANS} scans");
}

#[test]
fn an_ended_job_leaves_the_cache_and_closes_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("slurm-v1"), dir.path());
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    for _ in 0..3 {
        d.scan(&[], &[]);
    }
    assert_eq!(held_files(&d), 2);
    // In each of the five controllers: its root, slurm_node1, uid_1000, uid_1001.
    let open_dirs = d.lister.open_count();
    assert_eq!(open_dirs, 5 * 4);
    for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
        let cg = dir.path().join("sys/fs/cgroup").join(ctrl);
        std::fs::remove_dir_all(cg.join("slurm_node1/uid_1001")).expect("rm");
    }
    assert_eq!(ids(&d.scan(&[], &[])), vec!["101"]);
    assert_eq!(d.cache.len(), 1);
    assert_eq!(held_files(&d), 1);
    // The uid folder that went away is closed on the next scan in the controller listed
    // on every scan, at the next full listing in the others.
    d.scan(&[], &[]);
    assert_eq!(d.lister.open_count(), open_dirs - 1);
    for _ in 0..FULL_LISTING_SCANS {
        d.scan(&[], &[]);
    }
    assert_eq!(d.lister.open_count(), open_dirs - 5);
}

/// The sampler sleeps on the event descriptor between scans: a job folder made or removed
/// must wake it, and a scan must take the events in, so that it sleeps again.
#[test]
fn a_job_folder_made_or_removed_wakes_the_event_descriptor() {
    use crate::tick::{wait_woken, Stop, Woken};
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("slurm-v1"), dir.path());
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    let (stop, _keep) = Stop::new().expect("stop");
    let wait = |d: &JobDiscovery, ms| {
        let fd = d.event_fd().expect("every folder watched");
        wait_woken(Duration::from_millis(ms), &stop, Some(fd))
    };
    d.scan(&[], &[]);
    d.scan(&[], &[]);
    assert_eq!(wait(&d, 0), Woken::Timeout);
    let uid = dir
        .path()
        .join("sys/fs/cgroup/cpu,cpuacct/slurm_node1/uid_1000");
    std::fs::create_dir(uid.join("job_105")).expect("mkdir");
    assert_eq!(wait(&d, 5000), Woken::Event);
    d.scan(&[], &[]);
    assert_eq!(wait(&d, 0), Woken::Timeout);
    std::fs::remove_dir(uid.join("job_105")).expect("rmdir");
    assert_eq!(wait(&d, 5000), Woken::Event);
    d.scan(&[], &[]);
    assert_eq!(wait(&d, 0), Woken::Timeout);
    // A new user's first job: the uid folder appears in a watched folder.
    std::fs::create_dir_all(uid.with_file_name("uid_1002/job_106")).expect("mkdir");
    assert_eq!(wait(&d, 5000), Woken::Event);
    d.scan(&[], &[]);
    assert_eq!(wait(&d, 0), Woken::Timeout);
}

/// A job found only in a controller other than the one listed on every scan (mixed
/// settings, or a job being torn down) is still found, at the next full listing.
#[test]
fn a_job_in_another_controller_only_is_found_by_the_full_listing() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("slurm-v1"), dir.path());
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    d.scan(&[], &[]);
    let freezer = dir
        .path()
        .join("sys/fs/cgroup/freezer/slurm_node1/uid_1000/job_104");
    write_file(&freezer.join("cgroup.procs"), b"");
    let found_at = (2..=1 + FULL_LISTING_SCANS)
        .find(|_| ids(&d.scan(&[], &[])).contains(&"104"))
        .expect("found within a full listing period");
    assert!(found_at <= 1 + FULL_LISTING_SCANS);
    // Listed on every scan from then on, like the controller that holds the most jobs.
    assert!(d.listing.every_scan[Slot::V1(Controller::Freezer).index()]);
    std::fs::remove_dir_all(&freezer).expect("rm");
    assert_eq!(ids(&d.scan(&[], &[])), vec!["101", "102"]);
}

/// Without file descriptors to spare, every read goes by path: the same results.
#[test]
fn without_descriptors_to_spare_files_are_read_by_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("slurm-v1"), dir.path());
    let mut kept = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    let mut by_path = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    by_path.fds = FdBudget::fixed(0);
    for _ in 0..3 {
        assert_eq!(by_path.scan(&[], &[]), kept.scan(&[], &[]));
    }
    assert_eq!(held_files(&by_path), 0);
    assert_eq!(by_path.lister.open_count(), 0);
    let usage = dir
        .path()
        .join("sys/fs/cgroup/cpu,cpuacct/slurm_node1/uid_1000/job_101/cpuacct.usage");
    std::fs::write(&usage, "5\n").expect("write");
    assert_eq!(by_path.scan(&[], &[]).jobs[0].cpu_usage_ns, Some(5));
    assert_eq!(kept.scan(&[], &[]).jobs[0].cpu_usage_ns, Some(5));
}

#[test]
fn job_ids_are_kept_inline() {
    let k = JobKey::user_slice(4_294_967_295);
    assert_eq!(k, JobKey::new(Scheduler::UserSlice, "user-4294967295"));
    assert_eq!(k.id.as_str(), "user-4294967295");
    let long = "12345678901234567890";
    assert_eq!(JobKey::new(Scheduler::Slurm, long).id.as_str(), long);
    assert_eq!(format!("{}", JobKey::new(Scheduler::Oar, "42").id), "42");
}

#[test]
fn next_in_phase_spreads_and_bounds() {
    for period in [1, 3, 60] {
        for phase in 0..period {
            for now in 0..130 {
                let t = next_in_phase(now, phase, period);
                assert!(t > now && t <= now + period, "{now} {phase} {period}");
                assert_eq!(t % period, phase);
            }
        }
    }
}

#[test]
fn labels() {
    assert_eq!(Scheduler::Slurm.as_str(), "slurm");
    assert_eq!(Scheduler::Oar.to_string(), "oar");
    assert_eq!(Scheduler::UserSlice.as_str(), "user");
    assert_eq!(GpuMappingSource::MappingDir.as_str(), "mapping_dir");
}

/// A SLUID folder (its numeric id known or not yet) keeps its hierarchy's listing from being
/// saved and replayed whole: the id is looked up again on each scan, so the job shows up once
/// its record is written, although no folder changed.
#[test]
fn a_sluid_resolved_later_is_listed_although_no_folder_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture("slurm-sluid"), dir.path());
    let record = dir.path().join("run/joulebook/jobs/2002");
    let text = std::fs::read(&record).expect("record");
    std::fs::remove_file(&record).expect("rm");
    // Nor is its slurmstepd there to name it; and no other folder reports a problem (which
    // would keep the listing from being saved anyway).
    std::fs::remove_dir_all(dir.path().join("proc/9200")).expect("rm");
    let scope = dir
        .path()
        .join("sys/fs/cgroup/system.slice/slurmstepd.scope");
    std::fs::remove_dir_all(scope.join("sFORGED0")).expect("rm");
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    for _ in 0..3 {
        let r = d.scan(&[], &[]);
        assert_eq!(ids(&r), vec!["2001"]);
        assert_eq!(r.problems, Vec::<String>::new());
    }
    write_file(&record, &text);
    let r = d.scan(&[], &[]);
    assert!(ids(&r).contains(&"2002"), "{:?}", ids(&r));
}
