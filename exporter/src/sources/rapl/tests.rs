use super::*;

fn zone(root: &Path, dir: &str, name: &str, uj: u64, range: u64) {
    let d = root.join("class/powercap").join(dir);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("name"), format!("{name}\n")).unwrap();
    fs::write(d.join("energy_uj"), format!("{uj}\n")).unwrap();
    fs::write(d.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
}

fn channels(src: &RaplSource) -> Vec<String> {
    src.zones().iter().map(|z| z.channel.to_string()).collect()
}

#[test]
fn psys_at_a_package_index_and_mmio_twin_are_told_apart() {
    let t = tempfile::tempdir().unwrap();
    zone(t.path(), "intel-rapl:0", "package-0", 10, 1000);
    zone(t.path(), "intel-rapl:0:0", "core", 5, 1000);
    zone(t.path(), "intel-rapl:1", "psys", 7, 1000);
    zone(t.path(), "intel-rapl-mmio:0", "package-0", 99, 1000);
    let mut s = RaplSource::new(RaplOptions {
        sysfs: t.path().into(),
        ..Default::default()
    });
    let sample = s.sample().unwrap();
    assert_eq!(channels(&s), ["RaplPackage[0]", "RaplCore[0]", "RaplPsys"]);
    // The MSR zone's value is read, not the MMIO twin's.
    assert_eq!(
        sample.energy[0].raw,
        RawEnergy::Wrapping {
            uj: 10,
            range_uj: 1000,
            max_watts: 1000.0
        }
    );
}

fn source(root: &Path, package_scope: bool) -> RaplSource {
    RaplSource::new(RaplOptions {
        sysfs: root.into(),
        package_scope,
        ..Default::default()
    })
}

fn uj_by_channel(sample: &SourceSample) -> Vec<(String, u64)> {
    sample
        .energy
        .iter()
        .map(|r| match r.raw {
            RawEnergy::Wrapping { uj, .. } => (r.channel.to_string(), uj),
            ref other => panic!("{other:?}"),
        })
        .collect()
}

/// Cascade Lake-AP: each die has its own package and dram counters; all are counted.
#[test]
fn intel_dies_are_distinct_counters() {
    let t = tempfile::tempdir().unwrap();
    for (i, (s, d)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
        let i = i as u64;
        zone(
            t.path(),
            &format!("intel-rapl:{i}"),
            &format!("package-{s}-die-{d}"),
            100 + i,
            1000,
        );
        zone(t.path(), &format!("intel-rapl:{i}:0"), "dram", 10 + i, 500);
    }
    let mut s = source(t.path(), false);
    let sample = s.sample().unwrap();
    assert_eq!(
        uj_by_channel(&sample),
        [
            ("RaplPackage[0-die-0]".to_string(), 100),
            ("RaplPackage[0-die-1]".to_string(), 101),
            ("RaplPackage[1-die-0]".to_string(), 102),
            ("RaplPackage[1-die-1]".to_string(), 103),
            ("RaplDram[0-die-0]".to_string(), 10),
            ("RaplDram[0-die-1]".to_string(), 11),
            ("RaplDram[1-die-0]".to_string(), 12),
            ("RaplDram[1-die-1]".to_string(), 13),
        ]
    );
    assert_eq!(s.zones()[1].die, Some(1));
}

/// AMD with per-CCD zones (directory numbers in hex, as powercap names them): every die of a
/// socket reads the one package counter, so the package is kept once, from its lowest die,
/// whatever order the directories come in.
#[test]
fn amd_dies_mirror_one_package_counter() {
    let t = tempfile::tempdir().unwrap();
    // Registered in CPU hotplug order: die 1 of socket 0 before die 0.
    let order = [
        (0, 1),
        (0, 0),
        (0, 2),
        (1, 0),
        (1, 1),
        (0, 3),
        (1, 2),
        (1, 3),
    ];
    for (i, (s, d)) in order.into_iter().enumerate() {
        let uj = if s == 0 { 5000 } else { 7000 };
        zone(
            t.path(),
            &format!("intel-rapl:{i:x}"),
            &format!("package-{s}-die-{d}"),
            uj,
            1_000_000,
        );
        zone(
            t.path(),
            &format!("intel-rapl:{i:x}:0"),
            "core",
            100 * d,
            1_000_000,
        );
    }
    let mut s = source(t.path(), true);
    let sample = s.sample().unwrap();
    assert_eq!(
        uj_by_channel(&sample),
        [
            ("RaplPackage[0]".to_string(), 5000),
            ("RaplPackage[1]".to_string(), 7000),
            ("RaplCore[0]".to_string(), 0),
            ("RaplCore[1]".to_string(), 0),
        ]
    );
    assert!(
        s.zones().iter().all(|z| z.die == Some(0)),
        "{:?}",
        s.zones()
    );
    assert!(s.zones()[0].dir.ends_with("intel-rapl:1"));
    // The same tree read as distinct dies (Intel) counts all eight.
    let mut intel = source(t.path(), false);
    assert_eq!(intel.sample().unwrap().energy.len(), 16);
}

#[test]
fn package_names_parse() {
    assert_eq!(parse_package("package-3"), Some((3, None)));
    assert_eq!(parse_package("package-1-die-7"), Some((1, Some(7))));
    assert_eq!(parse_package("package-1-die-"), None);
    assert_eq!(parse_package("package-x"), None);
    assert!(msrs_are_package_scope("AuthenticAMD"));
    assert!(msrs_are_package_scope("HygonGenuine\n"));
    assert!(!msrs_are_package_scope("GenuineIntel"));
}

#[test]
fn mmio_alone_is_used() {
    let t = tempfile::tempdir().unwrap();
    zone(t.path(), "intel-rapl-mmio:0", "package-0", 3, 1000);
    let mut s = RaplSource::new(RaplOptions {
        sysfs: t.path().into(),
        ..Default::default()
    });
    s.sample().unwrap();
    assert_eq!(channels(&s), ["RaplPackage[0]"]);
    assert!(s.zones()[0].mmio);
}

#[test]
fn garbage_names_the_file_and_vanished_zone_recovers() {
    let t = tempfile::tempdir().unwrap();
    zone(t.path(), "intel-rapl:0", "package-0", 10, 1000);
    zone(t.path(), "intel-rapl:1", "package-1", 10, 1000);
    let mut s = RaplSource::new(RaplOptions {
        sysfs: t.path().into(),
        ..Default::default()
    });
    s.sample().unwrap();
    let f = t.path().join("class/powercap/intel-rapl:1/energy_uj");
    fs::write(&f, "12x\n").unwrap();
    let e = s.sample().unwrap_err();
    assert!(e.message.contains("intel-rapl:1/energy_uj"), "{e}");
    assert!(e.message.contains("12x"), "{e}");
    fs::remove_dir_all(t.path().join("class/powercap/intel-rapl:1")).unwrap();
    // Rediscovered without the vanished zone.
    let sample = s.sample().unwrap();
    assert_eq!(sample.energy.len(), 1);
}

fn opens() -> u64 {
    OPENS.with(|c| c.get())
}

#[test]
fn counters_stay_open_and_are_read_again() {
    let t = tempfile::tempdir().unwrap();
    zone(t.path(), "intel-rapl:0", "package-0", 10, 1000);
    zone(t.path(), "intel-rapl:0:0", "dram", 5, 1000);
    let mut s = RaplSource::new(RaplOptions {
        sysfs: t.path().into(),
        ..Default::default()
    });
    let uj = |s: &mut RaplSource| -> Vec<u64> {
        s.sample()
            .unwrap()
            .energy
            .iter()
            .map(|r| match r.raw {
                RawEnergy::Wrapping { uj, .. } => uj,
                ref other => panic!("{other:?}"),
            })
            .collect()
    };
    let before = opens();
    assert_eq!(uj(&mut s), [10, 5]);
    // Rediscovery every REDISCOVER_EVERY samples keeps the files open too.
    for _ in 0..REDISCOVER_EVERY + 5 {
        uj(&mut s);
    }
    assert_eq!(opens() - before, 2, "one open per zone");
    // Changed in place (as sysfs does): seen through the open file.
    let pkg = t.path().join("class/powercap/intel-rapl:0/energy_uj");
    fs::write(&pkg, "20\n").unwrap();
    assert_eq!(uj(&mut s), [20, 5]);
    // Replaced by a rename (as test fixtures do): the new file is opened.
    let tmp = pkg.with_extension("tmp");
    fs::write(&tmp, "30\n").unwrap();
    fs::rename(&tmp, &pkg).unwrap();
    assert_eq!(uj(&mut s), [30, 5]);
    assert_eq!(opens() - before, 3);
    assert_eq!(uj(&mut s), [30, 5]);
    assert_eq!(opens() - before, 3);
}

#[test]
fn garbage_in_an_open_counter_is_retried_then_reported() {
    let t = tempfile::tempdir().unwrap();
    zone(t.path(), "intel-rapl:0", "package-0", 10, 1000);
    let mut s = RaplSource::new(RaplOptions {
        sysfs: t.path().into(),
        ..Default::default()
    });
    s.sample().unwrap();
    let pkg = t.path().join("class/powercap/intel-rapl:0/energy_uj");
    fs::write(&pkg, "").unwrap();
    let e = s.sample().unwrap_err();
    assert!(e.message.contains("intel-rapl:0/energy_uj"), "{e}");
    assert!(e.message.contains("not a non-negative integer"), "{e}");
    fs::remove_file(&pkg).unwrap();
    fs::create_dir(&pkg).unwrap();
    let e = s.sample().unwrap_err();
    assert!(e.message.starts_with("cannot read "), "{e}");
    assert!(e.message.contains("intel-rapl:0/energy_uj"), "{e}");
    fs::remove_dir(&pkg).unwrap();
    fs::write(&pkg, "40\n").unwrap();
    assert_eq!(
        s.sample().unwrap().energy[0].raw,
        RawEnergy::Wrapping {
            uj: 40,
            range_uj: 1000,
            max_watts: 1000.0
        }
    );
}

#[test]
fn fixtures_are_not_sysfs() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("x");
    fs::write(&f, "1").unwrap();
    assert!(!on_sysfs(&fs::File::open(&f).unwrap()));
    // /sys exists in the test environment; where it is mounted, it is sysfs.
    if let Ok(f) = fs::File::open("/sys/kernel/mm/transparent_hugepage/enabled") {
        assert!(on_sysfs(&f));
    }
}

#[test]
fn missing_powercap_says_how_to_fix() {
    let t = tempfile::tempdir().unwrap();
    let mut s = RaplSource::new(RaplOptions {
        sysfs: t.path().into(),
        ..Default::default()
    });
    let e = s.sample().unwrap_err();
    assert!(e.message.contains("no powercap directory"), "{e}");
    assert!(e.fix.is_some());
}
