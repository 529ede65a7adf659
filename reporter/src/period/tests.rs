use super::*;

fn utc() -> Zone {
    Zone::utc()
}

fn paris() -> Zone {
    Zone::named("Europe/Paris").expect("Europe/Paris")
}

/// Unix seconds of an RFC 3339 time.
fn at(s: &str) -> i64 {
    s.parse::<Timestamp>().expect("RFC 3339").as_second()
}

/// Checks that `days` tile `p` and that every day but a cut first one starts at a local midnight
/// (the start of a local date, one date after the other), and returns their lengths in hours.
fn tiled(z: &Zone, p: &Period, days: &[Period]) -> Vec<f64> {
    assert_eq!(days.first().map(|d| d.start), Some(p.start));
    assert_eq!(days.last().map(|d| d.end), Some(p.end));
    for w in days.windows(2) {
        assert_eq!(w[0].end, w[1].start);
        let d = z.local(w[1].start).expect("in range").date();
        assert_eq!(z.day_start(d), Some(w[1].start), "{}", z.iso(w[1].start));
        assert_eq!(
            z.local(w[0].start)
                .expect("in range")
                .date()
                .tomorrow()
                .ok(),
            Some(d)
        );
    }
    assert_eq!(days.iter().map(Period::seconds).sum::<i64>(), p.seconds());
    days.iter().map(|d| d.seconds() as f64 / 3600.0).collect()
}

#[test]
fn months() {
    let p = utc().month("2026-10", 0).unwrap();
    assert_eq!(iso_utc(p.start), "2026-10-01T00:00:00Z");
    assert_eq!(iso_utc(p.end), "2026-11-01T00:00:00Z");
    assert_eq!(utc().days(&p).len(), 31);
    assert_eq!(utc().label(&p), "2026-10");
    let p = utc().month("2024-12", 0).unwrap();
    assert_eq!(iso_utc(p.end), "2025-01-01T00:00:00Z");
    assert_eq!(utc().days(&utc().month("2024-02", 0).unwrap()).len(), 29);
    assert!(utc().month("2024-13", 0).is_err());
    // 2027-01-01T06:00Z: the previous month is December 2026.
    let jan = at("2027-01-01T06:00:00Z");
    assert_eq!(
        utc().month("previous", jan).unwrap(),
        utc().month("2026-12", 0).unwrap()
    );
    assert_eq!(
        utc().month("current", jan).unwrap(),
        utc().month("2027-01", 0).unwrap()
    );
    let mar = at("2026-03-01T00:00:00Z");
    assert_eq!(
        utc().month("previous", mar).unwrap(),
        utc().month("2026-02", 0).unwrap()
    );
    assert!(utc().month("oct", 0).is_err());
    let e = utc().month("2026-1x", 0).unwrap_err().to_string();
    assert!(
        e.starts_with("--month \"2026-1x\": expected YYYY-MM"),
        "{e}"
    );
}

#[test]
fn years() {
    let p = utc().year("2026", 0).unwrap();
    assert_eq!(iso_utc(p.start), "2026-01-01T00:00:00Z");
    assert_eq!(iso_utc(p.end), "2027-01-01T00:00:00Z");
    assert_eq!(utc().days(&p).len(), 365);
    assert_eq!(utc().label(&p), "2026");
    assert_eq!(utc().days(&utc().year("2024", 0).unwrap()).len(), 366);
    let jan = at("2027-01-01T06:00:00Z");
    assert_eq!(utc().year("previous", jan).unwrap(), p);
    assert_eq!(
        utc().year("current", jan).unwrap(),
        utc().year("2027", 0).unwrap()
    );
    let e = utc().year("26", 0).unwrap_err().to_string();
    assert!(e.starts_with("--year \"26\""), "{e}");
    assert!(utc().year("2026-10", 0).is_err());
}

#[test]
fn between_and_days() {
    let p = utc().between("2026-10-03T12:00Z", "2026-10-05").unwrap();
    let d = utc().days(&p);
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].seconds(), 43_200);
    assert_eq!(d.iter().map(Period::seconds).sum::<i64>(), p.seconds());
    assert!(utc().between("2026-10-05", "2026-10-03").is_err());
    assert!(utc().between("2026-02-30", "2026-03-03").is_err());
    assert_eq!(utc().label(&p), "2026-10-03 12:00 → 2026-10-05");
    let e = utc().between("2026-10-03", "soon").unwrap_err().to_string();
    assert!(e.starts_with("--to \"soon\": expected YYYY-MM-DD"), "{e}");
    assert_eq!(
        utc().between("1790812800", "2026-11-01").unwrap(),
        utc().month("2026-10", 0).unwrap()
    );
}

#[test]
fn paris_march_2026_has_one_day_of_23_hours() {
    let z = paris();
    let p = z.month("2026-03", 0).unwrap();
    assert_eq!(z.iso(p.start), "2026-03-01T00:00:00+01:00");
    assert_eq!(z.iso(p.end), "2026-04-01T00:00:00+02:00");
    assert_eq!(iso_utc(p.start), "2026-02-28T23:00:00Z");
    assert_eq!(iso_utc(p.end), "2026-03-31T22:00:00Z");
    assert_eq!(p.seconds(), 31 * 86_400 - 3600);
    assert_eq!(z.label(&p), "2026-03");
    let days = z.days(&p);
    let hours = tiled(&z, &p, &days);
    assert_eq!(hours.len(), 31);
    // Clocks go forward on Sunday 29 March at 02:00 (EU rule: the last Sunday of March).
    for (i, (d, h)) in days.iter().zip(&hours).enumerate() {
        let date = format!("2026-03-{:02}", i + 1);
        assert_eq!(z.date(d.start), date);
        assert!(z.iso(d.start).starts_with(&format!("{date}T00:00:00+0")));
        assert_eq!(*h, if i + 1 == 29 { 23.0 } else { 24.0 }, "{date}");
    }
    assert_eq!(z.iso(days[29].start), "2026-03-30T00:00:00+02:00");
}

#[test]
fn paris_october_2026_has_one_day_of_25_hours() {
    let z = paris();
    let p = z.month("2026-10", 0).unwrap();
    assert_eq!(z.iso(p.start), "2026-10-01T00:00:00+02:00");
    assert_eq!(z.iso(p.end), "2026-11-01T00:00:00+01:00");
    assert_eq!(p.start, utc().month("2026-10", 0).unwrap().start - 7200);
    assert_eq!(p.seconds(), 31 * 86_400 + 3600);
    let days = z.days(&p);
    let hours = tiled(&z, &p, &days);
    assert_eq!(hours.len(), 31);
    assert_eq!(hours[24], 25.0, "Sunday 25 October");
    assert_eq!(hours.iter().filter(|h| **h == 24.0).count(), 30);
    assert_eq!(z.date(days[24].start), "2026-10-25");
    assert_eq!(z.iso(days[25].start), "2026-10-26T00:00:00+01:00");
    assert_eq!(z.label(&p), "2026-10");
    // "previous" and "current" follow the zone's calendar: 23:30Z on 31 October is already
    // November in Paris.
    let late = at("2026-10-31T23:30:00Z");
    assert_eq!(
        z.month("current", late).unwrap(),
        z.month("2026-11", 0).unwrap()
    );
    assert_eq!(z.month("previous", late).unwrap(), p);
    assert_eq!(
        utc().month("current", late).unwrap(),
        utc().month("2026-10", 0).unwrap()
    );
}

#[test]
fn a_year_in_a_zone() {
    let z = paris();
    let p = z.year("2026", 0).unwrap();
    assert_eq!(z.iso(p.start), "2026-01-01T00:00:00+01:00");
    assert_eq!(z.iso(p.end), "2027-01-01T00:00:00+01:00");
    assert_eq!(p.seconds(), 365 * 86_400);
    assert_eq!(z.label(&p), "2026");
    let hours = tiled(&z, &p, &z.days(&p));
    assert_eq!(hours.len(), 365);
    assert_eq!(hours.iter().filter(|h| **h == 23.0).count(), 1);
    assert_eq!(hours.iter().filter(|h| **h == 25.0).count(), 1);
    assert_eq!(
        z.year("current", at("2026-12-31T23:30:00Z")).unwrap(),
        z.year("2027", 0).unwrap()
    );
    // A half-hour zone without daylight saving time.
    let k = Zone::named("Asia/Kolkata").unwrap();
    let p = k.year("2026", 0).unwrap();
    assert_eq!(iso_utc(p.start), "2025-12-31T18:30:00Z");
    assert_eq!(k.iso(p.start), "2026-01-01T00:00:00+05:30");
    assert_eq!(k.days(&p).len(), 365);
}

#[test]
fn dates_and_times_in_a_zone() {
    let z = paris();
    // A date is the local midnight; a time without an offset is local; with one, it is absolute.
    let p = z.between("2026-10-25", "2026-10-25T12:00").unwrap();
    assert_eq!(iso_utc(p.start), "2026-10-24T22:00:00Z");
    assert_eq!(iso_utc(p.end), "2026-10-25T11:00:00Z");
    assert_eq!(p.seconds(), 13 * 3600);
    assert_eq!(z.label(&p), "2026-10-25 → 2026-10-25 12:00+01:00");
    let q = z
        .between("2026-10-24T22:00:00Z", "2026-10-25T13:00:00+02:00")
        .unwrap();
    assert_eq!(q, p);
    // A local time that happens twice, or never, is refused with the offsets to choose from.
    let e = z
        .between("2026-10-25T02:30", "2026-10-26")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--from \"2026-10-25T02:30\": 02:30:00 happens twice in Europe/Paris")
            && e.contains("+02:00 and +01:00")
            && e.contains("2026-10-25T02:30:00+02:00"),
        "{e}"
    );
    let e = z
        .between("2026-03-28", "2026-03-29T02:30")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--to \"2026-03-29T02:30\": there is no 02:30:00 in Europe/Paris"),
        "{e}"
    );
    let e = z
        .between("2026-10-01", "2026-10-02T10:00:00.5Z")
        .unwrap_err();
    assert!(e.to_string().contains("whole seconds"), "{e}");
    let e = z.between("2026-10-01", "x").unwrap_err().to_string();
    assert!(e.contains("(Europe/Paris time)"), "{e}");
    // A period cut inside days: the first and last are short, the middle one is 25 hours.
    let p = z.between("2026-10-24T12:00", "2026-10-26T06:00").unwrap();
    assert_eq!(tiled(&z, &p, &z.days(&p)), vec![12.0, 25.0, 6.0]);
    assert_eq!(
        z.label(&p),
        "2026-10-24 12:00+02:00 → 2026-10-26 06:00+01:00"
    );
    assert_eq!(z.date(p.start), "2026-10-24");
    assert_eq!(
        z.iso(at("2026-11-01T00:00:00Z")),
        "2026-11-01T01:00:00+01:00"
    );
}

#[test]
fn a_day_that_starts_after_a_gap_at_midnight() {
    // Cuba moves its clocks from 00:00 to 01:00 (second Sunday of March): 8 March 2026 starts
    // at 01:00 and lasts 23 hours.
    let z = Zone::named("America/Havana").unwrap();
    let p = z.month("2026-03", 0).unwrap();
    let days = z.days(&p);
    let hours = tiled(&z, &p, &days);
    assert_eq!(hours.len(), 31);
    assert_eq!(z.iso(days[7].start), "2026-03-08T01:00:00-04:00");
    assert_eq!(hours[6], 24.0);
    assert_eq!(hours[7], 23.0);
    let e = z
        .between("2026-03-08T00:30", "2026-03-09")
        .unwrap_err()
        .to_string();
    assert!(e.contains("there is no 00:30:00"), "{e}");
    assert_eq!(z.between("2026-03-08", "2026-03-09").unwrap(), days[7]);
}

#[test]
fn zones_by_name() {
    let e = Zone::named("Mars/Olympus_Mons").unwrap_err();
    assert!(
        e.starts_with("\"Mars/Olympus_Mons\" is not a time zone of the IANA database"),
        "{e}"
    );
    for bad in ["", "Etc/Unknown", "../../etc/passwd", "+02:00"] {
        assert!(Zone::named(bad).is_err(), "{bad}");
    }
    assert_eq!(Zone::named("europe/paris").unwrap().name(), "Europe/Paris");
    assert_eq!(Zone::default().name(), "UTC");
    let t = at("2026-01-15T10:00:00Z");
    assert_eq!(Zone::named("UTC").unwrap().iso(t), "2026-01-15T10:00:00Z");
    assert_eq!(Zone::named("utc").unwrap().iso(t), "2026-01-15T10:00:00Z");
    assert_eq!(
        Zone::named("Etc/UTC").unwrap().iso(t),
        "2026-01-15T10:00:00Z"
    );
    // London in winter is at +00:00, but it is not UTC.
    let london = Zone::named("Europe/London").unwrap();
    assert_eq!(london.iso(t), "2026-01-15T10:00:00+00:00");
    assert_eq!(
        Zone::named("America/St_Johns").unwrap().iso(t),
        "2026-01-15T06:30:00-03:30"
    );
    assert_eq!(utc().iso(i64::MAX), format!("{} (Unix seconds)", i64::MAX));
}

/// A host without tzdata reads the copy built into the binary (`tzdb-bundle-always`): it knows
/// the zones and gives the same offsets as the system's /usr/share/zoneinfo.
#[test]
fn the_built_in_database_agrees_with_the_system_one() {
    let bundled = jiff::tz::TimeZoneDatabase::bundled();
    let system = jiff::tz::TimeZoneDatabase::from_dir("/usr/share/zoneinfo")
        .expect("/usr/share/zoneinfo: install Debian's tzdata (scripts/install-test-deps)");
    for name in [
        "Europe/Paris",
        "America/New_York",
        "Australia/Sydney",
        "Asia/Kolkata",
    ] {
        let b = bundled.get(name).expect("in the bundled database");
        let s = system.get(name).expect("in the system's database");
        let mut t = at("2026-01-01T00:00:00Z");
        while t < at("2027-01-01T00:00:00Z") {
            let ts = Timestamp::from_second(t).unwrap();
            assert_eq!(b.to_offset(ts), s.to_offset(ts), "{name} at {t}");
            t += 6 * 3600;
        }
    }
}
