//! `--web.config.file`: TLS, client certificates, basic authentication, response headers and a
//! request rate limit for the HTTP server, in the Prometheus exporter-toolkit format
//! (`docs/web-configuration.md` of prometheus/exporter-toolkit), so admins secure this exporter
//! with the file they already write for node_exporter.
//!
//! The file is read once, at start; every problem (unknown key, unreadable certificate, bad
//! bcrypt hash, a setting rustls cannot honour in a way that would weaken security) is an error
//! naming the file, the line and the key (exit status 2). Settings that rustls cannot honour but
//! whose absence weakens nothing are accepted with a warning ([`WebSecurity::warnings`]).
//!
//! Submodules, one concern each: `tls` (the rustls server configuration), `auth` (basic
//! authentication: bcrypt off the connection loop, the cache of successes renewed on use, pending
//! checks bounded in all and per client address), `limit` (the rate limit, with a budget of its
//! own for authenticated requests). This module reads the file, and reloads it when it changes.

use crate::duration::Seconds;
use hyper::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod auth;
mod limit;
mod tls;

pub use auth::{
    check_hash, client_key, parse_basic, AuthOutcome, BasicAuth, AUTH_CACHE_ENTRIES,
    AUTH_CACHE_TTL, BCRYPT_CONCURRENCY, BCRYPT_MAX_PENDING, BCRYPT_MAX_PENDING_PER_CLIENT, REALM,
};
pub use limit::{Budget, RateLimiter};
use tls::build_tls;
pub use tls::san_allowed;

/// A problem in the web configuration file, naming the file, line and key.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfigError(pub String);

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WebConfigError {}

// ---- The file, as written ------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<HeadersFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersFile {
    #[serde(rename = "Content-Security-Policy")]
    content_security_policy: Option<String>,
    #[serde(rename = "X-Frame-Options")]
    x_frame_options: Option<String>,
    #[serde(rename = "X-Content-Type-Options")]
    x_content_type_options: Option<String>,
    #[serde(rename = "X-XSS-Protection")]
    x_xss_protection: Option<String>,
    #[serde(rename = "Strict-Transport-Security")]
    strict_transport_security: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    interval: Option<Seconds>,
    burst: Option<u32>,
}

// ---- What the server uses ------------------------------------------------------------------

/// The server's security settings. `Default` is the open server (no web configuration file).
#[derive(Default)]
pub struct WebSecurity {
    /// TLS on every connection when set; plain HTTP is then refused.
    pub tls: Option<Arc<ServerConfig>>,
    /// Basic authentication on every path but `/healthz` when set.
    pub auth: Option<Arc<BasicAuth>>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Requests beyond it are answered 429.
    pub rate_limit: Option<RateLimiter>,
    /// Settings accepted but not honoured, and why: logged at start.
    pub warnings: Vec<String>,
    /// The files it was read from (the web configuration file first): watched for changes.
    pub files: Vec<PathBuf>,
}

impl fmt::Debug for WebSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSecurity")
            .field("tls", &self.tls.is_some())
            .field("auth_users", &self.auth.as_ref().map(|a| a.user_count()))
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit.is_some())
            .finish()
    }
}

impl WebSecurity {
    /// One line for the start-up log: what is on.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        parts.push(
            if self.tls.is_some() {
                "TLS"
            } else {
                "plain HTTP"
            }
            .to_string(),
        );
        if let Some(a) = &self.auth {
            parts.push(format!("basic auth ({} users)", a.user_count()));
        }
        if self.rate_limit.is_some() {
            parts.push("rate limit".into());
        }
        if !self.headers.is_empty() {
            parts.push(format!("{} response headers", self.headers.len()));
        }
        parts.join(", ")
    }

    /// Sets how long a successful password check is remembered after its last use
    /// (`web.basic_auth_cache_ttl` of the exporter's configuration).
    pub fn set_auth_cache_ttl(&mut self, ttl: Duration) {
        if let Some(auth) = &mut self.auth {
            match Arc::get_mut(auth) {
                Some(a) => a.set_cache_ttl(ttl),
                // Never shared before the server starts; a copy with an empty cache otherwise.
                None => *auth = Arc::new(auth.with_new_cache(ttl)),
            }
        }
    }

    /// Reads and checks a web configuration file. Relative paths in it are relative to the
    /// file's folder, as in exporter-toolkit.
    pub fn load(path: &Path) -> Result<WebSecurity, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            WebConfigError(format!(
                "cannot read web config file {} (--web.config.file): {e}",
                path.display()
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut sec = WebSecurity::parse(&text, dir).map_err(|e| match e {
            Problem::Syntax(m) => {
                WebConfigError(format!("web config file {}: {m}", path.display()))
            }
            Problem::Key(key, m) => WebConfigError(crate::yaml_key::key_error(
                "web config",
                path,
                &text,
                &key,
                &m,
            )),
        })?;
        sec.files.insert(0, path.to_path_buf());
        Ok(sec)
    }

    fn parse(text: &str, dir: &Path) -> Result<WebSecurity, Problem> {
        let file: FileFormat = if text.trim().is_empty() {
            FileFormat::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| Problem::Syntax(e.to_string()))?
        };
        let mut sec = WebSecurity::default();
        if let Some(t) = &file.tls_server_config {
            sec.tls = build_tls(t, dir, &mut sec.warnings)?;
            for p in [&t.cert_file, &t.key_file, &t.client_ca_file]
                .into_iter()
                .flatten()
            {
                if !p.as_os_str().is_empty() {
                    sec.files.push(dir.join(p));
                }
            }
        }
        if let Some(h) = &file.http_server_config {
            if h.http2 == Some(true) {
                sec.warnings.push(
                    "http_server_config.http2: true is ignored: joulebook-exporter serves \
                     HTTP/1.1 only (and offers only http/1.1 in TLS ALPN)"
                        .into(),
                );
            }
            if let Some(hs) = &h.headers {
                sec.headers = headers(hs)?;
            }
        }
        if let Some(users) = &file.basic_auth_users {
            if !users.is_empty() {
                sec.auth = Some(Arc::new(BasicAuth::new(users, &mut sec.warnings)?));
            }
        }
        if let Some(r) = &file.rate_limit {
            sec.rate_limit = RateLimiter::from_file(r)?;
        }
        Ok(sec)
    }
}

enum Problem {
    /// From the YAML parser, which names line, column and key itself.
    Syntax(String),
    /// A dotted key and what is wrong with its value.
    Key(String, String),
}

fn bad<T>(key: &str, msg: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Key(key.to_string(), msg.into()))
}

// ---- Reload --------------------------------------------------------------------------------

/// How often, at most, the web configuration file and the certificate files it names are
/// checked for changes (a `stat` of each; they are read again only when one changed). The check
/// is made when a connection is accepted, never on a timer, so an exporter nobody scrapes never
/// wakes for it.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies the current version of each file: inode, size and modification time, or
/// nothing for a file that cannot be read.
type Fingerprint = Vec<Option<(u64, u64, std::time::SystemTime)>>;

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.ino(), m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// The web settings in force, reloaded when the configuration file or a file it names changes (a
/// renewed certificate, a new user), as exporter-toolkit does: a connection accepted after the
/// change uses the new settings. A file that does not load (a certificate written before its
/// key) keeps the previous settings, with one error line per distinct problem, and is tried again
/// at the next check.
pub struct LiveWebConfig {
    current: Arc<WebSecurity>,
    /// Applied to every version loaded.
    auth_cache_ttl: Duration,
    /// The `--web.config.file`, if any: without one there is nothing to reload.
    path: Option<PathBuf>,
    seen: Fingerprint,
    next_check: std::time::Instant,
    last_error: Option<String>,
}

impl LiveWebConfig {
    pub fn new(mut security: WebSecurity, path: Option<PathBuf>, auth_cache_ttl: Duration) -> Self {
        security.set_auth_cache_ttl(auth_cache_ttl);
        LiveWebConfig {
            seen: fingerprint(&security.files),
            current: Arc::new(security),
            auth_cache_ttl,
            path,
            next_check: std::time::Instant::now() + RELOAD_CHECK_INTERVAL,
            last_error: None,
        }
    }

    /// The settings for a connection accepted now: first, if the last check is more than
    /// [`RELOAD_CHECK_INTERVAL`] old, the files are checked and reloaded if one changed.
    pub async fn for_connection(&mut self) -> Arc<WebSecurity> {
        let Some(path) = &self.path else {
            return self.current.clone();
        };
        let now = std::time::Instant::now();
        if now < self.next_check {
            return self.current.clone();
        }
        self.next_check = now + RELOAD_CHECK_INTERVAL;
        if fingerprint(&self.current.files) == self.seen {
            return self.current.clone();
        }
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || WebSecurity::load(&p))
            .await
            .unwrap_or_else(|e| Err(WebConfigError(format!("reload task failed: {e}"))));
        match loaded {
            Ok(mut sec) => {
                sec.set_auth_cache_ttl(self.auth_cache_ttl);
                self.seen = fingerprint(&sec.files);
                self.last_error = None;
                tracing::info!(file = %path.display(), web = %sec.summary(), "web config reloaded");
                for w in &sec.warnings {
                    tracing::warn!("web config: {w}");
                }
                self.current = Arc::new(sec);
            }
            Err(e) => {
                // `seen` stays: the next check tries again, so a certificate and key written one
                // after the other are picked up once both are there.
                if self.last_error.as_deref() != Some(&e.0) {
                    tracing::error!("{e}; keeping the previous web settings");
                }
                self.last_error = Some(e.0);
            }
        }
        self.current.clone()
    }
}

// ---- Headers -------------------------------------------------------------------------------

fn headers(h: &HeadersFile) -> Result<Vec<(HeaderName, HeaderValue)>, Problem> {
    let mut out = Vec::new();
    let all = [
        ("Content-Security-Policy", &h.content_security_policy),
        ("X-Frame-Options", &h.x_frame_options),
        ("X-Content-Type-Options", &h.x_content_type_options),
        ("X-XSS-Protection", &h.x_xss_protection),
        ("Strict-Transport-Security", &h.strict_transport_security),
    ];
    for (name, value) in all {
        let Some(v) = value else { continue };
        // Blank: unset, as in exporter-toolkit.
        if v.trim().is_empty() {
            continue;
        }
        let key = format!("http_server_config.headers.{name}");
        let allowed: &[&str] = match name {
            "X-Frame-Options" => &["deny", "sameorigin"],
            "X-Content-Type-Options" => &["nosniff"],
            _ => &[],
        };
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) {
            return bad(&key, format!("{v:?} is not one of {}", allowed.join(", ")));
        }
        let value = match HeaderValue::from_str(v) {
            Ok(v) => v,
            Err(_) => return bad(&key, format!("{v:?} is not a valid header value")),
        };
        out.push((HeaderName::from_static(lower(name)), value));
    }
    Ok(out)
}

fn lower(name: &str) -> &'static str {
    match name {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebSecurity, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, text).unwrap();
        WebSecurity::load(&p).map_err(|e| e.0)
    }

    #[test]
    fn empty_file_is_the_open_server() {
        let s = parse("").unwrap();
        assert!(s.tls.is_none() && s.auth.is_none() && s.headers.is_empty());
        let s = parse("tls_server_config:\n  cert_file: \"\"\n  key_file: \"\"\n").unwrap();
        assert!(s.tls.is_none());
    }
    #[test]
    fn unknown_keys_name_line_and_key() {
        let e = parse("basic_auth_users: {}\ntls_server_config:\n  cert_fle: x\n").unwrap_err();
        assert!(
            e.contains("web.yml") && e.contains("cert_fle") && e.contains("line 3"),
            "{e}"
        );
        let e = parse("rate_limt: {}\n").unwrap_err();
        assert!(e.contains("rate_limt"), "{e}");
    }
    #[test]
    fn bad_values_name_line_and_key() {
        let h = bcrypt::hash("pw", 4).unwrap();
        let cases = [
            ("tls_server_config:\n  cert_file: /nonexistent/c.pem\n  key_file: k\n", "tls_server_config.cert_file", 2),
            ("tls_server_config:\n  cert_file: c\n", "tls_server_config.cert_file", 2),
            ("basic_auth_users:\n  alice: notahash\n", "basic_auth_users.alice", 2),
            ("basic_auth_users:\n  alice: \"$2y$99$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234\"\n", "basic_auth_users.alice", 2),
            ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "X-Frame-Options", 3),
            ("rate_limit:\n  interval: 1s\n  burst: 0\n", "rate_limit.burst", 3),
            ("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.cert_file", 0),
        ];
        for (text, key, line) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{key}: {e}");
            if line > 0 {
                assert!(e.contains(&format!("line {line}")), "{key}: {e}");
            }
            assert!(!e.contains("$2y$99"), "never echo a hash: {e}");
        }
        assert!(parse(&format!("basic_auth_users:\n  alice: \"{h}\"\n")).is_ok());
    }
    #[test]
    fn the_cache_lifetime_applies_to_every_version_loaded() {
        let h = bcrypt::hash("right", 4).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, format!("basic_auth_users:\n  alice: \"{h}\"\n")).unwrap();
        let sec = WebSecurity::load(&p).unwrap();
        assert_eq!(sec.auth.as_ref().unwrap().cache_ttl(), AUTH_CACHE_TTL);
        let ttl = Duration::from_secs(7);
        let mut live = LiveWebConfig::new(sec, Some(p.clone()), ttl);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let now = rt.block_on(live.for_connection());
        assert_eq!(now.auth.as_ref().unwrap().cache_ttl(), ttl);
        std::fs::write(&p, format!("basic_auth_users:\n  bob: \"{h}\"\n")).unwrap();
        live.next_check = std::time::Instant::now();
        let reloaded = rt.block_on(live.for_connection());
        assert!(!Arc::ptr_eq(&now, &reloaded), "reloaded");
        assert_eq!(reloaded.auth.as_ref().unwrap().cache_ttl(), ttl);
    }
}
