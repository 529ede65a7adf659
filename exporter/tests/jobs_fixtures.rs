//! Job discovery against fixture trees (`tests/fixtures/cgroup/<scenario>/`), one per cgroup
//! layout, plus copies mutated in a temporary folder for jobs that start, end or vanish.
//!
//! Each fixture root holds `sys/fs/cgroup/…`, `proc/<pid>/{environ,cgroup}` and `etc/passwd`,
//! as a host mounted at that root would. The NVML inventory is made up here; its minors differ
//! from its indices for GPUs 2 and 3, so a test resolving through the wrong one fails.

use joulebook_exporter::jobs::{
    CgroupMode, GpuMappingSource, GpuRef, Job, JobDiscovery, JobsOptions, MetadataSource,
    ScanResult, Scheduler,
};
use joulebook_tests::{cgroup_fixture, copy_tree, environ, write_file};
use std::path::Path;

const G0: &str = "GPU-00000000-0000-0000-0000-000000000000";
const G1: &str = "GPU-11111111-1111-1111-1111-111111111111";
const G2: &str = "GPU-22222222-2222-2222-2222-222222222222";
const G3: &str = "GPU-33333333-3333-3333-3333-333333333333";

fn inventory() -> Vec<GpuRef> {
    [(G0, 0, 0), (G1, 1, 1), (G2, 2, 3), (G3, 3, 2)]
        .into_iter()
        .map(|(uuid, index, minor)| GpuRef {
            uuid: uuid.to_string(),
            index,
            minor: Some(minor),
            ..Default::default()
        })
        .collect()
}

fn scan_with(opts: JobsOptions, gpu_pids: &[(&str, u32)]) -> ScanResult {
    let pids: Vec<(String, u32)> = gpu_pids.iter().map(|(u, p)| (u.to_string(), *p)).collect();
    JobDiscovery::new(opts).scan(&inventory(), &pids)
}

fn scan(name: &str) -> ScanResult {
    scan_with(JobsOptions::under_root(&cgroup_fixture(name)), &[])
}

/// Problems with the fixture root replaced by `ROOT`, so they can be compared exactly.
fn problems(r: &ScanResult, root: &Path) -> Vec<String> {
    let root = root.display().to_string();
    r.problems
        .iter()
        .map(|p| p.replace(&root, "ROOT"))
        .collect()
}

/// A job with everything unknown, to be filled in by the test. Its metadata is as its
/// environment claims (the fixtures have no prolog records), unless the test says otherwise.
fn job(scheduler: Scheduler, id: &str) -> Job {
    Job {
        id: id.to_string(),
        metadata: MetadataSource::Environment,
        ..Job::empty(scheduler)
    }
}

/// A job about which nothing comes from its environment: only the kernel's and the folders'
/// word.
fn attested(scheduler: Scheduler, id: &str) -> Job {
    Job {
        metadata: MetadataSource::Kernel,
        ..job(scheduler, id)
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn gpus(list: &[&str]) -> Vec<String> {
    list.iter().map(|g| g.to_string()).collect()
}

fn ids(r: &ScanResult) -> Vec<&str> {
    r.jobs.iter().map(|j| j.id.as_str()).collect()
}

/// Copies a fixture into a temporary folder, keeping symlinks as symlinks.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&cgroup_fixture(name), dir.path());
    dir
}

#[test]
fn each_fixture_has_the_expected_cgroup_mode() {
    for (name, mode) in [
        ("slurm-v1", CgroupMode::V1),
        ("slurm-v2", CgroupMode::V2),
        ("slurm-sluid", CgroupMode::V2),
        ("slurm-upgrade", CgroupMode::V2),
        ("oar2", CgroupMode::V1),
        ("oar3", CgroupMode::V2),
        ("user-slices", CgroupMode::V2),
        ("hybrid", CgroupMode::Hybrid),
        ("no-procs", CgroupMode::V2),
        ("idle-gpu", CgroupMode::V2),
        ("hostile", CgroupMode::V1),
        ("garbage", CgroupMode::V1),
    ] {
        let d = JobDiscovery::new(JobsOptions::under_root(&cgroup_fixture(name)));
        assert_eq!(d.detect_mode().expect(name), mode, "{name}");
    }
}

#[test]
fn a_folder_without_cgroups_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("sys/fs/cgroup/unified")).expect("mkdir");
    let opts = JobsOptions::under_root(dir.path());
    let cgroupfs = opts.cgroupfs.display().to_string();
    let mut d = JobDiscovery::new(opts);
    let err = d.detect_mode().expect_err("not a cgroupfs").to_string();
    assert!(err.contains(&cgroupfs), "{err}");
    let r = d.scan(&inventory(), &[]);
    assert!(r.jobs.is_empty());
    assert_eq!(r.problems.len(), 1);
    assert!(r.problems[0].contains(&cgroupfs), "{:?}", r.problems);
    assert!(
        r.problems[0].contains("--path.cgroupfs"),
        "{:?}",
        r.problems
    );
    // A missing root too.
    let d = JobDiscovery::new(JobsOptions::under_root(&dir.path().join("nope")));
    assert!(d.detect_mode().is_err());
}

#[test]
fn slurm_v1_two_jobs_with_steps_and_gpus_from_env_and_devices_list() {
    let r = scan("slurm-v1");
    assert_eq!(r.problems, Vec::<String>::new());
    let j101 = Job {
        uid: Some(1000),
        user: s("alice"),
        account: s("physics"),
        partition: s("gpu"),
        // Not "from-the-extern-step": the extern step's process is tried last.
        job_name: s("train-resnet"),
        cpus: vec![0, 1, 2, 3],
        // The job level, not the sum of its steps.
        cpu_usage_ns: Some(123_456_789_000),
        memory_limit_bytes: Some(4_294_967_296),
        // SLURM_JOB_GPUS=1 wins over CUDA_VISIBLE_DEVICES=0 (renumbered inside the job).
        gpus: gpus(&[G1]),
        gpu_source: Some(GpuMappingSource::SlurmJobGpus),
        ..job(Scheduler::Slurm, "101")
    };
    let j102 = Job {
        uid: Some(1001),
        user: s("bob"),
        account: s("chemistry"),
        partition: s("batch"),
        job_name: s("md-run"),
        cpus: vec![4, 5, 8],
        cpu_usage_ns: Some(5_000_000_000),
        // The v1 "unlimited" default is no limit.
        memory_limit_bytes: None,
        // CUDA_VISIBLE_DEVICES=0 is renumbered; devices.list allows /dev/nvidia3, which is
        // NVML index 2.
        gpus: gpus(&[G2]),
        gpu_source: Some(GpuMappingSource::DevicesList),
        ..job(Scheduler::Slurm, "102")
    };
    assert_eq!(r.jobs, vec![j101, j102]);
}

#[test]
fn slurm_v2_jobs_take_the_uid_from_the_environment() {
    // NVML sees job 202's process on GPU 2, but the job's own CUDA_VISIBLE_DEVICES (a UUID)
    // is more trusted.
    let r = scan_with(
        JobsOptions::under_root(&cgroup_fixture("slurm-v2")),
        &[(G2, 3101)],
    );
    assert_eq!(r.problems, Vec::<String>::new());
    let j201 = Job {
        uid: Some(1000),
        user: s("alice"),
        account: s("astro"),
        partition: s("gpu"),
        job_name: s("v2-job"),
        cpus: vec![0, 1],
        cpu_usage_ns: Some(2_500_000_000),
        memory_limit_bytes: Some(8_589_934_592),
        gpus: gpus(&[G0, G3]),
        gpu_source: Some(GpuMappingSource::SlurmJobGpus),
        ..job(Scheduler::Slurm, "201")
    };
    let j202 = Job {
        uid: Some(1002),
        // Not in /etc/passwd (a directory-service user): SLURM_JOB_USER.
        user: s("carol"),
        account: s("bio"),
        partition: s("batch"),
        job_name: s("align"),
        cpus: vec![2, 3],
        cpu_usage_ns: Some(10_000),
        memory_limit_bytes: None,
        gpus: gpus(&[G1]),
        gpu_source: Some(GpuMappingSource::CudaVisibleDevices),
        ..job(Scheduler::Slurm, "202")
    };
    assert_eq!(r.jobs, vec![j201, j202]);
}

/// Slurm 26.05 names job folders by SLUID. Job 2001's id comes from its root-owned
/// slurmstepd (`slurmstepd: [2001.batch]`), job 2002's from the prolog's record, which also
/// wins over the job's forged environment (`SLURM_JOB_ACCOUNT=victim-project`, uid 0). A
/// SLUID-shaped folder whose "slurmstepd" belongs to a user, and a folder of unknown shape,
/// are not jobs.
#[test]
fn slurm_2605_sluid_folders_are_published_under_their_numeric_ids() {
    let r = scan("slurm-sluid");
    let j2001 = Job {
        uid: Some(1000),
        user: s("alice"),
        account: s("astro"),
        partition: s("gpu"),
        job_name: s("sluid-batch"),
        sluid: s("sEKNKTV3WPV500"),
        cpus: vec![0, 1],
        cpu_usage_ns: Some(3_000_000_000),
        memory_limit_bytes: Some(4_294_967_296),
        ..job(Scheduler::Slurm, "2001")
    };
    let j2002 = Job {
        uid: Some(1002),
        user: s("carol"),
        account: s("bio"),
        partition: s("batch"),
        job_name: s("align"),
        sluid: s("sEKNKTV3WPV6A0"),
        metadata: MetadataSource::Prolog,
        cpus: vec![2, 3],
        cpu_usage_ns: Some(1_000_000_000),
        ..job(Scheduler::Slurm, "2002")
    };
    assert_eq!(r.jobs, vec![j2001, j2002]);
    // The forged environment is reported once, naming the attested value.
    assert_eq!(
        r.problems,
        ["slurm job 2002: its environment claims uid \"0\", attested \"1002\"; the job's value is ignored"]
    );
}

/// The forged SLUID folder is never a job; after its first scans it is reported, with the fix.
#[test]
fn a_sluid_folder_without_a_trusted_id_is_reported_not_counted() {
    let root = cgroup_fixture("slurm-sluid");
    let mut d = JobDiscovery::new(JobsOptions::under_root(&root));
    let mut last = ScanResult::default();
    for _ in 0..12 {
        last = d.scan(&inventory(), &[]);
        assert_eq!(ids(&last), vec!["2001", "2002"]);
    }
    assert_eq!(
        problems(&last, &root),
        ["ROOT/sys/fs/cgroup/system.slice/slurmstepd.scope/sFORGED0: Slurm job folder named by its SLUID, and no job record nor root-owned slurmstepd names its job id: not counted as a job yet (fix: install the joulebook prolog, see docs/job-identity.md)"]
    );
}

/// A node being upgraded to 26.05: a `job_<id>` job and a SLUID job side by side.
#[test]
fn an_upgrading_node_has_one_job_of_each_kind() {
    let r = scan("slurm-upgrade");
    assert_eq!(r.problems, Vec::<String>::new());
    let j3001 = Job {
        uid: Some(1000),
        user: s("alice"),
        account: s("physics"),
        partition: s("cpu"),
        job_name: s("before-upgrade"),
        cpus: vec![0, 1, 2, 3],
        cpu_usage_ns: Some(8_000_000_000),
        ..job(Scheduler::Slurm, "3001")
    };
    let j3002 = Job {
        uid: Some(1002),
        user: s("carol"),
        account: s("bio"),
        partition: s("cpu"),
        job_name: s("after-upgrade"),
        sluid: s("sEKNKTV3WPV700"),
        cpus: vec![4, 5, 6, 7],
        cpu_usage_ns: Some(2_000_000_000),
        ..job(Scheduler::Slurm, "3002")
    };
    assert_eq!(r.jobs, vec![j3001, j3002]);
}

/// Two slurmd on one node (`n1_slurmstepd.scope`, `n2_slurmstepd.scope`) each hold a part of
/// job 5: neither part's CPUs or CPU time is lost, and the job is published once.
#[test]
fn one_job_id_under_two_slurmd_scopes_keeps_both_parts() {
    let dir = copy_fixture("slurm-upgrade");
    let system = dir.path().join("sys/fs/cgroup/system.slice");
    for (scope, cpus, usec) in [("n1", "8-9", 1000), ("n2", "12", 500)] {
        let job = system.join(format!("{scope}_slurmstepd.scope/job_5"));
        write_file(&job.join("cgroup.procs"), b"");
        write_file(
            &job.join("cpuset.cpus.effective"),
            format!("{cpus}\n").as_bytes(),
        );
        write_file(
            &job.join("cpu.stat"),
            format!("usage_usec {usec}\n").as_bytes(),
        );
        write_file(&job.join("memory.max"), b"1000\n");
    }
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    for _ in 0..2 {
        let r = d.scan(&inventory(), &[]);
        let j5 = r.jobs.iter().find(|j| j.id == "5").expect("job 5");
        assert_eq!(j5.cpus, vec![8, 9, 12]);
        assert_eq!(j5.cpu_usage_ns, Some(1_500_000));
        assert_eq!(j5.memory_limit_bytes, Some(2000));
        assert_eq!(ids(&r), vec!["5", "3001", "3002"]);
    }
}

#[test]
fn oar2_cpuset_jobs_with_user_names_in_the_path() {
    let root = cgroup_fixture("oar2");
    let opts = JobsOptions {
        oar_resources_dir: Some(root.join("var/lib/oar/joulebook-gpus")),
        ..JobsOptions::under_root(&root)
    };
    let r = scan_with(opts, &[]);
    assert_eq!(r.problems, Vec::<String>::new());
    let j301 = Job {
        uid: Some(1000),
        user: s("alice"),
        account: s("climate"),
        partition: None,
        job_name: s("ocean-sim"),
        cpus: (0..=7).collect(),
        cpu_usage_ns: Some(42),
        memory_limit_bytes: Some(17_179_869_184),
        gpus: gpus(&[G0]),
        gpu_source: Some(GpuMappingSource::DevicesList),
        ..job(Scheduler::Oar, "301")
    };
    let j302 = Job {
        uid: Some(1003),
        user: s("bob_smith"),
        account: s("default"),
        partition: None,
        job_name: s("render"),
        cpus: (8..=15).collect(),
        cpu_usage_ns: Some(84),
        memory_limit_bytes: None,
        // The resources file (index 3) is trusted over devices.list.
        gpus: gpus(&[G3]),
        gpu_source: Some(GpuMappingSource::OarResources),
        ..job(Scheduler::Oar, "302")
    };
    assert_eq!(r.jobs, vec![j301, j302.clone()]);

    // Without the resources directory, the devices list (/dev/nvidia1) is next.
    let r = scan("oar2");
    let j = &r.jobs[1];
    assert_eq!(j.id, "302");
    assert_eq!(j.gpus, gpus(&[G1]));
    assert_eq!(j.gpu_source, Some(GpuMappingSource::DevicesList));
}

#[test]
fn oar3_systemd_slices() {
    let r = scan("oar3");
    assert_eq!(r.problems, Vec::<String>::new());
    let j401 = Job {
        uid: Some(1000),
        user: s("alice"),
        account: s("hpc"),
        partition: s("default"),
        job_name: s("lattice"),
        cpus: vec![0, 1, 2, 3],
        cpu_usage_ns: Some(7_000),
        memory_limit_bytes: Some(2_147_483_648),
        gpus: gpus(&[G1, G2]),
        gpu_source: Some(GpuMappingSource::CudaVisibleDevices),
        ..job(Scheduler::Oar, "401")
    };
    assert_eq!(r.jobs, vec![j401]);
}

#[test]
fn user_slices_only_when_enabled_and_gpus_from_nvml_processes() {
    assert!(scan("user-slices").jobs.is_empty());
    let opts = JobsOptions {
        user_slices: true,
        ..JobsOptions::under_root(&cgroup_fixture("user-slices"))
    };
    // 500 is sshd (no job), 424242 has exited.
    let r = scan_with(opts, &[(G3, 6001), (G0, 500), (G1, 424_242)]);
    assert_eq!(r.problems, Vec::<String>::new());
    let root = Job {
        uid: Some(0),
        user: s("root"),
        cpu_usage_ns: Some(1_000),
        memory_limit_bytes: Some(1_073_741_824),
        ..attested(Scheduler::UserSlice, "user-0")
    };
    let alice = Job {
        uid: Some(1000),
        user: s("alice"),
        cpu_usage_ns: Some(99_000),
        gpus: gpus(&[G3]),
        gpu_source: Some(GpuMappingSource::NvmlProcesses),
        ..attested(Scheduler::UserSlice, "user-1000")
    };
    assert_eq!(r.jobs, vec![root, alice]);
    assert_eq!(r.jobs[0].scheduler.as_str(), "user");
}

#[test]
fn hybrid_reads_v1_controllers_and_falls_back_to_steps() {
    let opts = JobsOptions {
        user_slices: true,
        ..JobsOptions::under_root(&cgroup_fixture("hybrid"))
    };
    let r = scan_with(opts, &[(G0, 7001)]);
    assert_eq!(r.problems, Vec::<String>::new());
    let j601 = Job {
        uid: Some(1000),
        user: s("alice"),
        account: s("eng"),
        partition: s("debug"),
        job_name: s("hybrid-job"),
        // The job folder has no cpuset.cpus nor cpuacct.usage: union and sum of its steps.
        cpus: vec![2, 3, 4],
        cpu_usage_ns: Some(300),
        memory_limit_bytes: Some(1_073_741_824),
        gpus: gpus(&[G0]),
        gpu_source: Some(GpuMappingSource::NvmlProcesses),
        ..job(Scheduler::Slurm, "601")
    };
    // The user slice exists in cpu,cpuacct (v1, 6000 ns) and in unified/ (v2, 5 µs): the v1
    // controller, which does the accounting in hybrid mode, wins.
    let alice = Job {
        uid: Some(1000),
        user: s("alice"),
        cpu_usage_ns: Some(6_000),
        ..attested(Scheduler::UserSlice, "user-1000")
    };
    assert_eq!(r.jobs, vec![j601, alice]);
}

#[test]
fn a_job_without_processes_is_listed_and_its_metadata_read_once_a_process_appears() {
    let dir = copy_fixture("no-procs");
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    let r = d.scan(&inventory(), &[]);
    assert_eq!(r.problems, Vec::<String>::new());
    let bare = Job {
        cpus: vec![0],
        cpu_usage_ns: Some(0),
        ..attested(Scheduler::Slurm, "701")
    };
    assert_eq!(r.jobs, vec![bare.clone()]);
    // Still nothing to read: still listed, nothing invented.
    assert_eq!(d.scan(&inventory(), &[]).jobs, vec![bare.clone()]);

    let task = dir
        .path()
        .join("sys/fs/cgroup/system.slice/slurmstepd.scope/job_701/step_0/user/task_0");
    write_file(&task.join("cgroup.procs"), b"7101\n");
    write_file(
        &dir.path().join("proc/7101/environ"),
        &environ(&[
            ("SLURM_JOB_ID", "701"),
            ("SLURM_JOB_UID", "1001"),
            ("SLURM_JOB_NAME", "late-starter"),
            ("SLURM_JOB_GPUS", "2"),
        ]),
    );
    let r = d.scan(&inventory(), &[]);
    let started = Job {
        uid: Some(1001),
        user: s("bob"),
        job_name: s("late-starter"),
        gpus: gpus(&[G2]),
        gpu_source: Some(GpuMappingSource::SlurmJobGpus),
        metadata: MetadataSource::Environment,
        ..bare
    };
    assert_eq!(r.jobs, vec![started]);
}

#[test]
fn mapping_directory_gives_gpus_held_idle() {
    let root = cgroup_fixture("idle-gpu");
    let opts = JobsOptions {
        mapping_dir: Some(root.join("run/dcgm-job-map")),
        ..JobsOptions::under_root(&root)
    };
    // No GPU process at all: both jobs hold their GPUs idle.
    let r = scan_with(opts, &[]);
    assert_eq!(
        problems(&r, &root),
        vec![
            "GPU mapping file ROOT/run/dcgm-job-map/7 names GPU index 7, which is not in this node's GPU inventory"
        ]
    );
    let j801 = Job {
        uid: Some(1000),
        user: s("alice"),
        job_name: s("holds-gpu-1"),
        cpus: (0..=7).collect(),
        cpu_usage_ns: Some(1_000_000),
        // The mapping file wins over SLURM_JOB_GPUS=0; README, .1.tmp and old/0 are ignored.
        gpus: gpus(&[G1]),
        gpu_source: Some(GpuMappingSource::MappingDir),
        ..job(Scheduler::Slurm, "801")
    };
    // No process, so no metadata; `2.0` (a MIG instance of GPU 2) and the file named by
    // GPU 3's UUID both name job 802.
    let j802 = Job {
        cpus: (8..=15).collect(),
        cpu_usage_ns: Some(1_000_000),
        gpus: gpus(&[G2, G3]),
        gpu_source: Some(GpuMappingSource::MappingDir),
        ..attested(Scheduler::Slurm, "802")
    };
    assert_eq!(r.jobs, vec![j801, j802]);

    // Without the mapping directory, job 802's idle GPUs are invisible (NVML processes cannot
    // see them), and 801 falls back to its environment.
    let r = scan("idle-gpu");
    assert_eq!(r.jobs[0].gpus, gpus(&[G0]));
    assert_eq!(r.jobs[0].gpu_source, Some(GpuMappingSource::SlurmJobGpus));
    assert_eq!(r.jobs[1].gpus, Vec::<String>::new());
    assert_eq!(r.jobs[1].gpu_source, None);

    // A mapping directory that does not exist yet is no problem.
    let opts = JobsOptions {
        mapping_dir: Some(root.join("run/not-yet")),
        ..JobsOptions::under_root(&root)
    };
    assert_eq!(scan_with(opts, &[]).problems, Vec::<String>::new());
}

#[test]
fn hostile_names_are_kept_verbatim() {
    let r = scan("hostile");
    assert_eq!(r.problems, Vec::<String>::new());
    assert_eq!(ids(&r), vec!["901", "902"]);
    let j = &r.jobs[0];
    assert_eq!(
        j.job_name.as_deref(),
        Some("\"; DROP TABLE jobs; --\n<script>alert(1)</script>\\\u{fffd}{job_id=\"1\"}")
    );
    assert_eq!(j.account.as_deref(), Some("a\"b\\c{d}=e,f"));
    assert_eq!(j.partition.as_deref(), Some("p\r\nq\tr"));
    let long = &r.jobs[1];
    // Cut at the label cap: a job's user chooses its length.
    assert_eq!(
        long.job_name.as_deref(),
        Some(
            "A".repeat(joulebook_exporter::jobs::MAX_LABEL_BYTES)
                .as_str()
        )
    );
    assert_eq!(long.account.as_deref(), Some("ok"));
}

#[test]
fn garbage_files_are_reported_by_path_and_a_vanished_job_is_skipped_silently() {
    let root = cgroup_fixture("garbage");
    let r = scan("garbage");
    // job_1002 is a folder that is listed but gone when read (a dangling link): it ended.
    assert_eq!(ids(&r), vec!["1001"]);
    let j = Job {
        uid: Some(1000),
        user: s("alice"),
        ..attested(Scheduler::Slurm, "1001")
    };
    assert_eq!(r.jobs, vec![j]);
    let c = "ROOT/sys/fs/cgroup";
    let j = "slurm/uid_1000/job_1001";
    assert_eq!(
        problems(&r, &root),
        vec![
            format!("{c}/cpuset/{j}/cpuset.cpus: expected a CPU list such as \"0-3,8\", found \"zz-3\\n\" (not a CPU number)"),
            format!("{c}/cpuacct/{j}/cpuacct.usage: expected a CPU time in nanoseconds, found \"lots\\n\""),
            format!("{c}/memory/{j}/memory.limit_in_bytes: expected a byte count or \"max\", found \"-1\\n\""),
            "SLURM_JOB_GPUS of slurm job 1001 names GPU index 7, which is not in this node's GPU inventory".to_string(),
            format!("{c}/devices/{j}/devices.list: expected lines such as \"c 195:0 rwm\", found \"garbage\""),
        ]
    );
}

#[test]
fn without_an_inventory_no_gpu_is_counted_and_nothing_reported() {
    let pids: Vec<(String, u32)> = Vec::new();
    let r =
        JobDiscovery::new(JobsOptions::under_root(&cgroup_fixture("slurm-v2"))).scan(&[], &pids);
    assert_eq!(r.problems, Vec::<String>::new());
    for j in &r.jobs {
        assert_eq!((j.gpus.len(), j.gpu_source), (0, None), "{}", j.id);
    }
}

#[test]
fn jobs_start_and_end_between_scans_and_the_environment_is_cached_per_job() {
    let dir = copy_fixture("slurm-v2");
    let root = dir.path();
    let scope = root.join("sys/fs/cgroup/system.slice/node1_slurmstepd.scope");
    let mut d = JobDiscovery::new(JobsOptions::under_root(root));
    let r = d.scan(&inventory(), &[]);
    assert_eq!(ids(&r), vec!["201", "202"]);

    // 202 ends, 203 starts; 201's process rewrites its environment (the cached one stays).
    std::fs::remove_dir_all(scope.join("job_202")).expect("rm");
    write_file(&scope.join("job_203/cpu.stat"), b"usage_usec 1\n");
    write_file(
        &scope.join("job_203/step_0/user/task_0/cgroup.procs"),
        b"3301\n",
    );
    write_file(
        &root.join("proc/3301/environ"),
        &environ(&[("SLURM_JOB_ID", "203"), ("SLURM_JOB_NAME", "new")]),
    );
    write_file(
        &root.join("proc/3001/environ"),
        &environ(&[("SLURM_JOB_ID", "201"), ("SLURM_JOB_NAME", "renamed")]),
    );
    let r = d.scan(&inventory(), &[]);
    assert_eq!(r.problems, Vec::<String>::new());
    assert_eq!(ids(&r), vec!["201", "203"]);
    assert_eq!(r.jobs[0].job_name.as_deref(), Some("v2-job"));
    assert_eq!(r.jobs[0].account.as_deref(), Some("astro"));
    assert_eq!(r.jobs[1].job_name.as_deref(), Some("new"));
    assert_eq!(r.jobs[1].cpu_usage_ns, Some(1_000));

    // 201 ends; then a new job with the same id starts: its cache was dropped, so the new
    // environment is read.
    let saved = tempfile::tempdir().expect("tempdir");
    copy_tree(&scope.join("job_201"), saved.path());
    std::fs::remove_dir_all(scope.join("job_201")).expect("rm");
    assert_eq!(ids(&d.scan(&inventory(), &[])), vec!["203"]);
    copy_tree(saved.path(), &scope.join("job_201"));
    let r = d.scan(&inventory(), &[]);
    assert_eq!(ids(&r), vec!["201", "203"]);
    assert_eq!(r.jobs[0].job_name.as_deref(), Some("renamed"));
    assert_eq!(r.jobs[0].account, None);
}

#[test]
fn passwd_is_reloaded_when_it_changes() {
    let dir = copy_fixture("slurm-v1");
    let mut d = JobDiscovery::new(JobsOptions::under_root(dir.path()));
    assert_eq!(
        d.scan(&inventory(), &[]).jobs[0].user.as_deref(),
        Some("alice")
    );
    write_file(
        &dir.path().join("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\nalice2:x:1000:1000::/home/alice2:/bin/sh\n",
    );
    let r = d.scan(&inventory(), &[]);
    assert_eq!(r.jobs[0].user.as_deref(), Some("alice2"));
    // bob left /etc/passwd: his job has a uid and no name (SLURM_JOB_USER is not set).
    assert_eq!(r.jobs[1].uid, Some(1001));
    assert_eq!(r.jobs[1].user, None);
}

#[test]
fn an_unreadable_environment_is_a_problem_with_the_fix() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: root reads any file");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = copy_fixture("oar3");
    let env = dir.path().join("proc/5001/environ");
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let r = JobDiscovery::new(JobsOptions::under_root(dir.path())).scan(&inventory(), &[]);
    assert_eq!(r.jobs.len(), 1);
    assert_eq!(r.jobs[0].job_name, None);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(r.problems[0].contains(&env.display().to_string()));
    assert!(r.problems[0].contains("CAP_SYS_PTRACE"));
}

#[test]
fn a_thousand_jobs_are_scanned_and_environments_are_not_reread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let cg = root.join("sys/fs/cgroup");
    write_file(&cg.join("cgroup.controllers"), b"cpuset cpu memory\n");
    for i in 0..1000u32 {
        let job = cg.join(format!("system.slice/slurmstepd.scope/job_{}", 10_000 + i));
        write_file(
            &job.join("cpuset.cpus.effective"),
            format!("{}\n", i % 64).as_bytes(),
        );
        write_file(
            &job.join("cpu.stat"),
            format!("usage_usec {i}\n").as_bytes(),
        );
        write_file(&job.join("memory.max"), b"max\n");
        write_file(
            &job.join("step_0/user/task_0/cgroup.procs"),
            format!("{}\n", 100_000 + i).as_bytes(),
        );
        write_file(
            &root.join(format!("proc/{}/environ", 100_000 + i)),
            &environ(&[
                ("SLURM_JOB_ID", &(10_000 + i).to_string()),
                ("SLURM_JOB_NAME", &format!("n{i}")),
            ]),
        );
    }
    let mut d = JobDiscovery::new(JobsOptions::under_root(root));
    let t = std::time::Instant::now();
    let r = d.scan(&inventory(), &[]);
    eprintln!("first scan of 1000 jobs: {:?}", t.elapsed());
    assert_eq!(r.jobs.len(), 1000);
    assert!(r.problems.is_empty(), "{:?}", r.problems.first());
    // Sorted numerically.
    assert_eq!(r.jobs[0].id, "10000");
    assert_eq!(r.jobs[999].id, "10999");
    // The environments are cached: without /proc, the metadata stays.
    std::fs::remove_dir_all(root.join("proc")).expect("rm");
    let t = std::time::Instant::now();
    let r = d.scan(&inventory(), &[]);
    eprintln!("next scan of 1000 jobs: {:?}", t.elapsed());
    assert_eq!(r.jobs[999].job_name.as_deref(), Some("n999"));
    assert_eq!(r.jobs[999].cpu_usage_ns, Some(999_000));
}

#[test]
fn environ_fixtures_are_nul_separated() {
    // Guards against an editor or a git setting turning the binary files into text.
    let mut n = 0;
    let mut stack = vec![cgroup_fixture("")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read") {
            let e = e.expect("entry");
            let ty = e.file_type().expect("type");
            if ty.is_dir() {
                stack.push(e.path());
            } else if e.file_name() == "environ" {
                let bytes = std::fs::read(e.path()).expect("read");
                assert!(bytes.ends_with(b"\0"), "{}", e.path().display());
                assert!(!bytes.contains(&b'\n') || e.path().to_string_lossy().contains("hostile"));
                n += 1;
            }
        }
    }
    assert!(n >= 15, "{n} environ files");
}
