//! A scraper with the right password is served under floods, on the built `joulebook-exporter`
//! on 127.0.0.1 with basic authentication (bcrypt cost 10, plain HTTP):
//! - wrong passwords from many connections of one address while two scrapers (one already
//!   verified, one whose first check happens during the flood, from 127.0.0.2) scrape every
//!   second for over two cache lifetimes (`web.basic_auth_cache_ttl: 3s`);
//! - unauthenticated `/healthz` and credential-less requests spending the rate limit's open
//!   budget while an authenticated scraper scrapes.
//!
//! Each flood is bounded in time and in requests; the loopback addresses 127.0.0.2 and up are
//! the kernel's (all of 127.0.0.0/8 is local on Linux).

use joulebook_tests::{fixture, Exporter};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Starts the exporter on the fixture tree with `web` as its web configuration file and
/// `extra` appended to its configuration file.
fn start(dir: &Path, web: &str, extra: &str) -> Exporter {
    let web_file = dir.join("web.yml");
    std::fs::write(&web_file, web).expect("write web config");
    let cfg = dir.join("exporter.yaml");
    std::fs::write(
        &cfg,
        format!(
            "web:\n  config_file: {}\n{extra}sources:\n  nvml:\n    enabled: off\njobs:\n  enabled: off\n",
            web_file.display()
        ),
    )
    .expect("write config");
    let root = fixture("intel-2s");
    Exporter::start(&[
        "--config.file",
        cfg.to_str().expect("UTF-8 path"),
        &format!("--path.sysfs={}", root.join("sys").display()),
        &format!("--path.procfs={}", root.join("proc").display()),
    ])
}

/// One GET on a new connection: the status, or 0 when no answer came within 10 s.
fn get(port: u16, path: &str, authorization: Option<&str>) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    if s.read_exact(&mut head).is_err() {
        return 0;
    }
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A scrape with curl from the loopback address `from`: its status (0 if none).
fn scrape_from(from: &str, port: u16, user_password: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(["--noproxy", "*", "--interface", from, "-u", user_password])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .stdin(Stdio::null())
        .output()
        .expect("run curl (Debian package curl, installed by scripts/install-test-deps)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `threads` connections in a loop, each sending `path` with `authorization` until `stop` or
/// `max_each` requests, pausing `pause` after each answer other than 401 (a refused check costs
/// the server nothing, so the flood stays bounded in requests): every status seen.
fn flood(
    port: u16,
    threads: usize,
    path: &'static str,
    authorization: Option<String>,
    pause: Duration,
    max_each: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<u16>>> {
    (0..threads)
        .map(|_| {
            let stop = stop.clone();
            let authorization = authorization.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) && seen.len() < max_each {
                    let status = get(port, path, authorization.as_deref());
                    seen.push(status);
                    if status != 401 {
                        std::thread::sleep(pause);
                    }
                }
                seen
            })
        })
        .collect()
}

fn statuses(handles: Vec<std::thread::JoinHandle<Vec<u16>>>) -> Vec<u16> {
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("flood thread"))
        .collect()
}

fn count(seen: &[u16], status: u16) -> usize {
    seen.iter().filter(|s| **s == status).count()
}

/// Twelve connections sending wrong passwords back to back (more than the 8 pending checks)
/// while two scrapers scrape every second for over two cache lifetimes: every scrape is
/// answered 200. One scraper was verified before the flood (its cached success is renewed by
/// each scrape and answered before the queue), the other, from another address, is first
/// checked during the flood (one address holds at most 2 pending checks).
#[test]
fn a_flood_of_wrong_passwords_never_locks_out_the_scraper() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let hash = bcrypt::hash(PASSWORD, 10).expect("bcrypt hash");
    let e = start(
        dir.path(),
        &format!("basic_auth_users:\n  prometheus: \"{hash}\"\n"),
        "  basic_auth_cache_ttl: 3s\n",
    );
    let right = format!("prometheus:{PASSWORD}");
    assert_eq!(
        scrape_from("127.0.0.1", e.port, &right),
        200,
        "{}",
        e.log_text()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Some(basic("prometheus", "n0t-the-password"));
    let flooders = flood(
        e.port,
        12,
        "/metrics",
        wrong,
        Duration::from_millis(50),
        300,
        &stop,
    );
    std::thread::sleep(Duration::from_millis(500));
    // 8 s: over two and a half lifetimes of a cached success; each scraper on its own thread,
    // so a slow answer to one never delays the other's next scrape.
    let scrapers: Vec<_> = ["127.0.0.1", "127.0.0.2"]
        .into_iter()
        .map(|from| {
            let (port, right) = (e.port, right.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut seen = Vec::new();
                while start.elapsed() < Duration::from_secs(8) {
                    let t = Instant::now();
                    let at = start.elapsed().as_secs_f64();
                    seen.push((from, at, scrape_from(from, port, &right)));
                    std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
                }
                seen
            })
        })
        .collect();
    let scrapes: Vec<_> = scrapers
        .into_iter()
        .flat_map(|h| h.join().expect("scraper thread"))
        .collect();
    stop.store(true, Ordering::SeqCst);
    let seen = statuses(flooders);
    let refused: Vec<_> = scrapes.iter().filter(|s| s.2 != 200).collect();
    assert!(
        refused.is_empty(),
        "scrapes not answered 200 (address, s into the flood, status): {refused:?}\nflood: {} \
         requests, {} answered 401, {} answered 429\nlog:\n{}",
        seen.len(),
        count(&seen, 401),
        count(&seen, 429),
        e.log_text()
    );
    assert!(scrapes.len() >= 12, "{scrapes:?}");
    // The flood was real: its checks ran (401) and its excess was refused at once (429).
    assert!(
        count(&seen, 401) >= 10 && count(&seen, 429) >= 10,
        "{} requests: {} answered 401, {} answered 429",
        seen.len(),
        count(&seen, 401),
        count(&seen, 429)
    );
    let log = e.log_text();
    assert!(!log.contains(PASSWORD) && !log.contains("n0t-the-password"));
}

/// With a rate limit and basic authentication, unauthenticated requests (`/healthz`, and
/// `/metrics` without credentials) spend their own budget: flooding them, far beyond the
/// limit, leaves the authenticated scraper's budget whole.
#[test]
fn unauthenticated_floods_do_not_spend_the_scrapers_rate_limit() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let hash = bcrypt::hash(PASSWORD, 10).expect("bcrypt hash");
    let e = start(
        dir.path(),
        &format!(
            "basic_auth_users:\n  prometheus: \"{hash}\"\nrate_limit:\n  interval: 1s\n  burst: 3\n"
        ),
        "",
    );
    // Start-up probes spent some of the open budget: let it refill.
    std::thread::sleep(Duration::from_secs(3));
    let stop = Arc::new(AtomicBool::new(false));
    let pause = Duration::from_millis(20);
    let mut handles = flood(e.port, 3, "/healthz", None, pause, 300, &stop);
    handles.extend(flood(e.port, 2, "/metrics", None, pause, 300, &stop));
    std::thread::sleep(Duration::from_millis(500));
    let right = format!("prometheus:{PASSWORD}");
    let start = Instant::now();
    let mut scrapes = Vec::new();
    while start.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        scrapes.push(scrape_from("127.0.0.1", e.port, &right));
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
    }
    stop.store(true, Ordering::SeqCst);
    let seen = statuses(handles);
    assert!(
        scrapes.iter().all(|s| *s == 200) && scrapes.len() >= 4,
        "scrapes: {scrapes:?}; flood: {} requests, {} answered 429\nlog:\n{}",
        seen.len(),
        count(&seen, 429),
        e.log_text()
    );
    // The limit was in force for the flood: most of it was refused.
    assert!(
        count(&seen, 429) > seen.len() / 2,
        "{} requests, {} answered 429",
        seen.len(),
        count(&seen, 429)
    );
}
