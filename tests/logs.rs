//! What the built binaries write to stderr when it is a file or the journal, not a terminal: no
//! ANSI escape byte (the journal and log files show them as `ESC[2m…`), and under systemd (stderr
//! is the stream `JOURNAL_STREAM` names) no timestamp of the exporter's own, journald adds one.

use joulebook_tests::{binary, fixture, free_port, http_get};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the exporter on a fixture tree with stderr to `log` until it serves /healthz (and
/// `JOURNAL_STREAM` naming that file when `journal`), stops it and returns the log.
fn exporter_log(log: &Path, journal: bool) -> String {
    let file = std::fs::File::create(log).expect("log file");
    let meta = file.metadata().expect("stat log");
    let root = fixture("intel-2s");
    let port = free_port();
    let mut cmd = Command::new(binary("joulebook-exporter"));
    cmd.arg(format!("--path.sysfs={}", root.join("sys").display()))
        .arg(format!("--path.procfs={}", root.join("proc").display()))
        .args([
            "--source.nvml=off",
            "--jobs.enabled=off",
            "--log.level=info",
        ])
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // The variables a terminal session may carry, which must not be what keeps colour off.
        .env_remove("NO_COLOR")
        .env_remove("JOURNAL_STREAM")
        .env("TERM", "xterm-256color")
        .stdout(Stdio::null())
        .stderr(file);
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let mut child = cmd.spawn().expect("start joulebook-exporter");
    let start = Instant::now();
    while !matches!(
        http_get(&format!("http://127.0.0.1:{port}/healthz"), None),
        Ok((200, _, _))
    ) {
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "exporter exited with {s}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(start.elapsed() < Duration::from_secs(15), "exporter not up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM: the shutdown is logged too.
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = child.wait();
    std::fs::read_to_string(log).expect("read log")
}

fn assert_no_escape(what: &str, text: &str) {
    assert!(
        !text.as_bytes().contains(&0x1b),
        "{what} wrote an ANSI escape byte to a file:\n{text:?}"
    );
}

/// `2026-12-06T15:21:55.123Z` at the start of a line.
fn starts_with_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

#[test]
fn exporter_log_to_a_file_has_no_escape_byte_and_a_timestamp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = exporter_log(&dir.path().join("exporter.log"), false);
    assert!(text.contains("INFO"), "no info line logged: {text}");
    assert_no_escape("the exporter", &text);
    for line in text.lines().filter(|l| !l.is_empty()) {
        assert!(starts_with_timestamp(line), "no timestamp: {line:?}");
    }
}

#[test]
fn exporter_log_to_the_journal_has_no_escape_byte_nor_timestamp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = exporter_log(&dir.path().join("journal"), true);
    assert!(text.contains("INFO"), "no info line logged: {text}");
    assert_no_escape("the exporter", &text);
    for line in text.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.trim_start().starts_with("INFO")
                || line.trim_start().starts_with("WARN")
                || line.trim_start().starts_with("ERROR"),
            "a journal line starts with its level, journald stamps the time: {line:?}"
        );
    }
}

#[test]
fn reporter_errors_to_a_file_have_no_escape_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = dir.path().join("out");
    let out_s = out.to_string_lossy().to_string();
    let cases: [&[&str]; 3] = [
        // The server is down: the retries and the error.
        &[
            "--prometheus",
            &dead,
            "--attempts",
            "1",
            "--month",
            "2026-10",
            "--out",
            &out_s,
        ],
        // A usage error (clap colours on a terminal only).
        &["--prometheus", &dead, "--month", "2026-13", "--nope"],
        &["--prometheus", &dead, "--attempts", "1", "job", "42"],
    ];
    for (i, args) in cases.iter().enumerate() {
        let log = dir.path().join(format!("report-{i}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let status = Command::new(binary("joulebook-report"))
            .args(*args)
            .env_remove("NO_COLOR")
            .env_remove("JOULEBOOK_PROMETHEUS_URL")
            .env("TERM", "xterm-256color")
            .stdout(Stdio::null())
            .stderr(file)
            .status()
            .expect("run joulebook-report");
        assert!(!status.success(), "{args:?} should fail");
        let text = std::fs::read_to_string(&log).expect("read log");
        assert!(!text.is_empty(), "{args:?}: nothing on stderr");
        assert_no_escape("the reporter", &text);
    }
}
