//! Helpers shared by the end-to-end tests: locating the built binaries and fixtures, starting the
//! exporter on 127.0.0.1, scraping it, and reading the exposition format.
//!
//! The binaries are built by `cargo build --workspace` (the test command does it first); a test
//! that cannot find them fails with the command to run, it never skips.

pub mod fake_nvml;
pub mod grafana;
pub mod prometheus;
pub mod promql;
pub mod redfish_server;
pub mod scenario;
pub mod shipped;
pub mod slurm;
pub mod smtp;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A built binary of the workspace, next to the test executable's profile folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable under target/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --workspace` before the end-to-end tests",
        bin.display()
    );
    bin
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// A cgroup fixture tree, `tests/fixtures/cgroup/<name>` (job discovery tests).
pub fn cgroup_fixture(name: &str) -> PathBuf {
    fixture("cgroup").join(name)
}

/// Copies a fixture into a fresh temporary folder, so a test can change its files.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    copy_tree(&fixture(name), dir.path());
    dir
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("folder entry");
        let target = to.join(entry.file_name());
        let ft = entry.file_type().expect("file type");
        if ft.is_symlink() {
            // Fixtures use relative links (cpuacct -> cpu,cpuacct): recreate them as they are.
            let link = std::fs::read_link(entry.path()).expect("read link");
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(link, &target).expect("create link");
        } else if ft.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Writes a counter file the way the kernel changes it: all at once (write, then rename).
pub fn write_value(path: &Path, value: u64) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{value}\n")).expect("write counter file");
    std::fs::rename(&tmp, path).expect("rename counter file");
}

/// Writes a file, creating its folders (fixture trees built by a test).
pub fn write_file(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

/// A process environment as `/proc/PID/environ` holds it: `KEY=VALUE` pairs, each ended by NUL.
pub fn environ(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

/// A free TCP port on 127.0.0.1 (released before return; a race with other tests is unlikely).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An HTTP GET on 127.0.0.1 with an optional Accept header: (status, content type, body).
pub fn http_get(url: &str, accept: Option<&str>) -> Result<(u16, String, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let mut resp = req.call().map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("GET {url}: body: {e}"))?;
    Ok((status, ctype, body))
}

/// A running `joulebook-exporter`, killed on drop. Its log goes to a file kept for failures.
pub struct Exporter {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Exporter {
    /// Starts the exporter with `args` (the listen address is added) and waits until /healthz
    /// answers 200, for at most 15 s.
    pub fn start(args: &[&str]) -> Exporter {
        Exporter::start_with_env(args, &[])
    }

    /// Like [`Exporter::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &Path)]) -> Exporter {
        let mut e = Exporter::spawn(&[], args, env);
        e.wait_healthy(Duration::from_secs(15));
        e
    }

    /// Starts `wrapper... joulebook-exporter args...` (a wrapper such as `setpriv ... --`, or
    /// nothing) without waiting for it: for servers that plain HTTP cannot probe (TLS), see
    /// [`Exporter::wait_until`].
    pub fn spawn(wrapper: &[&str], args: &[&str], env: &[(&str, &Path)]) -> Exporter {
        Exporter::spawn_binary(&binary("joulebook-exporter"), wrapper, args, env)
    }

    /// Like [`Exporter::spawn`], with another copy of the binary.
    pub fn spawn_binary(
        bin: &Path,
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Exporter {
        let port = free_port();
        let log_dir = tempfile::tempdir().expect("log folder");
        let log = log_dir.path().join("exporter.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(args)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start joulebook-exporter");
        Exporter {
            child,
            port,
            log,
            _log_dir: log_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_healthy(&mut self, limit: Duration) {
        self.wait_until(limit, |e| {
            matches!(http_get(&e.url("/healthz"), None), Ok((200, _, _)))
        });
    }

    /// Waits until `ready` is true, for at most `limit`; fails if the exporter exits.
    pub fn wait_until(&mut self, limit: Duration, ready: impl Fn(&Exporter) -> bool) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exporter exited with {status}; log:\n{}", self.log_text());
            }
            if ready(self) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "exporter not healthy after {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Scrapes /metrics in the classic text format.
    pub fn scrape(&self) -> String {
        let (status, _, body) = http_get(&self.url("/metrics"), None).expect("scrape");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Scrapes and parses /metrics.
    pub fn samples(&self) -> Samples {
        Samples::parse(&self.scrape())
    }

    /// Waits until the exporter has taken `n` more samples of `source` than now.
    pub fn wait_samples(&self, source: &str, n: f64) {
        let key = format!("joulebook_samples_total{{source=\"{source}\"}}");
        let start_count = self.samples().get(&key).unwrap_or(0.0);
        let start = Instant::now();
        while self.samples().get(&key).unwrap_or(0.0) < start_count + n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no new samples of {source}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Scrapes until `ok` accepts what `/metrics` shows, within `limit`; fails the test naming
    /// `what`, with the last scrape and the log.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mut ok: impl FnMut(&Samples) -> bool,
    ) -> Samples {
        let start = Instant::now();
        loop {
            let s = self.samples();
            if ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; log:\n{}\nmetrics:\n{:#?}",
                self.log_text(),
                s.0
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal and waits for the exit status (at most 10 s).
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "exporter did not exit on {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reports' time in the tests (`SOURCE_DATE_EPOCH`): 2026-11-01T00:00:00Z, the end of the
/// scenario's October.
pub const REPORT_TIME: i64 = 1_793_491_200;

/// `joulebook-report` with the reproducible "generated at" time of the golden files
/// ([`REPORT_TIME`]) and without a server URL from the environment: add the arguments and run it.
pub fn reporter() -> Command {
    reporter_at(REPORT_TIME)
}

/// [`reporter`], made at `now` (Unix seconds) instead.
pub fn reporter_at(now: i64) -> Command {
    let mut c = Command::new(binary("joulebook-report"));
    c.env("SOURCE_DATE_EPOCH", now.to_string())
        .env_remove("JOULEBOOK_PROMETHEUS_URL")
        .env_remove("STATE_DIRECTORY");
    c
}

/// The JSON report that [`reporter`] makes of `args` against the server at `url`, with
/// `--format json` and a fresh `--out`; panics with its output when it fails.
pub fn json_report(url: &str, args: &[&str]) -> serde_json::Value {
    json_report_at(url, args, REPORT_TIME)
}

/// [`json_report`], made at `now`.
pub fn json_report_at(url: &str, args: &[&str], now: i64) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("out");
    let out = dir.path().to_string_lossy().to_string();
    let o = reporter_at(now)
        .args(["--prometheus", url, "--format", "json", "--out", &out])
        .args(args)
        .output()
        .expect("run joulebook-report");
    reported(&o);
    // `report.json`, or `report-project-NAME.json` and `report-user-NAME.json` for a scope.
    let written: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .expect("out")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(written.len(), 1, "one JSON report: {written:?}");
    let text = std::fs::read_to_string(&written[0]).expect("the JSON report");
    serde_json::from_str(&text).expect("parse json")
}

/// The standard output of a `joulebook-report` run that succeeded; panics with both outputs
/// when it did not.
pub fn reported(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "joulebook-report failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Parsed samples of the classic text format: `name{labels}` (as written) → value.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub BTreeMap<String, f64>);

impl Samples {
    pub fn parse(text: &str) -> Samples {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            // The value is the last space-separated field (label values may hold spaces).
            if let Some((series, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.parse::<f64>() {
                    m.insert(series.to_string(), v);
                }
            }
        }
        Samples(m)
    }

    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.get(series).copied()
    }

    /// The value of a series, failing the test with the whole scrape if it is missing.
    pub fn must(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("series {series} missing from:\n{:#?}", self.0))
    }

    /// Series whose name (before any `{`) is `name`.
    pub fn family(&self, name: &str) -> Vec<(&str, f64)> {
        self.0
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }
}

/// Runs `promtool check metrics` on exposition text; panics with its output on failure, and if
/// promtool is missing (the test command installs it: a missing component is a failure).
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool not found: install Debian's `prometheus` package (scripts/install-test-deps)",
        );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let status = child.wait().expect("promtool exit");
    assert!(
        status.success(),
        "promtool check metrics failed:\n{out}{err}\n--- input:\n{text}"
    );
}

/// `a` and `b` within `rel` of the larger (and of 1 near zero).
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

/// Two JSON documents alike: the same keys and strings, numbers within 1e-9 (relative); `path`
/// names where they differ.
pub fn assert_same(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                close(x, y, 1e-9),
                "{path}: {x} vs {y} (first report vs second)"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_same(p, q, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                assert_same(v, &y[k], &format!("{path}.{k}"));
            }
            assert_eq!(x.len(), y.len(), "{path}: keys");
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}
