//! Servers that fail: unreachable, erroring then answering, silent, stalling, truncated; bad
//! configuration and usage. The reporter exits with a clear error and writes nothing.

use super::*;

#[test]
fn unreachable_server_fails_cleanly_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("out");
    let port = free_port();
    let t = Instant::now();
    let o = report_october(
        &format!("http://127.0.0.1:{port}"),
        &["--attempts", "3", "--out", &dir.path().to_string_lossy()],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot reach") && err.contains("3 attempts"),
        "{err}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "no backoff between attempts"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "files written"
    );
}

#[test]
fn bad_config_and_usage_exit_2_with_the_key_and_line() {
    let dir = tempfile::tempdir().expect("cfg");
    let cfg = dir.path().join("site.yaml");
    std::fs::write(&cfg, "site_name: x\npeu:\n  value: 1.2\n").expect("write");
    let o = report_october(
        "http://127.0.0.1:1",
        &["--out", "x", "--config", &cfg.to_string_lossy()],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("site.yaml") && err.contains("peu"), "{err}");
    let o = report(&[
        "--prometheus",
        "http://127.0.0.1:1",
        "--month",
        "2026-13",
        "--out",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("YYYY-MM"));
}

#[test]
fn failing_server_is_retried_then_reported() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 65536];
            let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let dir = tempfile::tempdir().expect("out");
    // One query at a time, so that the hits are one query's attempts (queries asked in
    // parallel are each retried).
    let o = report_october(
        &format!("http://127.0.0.1:{port}"),
        &[
            "--attempts",
            "3",
            "--parallelism",
            "1",
            "--out",
            &dir.path().to_string_lossy(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("HTTP 503") && err.contains("3 attempts"),
        "{err}"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one request per attempt"
    );
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

/// How a fake Prometheus on 127.0.0.1 treats each connection.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Accepts and never answers.
    Silent,
    /// Sends the headers and part of the body, then neither sends more nor closes.
    StallsMidBody,
    /// A complete HTTP answer (200, right Content-Length) whose JSON stops in the middle.
    TruncatedJson,
    /// A 200 announcing more bytes than it sends, then closes.
    ClosesEarly,
}

/// The start of a valid answer, cut inside the result list.
const PARTIAL_JSON: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"n1"},"value":[1793491200,"#;

/// Reads one whole request (headers and the Content-Length body), so that closing the socket
/// afterwards is a clean FIN, not a reset for unread data.
fn read_request(conn: &mut std::net::TcpStream) {
    use std::io::Read;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..header_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < header_end + len {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A fake Prometheus on 127.0.0.1 that misbehaves on every connection; its URL. Stalled
/// connections are held open until the test process ends.
fn misbehaving_prometheus(how: Misbehaviour) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in listener.incoming().flatten() {
            let body = PARTIAL_JSON.as_bytes();
            match how {
                Misbehaviour::Silent => {}
                Misbehaviour::StallsMidBody | Misbehaviour::ClosesEarly => {
                    read_request(&mut conn);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len() + 1000
                    );
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(body);
                    let _ = conn.flush();
                }
                Misbehaviour::TruncatedJson => {
                    read_request(&mut conn);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(body);
                    let _ = conn.flush();
                }
            }
            match how {
                Misbehaviour::Silent | Misbehaviour::StallsMidBody => held.push(conn),
                Misbehaviour::TruncatedJson | Misbehaviour::ClosesEarly => {
                    let _ = conn.shutdown(std::net::Shutdown::Both);
                }
            }
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Runs `joulebook-report` and kills it if it has not given up within `limit` (a hang is the
/// failure under test, so the test itself stays bounded).
fn report_bounded(args: &[&str], limit: Duration) -> Output {
    let mut child = reporter()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run joulebook-report");
    let t = Instant::now();
    loop {
        match child.try_wait().expect("wait for joulebook-report") {
            Some(_) => break,
            None if t.elapsed() > limit => {
                let _ = child.kill();
                let o = child.wait_with_output().expect("collect output");
                panic!(
                    "joulebook-report still running after {limit:?}: it does not give up\n{}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    child.wait_with_output().expect("collect output")
}

/// The reporter against `how`: exit 1, one error naming the server and the query and containing
/// every `expect`, nothing on stdout, and an earlier report in --out left as it was.
fn fails_cleanly_against(how: Misbehaviour, extra: &[&str], expect: &[&str]) {
    let url = misbehaving_prometheus(how);
    let dir = tempfile::tempdir().expect("out");
    let earlier = dir.path().join("report.json");
    std::fs::write(&earlier, "{\"earlier\": true}\n").expect("earlier report");
    let out = dir.path().to_string_lossy().to_string();
    let mut args = vec![
        "--prometheus",
        &url,
        "--month",
        "2026-10",
        "--attempts",
        "2",
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    let o = report_bounded(&args, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "one message: {err}");
    assert!(err.contains(&url) && err.contains("query: "), "{err}");
    assert!(err.contains("2 attempts"), "{err}");
    for e in expect {
        assert!(err.contains(e), "{e:?} missing from: {err}");
    }
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["report.json"], "files in --out");
    assert_eq!(
        std::fs::read_to_string(&earlier).expect("earlier report"),
        "{\"earlier\": true}\n",
        "the earlier report was touched"
    );
}

#[test]
fn silent_server_times_out_with_the_flag_and_writes_nothing() {
    fails_cleanly_against(
        Misbehaviour::Silent,
        &["--timeout", "1"],
        &["no complete answer within 1 s", "--timeout"],
    );
}

#[test]
fn server_stalling_mid_answer_times_out_and_writes_nothing() {
    fails_cleanly_against(
        Misbehaviour::StallsMidBody,
        &["--timeout", "1"],
        &["no complete answer within 1 s", "--timeout"],
    );
}

#[test]
fn truncated_json_is_reported_and_writes_nothing() {
    fails_cleanly_against(
        Misbehaviour::TruncatedJson,
        &[],
        &[
            "cut its answer short",
            "HTTP 200, the JSON stops after 108 bytes",
        ],
    );
}

#[test]
fn answer_shorter_than_its_content_length_is_reported_and_writes_nothing() {
    fails_cleanly_against(
        Misbehaviour::ClosesEarly,
        &[],
        &[
            "cut its answer short",
            "the connection closed after 108 bytes",
        ],
    );
}
