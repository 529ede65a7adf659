//! `joulebook-report` against what a hostile cluster user or a misbehaving server can do, with
//! real components on 127.0.0.1: a real Prometheus (backfilled from `scenario.rs`), a test HTTP
//! server answering a huge body, and aiosmtpd refusing one recipient.
//!
//! - symbolic links planted at the temporary names the reporter used to write through;
//! - an answer larger than the cap: a clear error, bounded memory;
//! - label values of 10,000 characters: cut in every format;
//! - a refused recipient: every other one gets its mail, the failure is listed, a re-run sends
//!   only what was not delivered, `--resend` sends everything; bad addresses stop it before
//!   anything is sent.

use joulebook_tests::prometheus::{backfill_openmetrics, Prometheus};
use joulebook_tests::reporter;
use joulebook_tests::scenario;
use joulebook_tests::smtp::SmtpSink;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Prometheus serving the scenario's month, with `edit` applied to its OpenMetrics first.
fn prometheus(edit: impl Fn(String) -> String) -> (Prometheus, tempfile::TempDir) {
    let s = scenario::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let om = dir.path().join("data.om");
    std::fs::write(&om, edit(s.openmetrics)).expect("write openmetrics");
    let tsdb = dir.path().join("tsdb");
    backfill_openmetrics(&om, &tsdb);
    (Prometheus::start(&tsdb, &[]), dir)
}

fn run(args: &[&str]) -> Output {
    reporter()
        .args(args)
        .output()
        .expect("run joulebook-report")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout:\n{}--- stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "joulebook-report failed: {}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_proc(name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .unwrap_or_else(|e| panic!("/proc/sys/kernel/{name}: {e}"))
        .trim()
        .parse()
        .expect("a number")
}

/// The reporter once wrote each file to `.NAME.tmp-PID` with a plain write, following a link
/// found there. Links to a file the reporter must not touch are planted at those names for the
/// next few thousand process ids (the reporter's is among them unless thousands of processes
/// start meanwhile): the target is untouched, the report is complete, the links are left alone.
#[test]
fn links_planted_at_temporary_names_are_not_followed() {
    let (prom, _data) = prometheus(|om| om);
    let out = tempfile::tempdir().expect("out");
    let elsewhere = tempfile::tempdir().expect("victim folder");
    let victim = elsewhere.path().join("authorized_keys");
    std::fs::write(&victim, "ssh-ed25519 AAAA admin\n").expect("victim");
    let names = [
        "report.json",
        "report.md",
        "report.html",
        "report-daily.png",
        "report-projects.png",
    ];
    let (last, max) = (read_proc("ns_last_pid"), read_proc("pid_max"));
    let pids: Vec<u64> = (1..=3000).map(|i| (last + i) % max).collect();
    for name in names {
        for pid in &pids {
            std::os::unix::fs::symlink(&victim, out.path().join(format!(".{name}.tmp-{pid}")))
                .expect("plant a link");
        }
    }
    let o = run(&[
        "--prometheus",
        &prom.url(),
        "--month",
        "2026-10",
        "--out",
        &out.path().to_string_lossy(),
    ]);
    let after = std::fs::read_to_string(&victim).expect("victim");
    assert!(
        after == "ssh-ed25519 AAAA admin\n",
        "the reporter wrote through a planted link: the target now holds {} bytes starting {:?}; {}",
        after.len(),
        after.chars().take(80).collect::<String>(),
        text(&o)
    );
    ok(&o);
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("report.json")).expect("report.json"),
    )
    .expect("a complete JSON report");
    assert!(
        json["top_jobs"]
            .as_array()
            .is_some_and(|j| j.iter().any(|j| j["job_id"] == "1001")),
        "report.json lacks job 1001"
    );
    for name in names {
        let meta = std::fs::symlink_metadata(out.path().join(name)).expect(name);
        assert!(
            meta.is_file() && meta.len() > 0,
            "{name} is not a regular file"
        );
    }
    let mut links = 0;
    for e in std::fs::read_dir(out.path()).expect("out").flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".tmp"), "temporary left behind: {n}");
        if n.contains(".tmp-") {
            assert_eq!(std::fs::read_link(e.path()).expect("a link"), victim);
            links += 1;
        }
    }
    assert_eq!(links, names.len() * pids.len(), "planted links removed");
}

/// Reads one request's headers and body (by Content-Length).
fn read_request(conn: &mut std::net::TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < end + len {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// What the huge-answer server saw: connections, and body bytes the client accepted.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    bytes: AtomicU64,
}

/// The rows of a huge answer.
#[derive(Clone, Copy, Debug)]
enum Rows {
    /// An `instance` label of 1 KiB: about as much memory as text once parsed.
    Wide,
    /// 30 empty labels: about 8 times more memory than text once parsed.
    EmptyLabels,
}

/// A server on 127.0.0.1 answering every query with a well-formed vector of `total` bytes of
/// `rows` (ended by closing the connection, no Content-Length).
fn huge_answer_server(total: u64, rows: Rows) -> (String, Arc<Seen>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            s.connections.fetch_add(1, Ordering::SeqCst);
            read_request(&mut conn);
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[";
            if conn.write_all(head.as_bytes()).is_err() {
                continue;
            }
            let pad = "x".repeat(1024);
            let empty: Vec<String> = (0..30).map(|l| format!("\"l{l}\":\"\"")).collect();
            let empty = empty.join(",");
            let mut sent = 0u64;
            let mut i = 0u64;
            while sent < total {
                let metric = match rows {
                    Rows::Wide => format!("\"instance\":\"{pad}-{i}\",\"job_id\":\"{i}\""),
                    Rows::EmptyLabels => empty.clone(),
                };
                let row = format!(
                    "{}{{\"metric\":{{{metric}}},\"value\":[1793491200,\"1\"]}}",
                    if i == 0 { "" } else { "," }
                );
                if conn.write_all(row.as_bytes()).is_err() {
                    break;
                }
                sent += row.len() as u64;
                s.bytes.fetch_add(row.len() as u64, Ordering::SeqCst);
                i += 1;
            }
            let _ = conn.write_all(b"]}}");
        }
    });
    (url, seen)
}

/// Runs the reporter and reaps it with wait4: its output, exit code and peak resident memory
/// (KiB). Killed if still running after `limit`.
// Reaped by wait4 below, which std's `Child` cannot do (it gives no resource usage).
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str], limit: Duration) -> (Output, u64) {
    let mut child = reporter()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run joulebook-report");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let (status, rss) = loop {
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break (status, usage.ru_maxrss as u64);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("joulebook-report still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(libc::WIFEXITED(status), "killed by a signal: {status}");
    let o = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    };
    (o, rss)
}

/// A server answering 1 GiB to the first query: the reporter stops reading at the cap (from the
/// flag, then from the config), or earlier when the rows take more memory than text (at 3 times
/// the cap of memory), fails at once with an error naming the query and the cap, holds a bounded
/// amount of memory and writes nothing.
#[test]
fn a_huge_answer_fails_at_the_cap_with_bounded_memory() {
    const GIB: u64 = 1 << 30;
    for (how, cap_mib, rows) in [
        ("flag", 8u64, Rows::Wide),
        ("config", 4, Rows::Wide),
        ("flag", 16, Rows::EmptyLabels),
    ] {
        let (url, seen) = huge_answer_server(GIB, rows);
        let out = tempfile::tempdir().expect("out");
        let cfg = out.path().join("site.yaml");
        std::fs::write(
            &cfg,
            format!("prometheus: {{url: \"{url}\", max_answer_mib: {cap_mib}}}\n"),
        )
        .expect("config");
        let out_dir = out.path().join("reports");
        let (out_s, cfg_s, cap_s) = (
            out_dir.to_string_lossy().to_string(),
            cfg.to_string_lossy().to_string(),
            cap_mib.to_string(),
        );
        let mut args = vec!["--month", "2026-10", "--out", &out_s, "--parallelism", "1"];
        match how {
            "flag" => args.extend(["--prometheus", &url, "--max-answer-mib", &cap_s]),
            _ => args.extend(["--config", &cfg_s]),
        }
        let (o, rss_kib) = run_measured(&args, Duration::from_secs(120));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{how}: {}", text(&o));
        assert!(
            err.contains(&format!(
                "{url} answered more than {cap_mib} MiB to one query"
            )) && err.contains("--max-answer-mib")
                && err.contains("prometheus.max_answer_mib")
                && err.contains("\nquery: "),
            "{how}: {err}"
        );
        assert_eq!(
            seen.connections.load(Ordering::SeqCst),
            1,
            "{how}: an answer over the cap is not asked again"
        );
        let read = seen.bytes.load(Ordering::SeqCst);
        // What the client read plus the socket buffers of both ends.
        assert!(
            read < (cap_mib + 32) << 20,
            "{how}: the server got {read} bytes out"
        );
        // The program itself, and what the parsed rows may take: 3 times the cap (without that
        // budget, 16 MiB of empty labels took 147 MB).
        let bound_kib = (32 + 3 * cap_mib) * 1024;
        assert!(
            rss_kib < bound_kib,
            "{how}, {rows:?}: peak resident memory {rss_kib} KiB for a cap of {cap_mib} MiB"
        );
        eprintln!(
            "{how}, {rows:?}: cap {cap_mib} MiB, server sent {read} bytes, peak RSS {rss_kib} KiB"
        );
        assert!(!out_dir.exists(), "{how}: files written");
    }
}

/// A server whose error message is 1 MiB long: the reporter shows the start of it, not the page.
#[test]
fn a_huge_error_message_is_cut() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let body = format!(
            "{{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"{}\"}}",
            "e".repeat(1 << 20)
        );
        for mut conn in listener.incoming().flatten() {
            read_request(&mut conn);
            let head = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body.as_bytes());
        }
    });
    let out = tempfile::tempdir().expect("out");
    let o = run(&[
        "--prometheus",
        &url,
        "--month",
        "2026-10",
        "--out",
        &out.path().to_string_lossy(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", err.len());
    assert!(
        err.contains("rejected a query (bad_data): eeee") && err.contains("e…"),
        "{}",
        err.chars().take(300).collect::<String>()
    );
    assert!(err.len() < 4096, "{} bytes of error", err.len());
}

/// A job name of 10,000 characters stored in a real Prometheus: every format shows it cut to
/// 256 characters ending in `…`, and so does the `job` subcommand.
#[test]
fn long_label_values_are_cut_in_every_format() {
    let long = format!("train-final-{}", "x".repeat(10_000));
    let (prom, _data) = prometheus(|om| {
        assert!(om.contains("job_name=\"train-final\""));
        om.replace("job_name=\"train-final\"", &format!("job_name=\"{long}\""))
    });
    let out = tempfile::tempdir().expect("out");
    ok(&run(&[
        "--prometheus",
        &prom.url(),
        "--month",
        "2026-10",
        "--out",
        &out.path().to_string_lossy(),
    ]));
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("report.json")).expect("report.json"),
    )
    .expect("JSON");
    let job = json["top_jobs"]
        .as_array()
        .expect("top_jobs")
        .iter()
        .find(|j| j["job_id"] == "1001")
        .expect("job 1001");
    let name = job["name"].as_str().expect("a name");
    assert_eq!(
        name.chars().count(),
        256,
        "job 1001's name, starting {:?}",
        name.chars().take(40).collect::<String>()
    );
    assert!(name.starts_with("train-final-xxx") && name.ends_with('…'));
    let run_of_x = "x".repeat(300);
    for f in ["report.json", "report.md", "report.html"] {
        let t = std::fs::read_to_string(out.path().join(f)).expect(f);
        assert!(!t.contains(&run_of_x), "{f} shows the whole value");
    }
    let summary = ok(&run(&[
        "--prometheus",
        &prom.url(),
        "--from",
        "2026-10-01",
        "--to",
        "2026-11-01",
        "job",
        "1001",
    ]));
    let line = summary
        .lines()
        .find(|l| l.starts_with("Name:"))
        .expect("a Name line");
    assert!(
        line.contains(&format!("train-final-{}…", "x".repeat(256 - 13)))
            && !line.contains(&run_of_x),
        "the Name line is {} characters long",
        line.chars().count()
    );
}

/// The config of the mail test: four reports, five addresses.
fn mail_config(dir: &Path, port: u16, extra_user: &str) -> String {
    let cfg = dir.join("site.yaml");
    std::fs::write(
        &cfg,
        format!(
            "smtp:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  from: joulebook <report@example.org>\nrecipients:\n  admins: [admin@example.org]\n  projects:\n    proj-a: [lead-a@example.org, deputy-a@example.org]\n  users:\n    alice: [alice@example.org]\n    carol: [{extra_user}]\n"
        ),
    )
    .expect("config");
    cfg.to_string_lossy().into_owned()
}

fn email(prom: &str, cfg: &str, extra: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut args = vec!["--prometheus", prom, "--month", "2026-10", "--config", cfg];
    args.push("email");
    args.extend_from_slice(extra);
    reporter()
        .args(&args)
        .envs(env.iter().copied())
        .output()
        .expect("run joulebook-report")
}

/// One address refused with 550: the other four get their mail, the run exits 1 listing the
/// refused one; a re-run sends only that one; a third sends nothing; `--resend` sends all five.
/// A bad address in the config stops the run before anything is sent.
#[test]
fn a_refused_recipient_does_not_stop_the_others_and_a_rerun_sends_only_it() {
    let (prom, _data) = prometheus(|om| om);
    let state = tempfile::tempdir().expect("state");
    let state_s = state.path().to_string_lossy().to_string();
    let work = tempfile::tempdir().expect("work");
    let all = [
        "admin@example.org",
        "alice@example.org",
        "carol@example.org",
        "deputy-a@example.org",
        "lead-a@example.org",
    ];

    let sink = SmtpSink::start(&["lead-a@example.org"]);
    let cfg = mail_config(work.path(), sink.port, "carol@example.org");
    let o = email(&prom.url(), &cfg, &["--state-dir", &state_s], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1 of 5 messages not delivered")
            && err.contains(
                "report-project-proj-a to lead-a@example.org: SMTP server 127.0.0.1 refused the message"
            )
            && err.contains("550")
            && err.contains("a re-run sends only these"),
        "{err}"
    );
    let got = sink.recipients();
    assert_eq!(
        got,
        [all[0], all[1], all[2], all[3]],
        "every other recipient, once"
    );
    drop(sink);

    // The same run again, the address now accepted; the record found through systemd's
    // $STATE_DIRECTORY this time.
    let sink = SmtpSink::start(&[]);
    let cfg = mail_config(work.path(), sink.port, "carol@example.org");
    let stdout = ok(&email(
        &prom.url(),
        &cfg,
        &[],
        &[("STATE_DIRECTORY", state.path())],
    ));
    assert_eq!(sink.recipients(), ["lead-a@example.org"], "{stdout}");
    assert_eq!(stdout.matches("already sent").count(), 4, "{stdout}");

    // Everything delivered: nothing to send.
    ok(&email(&prom.url(), &cfg, &["--state-dir", &state_s], &[]));
    assert_eq!(sink.recipients().len(), 1);

    // --resend: all five again.
    ok(&email(
        &prom.url(),
        &cfg,
        &["--state-dir", &state_s, "--resend"],
        &[],
    ));
    let again = sink.recipients();
    assert_eq!(again.len(), 6, "{again:?}");
    for a in all {
        assert!(again.iter().any(|r| r == a), "{a} not sent with --resend");
    }

    // A bad address: exit 2 naming the key and the value, nothing sent, nothing recorded.
    let fresh = tempfile::tempdir().expect("state");
    let cfg = mail_config(work.path(), sink.port, "carol@@example.org");
    let o = email(
        &prom.url(),
        &cfg,
        &["--state-dir", &fresh.path().to_string_lossy()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("recipients.users.carol[0]: \"carol@@example.org\" is not a mail address"),
        "{err}"
    );
    assert_eq!(sink.recipients().len(), 6, "sent despite a bad address");
    assert_eq!(std::fs::read_dir(fresh.path()).expect("state").count(), 0);
}
