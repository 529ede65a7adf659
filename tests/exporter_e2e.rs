//! The built `joulebook-exporter` on fixture trees, on 127.0.0.1.

use joulebook_tests::{
    copy_fixture, fixture, http_get, promtool_check_metrics, write_value, Exporter,
};
use std::path::Path;
use std::process::Command;

fn fixture_args(root: &Path) -> Vec<String> {
    vec![
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.procfs={}", root.join("proc").display()),
        "--source.nvml=off".into(),
        // Never this machine's own cgroups: fixtures only.
        "--jobs.enabled=off".into(),
    ]
}

fn start(root: &Path, extra: &[&str]) -> Exporter {
    let mut args = fixture_args(root);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Exporter::start(&refs)
}

/// Replaces values that change from run to run, so the rest can be compared exactly.
fn mask_volatile(text: &str) -> String {
    let volatile = [
        "joulebook_sample_duration_seconds",
        "joulebook_last_sample_timestamp_seconds",
        "joulebook_counters_start_time_seconds",
    ];
    let mut out = String::new();
    for line in text.lines() {
        match line.rsplit_once(' ') {
            Some((series, _)) if volatile.iter().any(|v| series.starts_with(v)) => {
                out.push_str(series);
                out.push_str(" <volatile>\n");
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn golden(name: &str) {
    let root = fixture(name);
    // A long interval: the scrape sees exactly the first sample.
    let e = start(&root, &["--sample.interval=60s"]);
    check_golden(name, &root.join("metrics.golden"), &e.scrape());
}

fn check_golden(name: &str, path: &Path, text: &str) {
    promtool_check_metrics(text);
    let got = mask_volatile(text);
    if std::env::var_os("JOULEBOOK_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with JOULEBOOK_UPDATE_GOLDEN=1 cargo test -p joulebook-tests --test exporter_e2e golden",
            path.display()
        )
    });
    assert_eq!(
        got,
        want,
        "{name}: /metrics differs from {} (refresh with JOULEBOOK_UPDATE_GOLDEN=1 if intended)",
        path.display()
    );
}

#[test]
fn golden_intel_two_sockets() {
    golden("intel-2s");
}

#[test]
fn golden_amd_epyc() {
    golden("amd-epyc");
}

#[test]
fn golden_no_powercap() {
    golden("no-powercap");
}

#[test]
fn golden_wrapping() {
    golden("wrapping");
}

#[test]
fn intel_zones_are_mapped_without_double_counting() {
    let e = start(&fixture("intel-2s"), &["--sample.interval=60s"]);
    let s = e.samples();
    // One series per socket; the MMIO twin of package-0 adds none.
    assert_eq!(s.family("joulebook_rapl_package_joules_total").len(), 2);
    assert_eq!(s.family("joulebook_rapl_core_joules_total").len(), 2);
    assert_eq!(s.family("joulebook_rapl_uncore_joules_total").len(), 1);
    assert_eq!(s.family("joulebook_rapl_dram_joules_total").len(), 2);
    assert_eq!(s.family("joulebook_rapl_psys_joules_total").len(), 1);
    assert_eq!(
        s.must(
            "joulebook_node_component_info{component=\"cpu\",method=\"measured\",source=\"rapl\"}"
        ),
        1.0
    );
    assert_eq!(
        s.must(
            "joulebook_node_component_info{component=\"dram\",method=\"measured\",source=\"rapl\"}"
        ),
        1.0
    );
    assert_eq!(s.must("joulebook_node_sockets"), 2.0);
    assert_eq!(s.must("joulebook_node_physical_cores"), 8.0);
    assert_eq!(s.must("joulebook_node_logical_cpus"), 16.0);
    // Xeon Gold 6248 is 150 W per socket in the built-in table.
    assert_eq!(s.must("joulebook_node_cpu_tdp_watts"), 300.0);
}

#[test]
fn amd_dram_is_estimated_and_marked_so() {
    let e = start(&fixture("amd-epyc"), &["--sample.interval=60s"]);
    let s = e.samples();
    assert_eq!(
        s.must(
            "joulebook_node_component_info{component=\"cpu\",method=\"measured\",source=\"rapl\"}"
        ),
        1.0
    );
    assert_eq!(
        s.must("joulebook_node_component_info{component=\"dram\",method=\"estimated\",source=\"estimate\"}"),
        1.0
    );
    assert!(s.family("joulebook_rapl_dram_joules_total").is_empty());
}

/// Advances the fixture's counter across a wrap while the exporter runs, and checks the exact
/// joules: 999 J → wrap at 1000 J → 29 J is 30 J, then +50 J.
#[test]
fn counter_wrap_is_corrected_exactly_by_the_running_exporter() {
    let dir = copy_fixture("wrapping");
    let energy = dir.path().join("sys/class/powercap/intel-rapl:0/energy_uj");
    let e = start(
        dir.path(),
        &["--sample.interval=100ms", "--source.estimate=off"],
    );
    e.wait_samples("rapl", 2.0);
    write_value(&energy, 29_000_000);
    e.wait_samples("rapl", 2.0);
    write_value(&energy, 79_000_000);
    e.wait_samples("rapl", 2.0);
    let s = e.samples();
    assert_eq!(
        s.must("joulebook_rapl_package_joules_total{socket=\"0\"}"),
        80.0
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"cpu\"}"),
        80.0
    );
    assert_eq!(s.must("joulebook_wraps_total{source=\"rapl\"}"), 1.0);
    assert_eq!(
        s.must("joulebook_samples_dropped_total{source=\"rapl\",reason=\"implausible\"}"),
        0.0
    );
}

/// Garbage in a counter file marks RAPL down with one log line naming the file; the exporter
/// keeps serving, totals do not move back, and the energy of the bad period is counted once the
/// file is readable again.
#[test]
fn garbage_marks_the_source_down_and_loses_nothing() {
    let dir = copy_fixture("wrapping");
    let energy = dir.path().join("sys/class/powercap/intel-rapl:0/energy_uj");
    write_value(&energy, 100_000_000);
    let e = start(
        dir.path(),
        &["--sample.interval=100ms", "--source.estimate=off"],
    );
    e.wait_samples("rapl", 2.0);
    std::fs::write(&energy, "not-a-number\n").unwrap();
    e.wait_samples("rapl", 3.0);
    let s = e.samples();
    assert_eq!(s.must("joulebook_source_up{source=\"rapl\"}"), 0.0);
    assert_eq!(
        s.must("joulebook_rapl_package_joules_total{socket=\"0\"}"),
        0.0
    );
    let log = e.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("source down")).collect();
    assert_eq!(lines.len(), 1, "one log line for the outage, got:\n{log}");
    assert!(lines[0].contains("intel-rapl:0/energy_uj") && lines[0].contains("not-a-number"));
    let (status, _, page) = http_get(&e.url("/"), None).unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("down") && page.contains("not-a-number"),
        "{page}"
    );
    write_value(&energy, 140_000_000);
    e.wait_samples("rapl", 2.0);
    let s = e.samples();
    assert_eq!(s.must("joulebook_source_up{source=\"rapl\"}"), 1.0);
    assert_eq!(
        s.must("joulebook_rapl_package_joules_total{socket=\"0\"}"),
        40.0
    );
    assert!(e.log_text().contains("source is up again"));
}

#[test]
fn openmetrics_by_negotiation_and_landing_page() {
    let e = start(&fixture("intel-2s"), &["--sample.interval=60s"]);
    let (status, ctype, body) = http_get(
        &e.url("/metrics"),
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# UNIT joulebook_rapl_package_joules joules"));
    let (_, ctype, body) = http_get(&e.url("/metrics"), Some("text/plain")).unwrap();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(!body.contains("# EOF"));
    let (status, _, page) = http_get(&e.url("/"), None).unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("node-intel") && page.contains("rapl"),
        "{page}"
    );
    let (status, _, _) = http_get(&e.url("/nope"), None).unwrap();
    assert_eq!(status, 404);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut e = start(&fixture("no-powercap"), &["--sample.interval=100ms"]);
    let status = e.signal_and_wait("TERM");
    assert!(status.success(), "{status}");
    assert!(e.log_text().contains("shutting down"));
}

fn run_exporter(args: &[&str]) -> (i32, String) {
    let out = Command::new(joulebook_tests::binary("joulebook-exporter"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn bad_configuration_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("joulebook.yaml");
    std::fs::write(
        &cfg,
        "sources:\n  rapl:\n    enabled: on\n    max_zone_wats: 10\n",
    )
    .unwrap();
    let (code, out) = run_exporter(&["--config.file", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("joulebook.yaml") && out.contains("line 4") && out.contains("max_zone_wats"),
        "{out}"
    );

    std::fs::write(&cfg, "sample_interval: 120s\n").unwrap();
    let (code, out) = run_exporter(&["--config.file", cfg.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("sample_interval") && out.contains("line 1"),
        "{out}"
    );

    let (code, out) = run_exporter(&["--sample.interval", "soon"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--sample.interval") && out.contains("soon"),
        "{out}"
    );
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("j.yaml");
    std::fs::write(
        &cfg,
        "sample_interval: 2s\nsources:\n  estimate:\n    cpu_tdp_watts: 95\n",
    )
    .unwrap();
    let (code, out) = run_exporter(&[
        "--config.file",
        cfg.to_str().unwrap(),
        "--sample.interval=500ms",
        "--check-config",
    ]);
    assert_eq!(code, 0, "{out}");
    // The flag wins over the file; the file wins over the defaults.
    assert!(out.contains("sample_interval: 0.5s"), "{out}");
    assert!(out.contains("cpu_tdp_watts: 95"), "{out}");
}

/// The binary against the fake libnvidia-ml built from C: GPUs by UUID with their info, exact
/// energy from the total-energy counter, a GPU falling off the bus while the other is still read,
/// and a counter reset (driver reload) absorbed without losing energy.
#[test]
fn gpus_through_the_real_nvml_code_path() {
    use joulebook_tests::fake_nvml::{build_fake_nvml, write_state, FakeGpu, FakeNvmlState};
    let dir = tempfile::tempdir().unwrap();
    let lib = build_fake_nvml(dir.path());
    let state_path = dir.path().join("nvml.state");
    let mut state = FakeNvmlState {
        gpus: vec![FakeGpu::h100(0, 1_000_000), FakeGpu::h100(1, 5_000_000)],
        ..Default::default()
    };
    write_state(&state_path, &state);
    let root = fixture("no-powercap");
    let e = Exporter::start_with_env(
        &[
            &format!("--path.sysfs={}", root.join("sys").display()),
            &format!("--path.procfs={}", root.join("proc").display()),
            "--source.nvml=on",
            &format!("--nvml.library={}", lib.display()),
            "--sample.interval=100ms",
        ],
        &[("FAKE_NVML_STATE", state_path.as_path())],
    );
    e.wait_samples("nvml", 2.0);
    let uuid0 = state.gpus[0].uuid.clone();
    let uuid1 = state.gpus[1].uuid.clone();
    // +20 J and +30 J.
    state.gpus[0].energy_mj = joulebook_tests::fake_nvml::FakeValue::Value(1_020_000);
    state.gpus[1].energy_mj = joulebook_tests::fake_nvml::FakeValue::Value(5_030_000);
    write_state(&state_path, &state);
    e.wait_samples("nvml", 2.0);
    let s = e.samples();
    let g = |m: &str, u: &str| s.must(&format!("{m}{{gpu_uuid=\"{u}\"}}"));
    assert_eq!(g("joulebook_gpu_joules_total", &uuid0), 20.0);
    assert_eq!(g("joulebook_gpu_joules_total", &uuid1), 30.0);
    assert_eq!(g("joulebook_gpu_power_watts", &uuid0), 300.0);
    assert_eq!(g("joulebook_gpu_power_limit_watts", &uuid0), 700.0);
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        50.0
    );
    assert_eq!(
        s.must(&format!(
            "joulebook_gpu_info{{gpu_uuid=\"{uuid1}\",index=\"1\",model=\"NVIDIA H100 80GB HBM3\",pci_bus_id=\"00000000:18:00.0\"}}"
        )),
        1.0
    );
    assert_eq!(
        s.must(
            "joulebook_node_component_info{component=\"gpu\",method=\"measured\",source=\"nvml\"}"
        ),
        1.0
    );
    promtool_check_metrics(&e.scrape());

    // GPU 1 falls off the bus: NVML is down, GPU 0 still counts.
    state.gpus[1].lost = true;
    state.gpus[0].energy_mj = joulebook_tests::fake_nvml::FakeValue::Value(1_030_000);
    write_state(&state_path, &state);
    e.wait_samples("nvml", 2.0);
    let s = e.samples();
    assert_eq!(s.must("joulebook_source_up{source=\"nvml\"}"), 0.0);
    assert_eq!(
        s.must(&format!(
            "joulebook_gpu_joules_total{{gpu_uuid=\"{uuid0}\"}}"
        )),
        30.0
    );
    assert_eq!(
        s.must(&format!(
            "joulebook_gpu_joules_total{{gpu_uuid=\"{uuid1}\"}}"
        )),
        30.0
    );
    assert!(e.log_text().contains(&uuid1), "{}", e.log_text());

    // Back on the bus after a driver reload: its counter restarted near 0 (7 J since reload).
    state.gpus[1].lost = false;
    state.gpus[1].energy_mj = joulebook_tests::fake_nvml::FakeValue::Value(7_000);
    write_state(&state_path, &state);
    e.wait_samples("nvml", 2.0);
    let s = e.samples();
    assert_eq!(s.must("joulebook_source_up{source=\"nvml\"}"), 1.0);
    assert_eq!(
        s.must(&format!(
            "joulebook_gpu_joules_total{{gpu_uuid=\"{uuid1}\"}}"
        )),
        37.0
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        67.0
    );
    assert!(s.must("joulebook_wraps_total{source=\"nvml\"}") >= 1.0);
}

/// A root holding the two-socket Intel powercap tree and the Slurm cgroup v1 fixture (jobs 101 on
/// CPUs 0-3, all on socket 0; job 102 on CPUs 4,5 (socket 1) and 8 (socket 0)).
fn slurm_node() -> tempfile::TempDir {
    let dir = copy_fixture("intel-2s");
    joulebook_tests::copy_tree(&fixture("cgroup/slurm-v1"), dir.path());
    dir
}

fn job_args(root: &Path) -> Vec<String> {
    let mut a = fixture_args(root);
    a.retain(|x| x != "--jobs.enabled=off");
    a.extend([
        format!("--path.cgroupfs={}", root.join("sys/fs/cgroup").display()),
        format!("--path.rootfs={}", root.display()),
        "--jobs.enabled=on".into(),
        "--source.estimate=off".into(),
    ]);
    a
}

/// The Intel node with the jobs of cgroup fixture `jobs`, after its first sample: job series
/// at 0, metadata from the prolog's records, the kernel and the jobs' environments.
fn golden_jobs(jobs: &str) {
    let dir = copy_fixture("intel-2s");
    joulebook_tests::copy_tree(&fixture(&format!("cgroup/{jobs}")), dir.path());
    let mut args = job_args(dir.path());
    args.push("--sample.interval=60s".into());
    args.push(format!(
        "--jobs.record-dir={}",
        dir.path().join("run/joulebook/jobs").display()
    ));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    check_golden(
        jobs,
        &fixture(&format!("cgroup/{jobs}")).join("metrics.golden"),
        &e.scrape(),
    );
}

#[test]
fn golden_slurm_jobs() {
    golden_jobs("slurm-v1");
}

/// Slurm 26.05: jobs in SLUID folders, published under their numeric ids with their SLUIDs.
#[test]
fn golden_slurm_sluid_jobs() {
    golden_jobs("slurm-sluid");
}

/// A node upgraded to 26.05 while a `job_<id>` job still runs.
#[test]
fn golden_slurm_upgrade_jobs() {
    golden_jobs("slurm-upgrade");
}

fn pkg(root: &Path, socket: u32) -> std::path::PathBuf {
    root.join(format!("sys/class/powercap/intel-rapl:{socket}/energy_uj"))
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
    assert_eq!(s.must("joulebook_job_allocated_cpus{job_id=\"102\"}"), 3.0);
    assert_eq!(s.must("joulebook_jobs_running"), 2.0);
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

#[test]
fn golden_intel_dies() {
    golden("intel-clx-ap");
}

#[test]
fn golden_amd_mirrored_dies() {
    golden("amd-zen4-ccd");
}

#[test]
fn golden_amd_mi250x() {
    golden("amd-mi250x");
}

#[test]
fn golden_amd_mi300x() {
    golden("amd-mi300x");
}

fn powercap(dir: &Path, zone: &str) -> std::path::PathBuf {
    dir.join("sys/class/powercap").join(zone).join("energy_uj")
}

/// Cascade Lake-AP: each die's counter is its own, so all are added; the die is a label.
#[test]
fn intel_dies_are_each_counted() {
    let dir = copy_fixture("intel-clx-ap");
    let e = start(dir.path(), &["--sample.interval=100ms"]);
    e.wait_samples("rapl", 2.0);
    // Fixture values: die i's package counter is (i + 1) × 100 J.
    for (i, add_j) in [10u64, 20, 30, 40].into_iter().enumerate() {
        let zone = format!("intel-rapl:{i}");
        write_value(
            &powercap(dir.path(), &zone),
            (i as u64 + 1) * 100_000_000 + add_j * 1_000_000,
        );
    }
    e.wait_samples("rapl", 2.0);
    let s = e.samples();
    assert_eq!(
        s.must("joulebook_rapl_package_joules_total{socket=\"0\",die=\"1\"}"),
        20.0
    );
    assert_eq!(
        s.must("joulebook_rapl_package_joules_total{socket=\"1\",die=\"1\"}"),
        40.0
    );
    assert_eq!(s.family("joulebook_rapl_dram_joules_total").len(), 4);
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"cpu\"}"),
        100.0
    );
    assert_eq!(
        s.must("joulebook_source_up{source=\"rapl\"}"),
        1.0,
        "{}",
        e.log_text()
    );
}

/// AMD per-CCD zones all read the package counter: each package is counted once.
#[test]
fn amd_mirrored_dies_count_the_package_once() {
    let dir = copy_fixture("amd-zen4-ccd");
    let e = start(dir.path(), &["--sample.interval=100ms"]);
    e.wait_samples("rapl", 2.0);
    // The kernel shows the same package counter in every CCD's zone (hex zone numbers).
    for i in 0..16u64 {
        let (base, add) = if i < 8 { (5, 50) } else { (7, 70) };
        let zone = format!("intel-rapl:{i:x}");
        write_value(&powercap(dir.path(), &zone), (base + add) * 1_000_000);
    }
    e.wait_samples("rapl", 2.0);
    let s = e.samples();
    assert_eq!(
        s.family("joulebook_rapl_package_joules_total"),
        [
            ("joulebook_rapl_package_joules_total{socket=\"0\"}", 50.0),
            ("joulebook_rapl_package_joules_total{socket=\"1\"}", 70.0)
        ]
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"cpu\"}"),
        120.0
    );
}

/// Writes an amdgpu energy accumulator (2^-16 J a count) into a fixture's `gpu_metrics`, at the
/// kernel's offset for the table's revision, the way sysfs changes: all at once.
fn set_gpu_counter(dir: &Path, card: u32, offset: usize, joules: u64) {
    let path = dir.join(format!("sys/class/drm/card{card}/device/gpu_metrics"));
    let mut table = std::fs::read(&path).unwrap();
    table[offset..offset + 8].copy_from_slice(&(joules * 65536).to_le_bytes());
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &table).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// MI250X: the package is counted once, on its primary die; a driver reload (counter back near
/// 0) is absorbed; the GPU component is the sum of the packages.
#[test]
fn amd_mi250x_packages_once_and_resets_absorbed() {
    let dir = copy_fixture("amd-mi250x");
    let e = start(dir.path(), &["--sample.interval=100ms"]);
    e.wait_samples("amdgpu", 2.0);
    // gpu_metrics_v1_3: energy_accumulator at byte 24. Fixture: card0 1000 J, card2 2000 J.
    set_gpu_counter(dir.path(), 0, 24, 1100);
    set_gpu_counter(dir.path(), 2, 24, 2050);
    e.wait_samples("amdgpu", 2.0);
    let s = e.samples();
    assert_eq!(
        s.family("joulebook_amdgpu_joules_total"),
        [
            (
                "joulebook_amdgpu_joules_total{gpu_uuid=\"0a4c6f12d3b9e801\"}",
                100.0
            ),
            (
                "joulebook_amdgpu_joules_total{gpu_uuid=\"1b5d7023e4cafa11\"}",
                50.0
            )
        ]
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        150.0
    );
    assert_eq!(
        s.must("joulebook_energy_device_info{source=\"amdgpu\",device=\"0a4c6f12d3b9e802\",name=\"card1\",model=\"AMD Instinct MI250X\",method=\"primary_die\"}"),
        1.0
    );
    // Each secondary die is published as a part of its package's primary die.
    assert_eq!(
        s.family("joulebook_gpu_part_info"),
        [
            (
                "joulebook_gpu_part_info{gpu_uuid=\"0a4c6f12d3b9e802\",parent_gpu_uuid=\"0a4c6f12d3b9e801\"}",
                1.0
            ),
            (
                "joulebook_gpu_part_info{gpu_uuid=\"1b5d7023e4cafa12\",parent_gpu_uuid=\"1b5d7023e4cafa11\"}",
                1.0
            )
        ]
    );
    // Driver reload: the counter restarts; the 10 J since the reset are added.
    set_gpu_counter(dir.path(), 0, 24, 10);
    e.wait_samples("amdgpu", 2.0);
    let s = e.samples();
    assert_eq!(
        s.must("joulebook_amdgpu_joules_total{gpu_uuid=\"0a4c6f12d3b9e801\"}"),
        110.0
    );
    assert_eq!(s.must("joulebook_wraps_total{source=\"amdgpu\"}"), 1.0);
    assert_eq!(s.must("joulebook_source_up{source=\"amdgpu\"}"), 1.0);
}

/// MI300X: v1_5 and v1_6 counters, an all-ones counter integrated from power1_input, and a
/// compute partition that is not a GPU of its own.
#[test]
fn amd_mi300x_counters_and_power_fallback() {
    let dir = copy_fixture("amd-mi300x");
    let e = start(dir.path(), &["--sample.interval=100ms"]);
    e.wait_samples("amdgpu", 2.0);
    // v1_5: energy_accumulator at byte 88; the later v1_6: at byte 16.
    set_gpu_counter(dir.path(), 0, 88, 5000 + 60);
    set_gpu_counter(dir.path(), 1, 16, 7000 + 70);
    e.wait_samples("amdgpu", 2.0);
    let s = e.samples();
    assert_eq!(
        s.must("joulebook_amdgpu_joules_total{gpu_uuid=\"7e2d9c3b51a0f4c2\"}"),
        60.0
    );
    assert_eq!(
        s.must("joulebook_amdgpu_joules_total{gpu_uuid=\"7e2d9c3b51a0f4c3\"}"),
        70.0
    );
    // 300 W integrated over the samples so far.
    let integrated = s.must("joulebook_amdgpu_joules_total{gpu_uuid=\"7e2d9c3b51a0f4c4\"}");
    assert!(integrated > 0.0, "{integrated}");
    assert_eq!(
        s.family("joulebook_energy_device_info")
            .iter()
            .filter(|(k, _)| k.contains("method=\"power_integration\""))
            .count(),
        1
    );
    assert_eq!(
        s.family("joulebook_energy_device_info").len(),
        3,
        "the partition is no GPU"
    );
}

/// Jobs on a node whose packages have per-die counters: a die's energy belongs to its socket,
/// so the split is the same as with one counter per socket, and jobs + unallocated = node.
#[test]
fn jobs_share_die_counters_by_socket() {
    let dir = copy_fixture("intel-clx-ap");
    joulebook_tests::copy_tree(&fixture("cgroup/slurm-v1"), dir.path());
    let root = dir.path();
    let mut args = job_args(root);
    args.push("--sample.interval=100ms".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
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

#[test]
fn golden_intel_gpus() {
    golden("intel-gpus");
}

/// Intel GPUs: the xe card counter (never also its package counter), the i915 device counter
/// (never its GT's), nothing for the integrated GPU, and a driver reload absorbed.
#[test]
fn intel_gpus_count_one_counter_each_and_absorb_resets() {
    let dir = copy_fixture("intel-gpus");
    let e = start(dir.path(), &["--sample.interval=100ms"]);
    e.wait_samples("intel_gpu", 2.0);
    let xe = dir.path().join("sys/class/drm/card1/device/hwmon/hwmon6");
    let i915 = dir.path().join("sys/class/drm/card2/device/hwmon");
    write_value(&xe.join("energy1_input"), 120_000_000 + 30_000_000);
    write_value(&xe.join("energy2_input"), 90_000_000 + 20_000_000);
    write_value(&i915.join("hwmon7/energy1_input"), 300_000_000 + 10_000_000);
    write_value(&i915.join("hwmon8/energy1_input"), 250_000_000 + 9_000_000);
    e.wait_samples("intel_gpu", 2.0);
    let s = e.samples();
    assert_eq!(
        s.family("joulebook_intel_gpu_joules_total"),
        [
            (
                "joulebook_intel_gpu_joules_total{gpu_uuid=\"0000:3a:00.0\"}",
                30.0
            ),
            (
                "joulebook_intel_gpu_joules_total{gpu_uuid=\"0000:4d:00.0\"}",
                10.0
            )
        ]
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        40.0
    );
    // The xe driver reloads: its software sum starts again from 0.
    write_value(&xe.join("energy1_input"), 5_000_000);
    e.wait_samples("intel_gpu", 2.0);
    let s = e.samples();
    assert_eq!(
        s.must("joulebook_intel_gpu_joules_total{gpu_uuid=\"0000:3a:00.0\"}"),
        35.0
    );
    assert_eq!(s.must("joulebook_wraps_total{source=\"intel_gpu\"}"), 1.0);
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        45.0
    );
}

#[test]
fn golden_grace_hopper() {
    golden("grace-hopper");
}

/// GH200: the Grace socket meter is the node's CPU (and its memory, so no DRAM estimate); the
/// rails and the module are published beside it and added to nothing.
#[test]
fn grace_socket_is_the_cpu_and_the_module_is_never_added() {
    let dir = copy_fixture("grace-hopper");
    let e = start(dir.path(), &["--sample.interval=100ms"]);
    e.wait_samples("grace", 5.0);
    let s = e.samples();
    let socket = s.must("joulebook_grace_socket_joules_total{socket=\"0\"}");
    let module = s.must("joulebook_grace_module_joules_total{socket=\"0\"}");
    assert!(socket > 0.0 && module > socket, "{socket} {module}");
    // 140 W and 520 W over the same intervals.
    assert!(
        (module / socket - 520.0 / 140.0).abs() < 1e-6,
        "{socket} {module}"
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"cpu\"}"),
        socket
    );
    assert_eq!(
        s.get("joulebook_node_joules_total{component=\"gpu\"}"),
        None
    );
    assert_eq!(
        s.get("joulebook_node_joules_total{component=\"dram\"}"),
        None
    );
    assert_eq!(
        s.must(
            "joulebook_node_component_info{component=\"cpu\",method=\"measured\",source=\"grace\"}"
        ),
        1.0
    );
    assert_eq!(s.must("joulebook_source_enabled{source=\"estimate\"}"), 0.0);
}

/// Configured hwmon sensors on a RAPL node: amd_energy's socket counter is RAPL's own, so it is
/// published with role none and never added; the node meter is published as the whole node.
#[test]
fn hwmon_sensors_never_count_rapl_twice() {
    let dir = copy_fixture("amd-epyc");
    joulebook_tests::copy_tree(&fixture("hwmon-meters"), dir.path());
    let config = dir.path().join("exporter.yaml");
    std::fs::write(
        &config,
        "sources:\n  hwmon:\n    sensors:\n\
         \x20     - {id: esocket0, chip: amd_energy, file: energy9_input, label: Esocket0, role: cpu}\n\
         \x20     - {id: node, chip: power_meter, file: power1_average, label: Node Power, role: node}\n",
    )
    .unwrap();
    let config_arg = format!("--config.file={}", config.display());
    let e = start(dir.path(), &["--sample.interval=100ms", &config_arg]);
    e.wait_samples("hwmon", 2.0);
    let amd_energy = dir.path().join("sys/class/hwmon/hwmon2/energy9_input");
    write_value(&amd_energy, 5_000_000 + 40_000_000);
    write_value(&pkg(dir.path(), 0), 5_000_000 + 40_000_000);
    e.wait_samples("hwmon", 2.0);
    let s = e.samples();
    assert_eq!(
        s.must("joulebook_hwmon_joules_total{sensor=\"esocket0\",role=\"none\"}"),
        40.0
    );
    assert_eq!(
        s.must("joulebook_rapl_package_joules_total{socket=\"0\"}"),
        40.0
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"cpu\"}"),
        40.0
    );
    assert!(s.must("joulebook_hwmon_joules_total{sensor=\"node\",role=\"node\"}") > 0.0);
    // Without a BMC, the node meter gives `other` (node − cpu − dram − gpu).
    assert_eq!(
        s.must("joulebook_node_component_info{component=\"other\",method=\"measured\",source=\"hwmon\"}"),
        1.0
    );
    assert!(
        e.log_text().contains("amd_energy duplicates RAPL"),
        "{}",
        e.log_text()
    );
}

/// Jobs on an MI250X node: every component's jobs + unallocated equals the node, the GPU
/// packages included (which job holds an AMD GPU is the job mapping's part; until a job holds
/// one, its energy is unallocated, never lost).
#[test]
fn jobs_and_unallocated_add_up_on_an_amd_gpu_node() {
    let dir = copy_fixture("amd-mi250x");
    joulebook_tests::copy_tree(&fixture("cgroup/slurm-v1"), dir.path());
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
    let dir = copy_fixture("amd-mi250x");
    joulebook_tests::copy_tree(&fixture("cgroup/slurm-v1"), dir.path());
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
    let mut args = job_args(root);
    args.push("--sample.interval=100ms".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
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
    let gpu = |id: &str| {
        s.must(&format!(
            "joulebook_job_joules_total{{job_id=\"{id}\",component=\"gpu\"}}"
        ))
    };
    assert_eq!(gpu("101"), 100.0);
    assert_eq!(gpu("102"), 15.0);
    assert_eq!(
        s.must("joulebook_unallocated_joules_total{component=\"gpu\"}"),
        15.0
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        130.0
    );
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
    let gpu = |id: &str| {
        s.must(&format!(
            "joulebook_job_joules_total{{job_id=\"{id}\",component=\"gpu\"}}"
        ))
    };
    assert_eq!(gpu("101"), 42.0);
    assert_eq!(gpu("102"), 28.0);
    assert_eq!(
        s.must("joulebook_unallocated_joules_total{component=\"gpu\"}"),
        28.0
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        98.0
    );
}

/// Intel GPUs held by jobs: job 101's `ZE_AFFINITY_MASK=0.1` (tile 1 of Level Zero device 0, the
/// first discrete GPU in PCI order) and job 102's cgroup allowing `renderD130` (card2). Each gets
/// its card's energy; jobs + unallocated = node.
#[test]
fn intel_gpus_go_to_the_jobs_holding_them() {
    let dir = copy_fixture("intel-gpus");
    joulebook_tests::copy_tree(&fixture("cgroup/slurm-v1"), dir.path());
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
    let mut args = job_args(root);
    args.push("--sample.interval=100ms".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    e.wait_samples("intel_gpu", 2.0);
    let xe = root.join("sys/class/drm/card1/device/hwmon/hwmon6");
    let i915 = root.join("sys/class/drm/card2/device/hwmon");
    write_value(&xe.join("energy1_input"), 120_000_000 + 30_000_000);
    write_value(&i915.join("hwmon7/energy1_input"), 300_000_000 + 10_000_000);
    e.wait_samples("intel_gpu", 3.0);
    let s = e.samples();
    let gpu = |id: &str| {
        s.must(&format!(
            "joulebook_job_joules_total{{job_id=\"{id}\",component=\"gpu\"}}"
        ))
    };
    assert_eq!(gpu("101"), 30.0);
    assert_eq!(gpu("102"), 10.0);
    assert_eq!(
        s.must("joulebook_unallocated_joules_total{component=\"gpu\"}"),
        0.0
    );
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        40.0
    );
}
