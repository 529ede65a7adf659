//! A fake Redfish BMC for tests: HTTPS on 127.0.0.1 with a certificate from a CA generated at
//! start (rcgen), serving the JSON of a few BMC shapes, with authentication and misbehaviours that
//! the test switches at run time.
//!
//! One thread accepts connections; each request is answered on its own thread (so a slow answer
//! blocks nobody) and the connection is then closed. Everything stops when the server is dropped;
//! sockets have read and write timeouts, so no thread outlives a test by more than a few seconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The shape of the BMC's Redfish tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Legacy `Power` resource: `Chassis/System.Embedded.1/Power` with
    /// `PowerControl[0].PowerConsumedWatts` (as iDRAC and most BMCs before Redfish 2020.4), and
    /// a storage backplane chassis `Enclosure.Internal.0-1` without power listed second.
    Legacy,
    /// `PowerSubsystem` + `EnvironmentMetrics` (`PowerWatts`, and `EnergykWh` when
    /// [`Bmc::energy_kwh`] is set) on `Chassis/1`, listed after a GPU baseboard chassis
    /// (`ChassisType: Module`) that reports its own, larger power and must not be chosen.
    Modern,
    /// Only a `Sensors` collection on `Chassis/1`: `TotalPower` (`ReadingType: Power`, in
    /// [`Bmc::power_units`]) and `TotalEnergy` (`EnergykWh`) when `energy_kwh` is set.
    Sensors,
}

/// The BMC's state, changed by the test while the server runs.
#[derive(Clone, Debug)]
pub struct Bmc {
    pub shape: Shape,
    /// True node power, watts (served in `power_units` by the `Sensors` shape).
    pub watts: f64,
    /// `ReadingUnits` of the power sensor (`Sensors` shape): "W", "kW", "mW", or anything else.
    pub power_units: String,
    /// The energy counter, kWh; `None`: the BMC has none.
    pub energy_kwh: Option<f64>,
    pub username: String,
    pub password: String,
    /// The session service answers; `false`: 405 on login (basic authentication only).
    pub sessions: bool,
    /// Basic authentication is accepted.
    pub basic: bool,
    /// Delay before every answer.
    pub delay: Duration,
    /// Answer every GET of a data resource (not the login) with this status.
    pub fail_status: Option<u16>,
    /// Answer GETs with truncated JSON.
    pub malformed: bool,
    /// An origin (`https://HOST:PORT`) that the chassis collection's member links name instead
    /// of this server (a BMC that links to another host).
    pub foreign_links: Option<String>,
    /// An origin that the session's `Location` names instead of this server.
    pub foreign_session: Option<String>,
    /// Answer every GET of a data resource with `302 Found` to the same path on this origin.
    pub redirect: Option<String>,
}

impl Default for Bmc {
    fn default() -> Self {
        Bmc {
            shape: Shape::Legacy,
            watts: 250.0,
            power_units: "W".into(),
            energy_kwh: None,
            username: "monitor".into(),
            password: "s3cret-pw".into(),
            sessions: true,
            basic: true,
            delay: Duration::ZERO,
            fail_status: None,
            malformed: false,
            foreign_links: None,
            foreign_session: None,
            redirect: None,
        }
    }
}

/// What the server saw.
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// "METHOD path" of every request, in order.
    pub requests: Vec<String>,
    pub sessions_created: usize,
    pub sessions_deleted: usize,
    /// Requests answered 401.
    pub unauthorized: usize,
    /// Every request header and body, concatenated (to check what a client sent).
    pub raw: String,
}

struct Inner {
    bmc: Mutex<Bmc>,
    log: Mutex<Log>,
    tokens: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// A running fake BMC; stops when dropped.
pub struct RedfishServer {
    addr: SocketAddr,
    ca_pem: String,
    inner: Arc<Inner>,
    accept: Option<std::thread::JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedfishServer {
    /// Starts a server on 127.0.0.1 (a free port) with a fresh CA and a certificate for
    /// `127.0.0.1` and `localhost` signed by it.
    pub fn start(bmc: Bmc) -> RedfishServer {
        let (tls, ca_pem) = tls_config();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Inner {
            bmc: Mutex::new(bmc),
            log: Mutex::new(Log::default()),
            tokens: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let acc_inner = inner.clone();
        let accept = std::thread::spawn(move || {
            while !acc_inner.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let inner = acc_inner.clone();
                        let tls = tls.clone();
                        std::thread::spawn(move || serve(stream, tls, &inner));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RedfishServer {
            addr,
            ca_pem,
            inner,
            accept: Some(accept),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate that signed the server's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Changes the BMC's state.
    pub fn set(&self, f: impl FnOnce(&mut Bmc)) {
        f(&mut lock(&self.inner.bmc));
    }

    /// What the server saw so far.
    pub fn log(&self) -> Log {
        lock(&self.inner.log).clone()
    }

    /// Forgets every session token, as a BMC reboot does.
    pub fn expire_sessions(&self) {
        lock(&self.inner.tokens).clear();
    }
}

/// A listener that must receive nothing: it counts the connections made to it (a client that
/// would send credentials there connects first), and closes them at once.
pub struct Trap {
    addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Trap {
    pub fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (connections.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok(_) => {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Trap {
            addr,
            connections,
            stop,
            accept: Some(accept),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Connections made to it so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RedfishServer {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn tls_config() -> (Arc<rustls::ServerConfig>, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "joulebook test BMC CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bmc.test");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone(), ca.der().clone()], key_der)
    .expect("server TLS config");
    (Arc::new(config), ca.pem())
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn serve(stream: TcpStream, tls: Arc<rustls::ServerConfig>, inner: &Inner) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, stream);
    // A client that rejects the certificate ends the handshake here.
    let Some(req) = read_request(&mut tls) else {
        return;
    };
    {
        let mut log = lock(&inner.log);
        log.requests.push(format!("{} {}", req.method, req.path));
        for (k, v) in &req.headers {
            log.raw.push_str(&format!("{k}: {v}\n"));
        }
        log.raw.push_str(&req.body);
        log.raw.push('\n');
    }
    let bmc = lock(&inner.bmc).clone();
    // Sleep in small steps so a dropped server does not wait for its slow answers.
    let until = Instant::now() + bmc.delay;
    while Instant::now() < until && !inner.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, headers, body) = route(&req, &bmc, inner);
    if status == 401 {
        lock(&inner.log).unauthorized += 1;
    }
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    let _ = tls.write_all(out.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn read_request(s: &mut impl Read) -> Option<Request> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

type Answer = (u16, Vec<(&'static str, String)>, String);

fn error(status: u16, message: &str) -> Answer {
    (
        status,
        vec![],
        serde_json::json!({"error": {"code": "Base.1.8.GeneralError", "message": message,
            "@Message.ExtendedInfo": [{"Message": message}]}})
        .to_string(),
    )
}

fn ok(v: serde_json::Value) -> Answer {
    (200, vec![], v.to_string())
}

fn authorized(req: &Request, bmc: &Bmc, inner: &Inner) -> bool {
    if let Some(token) = req.header("X-Auth-Token") {
        return lock(&inner.tokens).iter().any(|t| t == token);
    }
    if let Some(basic) = req
        .header("Authorization")
        .and_then(|h| h.strip_prefix("Basic "))
    {
        use base64::Engine;
        let expected = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", bmc.username, bmc.password));
        return bmc.basic && basic == expected;
    }
    false
}

fn route(req: &Request, bmc: &Bmc, inner: &Inner) -> Answer {
    const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
    if req.method == "POST" && req.path == SESSIONS {
        if !bmc.sessions {
            return error(405, "The session service is disabled.");
        }
        let creds: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
        if creds["UserName"] == bmc.username.as_str() && creds["Password"] == bmc.password.as_str()
        {
            let mut log = lock(&inner.log);
            log.sessions_created += 1;
            let n = log.sessions_created;
            let token = format!("token-{n}-{}", std::process::id());
            lock(&inner.tokens).push(token.clone());
            return (
                201,
                vec![
                    ("X-Auth-Token", token),
                    (
                        "Location",
                        format!(
                            "{}{SESSIONS}/{n}",
                            bmc.foreign_session.as_deref().unwrap_or("")
                        ),
                    ),
                ],
                serde_json::json!({"@odata.id": format!("{SESSIONS}/{n}"), "Id": n.to_string()})
                    .to_string(),
            );
        }
        return error(401, "Invalid username or password.");
    }
    if !authorized(req, bmc, inner) {
        return error(401, "Authentication required.");
    }
    if req.method == "DELETE" && req.path.starts_with(SESSIONS) {
        lock(&inner.log).sessions_deleted += 1;
        if let Some(token) = req.header("X-Auth-Token") {
            lock(&inner.tokens).retain(|t| t != token);
        }
        return (204, vec![], String::new());
    }
    if req.method != "GET" {
        return error(405, "Method not allowed.");
    }
    if let Some(status) = bmc.fail_status {
        return error(status, "The service is temporarily unavailable.");
    }
    if let Some(origin) = &bmc.redirect {
        return (
            302,
            vec![("Location", format!("{origin}{}", req.path))],
            String::new(),
        );
    }
    if bmc.malformed {
        return (
            200,
            vec![],
            "{\"@odata.id\": \"/redfish/v1/Chassis\", \"Members\": [".into(),
        );
    }
    resource(&req.path, bmc)
        .map(ok)
        .unwrap_or_else(|| error(404, "Resource not found."))
}

fn link(path: &str) -> serde_json::Value {
    serde_json::json!({ "@odata.id": path })
}

fn resource(path: &str, bmc: &Bmc) -> Option<serde_json::Value> {
    use serde_json::json;
    let elsewhere = bmc.foreign_links.as_deref().unwrap_or("");
    let chassis = |ids: &[&str]| {
        json!({
            "@odata.id": "/redfish/v1/Chassis",
            "Members": ids.iter().map(|i| link(&format!("{elsewhere}/redfish/v1/Chassis/{i}"))).collect::<Vec<_>>(),
            "Members@odata.count": ids.len(),
        })
    };
    let v = match (bmc.shape, path.trim_end_matches('/')) {
        (_, "/redfish/v1") => json!({"@odata.id": "/redfish/v1", "RedfishVersion": "1.17.0",
            "Chassis": link("/redfish/v1/Chassis")}),
        (Shape::Legacy, "/redfish/v1/Chassis") => {
            chassis(&["System.Embedded.1", "Enclosure.Internal.0-1"])
        }
        (Shape::Modern, "/redfish/v1/Chassis") => chassis(&["HGX_GPU_Baseboard_0", "1"]),
        (Shape::Sensors, "/redfish/v1/Chassis") => chassis(&["1"]),
        (Shape::Legacy, path) => return legacy(path, bmc),
        (Shape::Modern, path) => return modern(path, bmc),
        (Shape::Sensors, path) => return sensors(path, bmc),
    };
    Some(v)
}

/// The resources of [`Shape::Legacy`] below the chassis list.
fn legacy(path: &str, bmc: &Bmc) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match path {
        "/redfish/v1/Chassis/System.Embedded.1" => json!({
            "@odata.id": "/redfish/v1/Chassis/System.Embedded.1", "Id": "System.Embedded.1",
            "ChassisType": "RackMount",
            "Power": link("/redfish/v1/Chassis/System.Embedded.1/Power"),
            "Thermal": link("/redfish/v1/Chassis/System.Embedded.1/Thermal"),
        }),
        "/redfish/v1/Chassis/Enclosure.Internal.0-1" => json!({
            "@odata.id": "/redfish/v1/Chassis/Enclosure.Internal.0-1", "Id": "Enclosure.Internal.0-1",
            "ChassisType": "Enclosure",
        }),
        "/redfish/v1/Chassis/System.Embedded.1/Power" => json!({
            "@odata.id": "/redfish/v1/Chassis/System.Embedded.1/Power",
            "PowerControl": [{
                "@odata.id": "/redfish/v1/Chassis/System.Embedded.1/Power#/PowerControl/0",
                "MemberId": "PowerControl", "Name": "System Power Control",
                "PowerConsumedWatts": bmc.watts, "PowerCapacityWatts": 1600,
            }],
        }),
        _ => return None,
    })
}

/// The resources of [`Shape::Modern`] below the chassis list.
fn modern(path: &str, bmc: &Bmc) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match path {
        "/redfish/v1/Chassis/HGX_GPU_Baseboard_0" => json!({
            "@odata.id": "/redfish/v1/Chassis/HGX_GPU_Baseboard_0", "Id": "HGX_GPU_Baseboard_0",
            "ChassisType": "Module",
            "EnvironmentMetrics": link("/redfish/v1/Chassis/HGX_GPU_Baseboard_0/EnvironmentMetrics"),
        }),
        "/redfish/v1/Chassis/HGX_GPU_Baseboard_0/EnvironmentMetrics" => json!({
            "@odata.id": "/redfish/v1/Chassis/HGX_GPU_Baseboard_0/EnvironmentMetrics",
            "PowerWatts": {"Reading": 5600.0},
        }),
        "/redfish/v1/Chassis/1" => json!({
            "@odata.id": "/redfish/v1/Chassis/1", "Id": "1", "ChassisType": "RackMount",
            "PowerSubsystem": link("/redfish/v1/Chassis/1/PowerSubsystem"),
            "EnvironmentMetrics": link("/redfish/v1/Chassis/1/EnvironmentMetrics"),
        }),
        "/redfish/v1/Chassis/1/PowerSubsystem" => json!({
            "@odata.id": "/redfish/v1/Chassis/1/PowerSubsystem",
            "CapacityWatts": 2400, "PowerSupplies": link("/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies"),
        }),
        "/redfish/v1/Chassis/1/EnvironmentMetrics" => {
            let mut v = json!({
                "@odata.id": "/redfish/v1/Chassis/1/EnvironmentMetrics",
                "PowerWatts": {"DataSourceUri": "/redfish/v1/Chassis/1/Sensors/TotalPower", "Reading": bmc.watts},
            });
            if let Some(kwh) = bmc.energy_kwh {
                v["EnergykWh"] = json!({"DataSourceUri": "/redfish/v1/Chassis/1/Sensors/TotalEnergy", "Reading": kwh});
            }
            v
        }
        _ => return None,
    })
}

/// The resources of [`Shape::Sensors`] below the chassis list.
fn sensors(path: &str, bmc: &Bmc) -> Option<serde_json::Value> {
    use serde_json::json;
    // The power sensors' readings in `Bmc::power_units`.
    let scale = match bmc.power_units.as_str() {
        "kW" => 1e-3,
        "mW" => 1e3,
        _ => 1.0,
    };
    Some(match path {
        "/redfish/v1/Chassis/1" => json!({
            "@odata.id": "/redfish/v1/Chassis/1", "Id": "1", "ChassisType": "RackMount",
            "Sensors": link("/redfish/v1/Chassis/1/Sensors"),
        }),
        "/redfish/v1/Chassis/1/Sensors" => {
            let mut ids = vec!["CPU1_Temp", "PSU1_InputPower", "TotalPower"];
            if bmc.energy_kwh.is_some() {
                ids.push("TotalEnergy");
            }
            json!({"@odata.id": "/redfish/v1/Chassis/1/Sensors",
            "Members": ids.iter().map(|i| link(&format!("/redfish/v1/Chassis/1/Sensors/{i}"))).collect::<Vec<_>>()})
        }
        "/redfish/v1/Chassis/1/Sensors/CPU1_Temp" => json!({
            "@odata.id": "/redfish/v1/Chassis/1/Sensors/CPU1_Temp", "ReadingType": "Temperature",
            "Reading": 48.0, "ReadingUnits": "Cel", "PhysicalContext": "CPU",
        }),
        "/redfish/v1/Chassis/1/Sensors/PSU1_InputPower" => json!({
            "@odata.id": "/redfish/v1/Chassis/1/Sensors/PSU1_InputPower", "ReadingType": "Power",
            "Reading": bmc.watts / 2.0 * scale, "ReadingUnits": bmc.power_units, "PhysicalContext": "PowerSupply",
        }),
        "/redfish/v1/Chassis/1/Sensors/TotalPower" => json!({
            "@odata.id": "/redfish/v1/Chassis/1/Sensors/TotalPower", "ReadingType": "Power",
            "Reading": bmc.watts * scale, "ReadingUnits": bmc.power_units, "PhysicalContext": "Chassis",
        }),
        "/redfish/v1/Chassis/1/Sensors/TotalEnergy" => json!({
            "@odata.id": "/redfish/v1/Chassis/1/Sensors/TotalEnergy", "ReadingType": "EnergykWh",
            "Reading": bmc.energy_kwh, "ReadingUnits": "kW.h", "PhysicalContext": "Chassis",
        }),
        _ => return None,
    })
}
