//! Reports in the site's time zone: local months and days (23 and 25 hours at the clock
//! changes) that add up, and a zone that does not exist named with its flag or key.

use super::*;

fn it_joules(r: &Value) -> f64 {
    r["headline"]["it_energy_j"].as_f64().expect("it_energy_j")
}

/// `--timezone Europe/Paris`: October is Paris' October (2026-09-30T22:00Z to 2026-10-31T23:00Z),
/// its 31 daily rows are Paris days (Sunday 25 October lasts 25 hours) that add up to the month,
/// and each row holds the energy between two local midnights: a UTC report over those instants
/// gives the same. The config's `timezone` does the same as the flag, which wins over it.
#[test]
fn month_in_a_time_zone_has_local_days() {
    let s = scenario::generate();
    let prom = prometheus(&s);
    let url = prom.url();
    let dir = tempfile::tempdir().expect("out");
    let r = month_report(&url, dir.path(), &["--timezone", "Europe/Paris"]);
    assert_eq!(r["period"]["start"], "2026-10-01T00:00:00+02:00");
    assert_eq!(r["period"]["end"], "2026-11-01T00:00:00+01:00");
    assert_eq!(r["period"]["label"], "2026-10");
    // SOURCE_DATE_EPOCH is 2026-11-01T00:00:00Z.
    assert_eq!(r["generated_at"], "2026-11-01T01:00:00+01:00");
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("md");
    assert!(
        md.contains("period 2026-10-01T00:00:00+02:00 to 2026-11-01T00:00:00+01:00"),
        "{md}"
    );

    let daily = r["daily"].as_array().expect("daily");
    assert_eq!(daily.len(), 31);
    for (i, d) in daily.iter().enumerate() {
        assert_eq!(d["date"], format!("2026-10-{:02}", i + 1));
    }
    let it = it_joules(&r);
    assert!(it > 0.0);
    let days: f64 = daily
        .iter()
        .map(|d| d["total_kwh"].as_f64().unwrap_or(0.0) * 3.6e6)
        .sum();
    assert!(close(days, it, 1e-9), "days {days} J vs month {it} J");
    let whole = json_report(
        &url,
        &[
            "--from",
            "2026-09-30T22:00:00Z",
            "--to",
            "2026-10-31T23:00:00Z",
        ],
    );
    assert!(
        close(it_joules(&whole), it, 1e-9),
        "{} vs {it}",
        it_joules(&whole)
    );
    // The first day, the 25-hour day and the last day, between their local midnights in UTC.
    for (i, from, to) in [
        (0, "2026-09-30T22:00:00Z", "2026-10-01T22:00:00Z"),
        (24, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"),
        (30, "2026-10-30T23:00:00Z", "2026-10-31T23:00:00Z"),
    ] {
        let day = daily[i]["total_kwh"].as_f64().expect("total_kwh") * 3.6e6;
        let w = it_joules(&json_report(&url, &["--from", from, "--to", to]));
        assert!(close(day, w, 1e-9), "day {} J, {from} to {to} {w} J", i + 1);
    }

    zone_by_config_key_and_flag_over_it(&url, &r);
    job_window_in_zone(&url);
}

/// The config's `timezone` gives report `r` (Paris) as the flag does; the flag wins over it.
fn zone_by_config_key_and_flag_over_it(url: &str, r: &Value) {
    let cfg_dir = tempfile::tempdir().expect("cfg");
    let cfg = |zone: &str| {
        let p = cfg_dir
            .path()
            .join(format!("{}.yaml", zone.replace('/', "-")));
        std::fs::write(&p, format!("timezone: {zone}\n")).expect("write config");
        p.to_string_lossy().to_string()
    };
    let paris = cfg("Europe/Paris");
    let by_key = json_report(url, &["--month", "2026-10", "--config", &paris]);
    assert_same(&by_key, r, "$");
    let new_york = cfg("America/New_York");
    let flag_wins = json_report(
        url,
        &[
            "--month",
            "2026-10",
            "--config",
            &new_york,
            "--timezone",
            "Europe/Paris",
        ],
    );
    assert_same(&flag_wins, r, "$");
}

/// The job summary prints its window in the zone.
fn job_window_in_zone(url: &str) {
    let out = ok(&report(&[
        "--prometheus",
        url,
        "--from",
        "2026-10-15",
        "--to",
        "2026-10-25",
        "--timezone",
        "Europe/Paris",
        "job",
        "1009",
    ]));
    let seen = out
        .lines()
        .find(|l| l.starts_with("Seen:"))
        .expect("a Seen line");
    assert!(
        !seen.contains('Z') && seen.matches("+02:00").count() == 2,
        "{seen}"
    );
}

/// A time zone that is not in the IANA database is a usage error (exit 2) naming the flag or the
/// file and key, and the value.
#[test]
fn unknown_time_zone_exits_2_naming_the_flag_or_key() {
    let dir = tempfile::tempdir().expect("cfg");
    let cfg = dir.path().join("site.yaml");
    std::fs::write(&cfg, "timezone: Europe/Pariss\n").expect("write");
    let cfg = cfg.to_string_lossy().to_string();
    let base = [
        "--prometheus",
        "http://127.0.0.1:1",
        "--month",
        "2026-10",
        "--out",
    ];
    let out = dir.path().join("out").to_string_lossy().to_string();
    let mut args = base.to_vec();
    args.extend([out.as_str(), "--timezone", "Mars/Olympus_Mons"]);
    let o = report(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--timezone \"Mars/Olympus_Mons\" is not a time zone of the IANA database"),
        "{err}"
    );
    let mut args = base.to_vec();
    args.extend([out.as_str(), "--config", &cfg]);
    let o = report(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("site.yaml") && err.contains("timezone: \"Europe/Pariss\" is not a time zone"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists(), "nothing written");
}
