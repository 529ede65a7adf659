//! The built exporter reading a fake Redfish BMC on 127.0.0.1: down with a clear log line while
//! the BMC refuses the password, the rest of the exporter serving meanwhile, then up again and
//! counting energy; the password never appears in the log or in `--check-config`. A session on
//! another origin is never deleted there at shutdown; secrets of an `ipmi_command` are never shown.

use joulebook_tests::redfish_server::{Bmc, RedfishServer, Shape, Trap};
use joulebook_tests::{binary, fixture, promtool_check_metrics, Exporter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "correct-horse-42";

#[test]
fn bmc_down_then_up_in_the_running_exporter() {
    let server = RedfishServer::start(Bmc {
        shape: Shape::Legacy,
        watts: 300.0,
        password: PASSWORD.into(),
        ..Default::default()
    });
    // A stale password in the file: 401 until the administrator fixes the file.
    let (dir, cfg) = redfish_config(&server, "stale-password");
    let pw = dir.path().join("bmc.pass");

    let out = Command::new(binary("joulebook-exporter"))
        .args(["--config.file", cfg.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("password_file:") && !printed.contains(PASSWORD),
        "{printed}"
    );

    let e = start_on_intel_node(&cfg);
    let wait = |what: &str, ok: &dyn Fn(&joulebook_tests::Samples) -> bool| {
        e.wait_for(what, Duration::from_secs(8), ok)
    };
    let up = "joulebook_source_up{source=\"bmc\"}";
    let s = wait("bmc never marked down", &|s| s.get(up) == Some(0.0));
    // RAPL keeps serving while the BMC is down.
    assert_eq!(s.get("joulebook_source_up{source=\"rapl\"}"), Some(1.0));
    assert!(s.get("joulebook_bmc_joules_total").is_none());

    // The administrator fixes the file: the next poll tries the new password at once (the old
    // one is not sent again before a minute, so the BMC does not lock the account).
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let s = wait("no BMC energy after the fix", &|s| {
        s.get("joulebook_bmc_joules_total").unwrap_or(0.0) > 0.0
    });
    assert_eq!(s.get(up), Some(1.0));
    assert_eq!(s.get("joulebook_bmc_power_watts"), Some(300.0));
    assert_eq!(
        s.get(
            "joulebook_bmc_energy_method_info{method=\"power_integration\",protocol=\"redfish\"}"
        ),
        Some(1.0)
    );
    promtool_check_metrics(&e.scrape());
    // 300 W between two polls about 1 s apart.
    let j = s.must("joulebook_bmc_joules_total");
    assert!((150.0..=900.0).contains(&j), "{j} J");

    let log = e.log_text();
    let downs = log
        .lines()
        .filter(|l| l.contains("source down") && l.contains("bmc"))
        .count();
    assert_eq!(downs, 1, "one line per outage:\n{log}");
    assert!(
        log.contains("refused the credentials of user \\\"monitor\\\"")
            || log.contains("refused the credentials of user \"monitor\""),
        "{log}"
    );
    assert!(log.contains("source is up again"), "{log}");
    assert!(
        !log.contains(PASSWORD) && !log.contains("stale-password"),
        "password in the log:\n{log}"
    );
    let logins = server.log().requests;
    let refused = logins.iter().filter(|r| r.starts_with("POST")).count();
    assert_eq!(refused, 2, "one refused login, one good: {logins:?}");
}

/// An out-of-band `ipmi_command` with `-P PASSWORD` and `-k KEY`, run by a tool that fails
/// and echoes its arguments: the secrets appear neither in `--check-config`, nor in the log,
/// nor on `/` or `/metrics`, where the command and the tool's words are shown redacted.
#[test]
fn ipmi_command_secrets_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    const IPMI_PASSWORD: &str = "ipmi-pw-7f3a9c";
    const KG_KEY: &str = "kg-key-51d2e8";
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("ipmitool");
    std::fs::write(
        &tool,
        "#!/bin/sh\necho \"Error: Unable to establish IPMI v2 / RMCP+ session: ipmitool $*\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("joulebook.yaml");
    std::fs::write(
        &cfg,
        format!(
            "sample_interval: 200ms\nsources:\n  nvml:\n    enabled: off\n  bmc:\n    enabled: on\n    \
             kind: ipmi\n    poll_interval: 1s\n    ipmi_command: [{}, -I, lanplus, -H, bmc1, -U, \
             admin, -P, {IPMI_PASSWORD}, -k, {KG_KEY}, dcmi, power, reading]\n",
            tool.display()
        ),
    )
    .unwrap();
    let leaks = |what: &str, text: &str| {
        assert!(
            !text.contains(IPMI_PASSWORD) && !text.contains(KG_KEY),
            "a secret in {what}:\n{text}"
        );
    };

    let out = Command::new(binary("joulebook-exporter"))
        .args(["--config.file", cfg.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
    leaks("--check-config", &printed);
    leaks(
        "--check-config's errors",
        &String::from_utf8_lossy(&out.stderr),
    );

    let e = start_on_intel_node(&cfg);
    e.wait_for("bmc never marked down", Duration::from_secs(8), |s| {
        s.get("joulebook_source_up{source=\"bmc\"}") == Some(0.0)
    });
    let (status, _, page) = joulebook_tests::http_get(&e.url("/"), None).unwrap();
    assert_eq!(status, 200);
    // The page shows the failing command, redacted, and what the tool said.
    assert!(
        page.contains("-P &lt;redacted&gt;") && page.contains("Unable to establish"),
        "{page}"
    );
    leaks("/", &page);
    leaks("/metrics", &e.scrape());
    let log = e.log_text();
    assert!(
        log.contains("source down") && log.contains("Unable to establish"),
        "{log}"
    );
    leaks("the log", &log);
}

/// A BMC whose session `Location` names another host: the exporter reads the BMC, logs the link
/// as an error, and at shutdown (SIGTERM) sends no DELETE with the token to that host.
#[test]
fn redfish_session_elsewhere_is_never_deleted_there() {
    let trap = Trap::start();
    let server = RedfishServer::start(Bmc {
        password: PASSWORD.into(),
        foreign_session: Some(trap.url()),
        ..Default::default()
    });
    let (_dir, cfg) = redfish_config(&server, PASSWORD);
    let mut e = start_on_intel_node(&cfg);
    e.wait_for("no BMC power", Duration::from_secs(8), |s| {
        s.get("joulebook_bmc_power_watts") == Some(250.0)
    });
    assert!(e.signal_and_wait("TERM").success(), "{}", e.log_text());
    assert_eq!(trap.connections(), 0, "a request reached the other host");
    assert_eq!(server.log().sessions_deleted, 0);
    let log = e.log_text();
    let link = format!("{}/redfish/v1/SessionService/Sessions/1", trap.url());
    assert!(
        log.contains(&link) && log.contains("not be deleted at shutdown"),
        "{log}"
    );
}

/// A configuration reading the Redfish BMC `server` (its CA trusted, `password` in the password
/// file `bmc.pass`) every second; the folder holding it, and its path.
fn redfish_config(server: &RedfishServer, password: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let pw = dir.path().join("bmc.pass");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let cfg = dir.path().join("joulebook.yaml");
    std::fs::write(
        &cfg,
        format!(
            "sample_interval: 200ms\nsources:\n  nvml:\n    enabled: off\n  bmc:\n    enabled: on\n    \
             url: {}\n    username: monitor\n    password_file: {}\n    ca_file: {}\n    \
             poll_interval: 1s\n    timeout: 2s\n",
            server.url(),
            pw.display(),
            ca.display()
        ),
    )
    .unwrap();
    (dir, cfg)
}

/// The exporter with configuration `cfg` on the two-socket Intel fixture.
fn start_on_intel_node(cfg: &Path) -> Exporter {
    let root = fixture("intel-2s");
    Exporter::start(&[
        "--config.file",
        cfg.to_str().unwrap(),
        &format!("--path.sysfs={}", root.join("sys").display()),
        &format!("--path.procfs={}", root.join("proc").display()),
    ])
}
