//! A small client for the Prometheus HTTP API (`/api/v1/query`), which Prometheus,
//! VictoriaMetrics, Thanos and Mimir all serve: instant queries only, POSTed as forms (month-long
//! PromQL does not fit comfortably in a URL), with basic or bearer authentication, a site CA for
//! TLS, and retries with exponential backoff for what a retry can fix (connection refused,
//! timeouts, 5xx, 429, answers cut short). Errors say what to check and name the query.
//!
//! Bounds on what a server (or the users whose job names it stores) can make the reporter hold:
//! one answer is read as a stream and stops at `max_answer_mib` (an error naming the query and
//! the cap, not retried), and what it holds once parsed at [`PARSED_FACTOR`] times that; label
//! values shown in reports are cut ([`answer`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

mod answer;
pub use answer::{
    cap_chars, Labels, Sample, Series, CAPPED, ELLIPSIS, MAX_LABEL_CHARS, PARSED_FACTOR,
};
use answer::{Budget, Data, Envelope, OVER_BUDGET};

/// Default cap on one answer's size (after any decompression), in MiB. The largest answer of the
/// 80,000-job benchmark month is about 40 MB (the job-energy query: 317,000 rows of about 125
/// bytes); with [`PARSED_FACTOR`], 4 answers in flight (the default `--parallelism`) stay under
/// the report unit's `MemoryMax=1G`, which a month with larger answers would exceed anyway (the
/// benchmark peaked at 448 MB).
pub const DEFAULT_MAX_ANSWER_MIB: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("cannot reach {url} after {attempts} attempts: {last}. Check that the server runs and that --prometheus is right (and reachable from here).")]
    Unreachable {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("{url} gave no complete answer within {timeout_s} s, {attempts} attempts (--timeout, or prometheus.timeout_seconds in the config)\nquery: {query}\nCheck that the server is healthy; raise --timeout if it is just slow.")]
    Timeout {
        url: String,
        attempts: u32,
        timeout_s: f64,
        query: String,
    },
    #[error("{url} cut its answer short ({detail}), {attempts} attempts\nquery: {query}\nCheck the server's log and any proxy in between (a limit on the response size?).")]
    Truncated {
        url: String,
        attempts: u32,
        detail: String,
        query: String,
    },
    #[error("{url} answered more than {cap_mib} MiB to one query (or rows that take more than {} MiB once read), the cap on one answer (--max-answer-mib, or prometheus.max_answer_mib in the config)\nquery: {query}\nRaise the cap if the cluster and the period are that large; otherwise check what the server stores (series with huge label values?).", .cap_mib * PARSED_FACTOR)]
    TooLarge {
        url: String,
        cap_mib: u64,
        query: String,
    },
    #[error("{url} refused the credentials (HTTP {status}). Check --basic-auth-user/--basic-auth-password-file or --bearer-token-file.")]
    Auth { url: String, status: u16 },
    #[error("the server rejected a query ({kind}): {message}\nquery: {query}")]
    Query {
        kind: String,
        message: String,
        query: String,
        /// The server refused it for its size (see [`PromError::is_too_large`]); decided on
        /// the whole message, before it is cut for display.
        too_large: bool,
    },
    #[error("{url} answered something that is not the Prometheus API ({detail}). Is --prometheus the server's base URL (e.g. http://host:9090, no /api/v1 suffix)?")]
    NotPrometheus { url: String, detail: String },
    #[error("{0}")]
    Setup(String),
}

impl PromError {
    /// The server refused the query for its size, or its answer passed the cap on one answer:
    /// the same series read in smaller parts may pass. VictoriaMetrics names its
    /// `-search.maxUniqueTimeseries` / `-search.maxSamplesPerQuery` flags in the message;
    /// Prometheus (`--query.max-samples`) says it "would load too many samples".
    pub fn is_too_large(&self) -> bool {
        match self {
            PromError::TooLarge { .. } => true,
            PromError::Query { too_large, .. } => *too_large,
            _ => false,
        }
    }
}

/// How to connect.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Base URL, e.g. `http://127.0.0.1:9090` (a path prefix is kept: `https://host/prometheus`).
    pub url: String,
    pub ca_file: Option<PathBuf>,
    pub basic_user: Option<String>,
    pub basic_password_file: Option<PathBuf>,
    pub bearer_token_file: Option<PathBuf>,
    /// Per request.
    pub timeout: Duration,
    /// Attempts per query, at least 1.
    pub attempts: u32,
    /// First backoff delay; doubled after each failed attempt.
    pub backoff: Duration,
    /// Show a progress line on stderr (only honoured when stderr is a terminal).
    pub progress: bool,
    /// The most one answer may hold, in MiB (0: [`DEFAULT_MAX_ANSWER_MIB`]).
    pub max_answer_mib: u64,
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    timeout: Duration,
    auth: Option<String>,
    attempts: u32,
    backoff: Duration,
    max_answer_mib: u64,
    progress: Progress,
    /// `JOULEBOOK_REPORT_TRACE=1`: print each query with its time and size on stderr.
    trace: bool,
}

fn read_secret(path: &Path, what: &str) -> Result<String, PromError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| PromError::Setup(format!("cannot read {what} {}: {e}", path.display())))
}

impl Client {
    pub fn new(o: &ClientOptions) -> Result<Client, PromError> {
        let base = o.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PromError::Setup(format!(
                "--prometheus {:?}: give an http:// or https:// URL, e.g. http://127.0.0.1:9090",
                o.url
            )));
        }
        let mut cfg = ureq::Agent::config_builder()
            .timeout_global(Some(o.timeout))
            .http_status_as_error(false);
        if let Some(ca) = &o.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                PromError::Setup(format!("cannot read CA file {}: {e}", ca.display()))
            })?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(PromError::Setup(format!(
                            "CA file {}: not PEM: {e}",
                            ca.display()
                        )))
                    }
                }
            }
            if certs.is_empty() {
                return Err(PromError::Setup(format!(
                    "CA file {} holds no PEM certificate",
                    ca.display()
                )));
            }
            cfg = cfg.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let auth = match (&o.basic_user, &o.bearer_token_file) {
            (Some(_), Some(_)) => {
                return Err(PromError::Setup(
                    "give either basic authentication or a bearer token, not both".into(),
                ))
            }
            (Some(user), None) => {
                let pass = match &o.basic_password_file {
                    Some(p) => read_secret(p, "password file")?,
                    None => String::new(),
                };
                use base64::Engine;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
                ))
            }
            (None, Some(f)) => Some(format!("Bearer {}", read_secret(f, "bearer token file")?)),
            (None, None) => None,
        };
        Ok(Client {
            agent: cfg.build().into(),
            base,
            timeout: o.timeout,
            auth,
            attempts: o.attempts.max(1),
            backoff: o.backoff,
            max_answer_mib: if o.max_answer_mib == 0 {
                DEFAULT_MAX_ANSWER_MIB
            } else {
                o.max_answer_mib
            },
            progress: Progress::new(o.progress && std::io::stderr().is_terminal()),
            trace: std::env::var_os("JOULEBOOK_REPORT_TRACE").is_some_and(|v| v == "1"),
        })
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// An instant query evaluated at `time` (Unix seconds) returning a vector.
    pub fn vector(&self, query: &str, time: i64) -> Result<Vec<Sample>, PromError> {
        let data = self.query(query, time)?;
        match data {
            Data::Vector(v) => Ok(v
                .into_iter()
                .map(|r| Sample {
                    labels: r.metric,
                    value: r.value.1 .0,
                })
                .collect()),
            Data::Scalar | Data::Matrix(_) | Data::String => Err(PromError::Query {
                kind: "unexpected result type".into(),
                message: "expected an instant vector".into(),
                query: query.into(),
                too_large: false,
            }),
        }
    }

    /// An instant query of a range selector (`metric{...}[range]`) returning raw samples.
    pub fn matrix(&self, query: &str, time: i64) -> Result<Vec<Series>, PromError> {
        match self.query(query, time)? {
            Data::Matrix(m) => Ok(m
                .into_iter()
                .map(|r| Series {
                    labels: r.metric,
                    // Same size: collected in place, no second allocation.
                    samples: r.values.into_iter().map(|(t, v)| (t, v.0)).collect(),
                })
                .collect()),
            _ => Err(PromError::Query {
                kind: "unexpected result type".into(),
                message: "expected a range vector".into(),
                query: query.into(),
                too_large: false,
            }),
        }
    }

    fn query(&self, query: &str, time: i64) -> Result<Data, PromError> {
        let url = format!("{}/api/v1/query", self.base);
        let mut delay = self.backoff;
        let mut last = Retry::Other(String::new());
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2);
            }
            let started = std::time::Instant::now();
            match self.try_query(&url, query, time) {
                Ok((d, bytes)) => {
                    self.progress.done();
                    if self.trace {
                        eprintln!(
                            "query {:.2} s, {} rows, {bytes} bytes: {query}",
                            started.elapsed().as_secs_f64(),
                            d.rows()
                        );
                    }
                    return Ok(d);
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(why)) => last = why,
            }
        }
        let (url, attempts) = (self.base.clone(), self.attempts);
        Err(match last {
            Retry::Timeout => PromError::Timeout {
                url,
                attempts,
                timeout_s: self.timeout.as_secs_f64(),
                query: query.into(),
            },
            Retry::Cut(detail) => PromError::Truncated {
                url,
                attempts,
                detail,
                query: query.into(),
            },
            Retry::Other(last) => PromError::Unreachable {
                url,
                attempts,
                last,
            },
        })
    }

    /// One attempt: the answer and its size in bytes.
    fn try_query(&self, url: &str, query: &str, time: i64) -> Result<(Data, u64), Attempt> {
        let mut req = self.agent.post(url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let t = time.to_string();
        let resp = req.send_form([("query", query), ("time", t.as_str())]);
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) if timed_out(&e) => return Err(Attempt::Retry(Retry::Timeout)),
            // Connection refused, DNS, TLS handshake: all may pass.
            Err(e) => return Err(Attempt::Retry(Retry::Other(e.to_string()))),
        };
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Attempt::Fatal(PromError::Auth {
                url: self.base.clone(),
                status,
            }));
        }
        if status == 429 || status >= 500 && status != 501 {
            // 503 also answers "too many concurrent queries"; a 5xx with an API error body
            // that is a query error (e.g. 422 is not here) is still worth one more try.
            return Err(Attempt::Retry(Retry::Other(format!("HTTP {status}"))));
        }
        let cap = self.max_answer_mib.saturating_mul(1 << 20);
        let _budget = Budget::set(cap.saturating_mul(PARSED_FACTOR));
        let too_large = || {
            Attempt::Fatal(PromError::TooLarge {
                url: self.base.clone(),
                cap_mib: self.max_answer_mib,
                query: query.into(),
            })
        };
        let mut body = Counted {
            inner: resp.body_mut().with_config().limit(cap).reader(),
            bytes: 0,
        };
        let parsed: Result<Envelope, _> =
            serde_json::from_reader(std::io::BufReader::new(&mut body));
        match parsed {
            Ok(Envelope {
                status: s,
                data: Some(d),
                ..
            }) if s == "success" => Ok((d, body.bytes)),
            Ok(env) => {
                let message = env.error.unwrap_or_default();
                Err(Attempt::Fatal(PromError::Query {
                    kind: cap_chars(
                        env.error_type.unwrap_or_else(|| format!("HTTP {status}")),
                        MAX_LABEL_CHARS,
                    ),
                    too_large: message.contains("-search.max")
                        || message.contains("too many samples"),
                    // The server's own words, but not a page of them.
                    message: cap_chars(message, 2 * MAX_LABEL_CHARS),
                    query: query.into(),
                }))
            }
            Err(e) if e.is_io() => {
                // The body's reader wraps ureq's errors (the global timeout) in io::Error.
                let io: std::io::Error = e.into();
                Err(Attempt::Retry(match ureq::Error::from(io) {
                    ureq::Error::BodyExceedsLimit(_) => return Err(too_large()),
                    e if timed_out(&e) => Retry::Timeout,
                    ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                        Retry::Cut(format!(
                            "HTTP {status}, the connection closed after {} bytes of the body",
                            body.bytes
                        ))
                    }
                    other => Retry::Other(format!("reading the answer: {other}")),
                }))
            }
            Err(e) if e.is_data() && e.to_string().starts_with(OVER_BUDGET) => Err(too_large()),
            // A complete body that ends inside the JSON: cut by the server or a proxy.
            Err(e) if e.is_eof() => Err(Attempt::Retry(Retry::Cut(format!(
                "HTTP {status}, the JSON stops after {} bytes: {e}",
                body.bytes
            )))),
            Err(e) => Err(Attempt::Fatal(PromError::NotPrometheus {
                url: self.base.clone(),
                detail: format!("HTTP {status}, {e}"),
            })),
        }
    }
}

impl Client {
    /// The values of `label` among the series matching `selector` with samples between `start`
    /// and `end` (Unix seconds): `/api/v1/label/NAME/values`, which reads the index only and is
    /// not bound by the limits on a query's series. One attempt: callers have a slower exact
    /// way when it fails.
    pub fn label_values(
        &self,
        label: &str,
        selector: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, PromError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            status: String,
            data: Option<Vec<String>>,
            error: Option<String>,
        }
        let url = format!("{}/api/v1/label/{label}/values", self.base);
        let mut req = self
            .agent
            .get(&url)
            .query("match[]", selector)
            .query("start", start.to_string())
            .query("end", end.to_string());
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let fail = |detail: String| PromError::Query {
            kind: "label values".into(),
            message: cap_chars(detail, 2 * MAX_LABEL_CHARS),
            query: format!("{label} of {selector}"),
            too_large: false,
        };
        let mut resp = req.call().map_err(|e| fail(e.to_string()))?;
        let cap = self.max_answer_mib.saturating_mul(1 << 20);
        let body = resp.body_mut().with_config().limit(cap).reader();
        let a: Answer = serde_json::from_reader(std::io::BufReader::new(body))
            .map_err(|e| fail(format!("not a label-values answer: {e}")))?;
        match a {
            Answer {
                status,
                data: Some(v),
                ..
            } if status == "success" => Ok(v),
            a => Err(fail(a.error.unwrap_or(a.status))),
        }
    }
}

fn timed_out(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::TimedOut,
        _ => false,
    }
}

enum Attempt {
    Retry(Retry),
    Fatal(PromError),
}

/// Why an attempt may be worth repeating; the last one is reported.
enum Retry {
    /// No complete answer within the timeout.
    Timeout,
    /// The answer ended early.
    Cut(String),
    Other(String),
}

/// A reader that counts the bytes it has given out.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A one-line progress counter on stderr ("queries 12/40: job energy"), shown only on a terminal
/// so that logs and cron mail stay clean.
pub struct Progress {
    enabled: bool,
    done: AtomicUsize,
    total: AtomicUsize,
    label: Mutex<String>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            label: Mutex::new(String::new()),
        }
    }

    /// Announces `n` more queries under `label`.
    pub fn stage(&self, label: &str, n: usize) {
        self.total.fetch_add(n, Ordering::Relaxed);
        if let Ok(mut l) = self.label.lock() {
            *l = label.to_string();
        }
        self.draw();
    }

    fn done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.draw();
    }

    fn draw(&self) {
        if !self.enabled {
            return;
        }
        let label = self.label.lock().map(|l| l.clone()).unwrap_or_default();
        eprint!(
            "\r\x1b[2Kqueries {}/{}: {label}",
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed)
        );
    }

    /// Clears the line.
    pub fn finish(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
