//! A real Prometheus (Debian's `prometheus` and `promtool`) on 127.0.0.1 for the tests: backfill
//! OpenMetrics or recording rules into a TSDB folder with promtool, serve it, query it. The
//! server is killed on drop, so a failing test leaves nothing running.

use crate::{free_port, http_get, Samples};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the test fails (a month of backfilled blocks opens in
/// seconds; a loaded CI machine is slower).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);

fn promtool(args: &[&str]) {
    let o = Command::new("promtool").args(args).output().expect(
        "promtool not found: install Debian's `prometheus` package (scripts/install-test-deps)",
    );
    assert!(
        o.status.success(),
        "promtool {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `promtool tsdb create-blocks-from openmetrics` of `file` into `tsdb`, with blocks of up to 32
/// days (a simulated month in one block).
pub fn backfill_openmetrics(file: &Path, tsdb: &Path) {
    promtool(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--max-block-duration=768h",
        &file.display().to_string(),
        &tsdb.display().to_string(),
    ]);
}

/// Percent-encodes a query for a URL.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A series' labels.
pub type Labels = BTreeMap<String, String>;

fn labels(metric: &Value) -> Labels {
    metric
        .as_object()
        .expect("labels")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect()
}

/// One series of a query's answer: its labels and value.
pub type Series = (Labels, f64);

/// One series of a range query's answer: its labels and its (Unix seconds, value as Prometheus
/// wrote it).
pub type RangeSeries = (Labels, Vec<(i64, String)>);

/// A Prometheus serving a TSDB folder, with no scrape target: the data is backfilled.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    tsdb: PathBuf,
    log: PathBuf,
    args: Vec<String>,
}

impl Prometheus {
    /// Starts Prometheus on `tsdb` (its config and log go beside it) with extra flags, and waits
    /// until it is ready.
    pub fn start(tsdb: &Path, args: &[&str]) -> Prometheus {
        let dir = tsdb.parent().unwrap_or(Path::new("."));
        let config = dir.join("prometheus-test.yml");
        std::fs::write(&config, "global: {}\n").expect("write the Prometheus config");
        let mut all = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", tsdb.display()),
            "--storage.tsdb.retention.time=3650d".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut p = Prometheus {
            child: Command::new("true").spawn().expect("spawn true"),
            port: 0,
            tsdb: tsdb.to_path_buf(),
            log: dir.join("prometheus-test.log"),
            args: all,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        self.port = free_port();
        let log = std::fs::File::create(&self.log).expect("Prometheus log file");
        self.child = Command::new("prometheus")
            .args(&self.args)
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus not found: install Debian's `prometheus` package (scripts/install-test-deps)");
        let started = Instant::now();
        loop {
            if let Ok((200, _, _)) = http_get(&format!("{}/-/ready", self.url()), None) {
                return;
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!(
                    "prometheus exited with {s}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "prometheus not ready after {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Evaluates recording rules — (recorded name, expression) — over `[start, end]` (Unix
    /// seconds) every `step_s` seconds against this server's data, writes the results as
    /// OpenMetrics, backfills them with promtool, and restarts the server with the new blocks
    /// in its TSDB. As `promtool tsdb create-blocks-from rules` does, one range query per rule
    /// instead of one per two hours of data, which makes a month's backfill minutes faster.
    /// The rules must not read each other: backfill them level by level.
    pub fn backfill_rules(
        &mut self,
        rules: &[(String, String)],
        start: i64,
        end: i64,
        step_s: u32,
    ) {
        let dir = self.tsdb.parent().unwrap_or(Path::new(".")).to_path_buf();
        let file = dir.join("recorded.om");
        let mut om = String::new();
        for (name, expr) in rules {
            om.push_str(&format!("# TYPE {name} gauge\n"));
            for (labels, points) in self.query_range(expr, start, end, step_s) {
                let mut l: Vec<String> = labels
                    .iter()
                    .filter(|(k, _)| k.as_str() != "__name__")
                    .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
                    .collect();
                l.sort();
                for (t, v) in points {
                    om.push_str(&format!("{name}{{{}}} {v} {t}\n", l.join(",")));
                }
            }
        }
        om.push_str("# EOF\n");
        std::fs::write(&file, om).expect("write the recorded series");
        let blocks = dir.join("rule-blocks");
        let _ = std::fs::remove_dir_all(&blocks);
        backfill_openmetrics(&file, &blocks);
        self.stop();
        for block in std::fs::read_dir(&blocks).expect("promtool's output folder") {
            let block = block.expect("a block");
            std::fs::rename(block.path(), self.tsdb.join(block.file_name()))
                .expect("move a block into the TSDB");
        }
        let _ = std::fs::remove_file(&file);
        self.spawn();
    }

    /// A range query: each series' labels and its (Unix seconds, value as Prometheus wrote it).
    pub fn query_range(&self, q: &str, start: i64, end: i64, step_s: u32) -> Vec<RangeSeries> {
        let v = self.get(
            &format!(
                "query_range?query={}&start={start}&end={end}&step={step_s}",
                urlencode(q)
            ),
            q,
        );
        v["data"]["result"]
            .as_array()
            .expect("a matrix")
            .iter()
            .map(|r| {
                let labels = labels(&r["metric"]);
                let points = r["values"]
                    .as_array()
                    .expect("values")
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_f64().expect("a timestamp") as i64,
                            p[1].as_str().expect("a value").to_string(),
                        )
                    })
                    .collect();
                (labels, points)
            })
            .collect()
    }

    fn stop(&mut self) {
        // SIGTERM, so the TSDB is closed cleanly before the restart.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let started = Instant::now();
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str, q: &str) -> Value {
        api_get(&self.url(), path, q)
    }

    /// An instant query at `at` (Unix seconds): the series of the vector it returns.
    pub fn query(&self, q: &str, at: i64) -> Vec<Series> {
        instant_query(&self.url(), q, at)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `<base>/api/v1/<path>` of any engine with Prometheus' HTTP API: the JSON answer. Fails
/// the test on an HTTP or PromQL error, naming the query.
fn api_get(base: &str, path: &str, q: &str) -> Value {
    // A query over a month of data can take a while on a loaded machine.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(QUERY_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}/api/v1/{path}");
    let mut resp = agent
        .get(&url)
        .call()
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap_or_else(|e| panic!("{q}: body: {e}"));
    assert_eq!(status, 200, "{q}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// An instant query at `at` (Unix seconds) against `base` (Prometheus, VictoriaMetrics): the
/// series of the vector it returns, or the scalar as one series without labels.
pub fn instant_query(base: &str, q: &str, at: i64) -> Vec<Series> {
    let v = api_get(base, &format!("query?query={}&time={at}", urlencode(q)), q);
    let result = &v["data"]["result"];
    let number = |x: &Value| x.as_str().unwrap_or("NaN").parse().unwrap_or(f64::NAN);
    match v["data"]["resultType"].as_str() {
        Some("scalar") => vec![(BTreeMap::new(), number(&result[1]))],
        _ => result
            .as_array()
            .expect("a vector")
            .iter()
            .map(|r| (labels(&r["metric"]), number(&r["value"][1])))
            .collect(),
    }
}

/// A VictoriaMetrics (Debian's `victoria-metrics`) on 127.0.0.1 holding data imported in the
/// Prometheus text format (timestamps in milliseconds), flushed so that queries see all of it.
/// Killed on drop.
///
/// Each series is registered before the bulk of its samples: VictoriaMetrics (Debian's 1.79)
/// parses an import in parallel chunks and may give a series that first appears in two chunks at
/// once two internal IDs (described in VictoriaMetrics pull request 6365). Seen here: 155 to 167 series created for
/// the 155 of the report scenario, and then, now and again, a node's 15 series counted as more
/// than 16 by `-search.maxUniqueTimeseries`. The import checks that it created each series once.
pub struct VictoriaMetrics {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl VictoriaMetrics {
    /// Starts it on a fresh data folder, waits until it is ready, imports `prom_text` and
    /// flushes.
    pub fn start_with(prom_text: &str) -> VictoriaMetrics {
        VictoriaMetrics::start_with_flags(prom_text, &[])
    }

    /// [`VictoriaMetrics::start_with`] with further command-line flags (its limits).
    pub fn start_with_flags(prom_text: &str, flags: &[&str]) -> VictoriaMetrics {
        let dir = tempfile::tempdir().expect("temporary folder");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("vm.log")).expect("log file");
        let child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.path().join("data").display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .args(flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("victoria-metrics not found: install Debian's `victoria-metrics` package (scripts/install-test-deps)");
        let mut vm = VictoriaMetrics {
            child,
            port,
            _dir: dir,
        };
        let base = vm.url();
        let started = Instant::now();
        while !matches!(http_get(&format!("{base}/health"), None), Ok((200, _, _))) {
            if let Ok(Some(s)) = vm.child.try_wait() {
                panic!("victoria-metrics exited with {s}");
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "victoria-metrics not ready after {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(QUERY_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let (first, rest) = first_sample_of_each_series(prom_text);
        for part in [first.as_str(), rest.as_str()] {
            let resp = agent
                .post(format!("{base}/api/v1/import/prometheus"))
                .send(part.as_bytes())
                .expect("import into victoria-metrics");
            assert!(resp.status().is_success(), "import: {}", resp.status());
            let flushed = http_get(&format!("{base}/internal/force_flush"), None);
            assert!(matches!(flushed, Ok((200, _, _))), "flush: {flushed:?}");
        }
        let series = first.lines().count() as f64;
        let created = vm.own_metric("vm_new_timeseries_created_total");
        assert_eq!(created, Some(series), "victoria-metrics series created");
        vm
    }

    /// The value of one of VictoriaMetrics' own unlabelled metrics.
    fn own_metric(&self, name: &str) -> Option<f64> {
        let (_, _, body) = http_get(&format!("{}/metrics", self.url()), None).ok()?;
        Samples::parse(&body).get(name)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An instant query at `at` (Unix seconds), as [`Prometheus::query`].
    pub fn query(&self, q: &str, at: i64) -> Vec<Series> {
        instant_query(&self.url(), q, at)
    }
}

/// Prometheus text split into the first sample of each series and every other line.
fn first_sample_of_each_series(text: &str) -> (String, String) {
    let (mut first, mut rest) = (String::new(), String::new());
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        // A sample line is `series value timestamp`; the series may hold spaces in label values.
        let series = line.rsplitn(3, ' ').nth(2);
        let to = match series {
            Some(s) if !line.starts_with('#') && seen.insert(s) => &mut first,
            _ => &mut rest,
        };
        to.push_str(line);
        to.push('\n');
    }
    (first, rest)
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
