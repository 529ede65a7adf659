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
//! Basic authentication verifies bcrypt hashes with the `bcrypt` crate (its comparison is
//! constant-time). bcrypt is slow on purpose (cost 10 is tens of milliseconds), so a successful
//! (user, password) check is remembered for [`AUTH_CACHE_TTL`] after its last use: a Prometheus
//! scraping every 15 s pays one bcrypt when it starts, not one per scrape. Failures are never
//! remembered. The cache holds keyed SHA-256 digests, never passwords. Verifications run on
//! tokio's blocking pool, one at a time ([`BCRYPT_CONCURRENCY`]), so a flood of wrong passwords
//! costs at most one core and never blocks the connection loop or the sampler.
//!
//! Invariants against lockout: a remembered success is answered before, and without, the queue
//! of pending checks; the queue is bounded in all ([`BCRYPT_MAX_PENDING`]) and per client
//! address ([`BCRYPT_MAX_PENDING_PER_CLIENT`]), so one address cannot take every slot; the rate
//! limit gives authenticated requests their own budget ([`Budget`]).

use crate::config::{line_of_key, Seconds};
use hyper::header::{HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a successful (user, password) verification is remembered after its last use (the
/// default of `web.basic_auth_cache_ttl`). Longer than the usual scrape intervals (15 s to
/// 2 min), so a scraper pays bcrypt once, not per scrape; each use renews it.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(300);
/// At most this many remembered verifications; the oldest is dropped first.
pub const AUTH_CACHE_ENTRIES: usize = 64;
/// bcrypt verifications running at once (each takes one core for its duration).
pub const BCRYPT_CONCURRENCY: usize = 1;
/// bcrypt verifications running or waiting; beyond, a request that needs one is answered 429 at
/// once, so a flood of wrong passwords cannot hold every connection slot in a queue.
pub const BCRYPT_MAX_PENDING: usize = 8;
/// Of those, at most this many for one client address (an IPv4 address, or the /64 of an IPv6
/// one), so one address cannot take every slot from a scraper whose check is not cached yet.
pub const BCRYPT_MAX_PENDING_PER_CLIENT: usize = 2;
/// The realm in `WWW-Authenticate`.
pub const REALM: &str = "joulebook";

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
            .field("auth_users", &self.auth.as_ref().map(|a| a.users.len()))
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
            parts.push(format!("basic auth ({} users)", a.users.len()));
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
                Some(a) => a.cache_ttl = ttl,
                // Never shared before the server starts; rebuilt rather than left as it was.
                None => {
                    let users: BTreeMap<String, String> = auth
                        .users
                        .iter()
                        .map(|(u, h)| (u.clone(), h.clone()))
                        .collect();
                    if let Ok(mut a) = BasicAuth::new(&users, &mut Vec::new()) {
                        a.cache_ttl = ttl;
                        *auth = Arc::new(a);
                    }
                }
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
            Problem::Key(key, m) => {
                let line = line_of_key(&text, &key)
                    .map(|l| format!(" line {l}:"))
                    .unwrap_or_default();
                WebConfigError(format!(
                    "web config file {}:{line} {key}: {m}",
                    path.display()
                ))
            }
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

// ---- TLS -----------------------------------------------------------------------------------

/// A PEM value written inline or in a file.
fn pem_source(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    inline_key: &str,
    file_key: &str,
    dir: &Path,
) -> Result<Option<(Vec<u8>, String)>, Problem> {
    match (inline, file) {
        (Some(_), Some(_)) => bad(
            &format!("tls_server_config.{file_key}"),
            format!("set either {inline_key} (inline PEM) or {file_key}, not both"),
        ),
        (Some(s), None) if !s.trim().is_empty() => Ok(Some((
            s.as_bytes().to_vec(),
            format!("inline {inline_key}"),
        ))),
        (None, Some(p)) if !p.as_os_str().is_empty() => {
            let full = dir.join(p);
            match std::fs::read(&full) {
                Ok(b) => Ok(Some((b, full.display().to_string()))),
                Err(e) => bad(
                    &format!("tls_server_config.{file_key}"),
                    format!("cannot read {}: {e}", full.display()),
                ),
            }
        }
        _ => Ok(None),
    }
}

fn certificates(
    pem: &[u8],
    origin: &str,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => bad(key, format!("{origin} holds no PEM certificate")),
        Err(e) => bad(key, format!("{origin}: not a PEM certificate: {e}")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

fn tls_version(s: &str, key: &str) -> Result<u8, Problem> {
    match s {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        _ => bad(
            key,
            format!("{s:?} is not one of TLS10, TLS11, TLS12, TLS13"),
        ),
    }
}

/// Go's name of a rustls TLS 1.2 suite is rustls's name (both follow the IANA registry), except
/// Go's short names for ChaCha20 without `_SHA256`.
fn go_suite_name(s: &str) -> String {
    match s {
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            format!("{s}_SHA256")
        }
        _ => s.to_string(),
    }
}

fn build_provider(t: &TlsFile, warnings: &mut Vec<String>) -> Result<CryptoProvider, Problem> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(wanted) = &t.cipher_suites {
        let key = "tls_server_config.cipher_suites";
        let (tls13, tls12): (Vec<_>, Vec<_>) = provider
            .cipher_suites
            .iter()
            .copied()
            .partition(|s| s.version() == &rustls::version::TLS13);
        let mut chosen = Vec::new();
        let mut skipped = Vec::new();
        for name in wanted {
            let go = go_suite_name(name);
            if let Some(s) = tls12
                .iter()
                .find(|s| format!("{:?}", s.suite()) == go)
                .copied()
            {
                if !chosen
                    .iter()
                    .any(|c: &rustls::SupportedCipherSuite| c.suite() == s.suite())
                {
                    chosen.push(s);
                }
            } else if name.starts_with("TLS_AES_") || name.starts_with("TLS_CHACHA20_") {
                // TLS 1.3 suites are not configurable, in Go as in rustls: all are offered.
            } else if name.starts_with("TLS_") {
                skipped.push(name.clone());
            } else {
                return bad(key, format!("{name:?} is not a TLS cipher suite name"));
            }
        }
        if !skipped.is_empty() {
            warnings.push(format!(
                "{key}: {} not offered by rustls (it offers only AEAD suites with forward \
                 secrecy), skipped",
                skipped.join(", ")
            ));
        }
        if chosen.is_empty() && !wanted.is_empty() {
            let offered: Vec<String> = tls12.iter().map(|s| format!("{:?}", s.suite())).collect();
            return bad(
                key,
                format!(
                    "none of the listed TLS 1.2 suites is available; rustls offers {}",
                    offered.join(", ")
                ),
            );
        }
        if !wanted.is_empty() {
            chosen.extend(tls13);
            provider.cipher_suites = chosen;
        }
    }
    if let Some(curves) = &t.curve_preferences {
        let key = "tls_server_config.curve_preferences";
        let all = provider.kx_groups.clone();
        let mut chosen = Vec::new();
        for c in curves {
            let group = match c.as_str() {
                "X25519" => Some(rustls::NamedGroup::X25519),
                "CurveP256" | "P256" => Some(rustls::NamedGroup::secp256r1),
                "CurveP384" | "P384" => Some(rustls::NamedGroup::secp384r1),
                "CurveP521" | "P521" | "X25519MLKEM768" => None,
                _ => {
                    return bad(
                        key,
                        format!(
                            "{c:?} is not one of X25519, CurveP256, CurveP384, CurveP521, \
                             X25519MLKEM768"
                        ),
                    )
                }
            };
            match group.and_then(|g| all.iter().find(|k| k.name() == g)) {
                Some(k) => chosen.push(*k),
                None => warnings.push(format!(
                    "{key}: {c} is not offered by rustls with ring, skipped"
                )),
            }
        }
        if chosen.is_empty() && !curves.is_empty() {
            return bad(
                key,
                "none of the listed curves is available; rustls offers X25519, CurveP256, CurveP384",
            );
        }
        if !curves.is_empty() {
            provider.kx_groups = chosen;
        }
    }
    Ok(provider)
}

fn build_tls(
    t: &TlsFile,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<Arc<ServerConfig>>, Problem> {
    let cert = pem_source(&t.cert, &t.cert_file, "cert", "cert_file", dir)?;
    let key = pem_source(&t.key, &t.key_file, "key", "key_file", dir)?;
    let (cert, key) = match (cert, key) {
        (None, None) => {
            // exporter-toolkit serves plain HTTP without a certificate; say so if anything else
            // was set, since those settings would silently do nothing.
            let other = t.client_auth_type.is_some()
                || t.client_ca_file.is_some()
                || t.client_ca.is_some()
                || t.client_allowed_sans.is_some();
            if other {
                return bad(
                    "tls_server_config.cert_file",
                    "client certificate settings without a server certificate: set cert_file \
                     and key_file to turn TLS on",
                );
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return bad(
                "tls_server_config.key_file",
                "cert_file is set but key_file is not",
            )
        }
        (None, Some(_)) => {
            return bad(
                "tls_server_config.cert_file",
                "key_file is set but cert_file is not",
            )
        }
        (Some(c), Some(k)) => (c, k),
    };
    let cert_key = if t.cert.is_some() {
        "tls_server_config.cert"
    } else {
        "tls_server_config.cert_file"
    };
    let key_key = if t.key.is_some() {
        "tls_server_config.key"
    } else {
        "tls_server_config.key_file"
    };
    let chain = certificates(&cert.0, &cert.1, cert_key)?;
    let private = match PrivateKeyDer::from_pem_slice(&key.0) {
        Ok(k) => k,
        Err(e) => return bad(key_key, format!("{}: no PEM private key: {e}", key.1)),
    };

    let min = match &t.min_version {
        Some(v) => tls_version(v, "tls_server_config.min_version")?,
        None => 12,
    };
    let max = match &t.max_version {
        Some(v) => tls_version(v, "tls_server_config.max_version")?,
        None => 13,
    };
    if max < 12 {
        return bad(
            "tls_server_config.max_version",
            "rustls speaks TLS 1.2 and 1.3 only; TLS 1.0 and 1.1 are obsolete (RFC 8996)",
        );
    }
    if min > max {
        return bad(
            "tls_server_config.min_version",
            format!("TLS{min} is above max_version TLS{max}"),
        );
    }
    if min < 12 {
        warnings.push(format!(
            "tls_server_config.min_version: TLS{min} is not offered (rustls speaks TLS 1.2 and \
             1.3 only; RFC 8996 deprecates older versions): the minimum is TLS12"
        ));
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }

    let auth = match t.client_auth_type.as_deref() {
        None | Some("") | Some("NoClientCert") => ClientAuth::NoClientCert,
        Some("RequestClientCert") => ClientAuth::RequestClientCert,
        Some("RequireAnyClientCert") => ClientAuth::RequireAnyClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerifyClientCert,
        Some(other) => {
            return bad(
                "tls_server_config.client_auth_type",
                format!(
                    "{other:?} is not one of NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ),
            )
        }
    };
    let ca = pem_source(
        &t.client_ca,
        &t.client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
    )?;
    let ca_key = if t.client_ca.is_some() {
        "tls_server_config.client_ca"
    } else {
        "tls_server_config.client_ca_file"
    };
    if ca.is_some() && auth == ClientAuth::NoClientCert {
        return bad(
            ca_key,
            "a client CA is set but client_auth_type is NoClientCert: set client_auth_type: \
             RequireAndVerifyClientCert to require client certificates",
        );
    }
    let sans: Vec<String> = t.client_allowed_sans.clone().unwrap_or_default();
    if !sans.is_empty()
        && !matches!(
            auth,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    {
        return bad(
            "tls_server_config.client_allowed_sans",
            "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert (the \
             others let a client connect without a certificate, leaving no SAN to check)",
        );
    }
    if sans.iter().any(|s| s.contains('@') && !s.contains(':')) {
        warnings.push(
            "tls_server_config.client_allowed_sans: e-mail addresses are never matched \
             (only DNS names, IP addresses and URIs are read from client certificates)"
                .into(),
        );
    }
    if auth == ClientAuth::RequestClientCert || auth == ClientAuth::RequireAnyClientCert {
        warnings.push(format!(
            "tls_server_config.client_auth_type: {auth:?} does not verify client certificates; \
             use RequireAndVerifyClientCert to authenticate clients"
        ));
    }

    let provider = Arc::new(build_provider(t, warnings)?);
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth {
        ClientAuth::NoClientCert => None,
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Some(Arc::new(AnyClientCert {
                provider: provider.clone(),
                mandatory: auth == ClientAuth::RequireAnyClientCert,
            }))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let Some((pem, origin)) = &ca else {
                return bad(
                    "tls_server_config.client_auth_type",
                    format!("{auth:?} needs client_ca_file, the CA that signs client certificates"),
                );
            };
            let mut roots = RootCertStore::empty();
            for c in certificates(pem, origin, ca_key)? {
                if let Err(e) = roots.add(c) {
                    return bad(ca_key, format!("{origin}: unusable CA certificate: {e}"));
                }
            }
            let mut b =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if auth == ClientAuth::VerifyClientCertIfGiven {
                b = b.allow_unauthenticated();
            }
            match b.build() {
                Ok(v) => Some(v),
                Err(e) => return bad(ca_key, format!("{origin}: {e}")),
            }
        }
    };
    let verifier = match (verifier, sans.is_empty()) {
        (Some(v), false) => Some(Arc::new(SanCheck {
            inner: v,
            allowed: sans,
        }) as Arc<dyn ClientCertVerifier>),
        (v, _) => v,
    };

    let builder =
        match ServerConfig::builder_with_provider(provider).with_protocol_versions(&versions) {
            Ok(b) => b,
            Err(e) => {
                return bad(
                    "tls_server_config.cipher_suites",
                    format!("no cipher suite left for the TLS versions allowed: {e}"),
                )
            }
        };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = match builder.with_single_cert(chain, private) {
        Ok(c) => c,
        Err(e) => {
            return bad(
                key_key,
                format!(
                    "{} and {} do not make a usable certificate and key: {e}",
                    cert.1, key.1
                ),
            )
        }
    };
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// `RequestClientCert` and `RequireAnyClientCert`: asks for a certificate and checks only that
/// the client holds its key, not who issued it (Go's semantics).
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier accepted the chain, the certificate must carry
/// a subject alternative name equal to one of the list (DNS name, IP address or URI).
#[derive(Debug)]
struct SanCheck {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

/// Whether the certificate has a DNS, IP or URI subject alternative name in `allowed`.
pub fn san_allowed(cert: &CertificateDer<'_>, allowed: &[String]) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    allowed.iter().any(|want| {
        if let Ok(ip) = want.parse::<std::net::IpAddr>() {
            let name = rustls::pki_types::ServerName::IpAddress(ip.into());
            return ee.verify_is_valid_for_subject_name(&name).is_ok();
        }
        // Exact comparison, as exporter-toolkit does (a wildcard in the certificate matches
        // only the same wildcard in the list).
        ee.valid_dns_names().any(|d| d.eq_ignore_ascii_case(want))
            || ee.valid_uri_names().any(|u| u == want)
    })
}

impl ClientCertVerifier for SanCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if san_allowed(end_entity, &self.allowed) {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

// ---- Headers and rate limit ----------------------------------------------------------------

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

/// Which budget of the rate limit a request spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Requests whose basic-auth credentials were accepted.
    Authenticated,
    /// Everything else: `/healthz`, requests without or with wrong credentials, and every
    /// request when basic authentication is off.
    Open,
}

/// Two token buckets of the same size (exporter-toolkit's `rate_limit`): `burst` at once, then
/// one per `interval`, one for each [`Budget`], so nothing an unauthenticated client sends can
/// spend an authenticated scraper's budget. Requests beyond their bucket are answered 429.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: f64,
    authenticated: Mutex<(f64, Instant)>,
    open: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn from_file(r: &RateLimitFile) -> Result<Option<RateLimiter>, Problem> {
        let interval = r.interval.map_or(0.0, |s| s.0);
        if !interval.is_finite() || interval < 0.0 {
            return bad(
                "rate_limit.interval",
                format!("{interval} must not be negative"),
            );
        }
        if interval == 0.0 {
            return Ok(None);
        }
        let burst = r.burst.unwrap_or(0);
        if burst == 0 {
            return bad(
                "rate_limit.burst",
                "must be at least 1 when interval is set (0 would refuse every request)",
            );
        }
        Ok(Some(RateLimiter::new(
            Duration::from_secs_f64(interval),
            burst,
        )))
    }

    pub fn new(interval: Duration, burst: u32) -> RateLimiter {
        let full = (f64::from(burst), Instant::now());
        RateLimiter {
            interval,
            burst: f64::from(burst),
            authenticated: Mutex::new(full),
            open: Mutex::new(full),
        }
    }

    /// Takes a token from `budget`'s bucket; false when none is left.
    pub fn allow(&self, budget: Budget) -> bool {
        let bucket = match budget {
            Budget::Authenticated => &self.authenticated,
            Budget::Open => &self.open,
        };
        let mut g = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(g.1).as_secs_f64() / self.interval.as_secs_f64();
        g.0 = (g.0 + refill).min(self.burst);
        g.1 = now;
        if g.0 >= 1.0 {
            g.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

// ---- Basic authentication ------------------------------------------------------------------

/// Users and their bcrypt hashes, with the cache of recent successful verifications.
pub struct BasicAuth {
    users: HashMap<String, String>,
    /// Verified for unknown users, so an unknown user takes as long as a wrong password.
    dummy: OnceLock<Option<String>>,
    dummy_cost: u32,
    /// Keyed digest of (user, password, hash) → when it was last used.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    cache_key: [u8; 32],
    /// How long a remembered success lasts after its last use.
    cache_ttl: Duration,
    verifying: Arc<tokio::sync::Semaphore>,
    /// Verifications running or waiting, per client (see [`client_key`]); at most
    /// [`BCRYPT_MAX_PENDING`] keys.
    pending: Mutex<HashMap<IpAddr, usize>>,
}

/// The address a client is counted under: an IPv4 address (IPv4-mapped IPv6 included), or the
/// /64 network of an IPv6 address (one host usually holds a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// A reserved place among the pending verifications, given back when dropped.
struct Pending {
    auth: Arc<BasicAuth>,
    client: IpAddr,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut p = self.auth.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = p.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.remove(&self.client);
            }
        }
    }
}

/// The outcome of a request's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Allowed,
    /// No `Authorization: Basic` header, or one that does not decode.
    Missing,
    /// Unknown user or wrong password.
    Denied,
    /// Too many verifications already running or waiting: try again later.
    Busy,
}

impl BasicAuth {
    fn new(
        users: &BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) -> Result<BasicAuth, Problem> {
        let mut map = HashMap::new();
        let mut max_cost = 4;
        for (user, hash) in users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return bad(
                    &key,
                    "a user name cannot contain ':' (basic auth splits on it)",
                );
            }
            let cost = check_hash(hash).map_err(|m| Problem::Key(key.clone(), m))?;
            if cost > 14 {
                warnings.push(format!(
                    "{key}: bcrypt cost {cost} takes seconds per check; every wrong password \
                     costs that much CPU (10 is the usual cost)"
                ));
            }
            max_cost = max_cost.max(cost);
            map.insert(user.clone(), hash.clone());
        }
        Ok(BasicAuth {
            users: map,
            dummy: OnceLock::new(),
            dummy_cost: max_cost,
            cache: Mutex::new(HashMap::new()),
            cache_key: random_key(),
            cache_ttl: AUTH_CACHE_TTL,
            verifying: Arc::new(tokio::sync::Semaphore::new(BCRYPT_CONCURRENCY)),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Builds the checker for tests and benchmarks, from (user, bcrypt hash) pairs, remembering
    /// successes for [`AUTH_CACHE_TTL`].
    pub fn from_users(users: &[(&str, &str)]) -> Result<BasicAuth, String> {
        BasicAuth::with_cache_ttl(users, AUTH_CACHE_TTL)
    }

    /// Like [`BasicAuth::from_users`], remembering successes for `cache_ttl` after their last
    /// use.
    pub fn with_cache_ttl(
        users: &[(&str, &str)],
        cache_ttl: Duration,
    ) -> Result<BasicAuth, String> {
        let m: BTreeMap<String, String> = users
            .iter()
            .map(|(u, h)| (u.to_string(), h.to_string()))
            .collect();
        let mut auth = BasicAuth::new(&m, &mut Vec::new()).map_err(|p| match p {
            Problem::Key(k, m) => format!("{k}: {m}"),
            Problem::Syntax(m) => m,
        })?;
        auth.cache_ttl = cache_ttl;
        Ok(auth)
    }

    /// How long a remembered success lasts after its last use.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl
    }

    fn digest(&self, user: &str, password: &[u8], hash: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        for part in [user.as_bytes(), password, hash.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// Whether `d` is a remembered success; using it renews it, so a scraper in use is never
    /// sent back to the queue.
    fn cached(&self, d: &[u8; 32]) -> bool {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match c.get_mut(d) {
            Some(t) if t.elapsed() < self.cache_ttl => {
                *t = Instant::now();
                true
            }
            Some(_) => {
                c.remove(d);
                false
            }
            None => false,
        }
    }

    fn remember(&self, d: [u8; 32]) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let ttl = self.cache_ttl;
        c.retain(|_, t| t.elapsed() < ttl);
        if c.len() >= AUTH_CACHE_ENTRIES {
            if let Some(oldest) = c.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                c.remove(&oldest);
            }
        }
        c.insert(d, Instant::now());
    }

    /// Number of remembered verifications (tests).
    pub fn cache_len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Verifications running or waiting (tests).
    pub fn pending_len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// A place among the pending verifications for `client`, or `None` when all places, or all
    /// of that client's, are taken.
    fn reserve(self: &Arc<Self>, client: IpAddr) -> Option<Pending> {
        let client = client_key(client);
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = p.values().sum();
        let mine = p.get(&client).copied().unwrap_or(0);
        if total >= BCRYPT_MAX_PENDING || mine >= BCRYPT_MAX_PENDING_PER_CLIENT {
            return None;
        }
        p.insert(client, mine + 1);
        Some(Pending {
            auth: self.clone(),
            client,
        })
    }

    /// Checks an `Authorization` header value sent from `client`. A remembered success is
    /// answered at once; otherwise bcrypt runs on the blocking pool, if `client` may queue one.
    pub async fn check(
        self: &Arc<Self>,
        authorization: Option<&[u8]>,
        client: IpAddr,
    ) -> AuthOutcome {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return AuthOutcome::Missing;
        };
        let hash = self.users.get(&user).cloned();
        if let Some(h) = &hash {
            if self.cached(&self.digest(&user, &password, h)) {
                return AuthOutcome::Allowed;
            }
        }
        let Some(pending) = self.reserve(client) else {
            return AuthOutcome::Busy;
        };
        // The slot and the pending count move into the blocking task: they are given back when
        // bcrypt is done, even if the client went away meanwhile.
        let Ok(slot) = self.verifying.clone().acquire_owned().await else {
            return AuthOutcome::Denied;
        };
        let me = self.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _pending = pending;
            match &hash {
                Some(h) => {
                    let ok = bcrypt::verify(&password, h).unwrap_or(false);
                    if ok {
                        me.remember(me.digest(&user, &password, h));
                    }
                    ok
                }
                None => {
                    // Unknown user: spend the same time on a hash of the highest configured cost.
                    if let Some(d) = me
                        .dummy
                        .get_or_init(|| bcrypt::hash("joulebook", me.dummy_cost).ok())
                    {
                        let _ = bcrypt::verify(&password, d);
                    }
                    false
                }
            }
        })
        .await
        .unwrap_or(false);
        if verdict {
            AuthOutcome::Allowed
        } else {
            AuthOutcome::Denied
        }
    }
}

/// `Basic base64(user:password)` → (user, password). The scheme is case-insensitive.
pub fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    use base64::Engine;
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

/// Checks a bcrypt hash's form without running bcrypt; returns its cost. Never echoes the hash.
pub fn check_hash(hash: &str) -> Result<u32, String> {
    use base64::Engine;
    let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
        "not a bcrypt hash ($2a$, $2b$ or $2y$, cost, 53 characters of salt and hash); make one \
         with htpasswd -nBC 10 \"\" | tr -d ':\\n'"
            .to_string()
    })?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("bcrypt cost {cost} is outside 4..31"));
    }
    // bcrypt's own base64 alphabet, decoded as the bcrypt crate does, so a hash accepted here
    // never fails at request time (which would deny everyone).
    let engine = base64::alphabet::Alphabet::new(
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    )
    .map(|a| base64::engine::GeneralPurpose::new(&a, base64::engine::general_purpose::NO_PAD))
    .map_err(|e| format!("bcrypt alphabet: {e}"))?;
    match engine.decode(parts.get_salt()) {
        Ok(s) if s.len() == 16 => {}
        _ => return Err("the bcrypt hash's salt does not decode".into()),
    }
    let digest = hash.get(hash.len().saturating_sub(31)..).unwrap_or("");
    match engine.decode(digest) {
        Ok(d) if d.len() == 23 => Ok(cost),
        _ => Err("the bcrypt hash's digest does not decode".into()),
    }
}

/// 32 bytes from the kernel's random source, or from std's randomly seeded hasher if that fails.
fn random_key() -> [u8; 32] {
    use std::io::Read;
    let mut key = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .is_ok()
    {
        return key;
    }
    use std::hash::{BuildHasher, Hasher};
    for chunk in key.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6a6f756c65626f6f);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn basic(user: &str, password: &str) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

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
    fn hashes() {
        assert_eq!(check_hash(&bcrypt::hash("x", 5).unwrap()), Ok(5));
        assert!(check_hash("$2y$10$short").is_err());
        assert!(check_hash("").is_err());
    }

    #[test]
    fn basic_header() {
        use base64::Engine;
        let enc = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        assert_eq!(
            parse_basic(format!("basic {enc}").as_bytes()),
            Some(("alice".into(), b"pa:ss".to_vec()))
        );
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
    }

    #[test]
    fn auth_caches_successes_only() {
        use base64::Engine;
        let h = bcrypt::hash("right", 4).unwrap();
        let auth = Arc::new(BasicAuth::from_users(&[("alice", &h)]).unwrap());
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(auth.check(None, LOCAL).await, AuthOutcome::Missing);
            let wrong = header("alice", "wrong");
            assert_eq!(
                auth.check(Some(wrong.as_bytes()), LOCAL).await,
                AuthOutcome::Denied
            );
            assert_eq!(auth.cache_len(), 0);
            let bob = header("bob", "right");
            assert_eq!(
                auth.check(Some(bob.as_bytes()), LOCAL).await,
                AuthOutcome::Denied
            );
            let right = header("alice", "right");
            assert_eq!(
                auth.check(Some(right.as_bytes()), LOCAL).await,
                AuthOutcome::Allowed
            );
            assert_eq!(auth.cache_len(), 1);
            assert_eq!(
                auth.check(Some(right.as_bytes()), LOCAL).await,
                AuthOutcome::Allowed
            );
            assert_eq!(
                auth.check(Some(wrong.as_bytes()), LOCAL).await,
                AuthOutcome::Denied
            );
            assert_eq!(auth.cache_len(), 1);
        });
    }

    #[test]
    fn a_flood_of_wrong_passwords_is_answered_busy_not_queued() {
        let h = bcrypt::hash("right", 8).unwrap();
        let auth = Arc::new(BasicAuth::from_users(&[("alice", &h)]).unwrap());
        let wrong = basic("alice", "wrong");
        // Twelve addresses, three requests each: more than all the places.
        let outcomes = runtime().block_on(async {
            let tasks: Vec<_> = (0..36u8)
                .map(|i| {
                    let auth = auth.clone();
                    let wrong = wrong.clone();
                    let client = IpAddr::from([10, 0, 0, i % 12]);
                    tokio::spawn(async move { auth.check(Some(wrong.as_bytes()), client).await })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let busy = outcomes.iter().filter(|o| **o == AuthOutcome::Busy).count();
        let denied = outcomes
            .iter()
            .filter(|o| **o == AuthOutcome::Denied)
            .count();
        assert!(
            busy > 0 && denied > 0 && denied <= BCRYPT_MAX_PENDING,
            "{outcomes:?}"
        );
        assert_eq!(busy + denied, outcomes.len());
        assert_eq!(auth.pending_len(), 0);
    }

    #[test]
    fn one_address_cannot_take_every_pending_place() {
        let h = bcrypt::hash("right", 4).unwrap();
        let auth = Arc::new(BasicAuth::from_users(&[("alice", &h)]).unwrap());
        let flooder = IpAddr::from([10, 0, 0, 1]);
        let held: Vec<_> = (0..BCRYPT_MAX_PENDING_PER_CLIENT)
            .map(|_| auth.reserve(flooder).expect("a place"))
            .collect();
        assert!(auth.reserve(flooder).is_none(), "its share is taken");
        let rt = runtime();
        let flood = basic("alice", "wrong");
        assert_eq!(
            rt.block_on(auth.check(Some(flood.as_bytes()), flooder)),
            AuthOutcome::Busy
        );
        // Another address is checked (and remembered) meanwhile.
        let right = basic("alice", "right");
        let scraper = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(
            rt.block_on(auth.check(Some(right.as_bytes()), scraper)),
            AuthOutcome::Allowed
        );
        // IPv6: one /64 is one client; IPv4-mapped addresses count as IPv4.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), flooder);
        drop(held);
        assert_eq!(auth.pending_len(), 0);
        assert!(auth.reserve(flooder).is_some());
    }

    /// A remembered success is renewed by each use and answered before the queue: with every
    /// pending place taken, a scraper using it every quarter of the lifetime is let in for three
    /// lifetimes; left unused for a lifetime, it is forgotten.
    #[test]
    fn a_success_in_use_is_renewed_and_answered_before_the_queue() {
        let h = bcrypt::hash("right", 4).unwrap();
        let ttl = Duration::from_millis(600);
        let auth = Arc::new(BasicAuth::with_cache_ttl(&[("alice", &h)], ttl).unwrap());
        assert_eq!(auth.cache_ttl(), ttl);
        let rt = runtime();
        let right = basic("alice", "right");
        let check = |client: IpAddr| rt.block_on(auth.check(Some(right.as_bytes()), client));
        assert_eq!(check(LOCAL), AuthOutcome::Allowed);
        let held: Vec<_> = (0..BCRYPT_MAX_PENDING as u8)
            .filter_map(|i| auth.reserve(IpAddr::from([10, 0, 1, i])))
            .collect();
        assert_eq!(held.len(), BCRYPT_MAX_PENDING);
        let wrong = basic("alice", "wrong");
        assert_eq!(
            rt.block_on(auth.check(Some(wrong.as_bytes()), LOCAL)),
            AuthOutcome::Busy,
            "the queue is full"
        );
        let start = Instant::now();
        while start.elapsed() < 3 * ttl {
            assert_eq!(
                check(LOCAL),
                AuthOutcome::Allowed,
                "at {:?}",
                start.elapsed()
            );
            std::thread::sleep(ttl / 4);
        }
        std::thread::sleep(ttl + ttl / 3);
        assert_eq!(
            check(LOCAL),
            AuthOutcome::Busy,
            "expired: needs the queue again"
        );
        assert_eq!(auth.cache_len(), 0);
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
        let rt = runtime();
        let now = rt.block_on(live.for_connection());
        assert_eq!(now.auth.as_ref().unwrap().cache_ttl(), ttl);
        std::fs::write(&p, format!("basic_auth_users:\n  bob: \"{h}\"\n")).unwrap();
        live.next_check = Instant::now();
        let reloaded = rt.block_on(live.for_connection());
        assert!(!Arc::ptr_eq(&now, &reloaded), "reloaded");
        assert_eq!(reloaded.auth.as_ref().unwrap().cache_ttl(), ttl);
    }

    #[test]
    fn rate_limiter_refills_and_keeps_a_budget_for_authenticated_requests() {
        let r = RateLimiter::new(Duration::from_millis(50), 2);
        assert!(r.allow(Budget::Open) && r.allow(Budget::Open));
        assert!(!r.allow(Budget::Open));
        // The open budget is spent; the authenticated one is whole.
        assert!(r.allow(Budget::Authenticated) && r.allow(Budget::Authenticated));
        assert!(!r.allow(Budget::Authenticated));
        std::thread::sleep(Duration::from_millis(60));
        assert!(r.allow(Budget::Open) && r.allow(Budget::Authenticated));
    }

    #[test]
    fn tls_settings() {
        let ca = rcgen_pair();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), &ca.0).unwrap();
        std::fs::write(dir.path().join("k.pem"), &ca.1).unwrap();
        let base = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n";
        let load = |extra: &str| {
            let p = dir.path().join("web.yml");
            std::fs::write(&p, format!("{base}{extra}")).unwrap();
            WebSecurity::load(&p).map_err(|e| e.0)
        };
        let s = load("").unwrap();
        assert!(s.tls.is_some() && s.warnings.is_empty());
        let s = load("  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA]\n  curve_preferences: [X25519, CurveP521]\n").unwrap();
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        let s = load(
            "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, TLS_AES_128_GCM_SHA256]\n",
        )
        .unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert!(load("  cipher_suites: [AES128]\n")
            .unwrap_err()
            .contains("cipher_suites"));
        assert!(load("  curve_preferences: [CurveP999]\n")
            .unwrap_err()
            .contains("curve_preferences"));
        assert!(load("  max_version: TLS11\n")
            .unwrap_err()
            .contains("max_version"));
        assert!(load("  min_version: TLS13\n  max_version: TLS12\n")
            .unwrap_err()
            .contains("min_version"));
        assert!(load("  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n")
            .unwrap_err()
            .contains("cipher_suites"));
        assert!(load("  client_auth_type: RequireAndVerifyClientCert\n")
            .unwrap_err()
            .contains("client_ca_file"));
        assert!(load("  client_ca_file: c.pem\n")
            .unwrap_err()
            .contains("NoClientCert"));
        assert!(load("  client_auth_type: Sometimes\n")
            .unwrap_err()
            .contains("client_auth_type"));
        assert!(
            load("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: c.pem\n")
                .is_ok()
        );
        assert!(load("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: c.pem\n  client_allowed_sans: [a]\n").unwrap_err().contains("client_allowed_sans"));
        std::fs::write(dir.path().join("k.pem"), rcgen_pair().1).unwrap();
        let e = load("").unwrap_err();
        assert!(e.contains("key_file") && e.contains("do not make"), "{e}");
        std::fs::write(dir.path().join("k.pem"), "garbage").unwrap();
        assert!(load("").unwrap_err().contains("key_file"));
    }

    #[test]
    fn allowed_sans_match_exactly() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![
            "scraper.example.org".to_string(),
            "10.0.0.1".to_string(),
        ])
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der();
        let ok = |names: &[&str]| {
            let v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            san_allowed(der, &v)
        };
        assert!(ok(&["scraper.example.org"]));
        assert!(ok(&["SCRAPER.example.org"]));
        assert!(ok(&["x", "10.0.0.1"]));
        assert!(!ok(&["example.org"]));
        assert!(!ok(&["*.example.org"]));
        assert!(!ok(&["10.0.0.2"]));
        assert!(!ok(&[]));
        assert!(!san_allowed(
            &CertificateDer::from(vec![1, 2, 3]),
            &["x".into()]
        ));
    }

    /// A self-signed certificate for 127.0.0.1: (cert PEM, key PEM).
    fn rcgen_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
