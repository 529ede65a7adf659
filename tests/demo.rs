//! The README's first command, `deploy/demo/run`, on the small 12-hour scenario (the month-long demo
//! scenario takes minutes, too long for every CI run): simulate, backfill, Prometheus with the
//! rules, the exporter on this machine, the report in three formats, everything stopped at the
//! end. Builds the release binaries; needs promtool and prometheus (scripts/install-test-deps).

use joulebook_tests::{free_port, repo_root};
use std::process::Command;

#[test]
fn the_demo_runs_the_whole_pipeline_and_stops_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(repo_root().join("deploy/demo/run"))
        .args([
            "--stop",
            "--scenario",
            "tests/fixtures/simulate/small.yaml",
            "--dir",
        ])
        .arg(dir.path().join("demo"))
        .env("JOULEBOOK_DEMO_PROMETHEUS_PORT", free_port().to_string())
        .env("JOULEBOOK_DEMO_EXPORTER_PORT", free_port().to_string())
        .current_dir(repo_root())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{text}");
    let report = dir.path().join("demo/report");
    for f in ["report.html", "report.md", "report.json"] {
        assert!(report.join(f).exists(), "no {f}:\n{text}");
    }
    let json = std::fs::read_to_string(report.join("report.json")).unwrap();
    assert!(
        json.contains("testlab"),
        "the report is about the simulated cluster"
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("Unallocated"), "{md}");
    assert!(
        text.contains("Prometheus:") && text.contains("Report (HTML):"),
        "{text}"
    );
    // Nothing it started is left running.
    let ps = Command::new("pgrep")
        .args(["-f", &dir.path().display().to_string()])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}
