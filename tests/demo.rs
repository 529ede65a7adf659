//! The README's first command, `deploy/demo/run`, on the small 12-hour scenario (the month-long demo
//! scenario takes minutes, too long for every CI run): simulate, backfill, Prometheus with the
//! rules, the exporter on this machine, the report in three formats, the rules evaluated over the
//! simulated period (alerts that fire), the mail as .eml, a summary naming every part,
//! everything stopped at the end. Builds the release binaries; needs promtool, prometheus and
//! python3-yaml (scripts/install-test-deps).

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
    // The mixed cluster: the AMD node's GPUs are in the report's GPU section by model.
    assert!(
        json.contains("AMD Instinct MI300X"),
        "no AMD GPU in the report"
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("Unallocated"), "{md}");
    // The summary names every part of the pipeline once.
    for part in [
        "Report (HTML):",
        "Report (Markdown):",
        "Report (JSON):",
        "Prometheus:",
        "This machine:",
        "Alerts:",
        "/alerts",
        "Dashboards:",
        "dashboards/joulebook-",
        "Mail:",
        "aiosmtpd",
        "email",
        "Logs:",
    ] {
        assert!(text.contains(part), "the summary lacks {part:?}:\n{text}");
    }
    // The alerts evaluated over the simulated half day: the small cluster idles more than the
    // threshold's share, and nothing else is wrong with it.
    assert!(
        text.contains("JoulebookClusterIdleShareHigh fires on cluster testlab"),
        "{text}"
    );
    assert!(
        text.contains("never fired: JoulebookIdleGpuDrawingPower"),
        "{text}"
    );
    assert!(text.contains("/graph?g0.expr="), "{text}");
    // The month's mail, rendered for the admins.
    let eml = std::fs::read_to_string(dir.path().join("demo/outbox/report-to-admin_localhost.eml"))
        .unwrap_or_else(|e| panic!("no .eml: {e}\n{text}"));
    assert!(eml.contains("To: admin@localhost"), "{eml}");
    // Stdout is not a terminal here: no escape byte.
    assert!(!text.as_bytes().contains(&0x1b), "escape bytes in:\n{text}");
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
