//! The process: content negotiation and the landing page, clean shutdown, configuration errors
//! and `--check-config`.

use super::*;

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
