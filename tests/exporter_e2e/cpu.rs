//! CPU and node meters (RAPL zones and dies, hwmon, Grace): each counter counted once, wraps
//! corrected, garbage marking the source down without losing energy.

use super::*;

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
    assert_values(
        &s,
        &[
            ("joulebook_node_sockets", 2.0),
            ("joulebook_node_physical_cores", 8.0),
            ("joulebook_node_logical_cpus", 16.0),
        ],
    );
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
    assert_values(
        &s,
        &[
            ("joulebook_rapl_package_joules_total{socket=\"0\"}", 80.0),
            ("joulebook_node_joules_total{component=\"cpu\"}", 80.0),
            ("joulebook_wraps_total{source=\"rapl\"}", 1.0),
            (
                "joulebook_samples_dropped_total{source=\"rapl\",reason=\"implausible\"}",
                0.0,
            ),
        ],
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
    assert_values(
        &s,
        &[
            ("joulebook_source_up{source=\"rapl\"}", 0.0),
            ("joulebook_rapl_package_joules_total{socket=\"0\"}", 0.0),
        ],
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
    assert_values(
        &s,
        &[
            ("joulebook_source_up{source=\"rapl\"}", 1.0),
            ("joulebook_rapl_package_joules_total{socket=\"0\"}", 40.0),
        ],
    );
    assert!(e.log_text().contains("source is up again"));
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
    assert_values(
        &s,
        &[
            (
                "joulebook_rapl_package_joules_total{socket=\"0\",die=\"1\"}",
                20.0,
            ),
            (
                "joulebook_rapl_package_joules_total{socket=\"1\",die=\"1\"}",
                40.0,
            ),
        ],
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
    assert_values(
        &s,
        &[
            (
                "joulebook_hwmon_joules_total{sensor=\"esocket0\",role=\"none\"}",
                40.0,
            ),
            ("joulebook_rapl_package_joules_total{socket=\"0\"}", 40.0),
            ("joulebook_node_joules_total{component=\"cpu\"}", 40.0),
        ],
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
