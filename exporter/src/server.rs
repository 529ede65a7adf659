//! The HTTP side: `/metrics` (OpenMetrics or the classic text format by content negotiation),
//! `/` (a landing page with each source's status), `/healthz`. Serving only reads the latest
//! snapshot; it never samples, and sampling runs on its own thread, so nothing a client does here
//! can delay a sample.
//!
//! With a web configuration file ([`crate::webconfig`]) every connection is TLS (plain HTTP gets
//! Go's "400 Client sent an HTTP request to an HTTPS server" and is closed, no metrics in clear),
//! optionally with client certificates, and every path but `/healthz` needs basic
//! authentication. With basic authentication the rate limit is checked after it, in the budget
//! its outcome gives ([`Budget`]): unauthenticated requests never spend a scraper's budget, and a
//! remembered success is answered without waiting behind pending password checks.
//!
//! Limits, so that many or slow clients cannot exhaust the process or starve a scrape:
//! - at most [`MAX_CONNECTIONS`] connections are served at once; more wait in the kernel's
//!   backlog;
//! - a connection has [`HEADER_TIMEOUT`] for its TLS handshake, and again for each request's
//!   headers (hyper's header read timeout also runs while a kept-alive connection waits for its
//!   next request); [`CONNECTION_TIMEOUT`] ends any connection, whatever it is doing;
//! - request headers are bounded by [`MAX_HEADER_BYTES`] (431 beyond), bodies by
//!   [`MAX_BODY_BYTES`] (413 beyond; a GET needs none and the server never reads one);
//! - when all slots are taken and a new connection arrives, the connection that has been idle the
//!   longest (no request in progress: handshaking, sending headers slowly, waiting between
//!   requests, or not reading its response) is closed to make room, once it has been idle for
//!   [`EVICT_IDLE_AFTER`]. Slow clients therefore cannot hold slots against a new scrape: a new
//!   connection waits at most [`EVICT_IDLE_AFTER`] for a slot, unless all slots have a request in
//!   progress (each bounded by the timeouts above). A client has at least [`EVICT_IDLE_AFTER`]
//!   after connecting to send its request; Prometheus sends it at once.

use crate::metrics::{self, Format};
use crate::snapshot::{Shared, Snapshot};
use crate::webconfig::{AuthOutcome, Budget, LiveWebConfig, WebSecurity, REALM};
use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{
    HeaderValue, ACCEPT, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

/// Connections served at once; more wait in the kernel's backlog. Prometheus needs one per
/// server; 64 leaves room for humans and federation without letting a flood grow memory.
pub const MAX_CONNECTIONS: usize = 64;
/// A client has this long for its TLS handshake, and then for each request's headers (also
/// while a kept-alive connection is idle between requests).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, whatever it is doing.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Request line and headers: beyond this, hyper answers 431 and closes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// A request declaring a larger body, or a chunked one, is answered 413. Bodies are never read.
pub const MAX_BODY_BYTES: u64 = 4 * 1024;
/// When all slots are taken, a connection idle this long is closed to make room for a new one.
pub const EVICT_IDLE_AFTER: Duration = Duration::from_secs(1);

struct State {
    shared: Shared,
    registry: Registry,
    tls_failures: Throttle,
    auth_failures: Throttle,
}

/// At most one log line per [`Throttle::EVERY`] for a kind of failure a client can repeat at
/// will, with the count of those not logged.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(60);

    /// Calls `log` with the number of failures not logged since the last line, or counts this
    /// one.
    fn report(&self, log: impl FnOnce(u64)) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Self::EVERY) {
            *last = Some(Instant::now());
            log(self.suppressed.swap(0, Ordering::Relaxed));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One connection's state, seen by the accept loop.
struct Conn {
    /// Since when no request is in progress; `None` while one is.
    idle_since: Mutex<Option<Instant>>,
    /// Set once the accept loop chose to close it.
    evicted: AtomicBool,
    evict: Notify,
}

impl Conn {
    fn set_idle(&self, idle: bool) {
        let mut g = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        *g = idle.then(Instant::now);
    }

    fn idle_since(&self) -> Option<Instant> {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The live connections.
#[derive(Default)]
struct Conns {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Conns {
    fn add(self: &Arc<Self>) -> (Arc<Conn>, ConnGuard) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            idle_since: Mutex::new(Some(Instant::now())),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, conn.clone());
        (
            conn,
            ConnGuard {
                conns: self.clone(),
                id,
            },
        )
    }

    /// The connection idle the longest and not yet evicted, with its idle time.
    fn longest_idle(&self) -> Option<(Arc<Conn>, Duration)> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.values()
            .filter(|c| !c.evicted.load(Ordering::Relaxed))
            .filter_map(|c| c.idle_since().map(|t| (c.clone(), t.elapsed())))
            .max_by_key(|(_, d)| *d)
    }
}

/// Removes a connection from [`Conns`] when its task ends.
struct ConnGuard {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.conns
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Marks a connection busy while a request is handled and its response body is being sent.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Busy {
        conn.set_idle(false);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set_idle(true);
    }
}

/// A response body that marks its connection idle again once hyper has taken all of it (what is
/// left is flushing to a client that may not be reading: evictable).
pub struct Tracked {
    inner: Full<Bytes>,
    busy: Option<Busy>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            this.busy = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves until `shutdown` turns true. Errors on a single connection are logged, never fatal.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    mut security: LiveWebConfig,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let state = Arc::new(State {
        registry: metrics::registry(shared.clone()),
        shared,
        tls_failures: Throttle::default(),
        auth_failures: Throttle::default(),
    });
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let conns = Arc::new(Conns::default());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        // A slot for it: a free one, or one freed by closing the longest-idle connection.
        let permit = loop {
            if let Ok(p) = permits.clone().try_acquire_owned() {
                break p;
            }
            let wait = match conns.longest_idle() {
                Some((c, idle)) if idle >= EVICT_IDLE_AFTER => {
                    c.evicted.store(true, Ordering::Relaxed);
                    c.evict.notify_one();
                    tracing::debug!(
                        idle_s = idle.as_secs_f64(),
                        "all connection slots taken: closing the longest-idle connection"
                    );
                    Duration::from_millis(100)
                }
                Some((_, idle)) => EVICT_IDLE_AFTER - idle,
                None => EVICT_IDLE_AFTER,
            };
            tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => break p,
                    Err(_) => return Ok(()),
                },
                _ = tokio::time::sleep(wait) => {},
                _ = shutdown.changed() => return Ok(()),
            }
        };
        let (conn, guard) = conns.add();
        let state = state.clone();
        // The settings in force when the connection opened (the file may be reloaded).
        let sec = security.for_connection().await;
        tokio::spawn(async move {
            let _permit = permit;
            let _guard = guard;
            let work = connection(stream, peer, state, sec, conn.clone());
            tokio::select! {
                r = tokio::time::timeout(CONNECTION_TIMEOUT, work) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection error"),
                    Err(_) => tracing::debug!(%peer, "connection closed after the time limit"),
                },
                _ = conn.evict.notified() => tracing::debug!(%peer, "idle connection closed to make room"),
            }
        });
    }
}

/// One connection: TLS if configured, then HTTP/1.1.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    sec: Arc<WebSecurity>,
    conn: Arc<Conn>,
) -> Result<(), String> {
    let Some(tls) = sec.tls.clone() else {
        return http(stream, peer, state, sec, conn).await;
    };
    // One deadline for the first byte and the whole handshake.
    let deadline = tokio::time::Instant::now() + HEADER_TIMEOUT;
    let mut first = [0u8; 1];
    let n = tokio::time::timeout_at(deadline, stream.peek(&mut first))
        .await
        .map_err(|_| "no TLS handshake within the time limit".to_string())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(());
    }
    // 0x16: a TLS handshake record. Anything else printable is someone speaking plain HTTP.
    if first[0] != 0x16 {
        let plain = first[0].is_ascii_uppercase();
        if plain {
            refuse_plain_http(stream).await;
        }
        state.tls_failures.report(|n| {
            tracing::warn!(%peer, not_logged_since_last = n, "refused a connection that is not TLS{}",
                if plain { " (plain HTTP, answered 400)" } else { "" })
        });
        return Err("not a TLS handshake: refused".into());
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let tls_stream = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // A client certificate from another CA, an unknown server CA on the client side, no
            // common version or suite: what an admin needs to see, at most once a minute.
            state.tls_failures.report(|n| {
                tracing::warn!(%peer, error = %e, not_logged_since_last = n, "TLS handshake failed")
            });
            return Err(format!("TLS handshake: {e}"));
        }
        Err(_) => return Err("TLS handshake not finished within the time limit".into()),
    };
    http(tls_stream, peer, state, sec, conn).await
}

/// What Go's HTTPS servers (and so node_exporter) answer to plain HTTP, then a lingering close so
/// the client reads it.
async fn refuse_plain_http(mut stream: TcpStream) {
    let msg = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(msg).await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut left = MAX_HEADER_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    state: Arc<State>,
    sec: Arc<WebSecurity>,
    conn: Arc<Conn>,
) -> Result<(), String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let sec = sec.clone();
        let busy = Busy::new(&conn);
        async move {
            let resp = handle(&state, &sec, peer, req).await;
            Ok::<_, Infallible>(resp.map(|inner| Tracked {
                inner,
                busy: Some(busy),
            }))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(io), service)
        .await
        .map_err(|e| e.to_string())
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", body.to_string())
}

/// Whether the request declares a body larger than [`MAX_BODY_BYTES`], or one of unknown size.
fn body_too_large(req: &Request<Incoming>) -> bool {
    if req.headers().contains_key(TRANSFER_ENCODING) {
        return true;
    }
    req.headers().get_all(CONTENT_LENGTH).iter().any(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_none_or(|n| n > MAX_BODY_BYTES)
    })
}

async fn handle(
    state: &State,
    sec: &WebSecurity,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let mut resp = route(state, sec, peer, req).await;
    for (name, value) in &sec.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

async fn route(
    state: &State,
    sec: &WebSecurity,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let bad_method = req.method() != Method::GET && req.method() != Method::HEAD;
    let healthz = req.uri().path() == "/healthz";
    if bad_method || body_too_large(&req) || healthz || sec.auth.is_none() {
        // Not authenticated: the open budget of the rate limit.
        if let Some(r) = refused_by_rate_limit(sec, Budget::Open) {
            return r;
        }
        if bad_method {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        }
        if body_too_large(&req) {
            let mut r = text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request bodies are not accepted\n",
            );
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        // Open to load balancers and liveness probes, which rarely speak basic auth; it tells
        // only whether the sampler runs.
        if healthz {
            let snap = crate::snapshot::latest(&state.shared);
            let (ok, why) = health(&snap);
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return response(status, "text/plain; charset=utf-8", why);
        }
    } else if let Some(r) = authenticate(state, sec, peer, &req).await {
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            match metrics::encode(&state.registry, format) {
                Ok(body) => response(StatusCode::OK, format.content_type(), body),
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
            }
        }
        "/" => response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            landing_page(&crate::snapshot::latest(&state.shared)),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /\n",
        ),
    }
}

/// 429 when the rate limit, if any, has no token left in `budget`.
fn refused_by_rate_limit(sec: &WebSecurity, budget: Budget) -> Option<Response<Full<Bytes>>> {
    let limit = sec.rate_limit.as_ref()?;
    (!limit.allow(budget)).then(|| text(StatusCode::TOO_MANY_REQUESTS, "too many requests\n"))
}

/// Basic authentication, then the rate limit in the budget its outcome gives: `None` lets the
/// request through, else the answer (401, or 429 when the budget is spent or too many checks
/// are pending). A remembered success is answered without waiting for any check.
async fn authenticate(
    state: &State,
    sec: &WebSecurity,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    let auth = sec.auth.as_ref()?;
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let outcome = auth.check(header, peer.ip()).await;
    let budget = if outcome == AuthOutcome::Allowed {
        Budget::Authenticated
    } else {
        Budget::Open
    };
    if let Some(r) = refused_by_rate_limit(sec, budget) {
        return Some(r);
    }
    match outcome {
        AuthOutcome::Allowed => None,
        AuthOutcome::Busy => Some(text(
            StatusCode::TOO_MANY_REQUESTS,
            "too many password checks in progress, try again\n",
        )),
        AuthOutcome::Denied | AuthOutcome::Missing => {
            if outcome == AuthOutcome::Denied {
                // The user name helps find a misconfigured scraper; the password is never logged.
                let user = header
                    .and_then(crate::webconfig::parse_basic)
                    .map(|(u, _)| u)
                    .unwrap_or_default();
                state.auth_failures.report(|n| {
                    tracing::warn!(%peer, %user, not_logged_since_last = n, "basic auth failed: unknown user or wrong password")
                });
            }
            let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")) {
                r.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            Some(r)
        }
    }
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Healthy when the sampler completed a cycle recently (three intervals plus five seconds, plus
/// the state save interval, since with a state file snapshots are published at each save).
/// Sources being down does not make the process unhealthy: that is what `source_up` is for.
/// Ages are measured on the monotonic clock, so a wall clock jump does not fail the check.
pub fn health(s: &Snapshot) -> (bool, String) {
    let Some(taken) = s.taken_at else {
        return (false, "no sample yet\n".into());
    };
    let age = taken.elapsed().as_secs_f64();
    let limit = 3.0 * s.interval_s + 5.0 + s.publish_every_s;
    if age > limit {
        (
            false,
            format!("last sample {age:.1} s ago, more than {limit:.1} s: the sampler is stuck\n"),
        )
    } else {
        (true, "ok\n".into())
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn landing_page(s: &Snapshot) -> String {
    let mut rows = String::new();
    for (kind, h) in &s.health {
        let (status, detail) = if !h.enabled {
            ("disabled", String::new())
        } else if h.up {
            ("up", String::new())
        } else if let Some(e) = &h.last_error {
            let fix = e
                .fix
                .as_deref()
                .map(|f| format!("<br><b>Fix:</b> {}", html_escape(f)))
                .unwrap_or_default();
            ("down", format!("{}{fix}", html_escape(&e.message)))
        } else {
            ("starting", String::new())
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{detail}</td></tr>\n",
            kind.as_str(),
            h.samples
        ));
    }
    let mut comps = String::new();
    for n in &s.node {
        let mark = if n.method == crate::snapshot::Method::Estimated {
            " <b>(ESTIMATE, not a measurement)</b>"
        } else {
            ""
        };
        comps.push_str(&format!(
            "<tr><td>{}</td><td>{:.1} J</td><td>{}{mark}</td><td>{}</td></tr>\n",
            n.component,
            n.joules,
            n.method.as_str(),
            n.source
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>joulebook exporter</title>\
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}\
.up{{color:#070}}.down{{color:#b00;font-weight:bold}}.disabled{{color:#777}}</style></head>\n\
<body><h1>joulebook exporter {version}</h1>\n<p>Node <b>{host}</b>, {cpu}, sampling every {interval} s. \
<a href=\"/metrics\">Metrics</a> · <a href=\"/healthz\">Health</a></p>\n\
<h2>Sources</h2><table><tr><th>source</th><th>status</th><th>samples</th><th>detail</th></tr>\n{rows}</table>\n\
<h2>Node energy since the exporter first ran here</h2><table><tr><th>component</th><th>energy</th><th>method</th><th>source</th></tr>\n{comps}</table>\n\
</body></html>\n",
        version = crate::build_info::VERSION,
        host = html_escape(&s.node_info.hostname),
        cpu = html_escape(&s.node_info.cpu_model),
        interval = s.interval_s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_a_recent_sample() {
        let mut s = Snapshot {
            interval_s: 1.0,
            ..Default::default()
        };
        assert!(!health(&s).0);
        s.taken_at = Some(std::time::Instant::now());
        assert!(health(&s).0);
        s.taken_at = std::time::Instant::now().checked_sub(std::time::Duration::from_secs(60));
        assert!(!health(&s).0);
    }

    #[test]
    fn negotiation() {
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }

    #[test]
    fn escaping() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
