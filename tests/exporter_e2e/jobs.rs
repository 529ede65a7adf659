//! Jobs: allocation shares, the idle sampler woken by a job, restarts mid-job, and GPUs (NVIDIA
//! MIG, AMD, Intel) going to the jobs holding them; jobs + unallocated = node throughout.

use super::*;

/// A root holding the two-socket Intel powercap tree and the Slurm cgroup v1 fixture (jobs 101 on
/// CPUs 0-3, all on socket 0; job 102 on CPUs 4,5 (socket 1) and 8 (socket 0)).
fn slurm_node() -> tempfile::TempDir {
    slurm_node_on("intel-2s")
}

/// A root holding hardware fixture `hw` and the Slurm cgroup v1 fixture (jobs 101 and 102).
fn slurm_node_on(hw: &str) -> tempfile::TempDir {
    let dir = copy_fixture(hw);
    joulebook_tests::copy_tree(&fixture("cgroup/slurm-v1"), dir.path());
    dir
}

/// The exporter reading the jobs under `root`, sampling every 100 ms.
fn start_jobs(root: &Path) -> Exporter {
    let mut args = job_args(root);
    args.push("--sample.interval=100ms".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Exporter::start(&refs)
}

/// The GPU energy published for each of `jobs` (id, joules), unallocated and for the node.
fn assert_gpu_split(
    s: &joulebook_tests::Samples,
    jobs: &[(&str, f64)],
    unallocated: f64,
    node: f64,
) {
    for (id, joules) in jobs {
        let got = s.must(&format!(
            "joulebook_job_joules_total{{job_id=\"{id}\",component=\"gpu\"}}"
        ));
        assert_eq!(got, *joules, "job {id}");
    }
    assert_values(
        s,
        &[
            (
                "joulebook_unallocated_joules_total{component=\"gpu\"}",
                unallocated,
            ),
            ("joulebook_node_joules_total{component=\"gpu\"}", node),
        ],
    );
}

#[test]
fn jobs_get_their_allocation_share_and_the_rest_is_unallocated() {
    let dir = slurm_node();
    let root = dir.path();
    let mut args = job_args(root);
    args.extend([
        "--sample.interval=100ms".into(),
        "--jobs.grace-period=1s".into(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    e.wait_samples("rapl", 2.0);
    // +80 J on socket 0, +120 J on socket 1.
    write_value(&pkg(root, 0), 123_456_789 + 80_000_000);
    write_value(&pkg(root, 1), 223_456_789 + 120_000_000);
    e.wait_samples("rapl", 2.0);
    let s = e.samples();
    let job = |id: &str, c: &str| {
        s.must(&format!(
            "joulebook_job_joules_total{{job_id=\"{id}\",component=\"{c}\"}}"
        ))
    };
    // Job 101: 4 of socket 0's 8 CPUs → 40 J. Job 102: 1/8 of socket 0 + 2/8 of socket 1 → 40 J.
    assert_eq!(job("101", "cpu"), 40.0);
    assert_eq!(job("102", "cpu"), 40.0);
    assert_eq!(
        s.must("joulebook_unallocated_joules_total{component=\"cpu\"}"),
        120.0
    );
    let node = s.must("joulebook_node_joules_total{component=\"cpu\"}");
    assert_eq!(job("101", "cpu") + job("102", "cpu") + 120.0, node);
    assert_values(
        &s,
        &[
            ("joulebook_job_allocated_cpus{job_id=\"102\"}", 3.0),
            ("joulebook_jobs_running", 2.0),
        ],
    );
    let info: Vec<_> = s.family("joulebook_job_info");
    assert_eq!(info.len(), 2, "{info:?}");
    assert!(
        info.iter()
            .any(|(k, _)| k.contains("job_id=\"101\"") && k.contains("scheduler=\"slurm\"")),
        "{info:?}"
    );
    promtool_check_metrics(&e.scrape());

    // Job 102 ends: its counters stay for the grace period, then go.
    for ctrl in ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"] {
        let _ = std::fs::remove_dir_all(
            root.join(format!("sys/fs/cgroup/{ctrl}/slurm_node1/uid_1001/job_102")),
        );
    }
    e.wait_samples("rapl", 2.0);
    let s = e.samples();
    assert_eq!(s.must("joulebook_jobs_running"), 1.0);
    assert_eq!(job_value(&s, "102"), Some(40.0));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    e.wait_samples("rapl", 1.0);
    assert_eq!(job_value(&e.samples(), "102"), None);
}

/// `sample_idle_interval`: an idle node is sampled rarely; a job's folders appearing wake the
/// sampler at once, the energy drawn before them stays unallocated, and while jobs run the
/// sampler keeps to `sample_interval`.
#[test]
fn an_idle_node_sleeps_and_a_job_start_wakes_the_sampler() {
    let dir = slurm_node();
    let root = dir.path();
    let ctrls = ["cpuset", "cpu,cpuacct", "memory", "devices", "freezer"];
    let cg = |c: &str, d: &str| root.join("sys/fs/cgroup").join(c).join(d);
    for c in ctrls {
        std::fs::rename(cg(c, "slurm_node1"), cg(c, "later")).unwrap();
    }
    let mut args = job_args(root);
    args.extend([
        "--sample.interval=100ms".into(),
        "--sample.idle-interval=2m".into(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    let rapl = "joulebook_samples_total{source=\"rapl\"}";
    let idle = e.samples().must(rapl);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // Without jobs, no 100 ms cycles (15 in this time), only the wrap bound's (about 33 s).
    assert_eq!(e.samples().must(rapl), idle);
    assert_eq!(e.samples().must("joulebook_jobs_running"), 0.0);
    // +80 J on socket 0 while idle, then the jobs start.
    write_value(&pkg(root, 0), 123_456_789 + 80_000_000);
    for c in ctrls {
        std::fs::rename(cg(c, "later"), cg(c, "slurm_node1")).unwrap();
    }
    let started = std::time::Instant::now();
    while e.samples().get("joulebook_jobs_running") != Some(2.0) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "no wake-up on the job start; log:\n{}",
            e.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let s = e.samples();
    assert_eq!(
        job_value(&s, "101"),
        Some(0.0),
        "nothing from before its start"
    );
    assert_eq!(
        s.must("joulebook_unallocated_joules_total{component=\"cpu\"}"),
        s.must("joulebook_node_joules_total{component=\"cpu\"}")
    );
    assert!(s.must("joulebook_node_joules_total{component=\"cpu\"}") >= 80.0);
    // Jobs run: back to 100 ms.
    e.wait_samples("rapl", 5.0);
}

fn job_value(s: &joulebook_tests::Samples, id: &str) -> Option<f64> {
    s.get(&format!(
        "joulebook_job_joules_total{{job_id=\"{id}\",component=\"cpu\"}}"
    ))
}

/// Kills the exporter (SIGKILL, then SIGTERM) mid-job and restarts it on the same state file: no
/// counter goes back, and the energy drawn while it was down is recovered from the hardware
/// counters (same boot). The restart marker stays through every resume and moves when the state
/// file is gone (the counters start from zero).
#[test]
fn restart_after_sigkill_or_sigterm_loses_nothing() {
    let marker = "joulebook_counters_start_time_seconds";
    let dir = slurm_node();
    let root = dir.path();
    std::fs::create_dir_all(root.join("proc/sys/kernel/random")).unwrap();
    std::fs::write(root.join("proc/sys/kernel/random/boot_id"), "b00t\n").unwrap();
    let state = root.join("state.json");
    let mut args = job_args(root);
    args.extend([
        "--sample.interval=100ms".into(),
        "--state.save-interval=200ms".into(),
        format!("--state.file={}", state.display()),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut socket0 = 123_456_789u64;
    let mut total = 0.0;
    let mut first_start = None;
    for (round, signal) in ["KILL", "TERM", "KILL"].iter().enumerate() {
        let mut e = Exporter::start(&refs);
        e.wait_samples("rapl", 3.0);
        let before = e.samples();
        let m = before.must(marker);
        assert_eq!(
            *first_start.get_or_insert(m),
            m,
            "round {round}: the marker moved"
        );
        if round > 0 {
            // Everything published before the kill is still there, plus the 8 J drawn meanwhile.
            assert_eq!(
                before.must("joulebook_node_joules_total{component=\"cpu\"}"),
                total,
                "round {round}"
            );
        }
        socket0 += 8_000_000;
        total += 8.0;
        write_value(&pkg(root, 0), socket0);
        e.wait_samples("rapl", 4.0);
        let s = e.samples();
        assert_eq!(
            s.must("joulebook_node_joules_total{component=\"cpu\"}"),
            total
        );
        for (k, v) in &before.0 {
            if k.starts_with("joulebook_job_joules_total")
                || k.starts_with("joulebook_node_joules_total")
            {
                assert!(s.must(k) >= *v, "{k} went back");
            }
        }
        let status = e.signal_and_wait(signal);
        assert_eq!(status.success(), *signal == "TERM", "{signal}: {status}");
        // Energy drawn while the exporter is down.
        socket0 += 8_000_000;
        total += 8.0;
        write_value(&pkg(root, 0), socket0);
    }
    let e = Exporter::start(&refs);
    e.wait_samples("rapl", 3.0);
    let s = e.samples();
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"cpu\"}"),
        total
    );
    // Job 101 holds half of socket 0: half of everything socket 0 drew, downtime included.
    assert_eq!(
        s.must("joulebook_job_joules_total{job_id=\"101\",component=\"cpu\"}"),
        total / 2.0
    );
    let first_start = first_start.unwrap_or_default();
    assert_eq!(s.must(marker), first_start);
    // Without the state file the counters start from zero, and the marker says when.
    let mut e = e;
    assert!(e.signal_and_wait("TERM").success());
    std::fs::remove_file(&state).unwrap();
    let e = Exporter::start(&refs);
    e.wait_samples("rapl", 3.0);
    let s = e.samples();
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"cpu\"}"),
        0.0
    );
    assert!(
        s.must(marker) > first_start,
        "{} after {first_start}",
        s.must(marker)
    );
}

/// Jobs on a node whose packages have per-die counters: a die's energy belongs to its socket,
/// so the split is the same as with one counter per socket, and jobs + unallocated = node.
#[test]
fn jobs_share_die_counters_by_socket() {
    let dir = slurm_node_on("intel-clx-ap");
    let root = dir.path();
    let e = start_jobs(root);
    e.wait_samples("rapl", 2.0);
    // Socket 0: +30 J and +50 J on its dies; socket 1: +60 J twice.
    for (i, add_j) in [30u64, 50, 60, 60].into_iter().enumerate() {
        let zone = format!("intel-rapl:{i}");
        write_value(
            &powercap(root, &zone),
            (i as u64 + 1) * 100_000_000 + add_j * 1_000_000,
        );
    }
    e.wait_samples("rapl", 2.0);
    let s = e.samples();
    let job = |id: &str| {
        s.must(&format!(
            "joulebook_job_joules_total{{job_id=\"{id}\",component=\"cpu\"}}"
        ))
    };
    // As with one counter per socket: 4/8 of socket 0; 1/8 of socket 0 + 2/8 of socket 1.
    assert_eq!(job("101"), 40.0);
    assert_eq!(job("102"), 40.0);
    let unallocated = s.must("joulebook_unallocated_joules_total{component=\"cpu\"}");
    assert_eq!(unallocated, 120.0);
    assert_eq!(
        job("101") + job("102") + unallocated,
        s.must("joulebook_node_joules_total{component=\"cpu\"}")
    );
}

/// Jobs on an MI250X node: every component's jobs + unallocated equals the node, the GPU
/// packages included (which job holds an AMD GPU is the job mapping's part; until a job holds
/// one, its energy is unallocated, never lost).
#[test]
fn jobs_and_unallocated_add_up_on_an_amd_gpu_node() {
    let dir = slurm_node_on("amd-mi250x");
    let root = dir.path();
    let mut args = job_args(root);
    args.retain(|a| a != "--source.estimate=off");
    args.push("--sample.interval=100ms".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    e.wait_samples("amdgpu", 2.0);
    set_gpu_counter(root, 0, 24, 1100);
    set_gpu_counter(root, 2, 24, 2030);
    e.wait_samples("amdgpu", 3.0);
    let s = e.samples();
    assert_eq!(s.must("joulebook_jobs_running"), 2.0);
    for c in ["cpu", "dram", "gpu"] {
        let jobs: f64 = s
            .family("joulebook_job_joules_total")
            .iter()
            .filter(|(k, _)| k.contains(&format!("component=\"{c}\"")))
            .map(|(_, v)| v)
            .sum();
        let unallocated = s.must(&format!(
            "joulebook_unallocated_joules_total{{component=\"{c}\"}}"
        ));
        let node = s.must(&format!("joulebook_node_joules_total{{component=\"{c}\"}}"));
        assert!(
            (jobs + unallocated - node).abs() < 1e-6,
            "{c}: jobs {jobs} + unallocated {unallocated} != node {node}"
        );
    }
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        130.0
    );
}

/// AMD GPUs held by jobs: job 101 names both dies of package 0 by ROCm UUID
/// (`ROCR_VISIBLE_DEVICES`) and gets the package's energy; job 102's cgroup allows the render
/// node of card2 (`c 226:130`), package 1's primary die, and gets half the package: the other
/// half, its secondary die's, is held by no job and unallocated. Jobs + unallocated = node.
#[test]
fn amd_gpus_go_to_the_jobs_holding_them() {
    let dir = slurm_node_on("amd-mi250x");
    let root = dir.path();
    std::fs::write(
        root.join("proc/2001/environ"),
        "SLURM_JOB_ID=101\0SLURM_JOB_UID=1000\0CUDA_VISIBLE_DEVICES=0\0\
         ROCR_VISIBLE_DEVICES=GPU-0A4C6F12D3B9E801,GPU-0a4c6f12d3b9e802\0",
    )
    .unwrap();
    std::fs::write(
        root.join("sys/fs/cgroup/devices/slurm_node1/uid_1001/job_102/devices.list"),
        "c 1:3 rwm\nc 226:130 rw\nc 195:255 rwm\n",
    )
    .unwrap();
    let e = start_jobs(root);
    e.wait_samples("amdgpu", 2.0);
    set_gpu_counter(root, 0, 24, 1100);
    set_gpu_counter(root, 2, 24, 2030);
    e.wait_samples("amdgpu", 3.0);
    let s = e.samples();
    let info = s.family("joulebook_job_gpu_info");
    assert_eq!(
        info.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [
            "joulebook_job_gpu_info{job_id=\"101\",gpu_uuid=\"0a4c6f12d3b9e801\"}",
            "joulebook_job_gpu_info{job_id=\"101\",gpu_uuid=\"0a4c6f12d3b9e802\"}",
            "joulebook_job_gpu_info{job_id=\"102\",gpu_uuid=\"1b5d7023e4cafa11\"}",
        ]
    );
    assert_gpu_split(&s, &[("101", 100.0), ("102", 15.0)], 15.0, 130.0);
}

/// MI300X compute partitions (DPX): card0 is two KFD nodes of 152 CUs each; job 101 holds its
/// own partition (ROCm index 0), job 102 the other one (its cgroup allows the partition's render
/// node, `c 226:136`, on the amdgpu_xcp device). card0's energy is counted once and split in
/// halves; card1 and card2, held by no job, are unallocated. Jobs + unallocated = node.
#[test]
fn mi300_partitions_go_to_the_jobs_holding_them() {
    let dir = copy_fixture("amd-mi300x");
    joulebook_tests::copy_tree(&fixture("cgroup/slurm-v1"), dir.path());
    let root = dir.path();
    std::fs::write(
        root.join("proc/2001/environ"),
        "SLURM_JOB_ID=101\0SLURM_JOB_UID=1000\0ROCR_VISIBLE_DEVICES=0\0",
    )
    .unwrap();
    std::fs::write(
        root.join("sys/fs/cgroup/devices/slurm_node1/uid_1001/job_102/devices.list"),
        "c 1:3 rwm\nc 226:136 rw\n",
    )
    .unwrap();
    let mut args = job_args(root);
    args.push("--sample.interval=100ms".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    e.wait_samples("amdgpu", 2.0);
    // v1_5: energy_accumulator at byte 88 (card0); v1_6: at byte 16 (card1).
    set_gpu_counter(root, 0, 88, 5000 + 60);
    set_gpu_counter(root, 1, 16, 7000 + 70);
    e.wait_samples("amdgpu", 3.0);
    let s = e.samples();
    assert_eq!(
        s.family("joulebook_job_gpu_info")
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>(),
        [
            "joulebook_job_gpu_info{job_id=\"101\",gpu_uuid=\"7e2d9c3b51a0f4c2\"}",
            "joulebook_job_gpu_info{job_id=\"102\",gpu_uuid=\"7e2d9c3b51a0f4c2-p1\"}",
        ]
    );
    assert_eq!(
        s.must("joulebook_gpu_part_info{gpu_uuid=\"7e2d9c3b51a0f4c2-p1\",parent_gpu_uuid=\"7e2d9c3b51a0f4c2\"}"),
        1.0
    );
    // Counted once: the partition has no energy series of its own.
    assert_eq!(s.family("joulebook_amdgpu_joules_total").len(), 3);
    let gpu = |id: &str| {
        s.must(&format!(
            "joulebook_job_joules_total{{job_id=\"{id}\",component=\"gpu\"}}"
        ))
    };
    assert_eq!(gpu("101"), 30.0);
    assert_eq!(gpu("102"), 30.0);
    let node = s.must("joulebook_node_joules_total{component=\"gpu\"}");
    let card2 = s.must("joulebook_amdgpu_joules_total{gpu_uuid=\"7e2d9c3b51a0f4c4\"}");
    let unallocated = s.must("joulebook_unallocated_joules_total{component=\"gpu\"}");
    assert!(
        (node - (130.0 + card2)).abs() < 1e-6,
        "{node} vs 130 + {card2}"
    );
    assert!(
        (unallocated - (70.0 + card2)).abs() < 1e-6,
        "unallocated {unallocated} vs 70 + {card2}"
    );
}

/// MIG through the real nvml-wrapper path: an A100 (98 SMs) with a 3g instance (42 SMs) held by
/// job 101 (its MIG UUID in `CUDA_VISIBLE_DEVICES`) and a 2g instance (28 SMs) held by job 102
/// (mapping file `0.2`: GPU 0, GPU instance 2); the 28 SMs in no instance are unallocated. The
/// parts add up to the GPU's energy exactly.
#[test]
fn mig_instances_share_their_gpu_by_streaming_multiprocessors() {
    mig_split_with(&|root| {
        let map = root.join("run/gpu-map");
        std::fs::create_dir_all(&map).unwrap();
        std::fs::write(map.join("0.2"), "102\n").unwrap();
        vec![format!("--jobs.gpu-mapping-dir={}", map.display())]
    });
}

/// The same split with job 102 found through its cgroup v1 device list, as Slurm writes it on a
/// MIG node: the GPU's `/dev/nvidia0` and the capability devices of GPU instance 2
/// (`gpu0/gi2/access` 21 and `gpu0/gi2/ci0/access` 22 in the driver's `mig-minors`, under the
/// `nvidia-caps` major of /proc/devices). It holds the instance, not the whole GPU.
#[test]
fn mig_instances_are_found_by_their_capability_devices() {
    mig_split_with(&|root| {
        std::fs::write(
            root.join("proc/devices"),
            "Character devices:\n  1 mem\n195 nvidia\n236 nvidia-caps\n510 nvidia-uvm\n\n\
             Block devices:\n  8 sd\n",
        )
        .unwrap();
        // The driver's table: every minor it reserves, 32 GPUs × 15 GPU instances × 8 compute
        // instances (NVIDIA MIG User Guide, "Device Nodes and Capabilities").
        let mut minors = String::from("config 1\nmonitor 2\n");
        let mut m = 3;
        for gpu in 0..32 {
            for gi in 0..15 {
                minors.push_str(&format!("gpu{gpu}/gi{gi}/access {m}\n"));
                m += 1;
                for ci in 0..8 {
                    minors.push_str(&format!("gpu{gpu}/gi{gi}/ci{ci}/access {m}\n"));
                    m += 1;
                }
            }
        }
        let caps = root.join("proc/driver/nvidia-caps");
        std::fs::create_dir_all(&caps).unwrap();
        std::fs::write(caps.join("mig-minors"), minors).unwrap();
        std::fs::write(
            root.join("sys/fs/cgroup/devices/slurm_node1/uid_1001/job_102/devices.list"),
            "c 1:3 rwm\nc 195:255 rwm\nc 195:0 rwm\nc 236:21 r\nc 236:22 r\n",
        )
        .unwrap();
        Vec::new()
    });
}

/// A100 with two MIG instances; job 101 names its instance by UUID, `setup` maps job 102 to
/// the other one and returns the exporter's extra flags.
fn mig_split_with(setup: &dyn Fn(&Path) -> Vec<String>) {
    use joulebook_tests::fake_nvml::{
        build_fake_nvml, write_state, FakeGpu, FakeNvmlState, FakeValue,
    };
    let dir = slurm_node();
    let root = dir.path();
    let lib = build_fake_nvml(root);
    let state_path = root.join("nvml.state");
    let mig_a = "MIG-aaaaaaaa-1111-5000-8000-000000000000";
    let mig_b = "MIG-bbbbbbbb-2222-5000-8000-000000000000";
    let mut state = FakeNvmlState {
        gpus: vec![FakeGpu::a100_mig(
            0,
            1_000_000,
            &[(1, 42, mig_a), (2, 28, mig_b)],
        )],
        ..Default::default()
    };
    write_state(&state_path, &state);
    std::fs::write(
        root.join("proc/2001/environ"),
        format!("SLURM_JOB_ID=101\0SLURM_JOB_UID=1000\0CUDA_VISIBLE_DEVICES={mig_a}\0"),
    )
    .unwrap();
    let mut args = job_args(root);
    args.retain(|a| a != "--source.nvml=off");
    args.extend([
        "--source.nvml=on".to_string(),
        format!("--nvml.library={}", lib.display()),
        "--sample.interval=100ms".into(),
    ]);
    args.extend(setup(root));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start_with_env(&refs, &[("FAKE_NVML_STATE", state_path.as_path())]);
    e.wait_samples("nvml", 3.0);
    // +98 J.
    state.gpus[0].energy_mj = FakeValue::Value(1_098_000);
    write_state(&state_path, &state);
    e.wait_samples("nvml", 3.0);
    let s = e.samples();
    let info = s.family("joulebook_job_gpu_info");
    assert_eq!(
        info.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [
            format!("joulebook_job_gpu_info{{job_id=\"101\",gpu_uuid=\"{mig_a}\"}}"),
            format!("joulebook_job_gpu_info{{job_id=\"102\",gpu_uuid=\"{mig_b}\"}}"),
        ]
    );
    assert_gpu_split(&s, &[("101", 42.0), ("102", 28.0)], 28.0, 98.0);
}

/// Intel GPUs held by jobs: job 101's `ZE_AFFINITY_MASK=0.1` (tile 1 of Level Zero device 0, the
/// first discrete GPU in PCI order) and job 102's cgroup allowing `renderD130` (card2). Each gets
/// its card's energy; jobs + unallocated = node.
#[test]
fn intel_gpus_go_to_the_jobs_holding_them() {
    let dir = slurm_node_on("intel-gpus");
    let root = dir.path();
    std::fs::write(
        root.join("proc/2001/environ"),
        "SLURM_JOB_ID=101\0SLURM_JOB_UID=1000\0CUDA_VISIBLE_DEVICES=0\0ZE_AFFINITY_MASK=0.1\0",
    )
    .unwrap();
    std::fs::write(
        root.join("sys/fs/cgroup/devices/slurm_node1/uid_1001/job_102/devices.list"),
        "c 1:3 rwm\nc 226:130 rw\n",
    )
    .unwrap();
    let e = start_jobs(root);
    e.wait_samples("intel_gpu", 2.0);
    let xe = root.join("sys/class/drm/card1/device/hwmon/hwmon6");
    let i915 = root.join("sys/class/drm/card2/device/hwmon");
    write_value(&xe.join("energy1_input"), 120_000_000 + 30_000_000);
    write_value(&i915.join("hwmon7/energy1_input"), 300_000_000 + 10_000_000);
    e.wait_samples("intel_gpu", 3.0);
    let s = e.samples();
    assert_gpu_split(&s, &[("101", 30.0), ("102", 10.0)], 0.0, 40.0);
}
