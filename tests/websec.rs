//! Securing `/metrics` and the server's limits, on the built `joulebook-exporter` on 127.0.0.1:
//! TLS, client certificates and basic authentication from `--web.config.file` with curl as the
//! client; bad web configurations; many and slow connections; and running as an unprivileged user
//! with and without `CAP_DAC_READ_SEARCH`.
//!
//! Certificates (two CAs, a server certificate for 127.0.0.1, client certificates) are made by
//! rcgen at run time and bcrypt hashes by the bcrypt crate; nothing is committed.

use joulebook_tests::{fixture, Exporter, Samples};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

/// Fixture arguments: the two-socket Intel tree, no GPU, no jobs.
fn fixture_args(root: &Path, interval: &str) -> Vec<String> {
    vec![
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.procfs={}", root.join("proc").display()),
        "--source.nvml=off".into(),
        "--jobs.enabled=off".into(),
        format!("--sample.interval={interval}"),
    ]
}

// ---- Certificates --------------------------------------------------------------------------

struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(p, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate for `names` (DNS names or IP addresses): (cert PEM, key PEM).
    fn leaf(&self, names: &[&str], client: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = rcgen::CertificateParams::new(names).expect("params");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "joulebook test");
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.issuer).expect("certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// Every file the tests need, in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temporary folder");
        let ca = Ca::new("joulebook test CA");
        let other = Ca::new("some other CA");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write PEM");
        };
        write("ca.pem", &ca.pem());
        let (c, k) = ca.leaf(&["127.0.0.1", "localhost"], false);
        write("server.pem", &c);
        write("server-key.pem", &k);
        let (c, k) = ca.leaf(&["scraper.example.org"], true);
        write("client.pem", &c);
        write("client-key.pem", &k);
        let (c, k) = ca.leaf(&["intruder.example.org"], true);
        write("client2.pem", &c);
        write("client2-key.pem", &k);
        let (c, k) = other.leaf(&["scraper.example.org"], true);
        write("foreign.pem", &c);
        write("foreign-key.pem", &k);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Writes a web configuration file and returns its path.
    fn web_config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write web config");
        p
    }
}

// ---- Clients -------------------------------------------------------------------------------

/// What curl saw: its exit code, the status of the last response, headers and body.
#[derive(Debug)]
struct Curl {
    exit: i32,
    status: Option<u16>,
    head: String,
    body: String,
    stderr: String,
}

/// curl with a 10 s limit, headers included in the output.
fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "--noproxy", "*"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (Debian package curl, installed by scripts/install-test-deps)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or((text.clone(), String::new()));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok());
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status,
        head,
        body,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn https(e: &Exporter, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", e.port)
}

/// Starts the exporter with a web configuration and waits until /healthz answers over HTTPS.
fn start_tls(pki: &Pki, web: &Path, extra_curl: &[&str]) -> Exporter {
    let args = fixture_args(&fixture("intel-2s"), "1s");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let flag = format!("--web.config.file={}", web.display());
    args.push(&flag);
    let mut e = Exporter::spawn(&[], &args, &[]);
    let ca = pki.p("ca.pem");
    e.wait_until(Duration::from_secs(15), |e| {
        let mut a = vec!["--cacert", ca.as_str()];
        a.extend_from_slice(extra_curl);
        let url = https(e, "/healthz");
        a.push(&url);
        curl(&a).status == Some(200)
    });
    e
}

fn assert_refused(c: &Curl, what: &str) {
    assert!(
        c.status != Some(200) && !c.body.contains("joulebook_"),
        "{what}: expected a refusal, got {c:?}"
    );
}

// ---- TLS and basic authentication ----------------------------------------------------------

#[test]
fn tls_and_basic_auth() {
    let pki = Pki::new();
    // Cost 10, as the README recommends: bcrypt runs for real.
    let hash = bcrypt::hash(PASSWORD, 10).expect("bcrypt hash");
    let web = pki.web_config(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n\
             basic_auth_users:\n  prometheus: \"{hash}\"\n"
        ),
    );
    let e = start_tls(&pki, &web, &[]);
    let ca = pki.p("ca.pem");
    let metrics = https(&e, "/metrics");
    let right = format!("prometheus:{PASSWORD}");

    // The right password, over TLS verified with the CA.
    let t = Instant::now();
    let ok = curl(&["--cacert", &ca, "-u", &right, &metrics]);
    let first = t.elapsed();
    assert_eq!(ok.status, Some(200), "{ok:?}\nlog:\n{}", e.log_text());
    assert!(ok.body.contains("joulebook_samples_total"), "{}", ok.body);
    assert!(
        ok.head
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{}",
        ok.head
    );
    // Again: the verification is cached, so it cannot be slower than the first by much.
    let t = Instant::now();
    let again = curl(&["--cacert", &ca, "-u", &right, &metrics]);
    assert_eq!(again.status, Some(200), "{again:?}");
    assert!(t.elapsed() < first + Duration::from_secs(2));

    refused_without_the_right_credentials(&e, &ca, &metrics);
    served_over_tls_only(&e, &ca, &right, &metrics);
    reload_keeps_or_replaces_the_settings(&e, &web, &ca, &right, &metrics);
}

/// Wrong password, unknown user, no credentials, another scheme: 401 with the challenge, one
/// throttled log line without the password; the landing page closed, /healthz open.
fn refused_without_the_right_credentials(e: &Exporter, ca: &str, metrics: &str) {
    for (what, args) in [
        ("wrong password", vec!["-u", "prometheus:n0t-the-password"]),
        ("unknown user", vec!["-u", "mallory:wrong"]),
        ("no credentials", vec![]),
        ("bearer token", vec!["-H", "Authorization: Bearer abc"]),
    ] {
        let mut a = vec!["--cacert", ca];
        a.extend(args);
        a.push(metrics);
        let c = curl(&a);
        assert_eq!(c.status, Some(401), "{what}: {c:?}");
        assert!(
            c.head
                .contains("WWW-Authenticate: Basic realm=\"joulebook\"")
                || c.head
                    .contains("www-authenticate: Basic realm=\"joulebook\""),
            "{what}: {}",
            c.head
        );
        assert!(!c.body.contains("joulebook_"), "{what}: {}", c.body);
    }
    // One throttled log line names the user and the peer, never a password.
    let log = e.log_text();
    assert!(
        log.contains("basic auth failed") && log.contains("prometheus"),
        "{log}"
    );
    assert!(
        !log.contains(PASSWORD) && !log.contains("n0t-the-password"),
        "{log}"
    );
    // The landing page needs credentials too (it names the host and the files read).
    let c = curl(&["--cacert", ca, &https(e, "/")]);
    assert_eq!(c.status, Some(401), "{c:?}");
    // /healthz is open: load balancers and liveness probes rarely speak basic auth.
    let c = curl(&["--cacert", ca, &https(e, "/healthz")]);
    assert_eq!(c.status, Some(200), "{c:?}");
}

/// Only TLS with the CA made here: curl without it refuses the certificate; plain HTTP on the
/// port gets Go's 400 and never metrics, over curl or a raw socket.
fn served_over_tls_only(e: &Exporter, ca: &str, right: &str, metrics: &str) {
    // Without our CA, curl refuses the certificate: it really is the one we made.
    let c = curl(&["-u", right, metrics]);
    assert_ne!(c.exit, 0, "{c:?}");
    assert_refused(&c, "unknown CA");

    // Plain HTTP on the TLS port: Go's 400, never metrics in clear.
    let c = curl(&["-u", right, &format!("http://127.0.0.1:{}/metrics", e.port)]);
    assert_eq!(c.status, Some(400), "{c:?}");
    assert!(c.body.contains("HTTPS"), "{c:?}");
    assert_refused(&c, "plain HTTP");
    // The same with a raw socket, reading everything the server sends.
    let mut s = TcpStream::connect(("127.0.0.1", e.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(!got.contains("joulebook_"), "{got}");
    let ok = curl(&["--cacert", ca, "-u", right, metrics]);
    assert_eq!(ok.status, Some(200), "{ok:?}");
    assert!(e.log_text().contains("TLS"), "{}", e.log_text());
}

/// Reload: a broken file keeps the previous settings (and says so), a good one is picked up
/// within a few seconds, as exporter-toolkit picks up changes. Files are checked when a
/// connection arrives, so the loops connect.
fn reload_keeps_or_replaces_the_settings(
    e: &Exporter,
    web: &Path,
    ca: &str,
    right: &str,
    metrics: &str,
) {
    std::fs::write(web, "basic_auth_users:\n  grafana: not-a-hash\n").expect("rewrite");
    let t = Instant::now();
    while !e.log_text().contains("keeping the previous web settings") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", e.log_text());
        let ok = curl(&["--cacert", ca, "-u", right, metrics]);
        assert_eq!(ok.status, Some(200), "the previous settings stay: {ok:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ok = curl(&["--cacert", ca, "-u", right, metrics]);
    assert_eq!(ok.status, Some(200), "the previous settings stay: {ok:?}");
    let hash2 = bcrypt::hash("another password", 4).expect("bcrypt hash");
    std::fs::write(
        web,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n\
             basic_auth_users:\n  grafana: \"{hash2}\"\n"
        ),
    )
    .expect("rewrite");
    let t = Instant::now();
    loop {
        let c = curl(&["--cacert", ca, "-u", "grafana:another password", metrics]);
        if c.status == Some(200) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{c:?}\n{}",
            e.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let old = curl(&["--cacert", ca, "-u", right, metrics]);
    assert_eq!(old.status, Some(401), "a removed user: {old:?}");
}

/// The web configuration is checked when connections arrive (never on a timer): a new user
/// replaces the old one for the next connections, and a broken file keeps the settings in
/// force with one error line.
#[test]
fn a_changed_web_config_applies_to_the_next_connections() {
    let pki = Pki::new();
    let hash = bcrypt::hash(PASSWORD, 10).expect("bcrypt hash");
    let web = pki.web_config(
        "web.yml",
        &format!("basic_auth_users:\n  alice: \"{hash}\"\n"),
    );
    let mut args = fixture_args(&fixture("intel-2s"), "1s");
    args.push(format!("--web.config.file={}", web.display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&args);
    let url = format!("http://127.0.0.1:{}/metrics", e.port);
    let alice = format!("alice:{PASSWORD}");
    let bob = format!("bob:{PASSWORD}");
    let status = |who: &str| curl(&["-u", who, &url]).status;
    assert_eq!(status(&alice), Some(200), "{}", e.log_text());
    assert_eq!(status(&bob), Some(401));

    std::fs::write(&web, format!("basic_auth_users:\n  bob: \"{hash}\"\n")).unwrap();
    // A connection at least RELOAD_CHECK_INTERVAL (2 s) after the previous check reloads it.
    let t = Instant::now();
    while status(&bob) != Some(200) {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the new user was never accepted:\n{}",
            e.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(status(&alice), Some(401), "the old user must be gone");
    assert_eq!(e.log_text().matches("web config reloaded").count(), 1);

    std::fs::write(&web, "basic_auth_users: [\n").unwrap();
    let t = Instant::now();
    while !e.log_text().contains("keeping the previous web settings") {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no error for the broken file:\n{}",
            e.log_text()
        );
        assert_eq!(status(&bob), Some(200), "the settings in force stay");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(status(&bob), Some(200));
    let log = e.log_text();
    assert_eq!(
        log.matches("keeping the previous web settings").count(),
        1,
        "one error line per distinct problem:\n{log}"
    );
    assert!(log.contains("web.yml"), "{log}");
}

#[test]
fn client_certificates() {
    let pki = Pki::new();
    let ca = pki.p("ca.pem");
    let web = pki.web_config(
        "mtls.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  \
         min_version: TLS12\n",
    );
    let (client, client_key) = (pki.p("client.pem"), pki.p("client-key.pem"));
    let with_client = ["--cert", client.as_str(), "--key", client_key.as_str()];
    let e = start_tls(&pki, &web, &with_client);
    let metrics = https(&e, "/metrics");

    let mut a = vec!["--cacert", ca.as_str()];
    a.extend_from_slice(&with_client);
    a.push(&metrics);
    let ok = curl(&a);
    assert_eq!(ok.status, Some(200), "{ok:?}");
    assert!(ok.body.contains("joulebook_samples_total"));

    let none = curl(&["--cacert", &ca, &metrics]);
    assert_ne!(none.exit, 0, "no client certificate: {none:?}");
    assert_refused(&none, "no client certificate");

    let (f, fk) = (pki.p("foreign.pem"), pki.p("foreign-key.pem"));
    let foreign = curl(&["--cacert", &ca, "--cert", &f, "--key", &fk, &metrics]);
    assert_ne!(foreign.exit, 0, "certificate of another CA: {foreign:?}");
    assert_refused(&foreign, "certificate of another CA");
    assert!(
        e.log_text().contains("TLS handshake failed"),
        "{}",
        e.log_text()
    );
    // Over TLS 1.2 as well (the client certificate is checked during the handshake there).
    let foreign12 = curl(&[
        "--tls-max",
        "1.2",
        "--cacert",
        &ca,
        "--cert",
        &f,
        "--key",
        &fk,
        &metrics,
    ]);
    assert_ne!(foreign12.exit, 0, "TLS 1.2, another CA: {foreign12:?}");
    assert_refused(&foreign12, "TLS 1.2, another CA");
    drop(e);

    // client_allowed_sans: the CA is not enough, the certificate must name an allowed client.
    let web = pki.web_config(
        "sans.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  \
         client_allowed_sans: [scraper.example.org]\n",
    );
    let e = start_tls(&pki, &web, &with_client);
    let metrics = https(&e, "/metrics");
    let mut a = vec!["--cacert", ca.as_str()];
    a.extend_from_slice(&with_client);
    a.push(&metrics);
    assert_eq!(curl(&a).status, Some(200));
    let (c2, k2) = (pki.p("client2.pem"), pki.p("client2-key.pem"));
    let other = curl(&["--cacert", &ca, "--cert", &c2, "--key", &k2, &metrics]);
    assert_ne!(other.exit, 0, "same CA, SAN not allowed: {other:?}");
    assert_refused(&other, "SAN not allowed");
}

// ---- Bad web configurations ----------------------------------------------------------------

/// Runs the exporter (not --check-config: the real start) and returns (exit code, stderr); it
/// must exit within 10 s.
fn run_to_exit(args: &[String]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let err_path = dir.path().join("stderr");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = Command::new(joulebook_tests::binary("joulebook-exporter"))
        .args(args)
        .arg(format!(
            "--web.listen-address=127.0.0.1:{}",
            joulebook_tests::free_port()
        ))
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start joulebook-exporter");
    let start = Instant::now();
    let code = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s.code();
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the exporter did not exit on a bad web configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(&err_path).unwrap_or_default())
}

#[test]
fn bad_web_configs_exit_2_naming_file_line_and_key() {
    let pki = Pki::new();
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt hash");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown key",
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth: RequireAndVerifyClientCert\n".into(),
            vec!["line 4", "client_auth"],
        ),
        (
            "unreadable certificate",
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: server-key.pem\n".into(),
            vec!["line 2", "tls_server_config.cert_file", "missing.pem"],
        ),
        (
            "key that is not a key",
            "tls_server_config:\n  cert_file: server.pem\n  key_file: ca.pem\n".into(),
            vec!["line 3", "tls_server_config.key_file"],
        ),
        (
            "bad bcrypt hash",
            format!("basic_auth_users:\n  prometheus: \"{hash}\"\n  alice: \"$2y$10$tooshort\"\n"),
            vec!["line 3", "basic_auth_users.alice", "bcrypt"],
        ),
        (
            "plaintext password",
            "basic_auth_users:\n  alice: hunter2\n".into(),
            vec!["line 2", "basic_auth_users.alice"],
        ),
        (
            "client CA without a policy",
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_ca_file: ca.pem\n".into(),
            vec!["line 4", "client_ca_file", "client_auth_type"],
        ),
    ];
    for (what, text, wanted) in cases {
        let web = pki.web_config("bad.yml", &text);
        let mut args = fixture_args(&fixture("intel-2s"), "1s");
        args.push(format!("--web.config.file={}", web.display()));
        let (code, err) = run_to_exit(&args);
        assert_eq!(code, Some(2), "{what}: {err}");
        assert!(err.contains(&web.display().to_string()), "{what}: {err}");
        for w in wanted {
            assert!(err.contains(w), "{what}: no {w:?} in {err}");
        }
        assert!(
            !err.contains("hunter2") && !err.contains(&hash),
            "{what}: a secret in {err}"
        );
        // --check-config says the same.
        args.push("--check-config".into());
        let (code, _) = run_to_exit(&args);
        assert_eq!(code, Some(2), "{what}: --check-config");
    }
    // A missing file.
    let mut args = fixture_args(&fixture("intel-2s"), "1s");
    args.push(format!("--web.config.file={}", pki.p("absent.yml")));
    let (code, err) = run_to_exit(&args);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("absent.yml") && err.contains("--web.config.file"),
        "{err}"
    );
}

// ---- Many and slow connections -------------------------------------------------------------

fn vm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn samples_total(e: &Exporter) -> f64 {
    Samples::parse(&e.scrape()).must("joulebook_samples_total{source=\"rapl\"}")
}

/// One plain GET /metrics on a fresh connection, answered within `limit`: (status, elapsed).
fn timed_scrape(port: u16, limit: Duration) -> (u16, Duration, String) {
    let t = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(limit))
        .http_status_as_error(false)
        .build()
        .into();
    match agent
        .get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
    {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let body = r.body_mut().read_to_string().unwrap_or_default();
            (status, t.elapsed(), body)
        }
        Err(e) => panic!("scrape failed after {:?}: {e}", t.elapsed()),
    }
}

/// 200 connections at once, most of them slowloris (request headers one byte at a time), some
/// that never send anything and some that never read their response: a normal scrape still gets
/// through within a few seconds, sampling never stops, memory stays bounded, and the server
/// serves normally once they are gone. A lone slow client is cut off by the header timeout.
#[test]
fn many_and_slow_connections_do_not_starve_scrapes_or_sampling() {
    let test_start = Instant::now();
    let args = fixture_args(&fixture("intel-2s"), "100ms");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    let pid = e.child.id();
    let addr: SocketAddr = ([127, 0, 0, 1], e.port).into();
    let rss_before = vm_rss_kb(pid);
    let (s0, t0) = (samples_total(&e), Instant::now());

    let (mut slow, silent, deaf) = hostile_connections(addr);
    // Trickle one header byte per connection every 200 ms while a normal client scrapes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let trickler = std::thread::spawn(move || {
        let mut alive = slow.len();
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            alive = 0;
            for s in &mut slow {
                let b = [b'a' + (n % 26) as u8];
                if s.write_all(&b).is_ok() {
                    alive += 1;
                }
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        (alive, slow)
    });
    std::thread::sleep(Duration::from_millis(1500));
    let rss_during = vm_rss_kb(pid);

    // A normal scrape gets a slot by displacing the longest-idle slow connection.
    let (status, took, body) = timed_scrape(e.port, Duration::from_secs(8));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("joulebook_samples_total"));
    assert!(
        took < Duration::from_secs(6),
        "scrape during the flood took {took:?}"
    );
    // And another, a little later.
    std::thread::sleep(Duration::from_millis(500));
    let (status, took2, _) = timed_scrape(e.port, Duration::from_secs(8));
    assert_eq!(status, 200);
    assert!(
        took2 < Duration::from_secs(6),
        "second scrape took {took2:?}"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (alive, slow) = trickler.join().expect("trickler");
    let rss_peak = rss_during.max(vm_rss_kb(pid));
    drop(slow);
    drop(silent);
    drop(deaf);

    // Sampling went on all along: about one sample per 100 ms since t0.
    let s1 = samples_total(&e);
    let expected = t0.elapsed().as_secs_f64() / 0.1;
    assert!(
        s1 - s0 >= 0.6 * expected,
        "{} samples in {:?}, expected about {expected:.0}",
        s1 - s0,
        t0.elapsed()
    );
    // Normal service right after.
    let (status, took3, _) = timed_scrape(e.port, Duration::from_secs(5));
    assert_eq!(status, 200);
    assert!(took3 < Duration::from_secs(2), "after the flood: {took3:?}");
    assert!(
        rss_peak < rss_before + 64 * 1024,
        "RSS grew from {rss_before} kB to {rss_peak} kB"
    );
    eprintln!(
        "flood: scrapes in {took:?} and {took2:?} ({alive} slowloris connections still open), \
         then {took3:?}; RSS {rss_before} → {rss_peak} kB; {} samples in {:?}",
        s1 - s0,
        t0.elapsed()
    );

    lone_slowloris_is_cut_by_the_header_timeout(addr);
    let (status, _, _) = timed_scrape(e.port, Duration::from_secs(5));
    assert_eq!(status, 200);
    assert!(
        test_start.elapsed() < Duration::from_secs(30),
        "{:?}",
        test_start.elapsed()
    );
}

/// 200 connections: 150 slowloris (a request line, then nothing yet), 30 silent, 20 that send a
/// request and never read; returned as (slow, silent, deaf).
fn hostile_connections(addr: SocketAddr) -> (Vec<TcpStream>, Vec<TcpStream>, Vec<TcpStream>) {
    let mut slow = Vec::new();
    let mut silent = Vec::new();
    let mut deaf = Vec::new();
    for i in 0..200 {
        // Beyond the 64 slots and the kernel's backlog of 128, a connect waits for the server to
        // drain the backlog (the kernel retries the SYN after 1 s, then 3 s).
        let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(8)) {
            Ok(s) => s,
            Err(err) => panic!("connection {i}: {err}"),
        };
        s.set_write_timeout(Some(Duration::from_millis(200))).ok();
        match i % 10 {
            0 => {
                let mut s = s;
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
                deaf.push(s);
            }
            1 | 2 => silent.push(s),
            _ => {
                let mut s = s;
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n");
                slow.push(s);
            }
        }
    }
    (slow, silent, deaf)
}

/// A lone slowloris connection, with no pressure to evict it, is cut by the header timeout
/// (10 s), not left open.
fn lone_slowloris_is_cut_by_the_header_timeout(addr: SocketAddr) {
    let mut lone = TcpStream::connect(addr).expect("connect");
    lone.set_write_timeout(Some(Duration::from_millis(500)))
        .ok();
    let _ = lone.write_all(b"GET /metrics HTTP/1.1\r\n");
    let t = Instant::now();
    let closed_after = loop {
        std::thread::sleep(Duration::from_millis(250));
        if lone.write_all(b"X").is_err() {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(14),
            "a slow client kept its connection for 14 s"
        );
    };
    assert!(
        closed_after >= Duration::from_secs(9),
        "closed too early: {closed_after:?}"
    );
}

/// A request body is refused (GET needs none), as are oversized headers.
#[test]
fn request_size_limits() {
    let args = fixture_args(&fixture("intel-2s"), "1s");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    let url = e.url("/metrics");
    let big = "x".repeat(8 * 1024);
    let c = curl(&["-X", "GET", "--data-binary", &big, &url]);
    assert_eq!(c.status, Some(413), "{c:?}");
    let c = curl(&[
        "-X",
        "GET",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "x",
        &url,
    ]);
    assert_eq!(c.status, Some(413), "{c:?}");
    let huge = format!("X-Big: {}", "y".repeat(70 * 1024));
    let c = curl(&["-H", &huge, &url]);
    assert!(c.status == Some(431) || c.exit != 0, "{c:?}");
    assert!(!c.body.contains("joulebook_"));
    let c = curl(&[&url]);
    assert_eq!(c.status, Some(200), "{}", c.stderr);
}

// ---- Running without root ------------------------------------------------------------------

/// Sets the mode of every folder (0755) and file (0644) under `dir`, and 0400 on energy_uj.
fn set_modes(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()))
    };
    set(dir, 0o755);
    for entry in std::fs::read_dir(dir).expect("read folder") {
        let entry = entry.expect("entry");
        let ft = entry.file_type().expect("file type");
        let p = entry.path();
        if ft.is_symlink() {
            continue;
        } else if ft.is_dir() {
            set_modes(&p);
        } else if entry.file_name() == "energy_uj" {
            set(&p, 0o400);
        } else {
            set(&p, 0o644);
        }
    }
}

/// The shipped unit runs the exporter as a dynamic user with CAP_DAC_READ_SEARCH. As nobody,
/// on a tree whose energy_uj files are root's and mode 0400 (as since Linux 5.10): without the
/// capability RAPL is down with the log line telling the fix, and the rest is served; with it
/// (ambient, as systemd's AmbientCapabilities gives it), RAPL is read.
#[test]
fn unprivileged_user_needs_cap_dac_read_search_for_rapl() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test drops from root to nobody with setpriv: run the tests as root (scripts/test does)"
    );
    let dir = tempfile::tempdir().expect("temporary folder");
    let root = dir.path().join("tree");
    joulebook_tests::copy_tree(&fixture("intel-2s"), &root);
    // nobody must reach the binary: a copy beside the tree.
    let bin = dir.path().join("joulebook-exporter");
    std::fs::copy(joulebook_tests::binary("joulebook-exporter"), &bin).expect("copy binary");
    set_modes(dir.path());
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let energy = root.join("sys/class/powercap/intel-rapl:0/energy_uj");
    let args = fixture_args(&root, "1s");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    // The premise: nobody cannot read the file.
    let cat = Command::new("setpriv")
        .args(&nobody[1..4])
        .arg("cat")
        .arg(&energy)
        .output()
        .expect("setpriv (util-linux)");
    assert!(
        !cat.status.success(),
        "nobody can read {}",
        energy.display()
    );

    let up = |e: &Exporter| Samples::parse(&e.scrape()).get("joulebook_source_up{source=\"rapl\"}");

    let mut e = Exporter::spawn_binary(&bin, &nobody, &refs, &[]);
    e.wait_until(Duration::from_secs(15), |e| {
        joulebook_tests::http_get(&e.url("/healthz"), None).is_ok_and(|r| r.0 == 200)
            && e.log_text().contains("permission denied")
    });
    assert_eq!(up(&e), Some(0.0), "{}", e.log_text());
    let log = e.log_text();
    assert!(
        log.contains("energy_uj") && log.contains("CAP_DAC_READ_SEARCH"),
        "the log should tell the fix:\n{log}"
    );
    let body = e.scrape();
    assert!(body.contains("joulebook_build_info"), "{body}");
    let status = Command::new("ps")
        .args(["-o", "uid=", "-p", &e.child.id().to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(status.is_empty() || status == "65534", "uid {status}");
    drop(e);

    let with_cap = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        "--",
    ];
    let mut e = Exporter::spawn_binary(&bin, &with_cap, &refs, &[]);
    e.wait_until(Duration::from_secs(15), |e| {
        joulebook_tests::http_get(&e.url("/healthz"), None).is_ok_and(|r| r.0 == 200)
    });
    e.wait_samples("rapl", 1.0);
    let s = Samples::parse(&e.scrape());
    assert_eq!(
        s.get("joulebook_source_up{source=\"rapl\"}"),
        Some(1.0),
        "{}",
        e.log_text()
    );
    assert!(
        s.get("joulebook_rapl_package_joules_total{socket=\"0\"}")
            .is_some(),
        "{}",
        e.scrape()
    );
    assert!(
        !e.log_text().contains("permission denied"),
        "{}",
        e.log_text()
    );
}
