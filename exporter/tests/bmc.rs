//! The BMC source against a fake Redfish BMC (HTTPS on 127.0.0.1, see
//! `joulebook_tests::redfish_server`) and a fake `ipmitool` on a temporary PATH.
//!
//! Energy is checked exactly: the tests drive the poller with chosen timestamps, so nothing
//! sleeps for the BMC's poll interval. Every network call goes to 127.0.0.1 with short timeouts.

use joulebook_exporter::sources::bmc::ipmi::{IpmiMeter, IpmiOptions};
use joulebook_exporter::sources::bmc::redfish::{
    Auth, PasswordSource, RedfishMeter, RedfishOptions, Secret,
};
use joulebook_exporter::sources::bmc::{
    self, BmcOptions, BmcSource, Clock, Meter, Method, MethodChoice, Poller, Protocol,
    ProtocolOptions, Reading,
};
use joulebook_exporter::sources::{Domain, RawEnergy, Source, SourceError, SourceKind};
use joulebook_tests::redfish_server::{Bmc, RedfishServer, Shape, Trap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-pw";

struct Setup {
    server: RedfishServer,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(bmc: Bmc) -> Setup {
        let server = RedfishServer::start(bmc);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), server.ca_pem()).unwrap();
        std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
        Setup { server, dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn options(&self) -> RedfishOptions {
        RedfishOptions {
            url: self.server.url(),
            username: "monitor".into(),
            password: PasswordSource::File(self.dir.path().join("password")),
            ca_file: Some(self.ca()),
            insecure_skip_verify: false,
            auth: Auth::Session,
            chassis_id: None,
            timeout: Duration::from_secs(2),
        }
    }

    fn meter(&self) -> RedfishMeter {
        RedfishMeter::new(self.options()).unwrap()
    }
}

fn bmc_options(protocol: ProtocolOptions, choice: MethodChoice) -> BmcOptions {
    BmcOptions {
        protocol,
        poll_interval_s: 5.0,
        max_gap_s: 15.0,
        max_watts: bmc::DEFAULT_MAX_WATTS,
        energy_method: choice,
    }
}

fn poller(s: &Setup, choice: MethodChoice) -> Poller {
    Poller::new(
        Box::new(s.meter()),
        &bmc_options(ProtocolOptions::Redfish(s.options()), choice),
    )
}

#[test]
fn bmc_redfish_legacy_power_is_integrated_exactly_and_gaps_are_not_guessed() {
    let s = Setup::new(Bmc {
        shape: Shape::Legacy,
        watts: 200.0,
        ..Default::default()
    });
    let mut p = poller(&s, MethodChoice::Auto);
    p.poll_at(0.0);
    assert!(p.error().is_none(), "{:?}", p.error());
    s.server.set(|b| b.watts = 300.0);
    p.poll_at(5.0);
    p.poll_at(10.0);
    // (200 + 300) / 2 × 5 s + 300 W × 5 s.
    assert_eq!(p.total_uj(), 2_750_000_000);

    // The BMC fails for 20 s (HTTP 500): nothing is counted for the outage.
    s.server.set(|b| b.fail_status = Some(500));
    p.poll_at(15.0);
    let e = p.error().expect("HTTP 500 is an error");
    assert!(
        e.message.contains("HTTP 500")
            && e.message
                .contains("/redfish/v1/Chassis/System.Embedded.1/Power")
            && e.message.contains("temporarily unavailable"),
        "{e}"
    );
    assert!(e.fix.is_some());
    p.poll_at(20.0);
    s.server.set(|b| {
        b.fail_status = None;
        b.watts = 1000.0;
    });
    p.poll_at(30.0);
    assert!(p.error().is_none());
    assert_eq!(p.total_uj(), 2_750_000_000, "no energy over the gap");
    assert_eq!(p.gap_seconds(30.0), 20.0);
    p.poll_at(35.0);
    assert_eq!(p.total_uj(), 2_750_000_000 + 5_000_000_000);

    let log = s.server.log();
    // One session for all of it; the storage backplane chassis was looked at, not read.
    assert_eq!(log.sessions_created, 1, "{:?}", log.requests);
    assert!(log
        .requests
        .iter()
        .any(|r| r == "GET /redfish/v1/Chassis/System.Embedded.1/Power"));
    assert!(
        !log.raw.contains("Basic "),
        "session auth sends no basic credentials"
    );
}

#[test]
fn bmc_redfish_energy_counter_is_preferred_and_a_gpu_baseboard_is_never_the_node() {
    let s = Setup::new(Bmc {
        shape: Shape::Modern,
        watts: 400.0,
        energy_kwh: Some(12.5),
        ..Default::default()
    });
    let mut p = poller(&s, MethodChoice::Auto);
    p.poll_at(0.0);
    s.server.set(|b| b.energy_kwh = Some(12.501));
    p.poll_at(5.0);
    assert!(p.error().is_none(), "{:?}", p.error());
    // 0.001 kWh = 3600 J exactly, whatever the power said.
    assert_eq!(p.total_uj(), 3_600_000_000);
    let requests = s.server.log().requests;
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("HGX_GPU_Baseboard_0/EnvironmentMetrics")),
        "the GPU baseboard's power was read: {requests:?}"
    );

    // The same BMC with energy_method: power_integration.
    let mut p = poller(&s, MethodChoice::PowerIntegration);
    p.poll_at(0.0);
    p.poll_at(5.0);
    assert_eq!(p.total_uj(), 2_000_000_000);
}

#[test]
fn bmc_redfish_counter_method_is_published_through_the_source() {
    let s = Setup::new(Bmc {
        shape: Shape::Sensors,
        watts: 250.0,
        energy_kwh: Some(1.0),
        ..Default::default()
    });
    let now = Arc::new(Mutex::new(0.0f64));
    let n = now.clone();
    let clock: Clock = Arc::new(move || *n.lock().unwrap());
    let mut opts = bmc_options(ProtocolOptions::Redfish(s.options()), MethodChoice::Auto);
    opts.poll_interval_s = 0.02;
    let mut src = BmcSource::start(Box::new(s.meter()), &opts, clock).unwrap();
    let sample = wait_for(&mut src, |x| !x.energy.is_empty());
    let status = sample.bmc.unwrap();
    assert_eq!(status.method, Some(Method::Counter));
    assert_eq!(status.protocol, Protocol::Redfish);
    assert_eq!(status.power_watts, Some(250.0));
    // The BMC counted 2 Wh; the next polls carry it.
    s.server.set(|b| b.energy_kwh = Some(1.002));
    // Polls still stamped 0 s see the new value at the same instant and add nothing; once every
    // poll reads it, move the clock.
    std::thread::sleep(Duration::from_millis(100));
    *now.lock().unwrap() = 5.0;
    let sample = wait_for(
        &mut src,
        |x| matches!(x.energy.first().map(|e| e.raw), Some(RawEnergy::Resetting { uj, .. }) if uj > 0),
    );
    assert_eq!(sample.energy[0].channel.domain, Domain::Bmc);
    assert_eq!(
        sample.energy[0].raw,
        RawEnergy::Resetting {
            uj: 7_200_000_000,
            max_watts: 0.0
        }
    );
    drop(src);
    // The session is deleted when the source stops.
    assert_eq!(s.server.log().sessions_deleted, 1);
}

/// Samples until `done` holds, for at most 5 s; each sample must return at once.
fn wait_for(
    src: &mut BmcSource,
    done: impl Fn(&joulebook_exporter::sources::SourceSample) -> bool,
) -> joulebook_exporter::sources::SourceSample {
    let start = Instant::now();
    loop {
        let t = Instant::now();
        let sample = src.sample().unwrap();
        assert!(t.elapsed() < Duration::from_millis(100), "sample() blocked");
        if done(&sample) {
            return sample;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "condition not reached; last sample {sample:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bmc_redfish_units_are_converted_and_unknown_units_are_a_problem() {
    for (units, ok) in [("W", true), ("kW", true), ("mW", true), ("dBm", false)] {
        let s = Setup::new(Bmc {
            shape: Shape::Sensors,
            watts: 250.0,
            power_units: units.into(),
            ..Default::default()
        });
        let r = s.meter().read();
        if ok {
            let w = r.unwrap().watts.unwrap();
            assert!((w - 250.0).abs() < 1e-9, "{units}: {w}");
        } else {
            let e = r.unwrap_err();
            assert!(
                e.message.contains("ReadingUnits \"dBm\"")
                    && e.message.contains("Sensors/TotalPower"),
                "{e}"
            );
        }
    }
}

#[test]
fn bmc_redfish_basic_auth_and_fallback_when_the_bmc_has_no_sessions() {
    let s = Setup::new(Bmc {
        sessions: false,
        ..Default::default()
    });
    let r = s.meter().read().unwrap();
    assert_eq!(r.watts, Some(250.0));
    let log = s.server.log();
    assert_eq!(log.sessions_created, 0);
    assert!(log
        .raw
        .to_ascii_lowercase()
        .contains("authorization: basic "));

    let s = Setup::new(Bmc::default());
    let mut o = s.options();
    o.auth = Auth::Basic;
    RedfishMeter::new(o).unwrap().read().unwrap();
    let log = s.server.log();
    assert!(
        !log.requests.iter().any(|r| r.starts_with("POST")),
        "{log:?}"
    );
}

#[test]
fn bmc_redfish_wrong_password_is_a_clear_error_that_never_shows_the_password() {
    for auth in [Auth::Session, Auth::Basic] {
        let s = Setup::new(Bmc::default());
        let mut o = s.options();
        o.auth = auth;
        o.password = PasswordSource::Value(Secret::new("wrong-horse-battery"));
        let e = RedfishMeter::new(o).unwrap().read().unwrap_err();
        assert!(
            e.message
                .contains("refused the credentials of user \"monitor\"")
                && e.message.contains("HTTP 401")
                && e.message.contains(&s.server.url()),
            "{e}"
        );
        assert!(e.fix.as_deref().unwrap().contains("password_file"));
        assert!(!format!("{e:?}").contains("wrong-horse"), "{e:?}");
    }
}

#[test]
fn bmc_redfish_refused_credentials_are_not_sent_again_until_the_password_changes() {
    let s = Setup::new(Bmc::default());
    let pw = s.dir.path().join("password");
    std::fs::write(&pw, "stale\n").unwrap();
    let mut m = s.meter();
    let first = m.read().unwrap_err();
    assert_eq!(s.server.log().requests.len(), 1);
    // Polled again within a minute: the same error, and nothing sent (no account lockout).
    assert_eq!(m.read().unwrap_err(), first);
    assert_eq!(s.server.log().requests.len(), 1);
    // A new password in the file is tried at once.
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    assert_eq!(m.read().unwrap().watts, Some(250.0));
}

#[test]
fn bmc_redfish_session_expiry_logs_in_again() {
    let s = Setup::new(Bmc::default());
    let mut m = s.meter();
    m.read().unwrap();
    s.server.expire_sessions();
    m.read().unwrap();
    assert_eq!(s.server.log().sessions_created, 2);
}

/// Links and redirects to another origin are errors naming them, never requests: a second
/// listener, where a client would send the token or the password, receives no connection.
#[test]
fn bmc_redfish_never_follows_links_to_another_origin() {
    let trap = Trap::start();
    for auth in [Auth::Session, Auth::Basic] {
        // Chassis members on another host.
        let s = Setup::new(Bmc {
            foreign_links: Some(trap.url()),
            ..Default::default()
        });
        let mut o = s.options();
        o.auth = auth;
        let e = RedfishMeter::new(o).unwrap().read().unwrap_err();
        let link = format!("{}/redfish/v1/Chassis/System.Embedded.1", trap.url());
        assert!(
            e.message.contains(&link) && e.message.contains("not followed"),
            "{e}"
        );
        // A redirect to another host.
        let s = Setup::new(Bmc {
            redirect: Some(trap.url()),
            ..Default::default()
        });
        let mut o = s.options();
        o.auth = auth;
        let e = RedfishMeter::new(o).unwrap().read().unwrap_err();
        assert!(
            e.message.contains("HTTP 302")
                && e.message
                    .contains(&format!("{}/redfish/v1/Chassis", trap.url())),
            "{e}"
        );
    }
    // A session whose Location is on another host: used, but not deleted there at shutdown.
    let s = Setup::new(Bmc {
        foreign_session: Some(trap.url()),
        ..Default::default()
    });
    let mut m = s.meter();
    assert_eq!(m.read().unwrap().watts, Some(250.0));
    m.close();
    assert_eq!(s.server.log().sessions_deleted, 0);
    assert_eq!(trap.connections(), 0, "nothing may reach another origin");
    // The trap does count connections (so the zero above means something).
    drop(std::net::TcpStream::connect(trap.url().trim_start_matches("https://")).unwrap());
    let t = Instant::now();
    while trap.connections() == 0 {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bmc_redfish_password_from_the_environment() {
    let s = Setup::new(Bmc::default());
    let var = "JOULEBOOK_TEST_BMC_PASSWORD_ENV";
    // Only this test reads this variable.
    std::env::set_var(var, PASSWORD);
    let mut o = s.options();
    o.password = PasswordSource::Env(var.into());
    assert_eq!(
        RedfishMeter::new(o).unwrap().read().unwrap().watts,
        Some(250.0)
    );
}

#[test]
fn bmc_redfish_tls_is_verified_unless_explicitly_skipped() {
    let s = Setup::new(Bmc::default());
    let mut o = s.options();
    o.ca_file = None;
    let e = RedfishMeter::new(o.clone()).unwrap().read().unwrap_err();
    assert!(e.message.contains("not trusted"), "{e}");
    assert!(e.fix.as_deref().unwrap().contains("ca_file"), "{e}");
    // Nothing was answered: the handshake failed before any request.
    assert!(s.server.log().requests.is_empty());

    o.insecure_skip_verify = true;
    assert_eq!(
        RedfishMeter::new(o).unwrap().read().unwrap().watts,
        Some(250.0)
    );

    // A CA file without certificates is refused when the source opens.
    let mut o = s.options();
    let bad = s.dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    o.ca_file = Some(bad);
    let e = RedfishMeter::new(o).unwrap_err();
    assert!(e.message.contains("holds no PEM certificate"), "{e}");
}

#[test]
fn bmc_redfish_malformed_json_and_missing_power_are_problems() {
    let s = Setup::new(Bmc {
        malformed: true,
        ..Default::default()
    });
    let e = s.meter().read().unwrap_err();
    assert!(
        e.message.contains("invalid JSON") && e.message.contains("/redfish/v1/Chassis"),
        "{e}"
    );

    let s = Setup::new(Bmc::default());
    let mut o = s.options();
    o.chassis_id = Some("Enclosure.Internal.0-1".into());
    let e = RedfishMeter::new(o).unwrap().read().unwrap_err();
    assert!(
        e.message.contains("no chassis") && e.message.contains("Enclosure.Internal.0-1"),
        "{e}"
    );
    assert!(e.fix.as_deref().unwrap().contains("chassis_id"));
}

#[test]
fn bmc_slow_redfish_never_blocks_sample_and_marks_the_source_down() {
    let s = Setup::new(Bmc {
        delay: Duration::from_millis(1500),
        ..Default::default()
    });
    let mut o = s.options();
    o.timeout = Duration::from_millis(300);
    let mut opts = bmc_options(ProtocolOptions::Redfish(o), MethodChoice::Auto);
    opts.poll_interval_s = 0.1;
    let mut src = bmc::open(&opts).unwrap();
    let sample = wait_for(&mut src, |x| !x.problems.is_empty());
    let e = &sample.problems[0];
    assert!(
        e.message.contains("no complete answer within 0.3 s")
            && e.message.contains(&s.server.url()),
        "{e}"
    );
    assert!(sample.energy.is_empty());
    assert_eq!(sample.bmc.unwrap().power_watts, None);
}

/// A meter that always reads the same power.
struct Constant(f64);

impl Meter for Constant {
    fn protocol(&self) -> Protocol {
        Protocol::Ipmi
    }
    fn read(&mut self) -> Result<Reading, SourceError> {
        Ok(Reading {
            watts: Some(self.0),
            energy_uj: None,
        })
    }
}

#[test]
fn bmc_source_in_the_sampler_publishes_its_metrics_and_feeds_other() {
    use joulebook_exporter::metrics;
    use joulebook_exporter::node::NodeInfo;
    use joulebook_exporter::sampler::Sampler;
    let now = Arc::new(Mutex::new(0.0f64));
    let n = now.clone();
    let clock: Clock = Arc::new(move || *n.lock().unwrap());
    let mut opts = bmc_options(
        ProtocolOptions::Ipmi(IpmiOptions::default()),
        MethodChoice::Auto,
    );
    opts.poll_interval_s = 0.01;
    let mut src = BmcSource::start(Box::new(Constant(200.0)), &opts, clock).unwrap();
    wait_for(&mut src, |x| !x.energy.is_empty());
    let mut sampler = Sampler::new(vec![Box::new(src)], vec![], NodeInfo::default(), None, 1.0);
    sampler.cycle(0.0);
    *now.lock().unwrap() = 5.0;
    std::thread::sleep(Duration::from_millis(200));
    sampler.cycle(1.0);
    let snap = sampler.snapshot(1.0);
    // With nothing else measured, the whole BMC energy is `other`; no other component gets any.
    let bmc_j = snap
        .channels
        .iter()
        .find(|(id, _)| id.domain == joulebook_exporter::sources::Domain::Bmc)
        .map(|(_, j)| *j)
        .unwrap();
    assert_eq!(snap.node.len(), 1, "{:?}", snap.node);
    assert_eq!(snap.node[0].component, joulebook_common::Component::Other);
    assert_eq!(snap.node[0].joules, bmc_j);
    let shared = Arc::new(std::sync::RwLock::new(Arc::new(snap)));
    let text = metrics::encode(&metrics::registry(shared), metrics::Format::Text).unwrap();
    for line in [
        "joulebook_bmc_joules_total 1000.0",
        "joulebook_bmc_power_watts 200.0",
        "joulebook_bmc_energy_method_info{method=\"power_integration\",protocol=\"ipmi\"} 1",
        "joulebook_bmc_gap_seconds_total 0.0",
        "joulebook_source_up{source=\"bmc\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

fn fixture(name: &str) -> PathBuf {
    joulebook_tests::fixture("ipmi").join(name)
}

/// A fake tool in `dir` that prints a fixture when called with the expected arguments.
fn fake_tool(dir: &Path, name: &str, args: &str, out: &str, err: &str, code: i32) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\n[ \"$*\" = \"{args}\" ] || {{ echo \"unexpected arguments: $*\" >&2; exit 9; }}\n\
         cat '{out}'\ncat '{err}' >&2\nexit {code}\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn ipmi_meter(dir: &Path) -> IpmiMeter {
    IpmiMeter::new(IpmiOptions {
        command: None,
        timeout: Duration::from_secs(5),
        search_path: Some(dir.as_os_str().to_owned()),
    })
}

#[test]
fn bmc_ipmi_through_a_fake_ipmitool_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let empty = fixture("empty.txt");
    let e = ipmi_meter(dir.path()).read().unwrap_err();
    assert!(e.message.contains("neither ipmitool nor ipmi-dcmi"), "{e}");

    // FreeIPMI alone.
    let freeipmi = fixture("freeipmi-active.txt");
    fake_tool(
        dir.path(),
        "ipmi-dcmi",
        "--get-system-power-statistics",
        freeipmi.to_str().unwrap(),
        empty.to_str().unwrap(),
        0,
    );
    assert_eq!(ipmi_meter(dir.path()).read().unwrap().watts, Some(164.0));

    // ipmitool is preferred when both exist; integrated like any power reading.
    let ipmitool = fixture("ipmitool-activated.txt");
    fake_tool(
        dir.path(),
        "ipmitool",
        "dcmi power reading",
        ipmitool.to_str().unwrap(),
        empty.to_str().unwrap(),
        0,
    );
    let mut p = Poller::new(
        Box::new(ipmi_meter(dir.path())),
        &bmc_options(
            ProtocolOptions::Ipmi(IpmiOptions::default()),
            MethodChoice::Auto,
        ),
    );
    p.poll_at(0.0);
    p.poll_at(5.0);
    assert!(p.error().is_none(), "{:?}", p.error());
    assert_eq!(p.total_uj(), 1_225_000_000);

    // A deactivated measurement is a problem, not 0 W.
    fake_tool(
        dir.path(),
        "ipmitool",
        "dcmi power reading",
        fixture("ipmitool-deactivated.txt").to_str().unwrap(),
        empty.to_str().unwrap(),
        0,
    );
    let e = ipmi_meter(dir.path()).read().unwrap_err();
    assert!(
        e.message.contains("ipmitool dcmi power reading") && e.message.contains("deactivated"),
        "{e}"
    );

    // No driver: ipmitool fails on stderr; the error quotes it and says what to load.
    fake_tool(
        dir.path(),
        "ipmitool",
        "dcmi power reading",
        empty.to_str().unwrap(),
        fixture("ipmitool-no-device.txt").to_str().unwrap(),
        1,
    );
    let e = ipmi_meter(dir.path()).read().unwrap_err();
    assert!(e.message.contains("Could not open device"), "{e}");
    assert!(e.fix.as_deref().unwrap().contains("modprobe"), "{e}");
}

#[test]
fn bmc_build_sources_follows_the_switch() {
    use joulebook_exporter::app::build_sources;
    use joulebook_exporter::config::{Config, Switch};
    use joulebook_exporter::node::NodeInfo;
    let mut cfg = Config::default();
    cfg.sources.rapl.enabled = Switch::Off;
    cfg.sources.nvml.enabled = Switch::Off;
    cfg.sources.estimate.enabled = Switch::Off;
    let (sources, disabled) = build_sources(&cfg, &NodeInfo::default());
    assert!(sources.is_empty());
    assert!(disabled.contains(&SourceKind::Bmc));

    // On, with a password file that does not exist: down with the reason, not gone.
    cfg.sources.bmc.enabled = Switch::On;
    cfg.sources.bmc.url = Some("https://127.0.0.1:9".into());
    cfg.sources.bmc.username = Some("monitor".into());
    cfg.sources.bmc.password_file = Some("/nonexistent/joulebook-bmc.pass".into());
    assert!(cfg.validate().is_ok());
    let (mut sources, disabled) = build_sources(&cfg, &NodeInfo::default());
    assert!(!disabled.contains(&SourceKind::Bmc));
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].kind(), SourceKind::Bmc);
    let e = sources[0].sample().unwrap_err();
    assert!(
        e.message
            .contains("cannot read the BMC password file /nonexistent/joulebook-bmc.pass"),
        "{e}"
    );
}
