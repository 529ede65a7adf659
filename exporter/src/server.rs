//! The HTTP side: `/metrics` (OpenMetrics or the classic text format by content negotiation),
//! `/` (a landing page with each source's status), `/healthz`. Serving only reads the latest
//! snapshot; it never samples. Connections are bounded in number and time, so slow or many
//! clients cannot exhaust the process or stall sampling (which runs on its own thread).

use crate::metrics::{self, Format};
use crate::sampler::{Shared, Snapshot};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Connections served at once; more wait in the kernel's backlog. Prometheus needs one per
/// server; 64 leaves room for humans and federation without letting a flood grow memory.
pub const MAX_CONNECTIONS: usize = 64;
/// A client has this long to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, whatever it is doing.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

struct State {
    shared: Shared,
    registry: Registry,
}

/// Serves until `shutdown` turns true. Errors on a single connection are logged, never fatal.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let state = Arc::new(State {
        registry: metrics::registry(shared.clone()),
        shared,
    });
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
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
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection error"),
                Err(_) => tracing::debug!(%peer, "connection closed after the time limit"),
            }
        });
    }
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn current(shared: &Shared) -> Arc<Snapshot> {
    match shared.read() {
        Ok(g) => Arc::clone(&g),
        Err(p) => Arc::clone(&p.into_inner()),
    }
}

fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            match metrics::encode(&state.registry, format) {
                Ok(body) => response(StatusCode::OK, format.content_type(), body),
                Err(_) => response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                    "encoding failed\n".into(),
                ),
            }
        }
        "/healthz" => {
            let snap = current(&state.shared);
            let (ok, why) = health(&snap);
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            response(status, "text/plain; charset=utf-8", why)
        }
        "/" => response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            landing_page(&current(&state.shared)),
        ),
        _ => response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics, /healthz or /\n".into(),
        ),
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
        let mark = if n.method == crate::sampler::Method::Estimated {
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
        version = metrics::VERSION,
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
