//! GPU counters (the fake NVML, amdgpu, Intel xe/i915): one counter a GPU, resets absorbed.

use super::*;

/// The energy published for the GPU of `uuid`.
fn gpu_joules(s: &joulebook_tests::Samples, uuid: &str) -> f64 {
    s.must(&format!(
        "joulebook_gpu_joules_total{{gpu_uuid=\"{uuid}\"}}"
    ))
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
    assert_eq!(gpu_joules(&s, &uuid0), 30.0);
    assert_eq!(gpu_joules(&s, &uuid1), 30.0);
    assert!(e.log_text().contains(&uuid1), "{}", e.log_text());

    // Back on the bus after a driver reload: its counter restarted near 0 (7 J since reload).
    state.gpus[1].lost = false;
    state.gpus[1].energy_mj = joulebook_tests::fake_nvml::FakeValue::Value(7_000);
    write_state(&state_path, &state);
    e.wait_samples("nvml", 2.0);
    let s = e.samples();
    assert_eq!(s.must("joulebook_source_up{source=\"nvml\"}"), 1.0);
    assert_eq!(gpu_joules(&s, &uuid1), 37.0);
    assert_eq!(
        s.must("joulebook_node_joules_total{component=\"gpu\"}"),
        67.0
    );
    assert!(s.must("joulebook_wraps_total{source=\"nvml\"}") >= 1.0);
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
    assert_values(
        &s,
        &[
            ("joulebook_node_joules_total{component=\"gpu\"}", 150.0),
            ("joulebook_energy_device_info{source=\"amdgpu\",device=\"0a4c6f12d3b9e802\",name=\"card1\",model=\"AMD Instinct MI250X\",method=\"primary_die\"}", 1.0),
        ],
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
    assert_values(
        &s,
        &[
            (
                "joulebook_amdgpu_joules_total{gpu_uuid=\"0a4c6f12d3b9e801\"}",
                110.0,
            ),
            ("joulebook_wraps_total{source=\"amdgpu\"}", 1.0),
            ("joulebook_source_up{source=\"amdgpu\"}", 1.0),
        ],
    );
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
    assert_values(
        &s,
        &[
            (
                "joulebook_amdgpu_joules_total{gpu_uuid=\"7e2d9c3b51a0f4c2\"}",
                60.0,
            ),
            (
                "joulebook_amdgpu_joules_total{gpu_uuid=\"7e2d9c3b51a0f4c3\"}",
                70.0,
            ),
        ],
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
    assert_values(
        &s,
        &[
            (
                "joulebook_intel_gpu_joules_total{gpu_uuid=\"0000:3a:00.0\"}",
                35.0,
            ),
            ("joulebook_wraps_total{source=\"intel_gpu\"}", 1.0),
            ("joulebook_node_joules_total{component=\"gpu\"}", 45.0),
        ],
    );
}
