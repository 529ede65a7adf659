//! Bad scenarios exit 2, naming the file, line and key.

use super::*;

#[test]
fn bad_scenarios_exit_2_naming_file_line_and_key() {
    let good = std::fs::read_to_string(fixture("simulate/small.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = bad_scenarios(&good);
    for (what, text, expect) in cases {
        assert_ne!(text, good, "{what}: the replacement did not apply");
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text).unwrap();
        let o = Command::new(binary("joulebook-exporter"))
            .args(["simulate", "--scenario"])
            .arg(&path)
            .arg("--out")
            .arg(dir.path().join("x.om"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("bad.yaml"), "{what}: {err}");
        for e in expect {
            assert!(err.contains(e), "{what}: expected {e:?} in {err}");
        }
    }
    let o = Command::new(binary("joulebook-exporter"))
        .args(["simulate", "--scenario", "/nonexistent/s.yaml", "--out"])
        .arg(dir.path().join("x.om"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/s.yaml"));
}

/// Bad variants of the scenario `good` (small.yaml): what is wrong, the text, and what the error
/// must name.
fn bad_scenarios(good: &str) -> [(&'static str, String, &'static [&'static str]); 13] {
    let restart = "restarts:\n  - {node: cpu01, at: 2025-03-03T08:30:00Z, downtime: 30s}\n";
    [
        (
            "unknown key",
            good.replace("    sockets: 2\n", "    sockets: 2\n    sokets: 3\n"),
            &["line 16", "sokets"],
        ),
        (
            "bad value",
            good.replace("  - name: cpu\n    count: 1", "  - name: cpu\n    count: 0"),
            &["line 26", "node_groups[1].count"],
        ),
        (
            "bad duration",
            good.replace("duration: 12h", "duration: 12 fortnights"),
            &["fortnights"],
        ),
        (
            "restart of a node that does not exist",
            good.replace("{node: cpu01,", "{node: cpu09,"),
            &["restarts[0].node", "cpu09"],
        ),
        (
            "a fault of a source the node lacks",
            good.replace(
                restart,
                &format!("{restart}faults:\n  - {{node: cpu01, kind: source_down, source: nvml, start: 2025-03-03T09:00:00Z, duration: 10m}}\n"),
            ),
            &["faults[0].source", "cpu01"],
        ),
        (
            "an unknown fault",
            good.replace(
                restart,
                &format!("{restart}faults:\n  - {{node: cpu01, kind: meltdown, start: 2025-03-03T09:00:00Z}}\n"),
            ),
            &["meltdown"],
        ),
        (
            "a stall without a duration",
            good.replace(
                restart,
                &format!("{restart}faults:\n  - {{node: gpu01, kind: sampler_stall, start: 2025-03-03T09:00:00Z}}\n"),
            ),
            &["faults[0].duration"],
        ),
        (
            "load outside the period",
            good.replace(
                restart,
                &format!("{restart}stray_load:\n  - {{node: gpu01, start: 2025-03-04T09:00:00Z, duration: 1h, gpu_util: 0.5}}\n"),
            ),
            &["stray_load[0].start"],
        ),
        (
            "a BMC drawing less at full load than idle",
            good.replace(
                "    gpus: {count: 2,",
                "    bmc: {other_watts: {idle: 100, max: 50}}\n    gpus: {count: 2,",
            ),
            &["node_groups[0].bmc.other_watts"],
        ),
        (
            "a MIG instance of 5 slices",
            good.replace("mig: [3, 2]", "mig: [5, 2]"),
            &["node_groups[3].gpus.mig", "5"],
        ),
        (
            "MIG on an AMD GPU",
            good.replace("vendor: amd,", "vendor: amd, mig: [3],"),
            &["node_groups[2].gpus.mig", "NVIDIA"],
        ),
        (
            "an NVML fault on the AMD node",
            good.replace(
                restart,
                &format!("{restart}faults:\n  - {{node: mi30001, kind: source_down, source: nvml, start: 2025-03-03T09:00:00Z, duration: 10m}}\n"),
            ),
            &["faults[0].source", "mi30001"],
        ),
        (
            "a job that fits nowhere",
            good.replace("cores: [1, 2, 4]", "cores: [1, 2, 64]"),
            &["jobs.classes[3].cores", "64"],
        ),
    ]
}
