use super::*;

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
    assert!(Config::default().validate().is_ok());
}

#[test]
fn the_idle_interval_is_checked_and_named() {
    let c = Config::parse("sample_idle_interval: 2m\n").unwrap();
    assert_eq!(c.sample_idle_interval, Some(Seconds(120.0)));
    assert_eq!(Config::default().sample_idle_interval, None);
    assert!(c.validate().is_ok());
    let (key, msg) = Config::parse("sample_idle_interval: 1h\n")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(key, "sample_idle_interval");
    assert!(msg.contains("3600 s is outside"), "{msg}");
}

/// Days and weeks parse everywhere; each key's range decides whether they make sense there.
#[test]
fn days_parse_and_each_key_checks_its_range() {
    let c = Config::parse("web:\n  basic_auth_cache_ttl: 1d\njobs:\n  grace_period: 1w\n").unwrap();
    assert_eq!(c.web.basic_auth_cache_ttl, Seconds(86400.0));
    assert_eq!(c.jobs.grace_period, Seconds(7.0 * 86400.0));
    assert!(c.validate().is_ok());
    let (key, msg) = Config::parse("sample_interval: 1d\n")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(key, "sample_interval");
    assert!(msg.contains("86400 s is outside"), "{msg}");
    let e = Config::parse("state:\n  save_interval: 2 days\n")
        .unwrap_err()
        .0;
    assert!(e.contains("\"2 days\"") && e.contains("1d, 1w"), "{e}");
}

#[test]
fn values_and_durations() {
    let c = Config::parse(
            "sample_interval: 500ms\nsources:\n  rapl:\n    enabled: false\n  estimate:\n    enabled: off\n    cpu_tdp_watts: 95\n",
        )
        .unwrap();
    assert_eq!(c.sources.rapl.enabled, Switch::Off);
    assert_eq!(c.sample_interval, Seconds(0.5));
    assert_eq!(c.sources.estimate.enabled, Switch::Off);
    assert_eq!(c.sources.estimate.cpu_tdp_watts, Some(95.0));
    assert_eq!(
        Config::parse("sample_interval: 2\n")
            .unwrap()
            .sample_interval,
        Seconds(2.0)
    );
}

#[test]
fn hwmon_sensors_parse_and_their_errors_name_the_key() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("h.yaml");
    let good = "sources:\n  hwmon:\n    sensors:\n      - id: pdu\n        chip: power_meter\n        file: power1_average\n        label: Node Power\n        role: node\n";
    std::fs::write(&p, good).unwrap();
    let c = Config::load(&p).unwrap();
    assert_eq!(
        c.sources.hwmon.sensors[0].label.as_deref(),
        Some("Node Power")
    );
    assert_eq!(
        c.sources.hwmon.sensors[0].role,
        crate::sources::hwmon_sensors::Role::Node
    );
    std::fs::write(&p, good.replace("power1_average", "power1_max")).unwrap();
    let e = Config::load(&p).unwrap_err().0;
    assert!(
        e.contains("sources.hwmon.sensors[0].file") && e.contains("power1_max"),
        "{e}"
    );
    std::fs::write(&p, good.replace("role: node", "role: fans")).unwrap();
    let e = Config::load(&p).unwrap_err().0;
    assert!(e.contains("h.yaml") && e.contains("fans"), "{e}");
    let twice = format!(
        "{good}{}",
        &good["sources:\n  hwmon:\n    sensors:\n".len()..]
    );
    std::fs::write(&p, twice).unwrap();
    let e = Config::load(&p).unwrap_err().0;
    assert!(e.contains("sensors[1].id") && e.contains("earlier"), "{e}");
}

/// The line named is the key's own, never a same-named key of an earlier item or section
/// (the locator once matched only the last part of the dotted key).
#[test]
fn error_lines_point_at_the_key_under_its_parents() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("h.yaml");
    let sensor = "      - id: pdu\n        chip: power_meter\n        file: power1_average\n        role: node\n";
    let head = "sources:\n  hwmon:\n    sensors:\n";
    // Lines 4-7 are the first sensor, 8-11 the second.
    let cases = [
        (
            format!("{head}{sensor}{sensor}"),
            "sources.hwmon.sensors[1].id",
            8,
        ),
        (
            format!(
                "{head}{sensor}{}",
                sensor.replace("power1_average", "power1_max")
            ),
            "sources.hwmon.sensors[1].file",
            10,
        ),
        (
            format!(
                "{head}{sensor}  bmc:\n    enabled: on\n    kind: ipmi\n    ipmi_command: [x]\n"
            ),
            "sources.hwmon.sensors[0].role",
            7,
        ),
    ];
    for (text, key, line) in cases {
        std::fs::write(&p, &text).unwrap();
        let e = Config::load(&p).unwrap_err().0;
        assert!(
            e.contains(&format!("h.yaml: line {line}: {key}:")),
            "{key}: {e}\n{text}"
        );
    }
}

#[test]
fn errors_name_file_line_and_key() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("j.yaml");
    std::fs::write(
        &p,
        "sources:\n  rapl:\n    enabled: true\n    max_watts: 3\n",
    )
    .unwrap();
    let e = Config::load(&p).unwrap_err().0;
    assert!(
        e.contains("j.yaml") && e.contains("line 4") && e.contains("max_watts"),
        "{e}"
    );
    std::fs::write(&p, "sample_interval: 10 parsecs\n").unwrap();
    let e = Config::load(&p).unwrap_err().0;
    assert!(e.contains("j.yaml") && e.contains("parsecs"), "{e}");
    std::fs::write(&p, "web:\n  listen_address: nowhere\n").unwrap();
    let e = Config::load(&p).unwrap_err().0;
    assert!(
        e.contains("line 2") && e.contains("web.listen_address"),
        "{e}"
    );
    std::fs::write(&p, "web:\n  basic_auth_cache_ttl: 0s\n").unwrap();
    let e = Config::load(&p).unwrap_err().0;
    assert!(
        e.contains("line 2") && e.contains("web.basic_auth_cache_ttl"),
        "{e}"
    );
    std::fs::write(&p, "web:\n  basic_auth_cache_ttl: 2s\n").unwrap();
    assert_eq!(
        Config::load(&p).unwrap().web.basic_auth_cache_ttl,
        Seconds(2.0)
    );
    std::fs::write(&p, "sources:\n  estimate:\n    idle_fraction: 3\n").unwrap();
    let e = Config::load(&p).unwrap_err().0;
    assert!(e.contains("line 3") && e.contains("idle_fraction"), "{e}");
    let e = Config::load(&t.path().join("missing.yaml")).unwrap_err().0;
    assert!(e.contains("missing.yaml"), "{e}");
}

#[test]
fn bmc_is_off_by_default_and_its_errors_name_the_key() {
    let c = Config::default();
    assert_eq!(c.sources.bmc.enabled, Switch::Off);
    assert_eq!(c.sources.bmc.max_gap_s(), 15.0);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("j.yaml");
    let cases = [
        (
            "sources:\n  bmc:\n    enabled: on\n    kind: redfish\n",
            "sources.bmc.url",
            0,
        ),
        (
            "sources:\n  bmc:\n    enabled: on\n    url: https://bmc1\n",
            "sources.bmc.username",
            0,
        ),
        (
            "sources:\n  bmc:\n    enabled: on\n    url: https://bmc1\n    username: mon\n",
            "sources.bmc.password_file",
            0,
        ),
        (
            "sources:\n  bmc:\n    enabled: on\n    url: https://u:pw@bmc1\n",
            "sources.bmc.url",
            4,
        ),
        (
            "sources:\n  bmc:\n    enabled: on\n    energy_method: counter\n",
            "sources.bmc.energy_method",
            4,
        ),
        (
            "sources:\n  bmc:\n    poll_interval: 5s\n    max_gap: 2s\n",
            "sources.bmc.max_gap",
            4,
        ),
        (
            "sources:\n  bmc:\n    timeout: 0\n",
            "sources.bmc.timeout",
            3,
        ),
        (
            "sources:\n  bmc:\n    ipmi_command: []\n    enabled: auto\n",
            "sources.bmc.ipmi_command",
            3,
        ),
    ];
    for (text, key, line) in cases {
        std::fs::write(&p, text).unwrap();
        let e = Config::load(&p).unwrap_err().0;
        assert!(e.contains(key), "{key}: {e}");
        assert!(!e.contains("pw@"), "{e}");
        if line > 0 {
            assert!(e.contains(&format!("line {line}")), "{key}: {e}");
        }
    }
    std::fs::write(&p, "sources:\n  bmc:\n    passwd: x\n").unwrap();
    assert!(Config::load(&p).unwrap_err().0.contains("passwd"));
}

#[test]
fn bmc_redfish_config_parses_and_prints_no_secret() {
    let c = Config::parse(
            "sources:\n  bmc:\n    enabled: on\n    url: https://bmc1.mgmt\n    username: monitor\n    password_file: /etc/joulebook/bmc.pass\n    ca_file: /etc/joulebook/bmc-ca.pem\n    auth: basic\n    chassis_id: System.Embedded.1\n    poll_interval: 10s\n    energy_method: power_integration\n",
        )
        .unwrap();
    assert!(c.validate().is_ok(), "{:?}", c.validate());
    let b = &c.sources.bmc;
    assert_eq!(b.protocol(), Protocol::Redfish);
    assert_eq!(b.auth, redfish::Auth::Basic);
    assert_eq!(b.max_gap_s(), 30.0);
    assert_eq!(b.energy_method, MethodChoice::PowerIntegration);
    let yaml = c.to_yaml();
    assert!(
        yaml.contains("password_file: /etc/joulebook/bmc.pass"),
        "{yaml}"
    );
    assert_eq!(Config::parse(&yaml).unwrap(), c);
    let ipmi = Config::parse(
            "sources:\n  bmc:\n    enabled: auto\n    ipmi_command: [ipmitool, -I, open, dcmi, power, reading]\n",
        )
        .unwrap();
    assert!(ipmi.validate().is_ok());
    assert_eq!(ipmi.sources.bmc.protocol(), Protocol::Ipmi);
    let oob = Config::parse(
        "sources:\n  bmc:\n    ipmi_command: [ipmitool, -H, bmc1, -P, hunter2, -kkgkey, dcmi]\n",
    )
    .unwrap();
    let yaml = oob.to_yaml();
    assert!(
        !yaml.contains("hunter2") && !yaml.contains("kgkey") && yaml.contains("<redacted>"),
        "{yaml}"
    );
}

#[test]
fn effective_config_round_trips() {
    let c = Config::default();
    assert_eq!(Config::parse(&c.to_yaml()).unwrap(), c);
}

#[test]
fn listen_addresses() {
    assert_eq!(parse_listen_address(":9977").unwrap().port(), 9977);
    assert!(parse_listen_address("127.0.0.1:1").is_ok());
    assert!(parse_listen_address("[::1]:1").is_ok());
    assert!(parse_listen_address("localhost").is_err());
}
