//! Redfish (DMTF DSP0266) over HTTPS: node power, and energy when the BMC counts it.
//!
//! ## Discovery
//! `GET /redfish/v1/Chassis` lists the chassis. Without `chassis_id`, each one is fetched and
//! considered in this order: first those whose `ChassisType` is a whole node (`RackMount`,
//! `StandAlone`, `Blade`, `Sled`, `Cartridge`), then `Enclosure`, `Other` or no type, each group
//! in the BMC's member order. Other types (`Module` and `Card`, such as a GPU baseboard that
//! reports its own power; `Rack`, `Row` and the like, which hold many nodes) are never chosen
//! automatically: name them with `chassis_id`. The first chassis that reports node power or
//! energy is used, and the choice is logged. In a chassis, the reading is looked for in order:
//! 1. `EnvironmentMetrics` (Redfish 2020.4 and later, next to `PowerSubsystem`):
//!    `PowerWatts.Reading` (W) and `EnergykWh.Reading` (kWh);
//! 2. the `Sensors` collection, for whatever 1. lacks: sensors whose URI mentions power or
//!    energy, with `ReadingType` `Power`, or `EnergykWh` / `EnergyWh` / `EnergyJoules`; among
//!    several, the one whose `PhysicalContext` is `Chassis`, else the only one;
//! 3. the legacy `Power` resource (deprecated in 2020.4, still the only one on many BMCs):
//!    `PowerControl[].PowerConsumedWatts`, the first entry that has a number.
//!
//! Units: a `ReadingUnits` of `W`, `kW` or `mW` (power) or `kW.h`, `W.h`, `J` (energy) is
//! converted (UCUM symbols, case-sensitive: `mW` is a milliwatt, `MW` is not accepted); any other
//! unit is a problem that marks the source down, never a wrong number.
//!
//! ## Authentication
//! `auth: session` (default): `POST /redfish/v1/SessionService/Sessions` once, then the
//! `X-Auth-Token` on every request; on a 401 (session expired, BMC restarted) it logs in again
//! once; the session is deleted when the exporter stops (BMCs allow few sessions). A BMC without
//! a usable session service (404, 405, 501, no token) falls back to basic authentication, with
//! one info line. `auth: basic` sends HTTP basic credentials on every request. The password is
//! never logged, printed or put in an error message.
//!
//! ## TLS
//! The BMC's certificate is verified against `ca_file` (PEM) when given, else against the
//! built-in Mozilla roots (webpki-roots). BMC certificates are usually self-signed or from a
//! site CA, so one of `ca_file` or the explicit `insecure_skip_verify: true` is normally needed.
//! No proxy from the environment is used: the BMC is on the node's management network.
//!
//! ## Same origin only
//! Credentials (the login body, `Authorization`, `X-Auth-Token`) go only to the origin of
//! `sources.bmc.url` (scheme, host and port). A link (`@odata.id`, a session's `Location`) to
//! another origin, or one that is neither a path (`/…`) nor an absolute http(s) URL, is an error
//! naming it and is never requested; redirects are never followed (a 3xx is an error naming its
//! `Location`). `RedfishMeter::call` checks every URL before sending anything.

use super::{Meter, Protocol, Reading};
use crate::sources::SourceError;
use discovery::Plan;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod discovery;

pub use discovery::{joules_per_unit, watts_per_unit};

pub const SERVICE_ROOT: &str = "/redfish/v1";
pub const CHASSIS_PATH: &str = "/redfish/v1/Chassis";
pub const SESSIONS_PATH: &str = "/redfish/v1/SessionService/Sessions";

/// Largest response body read, bytes. Redfish resources are a few kB; a big sensor collection a
/// few hundred.
const MAX_BODY_BYTES: u64 = 4 << 20;
/// After the BMC refused the credentials, how long to wait before sending them again (unless the
/// password changed meanwhile). BMCs lock an account, or block the client's address, after a
/// few failed logins in a short time; a retry at every poll would keep it locked and flood the
/// BMC's log.
pub const AUTH_RETRY: Duration = Duration::from_secs(60);

/// How to authenticate (configuration key `auth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// A Redfish session (X-Auth-Token), falling back to basic when the BMC has none.
    #[default]
    Session,
    /// HTTP basic authentication on every request.
    Basic,
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the password comes from. Read when the source opens (and again at each retry).
#[derive(Clone, Debug, PartialEq)]
pub enum PasswordSource {
    /// A file holding the password (one trailing newline is ignored).
    File(PathBuf),
    /// An environment variable holding the password.
    Env(String),
    /// The password itself (for embedding and tests).
    Value(Secret),
}

impl PasswordSource {
    fn read(&self) -> Result<Secret, SourceError> {
        let value = match self {
            PasswordSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| {
                    SourceError::new(format!(
                        "cannot read the BMC password file {}: {e}",
                        path.display()
                    ))
                    .with_fix(
                        "check sources.bmc.password_file; the file must be readable by the \
                         exporter's user (mode 0600 or 0640 with the exporter's group)",
                    )
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            PasswordSource::Env(name) => std::env::var(name).map_err(|_| {
                SourceError::new(format!(
                    "environment variable {name} (sources.bmc.password_env) is not set or not UTF-8"
                ))
                .with_fix("set it in the exporter's environment (systemd: Environment= or EnvironmentFile=)")
            })?,
            PasswordSource::Value(s) => s.expose().to_string(),
        };
        if value.is_empty() {
            return Err(SourceError::new(format!(
                "the BMC password from {} is empty",
                self.describe()
            ))
            .with_fix("put the BMC account's password there"));
        }
        Ok(Secret(value))
    }

    fn describe(&self) -> String {
        match self {
            PasswordSource::File(p) => format!("password_file {}", p.display()),
            PasswordSource::Env(n) => format!("password_env {n}"),
            PasswordSource::Value(_) => "the configuration".into(),
        }
    }
}

/// Options of the Redfish meter.
#[derive(Clone, Debug)]
pub struct RedfishOptions {
    /// The BMC's base URL, `https://HOST[:PORT]` (a trailing `/` or `/redfish/v1` is ignored).
    pub url: String,
    pub username: String,
    pub password: PasswordSource,
    /// PEM file of the CA certificate(s) that signed the BMC's certificate.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (explicit opt-in).
    pub insecure_skip_verify: bool,
    pub auth: Auth,
    /// Use this chassis (its `Id`, the last segment of its URI) instead of discovering one.
    pub chassis_id: Option<String>,
    /// Limit on each HTTP request, connection and body included.
    pub timeout: Duration,
}

/// The base URL without trailing `/` or `/redfish/v1`; an error for anything but
/// `http(s)://HOST[:PORT]` without credentials.
pub fn base_url(url: &str) -> Result<String, String> {
    let u = url.trim().trim_end_matches('/');
    let u = u
        .strip_suffix(SERVICE_ROOT)
        .unwrap_or(u)
        .trim_end_matches('/');
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} does not start with https://"))?;
    if rest.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if rest.contains('@') {
        return Err(format!(
            "{:?} holds credentials: put the user in username and the password in password_file",
            redact_userinfo(url)
        ));
    }
    if rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return Err(format!(
            "{url:?} has a path: give the BMC's address only (https://HOST[:PORT])"
        ));
    }
    Ok(u.to_string())
}

/// The origin of an absolute `http(s)://` URL: scheme and host in lower case, and the port
/// (80 or 443 when not written). `None` for anything else, and for a URL with credentials in it.
pub fn origin(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') || authority.contains('\\') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (format!("[{h}]"), after)
    } else {
        match authority.find(':') {
            Some(i) => (authority[..i].to_string(), &authority[i..]),
            None => (authority.to_string(), ""),
        }
    };
    let port = match port {
        "" | ":" => default_port,
        p => p.strip_prefix(':')?.parse().ok()?,
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme, host.to_ascii_lowercase(), port))
}

/// A link shown in an error: credentials taken out, at most 200 characters.
fn shown_link(link: &str) -> String {
    redact_userinfo(link).chars().take(200).collect()
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}<redacted>{}", &url[..s + 3], &url[a..]),
        _ => url.to_string(),
    }
}

/// A failed request, with whether the discovered plan should be thrown away (the resource moved
/// or answers something else) or kept (the BMC is merely unreachable or busy).
struct Fail {
    error: SourceError,
    rediscover: bool,
}

impl Fail {
    fn keep(error: SourceError) -> Self {
        Fail {
            error,
            rediscover: false,
        }
    }

    fn rediscover(error: SourceError) -> Self {
        Fail {
            error,
            rediscover: true,
        }
    }
}

impl From<SourceError> for Fail {
    fn from(error: SourceError) -> Self {
        Fail::rediscover(error)
    }
}

enum AuthState {
    None,
    Session {
        token: Secret,
        /// The session's URL, deleted on close.
        location: Option<String>,
    },
    Basic,
}

struct Response {
    status: u16,
    body: String,
    token: Option<String>,
    location: Option<String>,
}

#[derive(Clone, Copy, Debug)]
enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        }
    }
}

/// Reads a BMC over Redfish.
pub struct RedfishMeter {
    opts: RedfishOptions,
    base: String,
    agent: ureq::Agent,
    password: Secret,
    auth: AuthState,
    plan: Option<Plan>,
    /// The BMC refused the credentials: the error, and until when not to try again.
    refused: Option<(SourceError, std::time::Instant)>,
}

impl fmt::Debug for RedfishMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedfishMeter")
            .field("base", &self.base)
            .field("username", &self.opts.username)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

impl RedfishMeter {
    /// Reads the password and the CA file and prepares the HTTP client; sends nothing yet.
    pub fn new(opts: RedfishOptions) -> Result<RedfishMeter, SourceError> {
        let base = base_url(&opts.url).map_err(|e| {
            SourceError::new(format!("sources.bmc.url: {e}"))
                .with_fix("set sources.bmc.url to https://BMC-ADDRESS")
        })?;
        if base.starts_with("http://") {
            tracing::warn!(
                url = %base,
                "sources.bmc.url is plain http: the BMC credentials cross the network unencrypted"
            );
        }
        let password = opts.password.read()?;
        let mut tls = ureq::tls::TlsConfig::builder();
        if opts.insecure_skip_verify {
            tls = tls.disable_verification(true);
        } else if let Some(ca) = &opts.ca_file {
            tls = tls.root_certs(load_ca(ca)?);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            // A redirect would carry X-Auth-Token to wherever it points: a 3xx is an error.
            .max_redirects(0)
            // The BMC is on the management network: never through a proxy from the environment.
            .proxy(None)
            .user_agent(format!("joulebook-exporter/{}", crate::build_info::VERSION))
            .build()
            .into();
        Ok(RedfishMeter {
            opts,
            base,
            agent,
            password,
            auth: AuthState::None,
            plan: None,
            refused: None,
        })
    }

    /// The URL of a link the BMC gave: a path on the BMC, or an absolute URL of the same origin
    /// as `sources.bmc.url`; anything else is an error naming the link.
    fn url_of(&self, link: &str) -> Result<String, SourceError> {
        if link.starts_with('/') && !link.starts_with("//") {
            return Ok(format!("{}{link}", self.base));
        }
        if origin(link).is_some() && origin(link) == origin(&self.base) {
            return Ok(link.to_string());
        }
        Err(SourceError::new(format!(
            "the BMC at {} links to {:?}, which is not on its origin (scheme, host and port of \
             sources.bmc.url): not followed, so the BMC credentials are never sent there",
            self.base,
            shown_link(link)
        ))
        .with_fix(
            "a BMC that names another address in its links is misconfigured or is not the BMC \
             meant: set sources.bmc.url to the address the BMC uses in its links (check its \
             host name and any proxy in front of it)",
        ))
    }

    /// Sends one request. Every URL is checked against the BMC's origin first (the choke point:
    /// nothing, credentials or not, is sent elsewhere).
    fn call(&self, verb: Verb, url: &str, body: Option<&str>) -> Result<Response, Fail> {
        if origin(url).is_none() || origin(url) != origin(&self.base) {
            return Err(Fail::rediscover(self.url_of(url).err().unwrap_or_else(
                || {
                    SourceError::new(format!(
                        "Redfish {}: not on the BMC's origin",
                        shown_link(url)
                    ))
                },
            )));
        }
        let auth_header = match &self.auth {
            AuthState::Session { token, .. } => Some(("X-Auth-Token", token.expose().to_string())),
            AuthState::Basic => {
                use base64::Engine;
                let raw = format!("{}:{}", self.opts.username, self.password.expose());
                let enc = base64::engine::general_purpose::STANDARD.encode(raw);
                Some(("Authorization", format!("Basic {enc}")))
            }
            AuthState::None => None,
        };
        let result = match verb {
            Verb::Get | Verb::Delete => {
                let mut rb = match verb {
                    Verb::Get => self.agent.get(url),
                    _ => self.agent.delete(url),
                };
                rb = rb.header("Accept", "application/json");
                if let Some((k, v)) = &auth_header {
                    rb = rb.header(*k, v.as_str());
                }
                rb.call()
            }
            Verb::Post => {
                // Only the login is POSTed: it carries the credentials in the body, never a header.
                self.agent
                    .post(url)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .send(body.unwrap_or(""))
            }
        };
        let mut resp = result.map_err(|e| Fail::keep(self.transport_error(verb, url, e)))?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let token = header("x-auth-token");
        let location = header("location");
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|e| Fail::keep(self.transport_error(verb, url, e)))?;
        Ok(Response {
            status: resp.status().as_u16(),
            body,
            token,
            location,
        })
    }

    fn transport_error(&self, verb: Verb, url: &str, e: ureq::Error) -> SourceError {
        let what = format!("Redfish {} {url}", verb.as_str());
        let text = e.to_string();
        match e {
            ureq::Error::Timeout(_) => SourceError::new(format!(
                "{what}: no complete answer within {} s (sources.bmc.timeout)",
                self.opts.timeout.as_secs_f64()
            ))
            .with_fix(
                "check that the BMC answers at sources.bmc.url from this node (network, \
                 firewall); a BMC that is merely slow needs a larger sources.bmc.timeout",
            ),
            _ if text.to_ascii_lowercase().contains("certificate") => SourceError::new(format!(
                "{what}: the BMC's TLS certificate is not trusted ({text})"
            ))
            .with_fix(
                "set sources.bmc.ca_file to the PEM file of the CA that signed the BMC's \
                 certificate (or the BMC's own certificate if self-signed); on an isolated \
                 management network, insecure_skip_verify: true accepts any certificate",
            ),
            ureq::Error::HostNotFound => SourceError::new(format!("{what}: host not found"))
                .with_fix("check the host name in sources.bmc.url and this node's DNS"),
            _ => SourceError::new(format!("{what}: {text}")).with_fix(
                "check that the BMC answers at sources.bmc.url from this node (address, port, \
                 network, firewall)",
            ),
        }
    }

    /// The BMC refused the credentials: remember it, so they are not sent again before
    /// [`AUTH_RETRY`] unless the password changes.
    fn credentials_error(&mut self, status: u16) -> Fail {
        let error = SourceError::new(format!(
            "the BMC at {} refused the credentials of user {:?} (HTTP {status})",
            self.base, self.opts.username
        ))
        .with_fix(
            "check sources.bmc.username and the password in sources.bmc.password_file or the \
             variable named by password_env (a new password is picked up without restart); the \
             account needs at least the ReadOnly role",
        );
        self.auth = AuthState::None;
        self.refused = Some((error.clone(), std::time::Instant::now() + AUTH_RETRY));
        Fail::keep(error)
    }

    fn ensure_auth(&mut self) -> Result<(), Fail> {
        if let Some((error, until)) = &self.refused {
            match self.opts.password.read() {
                Ok(p) if p != self.password => {
                    tracing::info!(source = "bmc", "BMC password changed: trying it");
                    self.password = p;
                }
                _ if std::time::Instant::now() < *until => return Err(Fail::keep(error.clone())),
                _ => {}
            }
            self.refused = None;
        }
        if !matches!(self.auth, AuthState::None) {
            return Ok(());
        }
        match self.opts.auth {
            Auth::Basic => {
                self.auth = AuthState::Basic;
                Ok(())
            }
            Auth::Session => self.login(),
        }
    }

    fn login(&mut self) -> Result<(), Fail> {
        let url = format!("{}{SESSIONS_PATH}", self.base);
        let body = serde_json::json!({
            "UserName": self.opts.username,
            "Password": self.password.expose(),
        })
        .to_string();
        self.auth = AuthState::None;
        let resp = self.call(Verb::Post, &url, Some(&body))?;
        match (resp.status, resp.token) {
            (200..=299, Some(token)) => {
                // Deleted at shutdown with the token: only on the BMC's own origin.
                let location = resp.location.and_then(|l| match self.url_of(&l) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        tracing::error!(
                            source = "bmc",
                            "{e}; the session is used but will not be deleted at shutdown"
                        );
                        None
                    }
                });
                self.auth = AuthState::Session {
                    token: Secret(token),
                    location,
                };
                Ok(())
            }
            (401 | 403, _) => Err(self.credentials_error(resp.status)),
            (status, _) => {
                tracing::info!(
                    source = "bmc",
                    url = %url,
                    status,
                    "the BMC offers no usable Redfish session: using HTTP basic authentication"
                );
                self.auth = AuthState::Basic;
                Ok(())
            }
        }
    }

    /// GETs a resource as JSON, logging in first or again as needed.
    fn get_json(&mut self, path: &str) -> Result<Value, Fail> {
        let url = self.url_of(path).map_err(Fail::rediscover)?;
        self.ensure_auth()?;
        let mut resp = self.call(Verb::Get, &url, None)?;
        if resp.status == 401 && matches!(self.auth, AuthState::Session { .. }) {
            // The session expired or the BMC restarted: log in again, once.
            self.login()?;
            resp = self.call(Verb::Get, &url, None)?;
        }
        match resp.status {
            200..=299 => serde_json::from_str(&resp.body).map_err(|e| {
                Fail::rediscover(
                    SourceError::new(format!("Redfish GET {url} returned invalid JSON ({e})"))
                        .with_fix(
                            "the BMC's firmware answered garbage: update it, or read the BMC \
                             with sources.bmc.kind: ipmi",
                        ),
                )
            }),
            401 | 403 => Err(self.credentials_error(resp.status)),
            s @ 300..=399 => Err(Fail::rediscover(
                SourceError::new(format!(
                    "Redfish GET {url}: HTTP {s}, a redirect to {:?}: not followed (the BMC \
                     credentials go only to sources.bmc.url)",
                    resp.location.as_deref().map(shown_link).unwrap_or_default()
                ))
                .with_fix(
                    "set sources.bmc.url to the address the BMC redirects to, if it is the BMC",
                ),
            )),
            404 => Err(Fail::rediscover(
                SourceError::new(format!(
                    "Redfish GET {url}: HTTP 404{}",
                    redfish_message(&resp.body)
                ))
                .with_fix("the resource is gone (firmware update?); it is looked up again at the next poll"),
            )),
            s => Err(Fail::keep(
                SourceError::new(format!(
                    "Redfish GET {url}: HTTP {s}{}",
                    redfish_message(&resp.body)
                ))
                .with_fix(
                    "the BMC failed to answer; BMCs often recover by themselves, else reset the \
                     BMC (this does not affect the running node)",
                ),
            )),
        }
    }
}

impl Meter for RedfishMeter {
    fn protocol(&self) -> Protocol {
        Protocol::Redfish
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        let plan = match self.plan.take() {
            Some(p) => p,
            None => self.discover().map_err(|f| f.error)?,
        };
        match self.read_plan(&plan) {
            Ok(r) => {
                self.plan = Some(plan);
                Ok(r)
            }
            Err(f) => {
                if !f.rediscover {
                    self.plan = Some(plan);
                }
                Err(f.error)
            }
        }
    }

    fn close(&mut self) {
        if let AuthState::Session {
            location: Some(location),
            ..
        } = &self.auth
        {
            let location = location.clone();
            // Best effort: BMCs allow few sessions, and an abandoned one lingers until it times out.
            let _ = self.call(Verb::Delete, &location, None);
        }
        self.auth = AuthState::None;
    }
}

fn load_ca(path: &std::path::Path) -> Result<ureq::tls::RootCerts, SourceError> {
    let pem = std::fs::read(path).map_err(|e| {
        SourceError::new(format!(
            "cannot read sources.bmc.ca_file {}: {e}",
            path.display()
        ))
        .with_fix("point sources.bmc.ca_file at a readable PEM file")
    })?;
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(SourceError::new(format!(
            "sources.bmc.ca_file {} holds no PEM certificate",
            path.display()
        ))
        .with_fix("the file must contain -----BEGIN CERTIFICATE----- blocks"));
    }
    Ok(ureq::tls::RootCerts::Specific(Arc::new(certs)))
}

/// The first message of a Redfish error body, as ": message", or nothing.
fn redfish_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return String::new();
    };
    let msg = v
        .pointer("/error/@Message.ExtendedInfo/0/Message")
        .or_else(|| v.pointer("/error/message"))
        .and_then(Value::as_str);
    match msg {
        Some(m) => format!(": {}", m.chars().take(160).collect::<String>()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(base_url("https://bmc1/").unwrap(), "https://bmc1");
        assert_eq!(
            base_url("https://10.0.0.5:8443/redfish/v1/").unwrap(),
            "https://10.0.0.5:8443"
        );
        assert!(base_url("bmc1").unwrap_err().contains("https://"));
        assert!(base_url("https://").is_err());
        assert!(base_url("https://bmc/some/path")
            .unwrap_err()
            .contains("path"));
        let e = base_url("https://root:calvin@bmc1").unwrap_err();
        assert!(!e.contains("calvin") && e.contains("password_file"), "{e}");
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let o = |u: &str| origin(u);
        let bmc = o("https://bmc1");
        assert_eq!(bmc, Some(("https".into(), "bmc1".into(), 443)));
        assert_eq!(o("https://BMC1:443/redfish/v1/Chassis/1"), bmc);
        assert_eq!(o("HTTPS://bmc1/x?y#z"), bmc);
        for other in [
            "http://bmc1/redfish/v1",
            "https://bmc1:8443/redfish/v1",
            "https://bmc2/redfish/v1",
            "https://bmc1.evil.example/redfish/v1",
        ] {
            assert!(o(other).is_some() && o(other) != bmc, "{other}");
        }
        for not_a_url in [
            "/redfish/v1",
            "//bmc1/redfish/v1",
            "ftp://bmc1/x",
            "https://",
            "https://user:pw@bmc1/x",
            "https://bmc1:x/",
            "https://bmc1:99999/",
        ] {
            assert_eq!(o(not_a_url), None, "{not_a_url}");
        }
        assert_eq!(
            o("https://[fd00::5]:8443/redfish"),
            Some(("https".into(), "[fd00::5]".into(), 8443))
        );
        assert_eq!(
            o("http://[fd00::5]"),
            Some(("http".into(), "[fd00::5]".into(), 80))
        );
    }

    #[test]
    fn only_links_on_the_bmcs_origin_are_followed() {
        let m = RedfishMeter::new(RedfishOptions {
            url: "https://10.0.0.5:8443".into(),
            username: "monitor".into(),
            password: PasswordSource::Value(Secret::new("pw")),
            ca_file: None,
            insecure_skip_verify: true,
            auth: Auth::Session,
            chassis_id: None,
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        assert_eq!(
            m.url_of("/redfish/v1/Chassis/1").unwrap(),
            "https://10.0.0.5:8443/redfish/v1/Chassis/1"
        );
        assert_eq!(
            m.url_of("https://10.0.0.5:8443/redfish/v1/Chassis/1")
                .unwrap(),
            "https://10.0.0.5:8443/redfish/v1/Chassis/1"
        );
        for foreign in [
            "https://10.0.0.6:8443/redfish/v1/Chassis/1",
            "https://10.0.0.5/redfish/v1/Chassis/1",
            "http://10.0.0.5:8443/redfish/v1/Chassis/1",
            "//10.0.0.6/redfish/v1",
            "evil.example/redfish/v1",
            ".evil.example/x",
        ] {
            let e = m.url_of(foreign).unwrap_err();
            assert!(
                e.message.contains(foreign) && e.message.contains("not followed"),
                "{foreign}: {e}"
            );
            // The choke point refuses it too, before any connection.
            let f = m.call(Verb::Get, foreign, None).err().expect("refused");
            assert!(f.error.message.contains("not followed"), "{}", f.error);
        }
        let e = m.url_of("https://admin:hunter2@10.0.0.6/x").unwrap_err();
        assert!(!e.message.contains("hunter2"), "{e}");
    }

    #[test]
    fn error_bodies_are_summarised() {
        let body = r#"{"error":{"code":"Base.1.8.GeneralError","message":"A general error has occurred.","@Message.ExtendedInfo":[{"Message":"The service is busy."}]}}"#;
        assert_eq!(redfish_message(body), ": The service is busy.");
        assert_eq!(redfish_message("<html>"), "");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let o = RedfishOptions {
            url: "https://bmc".into(),
            username: "monitor".into(),
            password: PasswordSource::Value(Secret::new("hunter2")),
            ca_file: None,
            insecure_skip_verify: false,
            auth: Auth::Session,
            chassis_id: None,
            timeout: Duration::from_secs(1),
        };
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
        let m = RedfishMeter::new(o).unwrap();
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn password_sources() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(
            PasswordSource::File(f.clone()).read().unwrap(),
            Secret::new("s3cret")
        );
        std::fs::write(&f, "").unwrap();
        let e = PasswordSource::File(f).read().unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        let e = PasswordSource::File(t.path().join("missing"))
            .read()
            .unwrap_err();
        assert!(e.message.contains("missing") && e.fix.is_some(), "{e}");
        let e = PasswordSource::Env("JOULEBOOK_TEST_SURELY_UNSET_VAR".into())
            .read()
            .unwrap_err();
        assert!(e.message.contains("JOULEBOOK_TEST_SURELY_UNSET_VAR"), "{e}");
    }
}
