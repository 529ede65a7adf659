//! Tests of what a scan may leave unread: the queue of CPU-time reads and the files held
//! (step 1), and reading only the jobs due (step 3), against scans that read every job.

use super::super::tests::slurm_v1_node;
use super::*;
use joulebook_tests::write_file;

/// Step 1 reads only the jobs due, from a queue, and the files the jobs hold are counted by
/// the scan's reads: through jobs ending and starting, after every scan each job has its next
/// CPU-time read queued within its period, and the count equals a recount of the files held.
#[test]
fn the_cpu_time_queue_and_the_held_count_follow_job_churn() {
    let dir = tempfile::tempdir().expect("tempdir");
    slurm_v1_node(dir.path(), 12);
    let mut d = JobDiscovery::new(JobsOptions {
        cpu_time_every: 3,
        ..JobsOptions::under_root(dir.path())
    });
    let cg = dir.path().join("sys/fs/cgroup");
    let controllers = ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"];
    for scan in 1..=40 {
        if scan == 10 {
            for ctrl in controllers {
                let job = cg.join(ctrl).join("slurm_n1/uid_1003/job_100003");
                std::fs::remove_dir_all(job).expect("rm");
            }
        }
        if scan == 20 {
            let job = "slurm_n1/uid_1000/job_200000";
            for ctrl in controllers {
                std::fs::create_dir_all(cg.join(ctrl).join(job)).expect("mkdir");
            }
            write_file(&cg.join("cpuset").join(job).join("cpuset.cpus"), b"3\n");
            write_file(
                &cg.join("cpu,cpuacct").join(job).join("cpuacct.usage"),
                b"7\n",
            );
        }
        let r = d.scan(&[], &[]);
        assert_eq!(
            r.jobs.len(),
            if scan < 10 {
                12
            } else if scan < 20 {
                11
            } else {
                12
            }
        );
        let now = d.scans;
        let recount: usize = d.cache.values().map(JobCache::held_files).sum();
        assert_eq!(d.cache.held, recount, "scan {scan}");
        for (key, e) in &d.cache.map {
            assert!(e.usage_now.is_some(), "scan {scan}: {key:?} read");
            assert!(
                (now + 1..=now + 3).contains(&e.next_usage),
                "scan {scan}: {key:?} next read at {}",
                e.next_usage
            );
            let queued = d
                .cache
                .due
                .get(&e.next_usage)
                .is_some_and(|k| k.contains(key));
            assert!(queued, "scan {scan}: {key:?}'s next read queued");
        }
    }
    let job = d
        .scan(&[], &[])
        .jobs
        .into_iter()
        .find(|j| j.id == "200000")
        .expect("new job");
    assert_eq!(job.cpu_usage_ns, Some(7));
}

/// A scan into the last scan's list reads only the jobs due when nothing else changed; it
/// returns, scan after scan, what a scan reading every job returns (the same jobs and values,
/// the same problems) through CPU time changing, a cpuset changed, a job ending and another
/// starting, the user database renamed, and a CPU-time file gone bad and fixed.
#[test]
fn reading_only_the_jobs_due_returns_what_reading_every_job_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    slurm_v1_node(dir.path(), 40);
    let passwd = dir.path().join("etc/passwd");
    write_file(&passwd, b"ann:x:1000:1000::/home/ann:/bin/sh\n");
    let cg = dir.path().join("sys/fs/cgroup");
    let controllers = ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"];
    let job_dir =
        |ctrl: &str, uid: u32, id: u32| cg.join(ctrl).join(format!("slurm_n1/uid_{uid}/job_{id}"));
    let usage = |j: u32| job_dir("cpu,cpuacct", 1000 + j % 7, 100_000 + j).join("cpuacct.usage");
    // Every job read on every scan, against a reused list, every 4 scans.
    let mut every = JobDiscovery::new(JobsOptions {
        cpu_time_every: 4,
        ..JobsOptions::under_root(dir.path())
    });
    let mut due = JobDiscovery::new(JobsOptions {
        cpu_time_every: 4,
        ..JobsOptions::under_root(dir.path())
    });
    let mut list = Vec::new();
    let scans = 80;
    for scan in 1..=scans {
        // (Job 12's folders are removed at scan 20: not written again.)
        for j in (0..40).filter(|j| (j + scan) % 3 == 0 && (*j != 12 || scan < 20)) {
            write_file(&usage(j), format!("{}\n", scan * 1000 + j).as_bytes());
        }
        match scan {
            10 => write_file(
                &job_dir("cpuset", 1003, 100_003).join("cpuset.cpus"),
                b"5-6\n",
            ),
            20 => {
                for ctrl in controllers {
                    std::fs::remove_dir_all(job_dir(ctrl, 1005, 100_012)).expect("rm");
                }
            }
            30 => {
                for ctrl in controllers {
                    std::fs::create_dir_all(job_dir(ctrl, 1000, 200_000)).expect("mkdir");
                }
                write_file(
                    &job_dir("cpuset", 1000, 200_000).join("cpuset.cpus"),
                    b"9\n",
                );
            }
            40 => write_file(&passwd, b"annabel:x:1000:1000::/home/annabel:/bin/sh\n"),
            50 => write_file(&usage(7), b"garbage\n"),
            60 => write_file(&usage(7), b"123\n"),
            _ => {}
        }
        let full = every.scan(&[], &[]);
        let mut problems = due.scan_into(&[], &[], &mut list);
        assert_eq!(list, full.jobs, "scan {scan}");
        let mut expected = full.problems;
        expected.sort();
        problems.sort();
        assert_eq!(problems, expected, "scan {scan}");
    }
    assert_eq!(
        every.cache.epoch, scans as u64,
        "every job read on every scan"
    );
    assert!(
        due.cache.epoch < scans as u64 / 2,
        "{} scans read every job",
        due.cache.epoch
    );
    assert!(list.iter().any(|j| j.cpus == [5, 6]) && list.iter().any(|j| j.id == "200000"));
    assert!(list.iter().all(|j| j.id != "100012"));
    let users: Vec<_> = list
        .iter()
        .filter(|j| j.uid == Some(1000))
        .map(|j| j.user.as_deref())
        .collect();
    assert!(users.iter().all(|u| *u == Some("annabel")), "{users:?}");
}
