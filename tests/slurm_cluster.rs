//! The real one-node Slurm cluster creates the job cgroups and job environment that the
//! exporter's job discovery expects (tests/slurm/README.md). Needs root and the packages of
//! scripts/install-test-deps: without them these tests fail, they do not skip.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use joulebook_tests::slurm::{SlurmCluster, CGROUP_ROOT, JOB_CONTROLLERS};

const START: Duration = Duration::from_secs(30);
const GONE: Duration = Duration::from_secs(20);

/// DefMemPerCPU of slurm-up's slurm.conf, for a one-CPU job.
const JOB_MEMORY_LIMIT: u64 = 500 * 1024 * 1024;

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn read_u64(path: &Path) -> u64 {
    let s = read(path);
    s.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {s:?}: {e}", path.display()))
}

/// "0-2,5" -> [0, 1, 2, 5]
fn cpu_list(s: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
        cpus.extend(a..=b);
    }
    cpus
}

fn environ(pid: u32) -> HashMap<String, String> {
    let raw = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn uid_of(pid: u32) -> u32 {
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no Uid in /proc/{pid}/status"))
}

/// The pid of the process named `name` that the job's batch script runs (the extern step
/// has a `sleep` of its own).
fn job_process(c: &SlurmCluster, id: &str, name: &str) -> u32 {
    let deadline = Instant::now() + START;
    loop {
        let pids = c.step_pids(id, "step_batch");
        if let Some(p) = pids.iter().copied().find(|p| comm(*p) == name) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "job {id}: no process {name} among {pids:?}"
        );
        sleep(Duration::from_millis(20));
    }
}

fn job_dir(c: &SlurmCluster, controller: &str, uid: u32, id: &str) -> PathBuf {
    Path::new(CGROUP_ROOT)
        .join(controller)
        .join(format!("slurm_{}", c.node_name()))
        .join(format!("uid_{uid}"))
        .join(format!("job_{id}"))
}

fn assert_env(env: &HashMap<String, String>, want: &[(&str, &str)]) {
    for (k, v) in want {
        assert_eq!(
            env.get(*k).map(String::as_str),
            Some(*v),
            "{k} in the job's environment"
        );
    }
}

#[test]
fn jobs_get_one_cpu_each_cgroups_accounting_and_environment() {
    let c = SlurmCluster::start();
    let t0 = Instant::now();
    let busy = c.sbatch(&[
        "-c",
        "1",
        "-J",
        "busy-job",
        "-A",
        "physics",
        "--wrap",
        "sha256sum /dev/zero",
    ]);
    let idle = c.sbatch(&[
        "-c",
        "1",
        "-J",
        "idle-job",
        "-A",
        "biology",
        "--wrap",
        "sleep 600",
    ]);
    let busy_cg = c.wait_for_cgroup(&busy, START);
    let busy_up = t0.elapsed();
    let idle_cg = c.wait_for_cgroup(&idle, START);
    let idle_up = t0.elapsed();
    eprintln!("cgroups running after sbatch: busy {busy_up:?}, idle {idle_up:?}");

    assert_eq!(busy_cg, job_dir(&c, "cpuset", 0, &busy));
    assert_eq!(idle_cg, job_dir(&c, "cpuset", 0, &idle));
    for id in [&busy, &idle] {
        for ctrl in JOB_CONTROLLERS {
            let dir = job_dir(&c, ctrl, 0, id);
            assert!(dir.is_dir(), "{} missing", dir.display());
            assert!(
                dir.join("step_batch").is_dir(),
                "{}/step_batch",
                dir.display()
            );
            // PrologFlags=Contain: every job also has its extern step.
            assert!(
                dir.join("step_extern").is_dir(),
                "{}/step_extern",
                dir.display()
            );
        }
        assert_eq!(
            read_u64(&job_dir(&c, "memory", 0, id).join("memory.limit_in_bytes")),
            JOB_MEMORY_LIMIT,
            "job {id}: memory limit of a one-CPU job (DefMemPerCPU)"
        );
    }
    let mut ids = c.squeue_ids();
    ids.sort();
    let mut want = vec![busy.clone(), idle.clone()];
    want.sort();
    assert_eq!(ids, want);

    // One CPU each, and not the same one.
    let busy_cpus = cpu_list(&read(&busy_cg.join("cpuset.cpus")));
    let idle_cpus = cpu_list(&read(&idle_cg.join("cpuset.cpus")));
    assert_eq!(busy_cpus.len(), 1, "busy job cpuset.cpus {busy_cpus:?}");
    assert_eq!(idle_cpus.len(), 1, "idle job cpuset.cpus {idle_cpus:?}");
    assert_ne!(busy_cpus, idle_cpus, "the two jobs share a CPU");

    // cpuacct.usage (ns): the busy job burns its CPU, the idle one does not.
    let usage = |id: &str| read_u64(&job_dir(&c, "cpuacct", 0, id).join("cpuacct.usage"));
    let (busy0, idle0) = (usage(&busy), usage(&idle));
    let window = Duration::from_secs(2);
    sleep(window);
    let (busy1, idle1) = (usage(&busy), usage(&idle));
    let busy_rate = (busy1 - busy0) as f64 / window.as_nanos() as f64;
    let idle_rate = (idle1 - idle0) as f64 / window.as_nanos() as f64;
    eprintln!(
        "CPU use over {window:?}: busy {busy_rate:.3}, idle {idle_rate:.4}; idle total {idle1} ns"
    );
    // Relative, not absolute: on a loaded 2-core machine the busy job gets what the scheduler
    // gives it, but always far more than a sleeping job (timings belong in benchmarks).
    assert!(
        busy1 - busy0 > 100_000_000,
        "busy job used {busy_rate:.3} CPU"
    );
    assert!(
        busy1 - busy0 > 20 * (idle1 - idle0),
        "busy {busy_rate:.3} CPU vs idle {idle_rate:.4} CPU"
    );
    assert!(idle1 < 200_000_000, "idle job used {idle1} ns in all");

    // The job's own processes carry its identity in their environment, and run as root.
    let busy_pid = job_process(&c, &busy, "sha256sum");
    let idle_pid = job_process(&c, &idle, "sleep");
    for (pid, id, name, account) in [
        (busy_pid, &busy, "busy-job", "physics"),
        (idle_pid, &idle, "idle-job", "biology"),
    ] {
        assert_eq!(uid_of(pid), 0, "pid {pid} runs as root");
        assert_env(
            &environ(pid),
            &[
                ("SLURM_JOB_ID", id),
                ("SLURM_JOB_NAME", name),
                ("SLURM_JOB_ACCOUNT", account),
                ("SLURM_JOB_PARTITION", "debug"),
                ("SLURM_JOB_USER", "root"),
                ("SLURM_JOB_UID", "0"),
            ],
        );
        let procs = read(&job_dir(&c, "cpuacct", 0, id).join("step_batch/task_0/cgroup.procs"));
        assert!(
            procs.split_whitespace().any(|p| p == pid.to_string()),
            "pid {pid} not in job {id}'s cpuacct step_batch/task_0: {procs:?}"
        );
    }

    // Cancelled jobs leave: their cgroups go within a bounded time.
    let t1 = Instant::now();
    c.scancel(&busy);
    c.scancel(&idle);
    c.wait_for_cgroup_gone(&busy, GONE);
    c.wait_for_cgroup_gone(&idle, GONE);
    eprintln!("cgroups gone after scancel: {:?}", t1.elapsed());
}

#[test]
fn jobs_run_as_another_user_with_sbatch_uid() {
    // `nobody` exists on every Debian system; root may submit for any user.
    let c = SlurmCluster::start();
    let id = c.sbatch(&[
        "--uid=nobody",
        "--gid=nogroup",
        "-c",
        "1",
        "-J",
        "user-job",
        "-A",
        "chemistry",
        "--wrap",
        "sleep 600",
    ]);
    let cg = c.wait_for_cgroup(&id, START);
    assert_eq!(cg, job_dir(&c, "cpuset", 65534, &id));
    let pid = job_process(&c, &id, "sleep");
    assert_eq!(uid_of(pid), 65534);
    assert_env(
        &environ(pid),
        &[
            ("SLURM_JOB_ID", &id),
            ("SLURM_JOB_ACCOUNT", "chemistry"),
            ("SLURM_JOB_USER", "nobody"),
            ("SLURM_JOB_UID", "65534"),
            ("SLURM_JOB_GID", "65534"),
        ],
    );
    c.scancel(&id);
    c.wait_for_cgroup_gone(&id, GONE);
}
