//! Jobs whose users try to exhaust the exporter or blind its accounting, with the numbers of
//! issue 12 as assertions: 125 jobs whose four metadata variables hold 128 KiB each (329 MB and a
//! 31 MB state file before), a job naming 10,001 unknown GPUs in `SLURM_JOB_GPUS` (11,000 log
//! lines a second and the jobs source down before), a job naming 12,000 made-up GPU UUIDs in
//! `CUDA_VISIBLE_DEVICES` on a node without NVML (`allocated_gpus 12000` before), and a job
//! forging its account and uid. An honest job beside them keeps its exact share.
//!
//! The built exporter runs on a fixture tree: the two-socket Intel powercap tree and a cgroup v2
//! Slurm node generated here.

use joulebook_tests::fake_nvml::{build_fake_nvml, write_state, FakeGpu, FakeNvmlState};
use joulebook_tests::{copy_fixture, environ, write_file, write_value, Exporter, Samples};
use std::path::Path;
use std::time::Duration;

/// Flooding jobs, and the size of each of their four metadata variables.
const FLOOD_JOBS: u32 = 125;
const FLOOD_BYTES: usize = 128 * 1024;
/// What the exporter may use at its peak with them (resident set, `VmHWM`): the whole flood is
/// 64 MiB of environment, and none of it may stay.
const MAX_RSS_BYTES: u64 = 48 << 20;
/// The state file with them: 125 jobs of capped labels, in two slots (the state about 135 KiB of
/// compact JSON, each slot a quarter larger) after a 4 KiB header.
const MAX_STATE_BYTES: u64 = (4 << 10) + 2 * (200 << 10);

/// A Slurm cgroup v2 job `id` on `cpus`, with one process `pid` of `uid` and its environment.
fn job(root: &Path, id: u32, cpus: &str, pid: u32, uid: u32, env: &[(&str, &str)]) {
    let dir = root.join(format!(
        "sys/fs/cgroup/system.slice/slurmstepd.scope/job_{id}"
    ));
    write_file(&dir.join("cgroup.procs"), b"");
    write_file(
        &dir.join("cpuset.cpus.effective"),
        format!("{cpus}\n").as_bytes(),
    );
    write_file(&dir.join("cpu.stat"), b"usage_usec 1000\n");
    write_file(&dir.join("memory.max"), b"max\n");
    write_file(
        &dir.join("step_0/user/task_0/cgroup.procs"),
        format!("{pid}\n").as_bytes(),
    );
    let id = id.to_string();
    let mut all = vec![("SLURM_JOB_ID", id.as_str())];
    all.extend_from_slice(env);
    write_file(&root.join(format!("proc/{pid}/environ")), &environ(&all));
    write_file(
        &root.join(format!("proc/{pid}/status")),
        format!("Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n").as_bytes(),
    );
}

/// The node: an honest job 1 on CPUs 0-3 (half of socket 0), the flood, and the GPU liars.
fn hostile_node() -> tempfile::TempDir {
    let dir = copy_fixture("intel-2s");
    let root = dir.path();
    write_file(
        &root.join("sys/fs/cgroup/cgroup.controllers"),
        b"cpuset cpu memory\n",
    );
    write_file(
        &root.join("etc/passwd"),
        b"root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\nmallory:x:1001:1001::/:/bin/sh\n",
    );
    job(
        root,
        1,
        "0-3",
        10,
        1000,
        &[
            ("SLURM_JOB_ACCOUNT", "physics"),
            ("SLURM_JOB_NAME", "honest"),
        ],
    );
    let big = "A".repeat(FLOOD_BYTES);
    for n in 0..FLOOD_JOBS {
        let vars = [
            ("SLURM_JOB_ACCOUNT", big.as_str()),
            ("SLURM_JOB_PARTITION", big.as_str()),
            ("SLURM_JOB_NAME", big.as_str()),
            ("SLURM_JOB_USER", big.as_str()),
        ];
        // No CPUs: the flood must not change anyone's share.
        job(root, 1000 + n, "", 1000 + n, 1001, &vars);
    }
    let unknown: Vec<String> = (0..10_001).map(|i| (i + 100).to_string()).collect();
    job(
        root,
        2000,
        "",
        2000,
        1001,
        &[("SLURM_JOB_GPUS", &unknown.join(","))],
    );
    let uuids: Vec<String> = (0..12_000)
        .map(|i| format!("GPU-{i:08x}-dead-beef-0000-000000000000"))
        .collect();
    job(
        root,
        3000,
        "",
        3000,
        1001,
        &[("CUDA_VISIBLE_DEVICES", &uuids.join(","))],
    );
    // A forger: uid 0 and another project claimed by a process the kernel says is mallory's.
    job(
        root,
        4000,
        "",
        4000,
        1001,
        &[
            ("SLURM_JOB_UID", "0"),
            ("SLURM_JOB_USER", "root"),
            ("SLURM_JOB_ACCOUNT", "victim-project"),
        ],
    );
    dir
}

fn args(root: &Path, state: &Path) -> Vec<String> {
    vec![
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.procfs={}", root.join("proc").display()),
        format!("--path.cgroupfs={}", root.join("sys/fs/cgroup").display()),
        format!("--path.rootfs={}", root.display()),
        format!(
            "--jobs.record-dir={}",
            root.join("run/joulebook/jobs").display()
        ),
        "--jobs.enabled=on".into(),
        "--source.estimate=off".into(),
        "--sample.interval=100ms".into(),
        format!("--state.file={}", state.display()),
        "--state.save-interval=200ms".into(),
    ]
}

fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

fn info<'a>(s: &'a Samples, id: &str) -> &'a str {
    s.family("joulebook_job_info")
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| k.contains(&format!("job_id=\"{id}\"")))
        .unwrap_or_else(|| panic!("no job_info for {id}"))
}

/// With NVML (4 GPUs): the flood is cut and forgotten, the unknown GPUs are one problem logged
/// once, the jobs source stays up, the forger is named by the kernel, and the honest job gets
/// exactly its share.
#[test]
fn hostile_jobs_neither_exhaust_the_exporter_nor_blind_it() {
    let dir = hostile_node();
    let root = dir.path();
    let lib_dir = tempfile::tempdir().expect("tempdir");
    let lib = build_fake_nvml(lib_dir.path());
    let nvml_state = lib_dir.path().join("nvml.state");
    let gpus: Vec<FakeGpu> = (0..4).map(|n| FakeGpu::h100(n, 1_000_000)).collect();
    write_state(
        &nvml_state,
        &FakeNvmlState {
            gpus,
            ..Default::default()
        },
    );
    let state = root.join("state.json");
    let mut a = args(root, &state);
    a.push("--source.nvml=on".into());
    a.push(format!("--nvml.library={}", lib.display()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let e = Exporter::start_with_env(&refs, &[("FAKE_NVML_STATE", nvml_state.as_path())]);
    let s = e.wait_for("every job", Duration::from_secs(30), |s| {
        s.get("joulebook_jobs_running") == Some(f64::from(FLOOD_JOBS + 4))
    });
    assert_eq!(s.must("joulebook_source_up{source=\"jobs\"}"), 1.0);
    // Labels cut at 256 bytes.
    let flood = info(&s, "1000");
    let cut = format!("account=\"{}\"", "A".repeat(256));
    assert!(flood.contains(&cut), "{}", &flood[..300.min(flood.len())]);
    assert!(flood.len() < 2048, "{} bytes of labels", flood.len());
    // 10,001 unknown GPUs: none counted.
    assert_eq!(s.must("joulebook_job_allocated_gpus{job_id=\"2000\"}"), 0.0);
    // The forger: the kernel's uid and name, the claimed account marked as such.
    let forger = info(&s, "4000");
    for want in [
        "user=\"mallory\"",
        "uid=\"1001\"",
        "account=\"victim-project\"",
        "metadata=\"environment\"",
    ] {
        assert!(forger.contains(want), "{forger} lacks {want}");
    }

    // The honest job: +80 J on socket 0, of which its 4 of 8 CPUs get exactly half.
    e.wait_samples("rapl", 2.0);
    let before = e.samples();
    let joules = |s: &Samples| s.must("joulebook_job_joules_total{job_id=\"1\",component=\"cpu\"}");
    let node = |s: &Samples| s.must("joulebook_node_joules_total{component=\"cpu\"}");
    let pkg0 = root.join("sys/class/powercap/intel-rapl:0/energy_uj");
    write_value(&pkg0, 123_456_789 + 80_000_000);
    let after = e.wait_for("80 J", Duration::from_secs(20), |s| {
        node(s) == node(&before) + 80.0
    });
    assert_eq!(joules(&after) - joules(&before), 40.0);
    let all_jobs: f64 = after
        .family("joulebook_job_joules_total")
        .iter()
        .filter(|(k, _)| k.contains("component=\"cpu\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        all_jobs + after.must("joulebook_unallocated_joules_total{component=\"cpu\"}"),
        node(&after)
    );

    // A few more seconds of scans (about 20): nothing is logged again. The first scan found
    // 128 problems (the unknown GPUs, and 126 jobs claiming another user than the kernel's):
    // 20 lines, then one counting the rest.
    std::thread::sleep(Duration::from_secs(2));
    let log = e.log_text();
    let problems = log.matches("job discovery problem source=").count();
    assert_eq!(problems, 20, "{log}");
    assert_eq!(
        log.matches("more job discovery problems not logged")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("SLURM_JOB_GPUS of slurm job 2000 names GPU index 100 and")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        e.samples().must("joulebook_source_up{source=\"jobs\"}"),
        1.0
    );

    let rss = peak_rss_bytes(e.child.id());
    assert!(rss <= MAX_RSS_BYTES, "peak resident set {rss} bytes");
    let state_bytes = std::fs::metadata(&state).expect("state file").len();
    assert!(
        state_bytes <= MAX_STATE_BYTES,
        "state file {state_bytes} bytes"
    );
    eprintln!("peak RSS {rss} bytes, state file {state_bytes} bytes");
}

/// On a node without NVML, 12,000 made-up UUIDs in `CUDA_VISIBLE_DEVICES` count no GPU.
#[test]
fn made_up_gpus_count_nothing_on_a_node_without_nvml() {
    let dir = hostile_node();
    let root = dir.path();
    let state = root.join("state.json");
    let mut a = args(root, &state);
    a.push("--source.nvml=off".into());
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    let s = e.wait_for("every job", Duration::from_secs(30), |s| {
        s.get("joulebook_jobs_running") == Some(f64::from(FLOOD_JOBS + 4))
    });
    assert_eq!(s.must("joulebook_job_allocated_gpus{job_id=\"3000\"}"), 0.0);
    assert!(s.family("joulebook_job_gpu_info").is_empty());
    assert_eq!(s.must("joulebook_source_up{source=\"jobs\"}"), 1.0);
}
