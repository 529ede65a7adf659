//! The systemd units: hardening, the exporter's flags, the report timer, systemd-analyze.

use super::*;

/// A unit file: section → key → values (a key may repeat), continuation lines joined.
fn parse_unit(path: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut units: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in read(path).lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let full = format!("{pending}{line}");
        pending.clear();
        if full.starts_with('[') {
            section = full.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        let (k, v) = full
            .split_once('=')
            .unwrap_or_else(|| panic!("{}: bad line {full:?}", path.display()));
        units
            .entry(section.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    units
}

fn one<'a>(
    u: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>,
    section: &str,
    key: &str,
) -> &'a str {
    let v = u
        .get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("[{section}] {key}= missing"));
    assert_eq!(v.len(), 1, "[{section}] {key}= set {} times", v.len());
    &v[0]
}

fn words(s: &str) -> BTreeSet<&str> {
    s.split_whitespace().collect()
}

#[test]
fn exporter_unit_runs_unprivileged_and_hardened() {
    let u = parse_unit(&deploy("systemd/joulebook-exporter.service"));
    let s = "Service";
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "joulebook"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert_eq!(one(&u, s, k), v, "{k}");
    }
    let caps = BTreeSet::from(["CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"]);
    assert_eq!(words(one(&u, s, "AmbientCapabilities")), caps);
    assert_eq!(words(one(&u, s, "CapabilityBoundingSet")), caps);
    assert_eq!(
        words(one(&u, s, "RestrictAddressFamilies")),
        BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"])
    );
    assert!(one(&u, s, "MemoryMax").ends_with('M'));
    // What would break the exporter: hidden processes, no /dev/nvidia*, a filter without @system-service.
    let service = &u[s];
    assert!(
        !service.contains_key("User"),
        "DynamicUser, not a fixed user"
    );
    assert!(
        service.get("PrivateDevices").is_none_or(|v| v == &["no"]),
        "NVML needs /dev/nvidia*"
    );
    assert!(
        service.get("ProtectProc").is_none_or(|v| v == &["default"]),
        "other users' /proc/<pid> must stay visible"
    );
    assert!(service.get("ProcSubset").is_none_or(|v| v == &["all"]));
    assert_eq!(one(&u, "Install", "WantedBy"), "multi-user.target");
}

/// The ExecStart flags exist in `joulebook-exporter --help`, point at the state directory and
/// the config file, and the example config file passes --check-config with those flags.
#[test]
fn exporter_unit_flags_exist_and_example_config_is_valid() {
    let u = parse_unit(&deploy("systemd/joulebook-exporter.service"));
    let exec = one(&u, "Service", "ExecStart");
    let mut parts = exec.split_whitespace();
    assert_eq!(parts.next(), Some("/usr/bin/joulebook-exporter"));
    let flags: Vec<(String, String)> = parts
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or((f, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let help = Command::new(binary("joulebook-exporter"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    for (k, _) in &flags {
        assert!(k.starts_with("--"), "{k}");
        assert!(
            help.contains(&format!("{k} ")) || help.contains(&format!("{k}=")),
            "{k} is not in joulebook-exporter --help:\n{help}"
        );
    }
    let get = |k: &str| flags.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    assert_eq!(get("--config.file"), Some("/etc/joulebook/exporter.yaml"));
    let state = get("--state.file").expect("--state.file");
    assert!(
        state.starts_with(&format!(
            "/var/lib/{}/",
            one(&u, "Service", "StateDirectory")
        )),
        "{state} is not in the StateDirectory"
    );
    // The same command line, on the example configuration and the web file the package makes.
    let etc = ShippedEtc::new();
    let example = etc.exporter_yaml();
    let mut args: Vec<String> = flags
        .iter()
        .map(|(k, v)| {
            if k == "--config.file" {
                format!("{k}={}", example.display())
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    args.push("--check-config".into());
    let o = Command::new(binary("joulebook-exporter"))
        .args(&args)
        .output()
        .expect("run");
    let out = text(&o);
    assert!(o.status.success(), "{args:?}:\n{out}");
    assert!(
        out.contains("gpu_mapping_dir: /run/joulebook/gpu-map"),
        "{out}"
    );
    assert!(out.contains("file: /var/lib/joulebook/state.json"), "{out}");
    assert!(
        out.contains(&format!("config_file: {}", etc.web.display())),
        "{out}"
    );
}

#[test]
fn report_timer_mails_the_previous_month_on_the_first() {
    let t = parse_unit(&deploy("systemd/joulebook-report.timer"));
    assert_eq!(one(&t, "Timer", "OnCalendar"), "*-*-01 06:00");
    assert_eq!(one(&t, "Timer", "Persistent"), "true");
    assert_eq!(one(&t, "Install", "WantedBy"), "timers.target");
    let s = parse_unit(&deploy("systemd/joulebook-report.service"));
    assert_eq!(one(&s, "Service", "Type"), "oneshot");
    assert_eq!(
        one(&s, "Service", "ExecStart"),
        "/usr/bin/joulebook-report email --config /etc/joulebook/report.yaml --month previous"
    );
    assert_eq!(one(&s, "Service", "DynamicUser"), "yes");
    assert_eq!(one(&s, "Service", "CapabilityBoundingSet"), "");
    // The send record of `email` (tests/report_security.rs reads it through $STATE_DIRECTORY).
    assert_eq!(one(&s, "Service", "StateDirectory"), "joulebook-report");
}

/// systemd's own checks, on copies of the units whose ExecStart names the built binaries (it
/// insists that they exist): `systemd-analyze verify`, and `security` with an exposure bound.
#[test]
fn systemd_analyze_verifies_the_units() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "joulebook-exporter.service",
        "joulebook-report.service",
        "joulebook-report.timer",
    ] {
        let t = read(&deploy("systemd").join(name))
            .replace(
                "/usr/bin/joulebook-exporter",
                binary("joulebook-exporter").to_str().unwrap(),
            )
            .replace(
                "/usr/bin/joulebook-report",
                binary("joulebook-report").to_str().unwrap(),
            );
        std::fs::write(dir.path().join(name), t).unwrap();
    }
    let units: Vec<String> = [
        "joulebook-exporter.service",
        "joulebook-report.service",
        "joulebook-report.timer",
    ]
    .iter()
    .map(|n| dir.path().join(n).display().to_string())
    .collect();
    // --man=no: the units' Documentation= pages exist once the package is installed
    // (scripts/test-packages verifies the installed units with them).
    let mut args = vec!["verify", "--man=no"];
    args.extend(units.iter().map(String::as_str));
    let o = run("systemd-analyze", "systemd", &args, None);
    assert!(
        o.status.success() && text(&o).trim().is_empty(),
        "systemd-analyze verify:\n{}",
        text(&o)
    );
    // Exposure 0-10 (x10 in --threshold): "OK" is below 4.5; the exporter is at 2.6 with its two
    // capabilities, the report at 1.8.
    for (unit, threshold) in [(&units[0], "30"), (&units[1], "20")] {
        let th = format!("--threshold={threshold}");
        let o = run(
            "systemd-analyze",
            "systemd",
            &["security", "--offline=true", &th, unit],
            None,
        );
        assert!(
            o.status.success(),
            "systemd-analyze security {unit} above {threshold}:\n{}",
            text(&o)
        );
    }
    let o = run(
        "systemd-analyze",
        "systemd",
        &["calendar", "*-*-01 06:00"],
        None,
    );
    assert!(text(&o).contains("-01 06:00:00"), "{}", text(&o));
}
