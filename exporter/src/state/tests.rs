use super::*;
use proptest::prelude::*;

pub(super) const HOST: &str = "node-17";

pub(super) fn sample_state() -> State {
    let mut s = State::new(HOST);
    s.saved_at_unix = 1_750_000_000.25;
    s.boot_id = Some("0f3c9a52-0d7b-4bde-9b8e-2a1f5c0e7d11".into());
    s.channels.insert("rapl_package[0]".into(), u64::MAX - 7);
    s.channels.insert("gpu[GPU-1234]".into(), 987_654_321);
    s.node.insert("cpu".into(), 42);
    s.node.insert("gpu".into(), 1 << 60);
    s.unallocated.insert("cpu".into(), 17);
    s.jobs.insert(
        "4242".into(),
        JobState {
            joules_uj: [("cpu".to_string(), 5_000_000u64), ("gpu".to_string(), 7)].into(),
            cpu_seconds: 12.5,
            core_seconds: 3600.0,
            gpu_seconds: 0.125,
            ended_at_unix: Some(1_750_000_100.5),
            meta: [("user".to_string(), "alice".to_string())].into(),
        },
    );
    s.jobs.insert("4243".into(), JobState::default());
    s.counters.insert("counter_wraps{source=rapl}".into(), 3);
    s.counters_start_unix = Some(1_749_990_000.5);
    s
}

/// Names of the files in `dir`, sorted.
pub(super) fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub(super) fn expect_set_aside(outcome: LoadOutcome, path: &Path, original: &[u8]) -> String {
    match outcome {
        LoadOutcome::SetAside { reason, moved_to } => {
            assert!(!path.exists(), "the bad file must be moved away");
            assert_eq!(moved_to.parent(), path.parent());
            let name = moved_to.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("state.json.bad-"), "{name}");
            assert_eq!(fs::read(&moved_to).unwrap(), original, "kept byte for byte");
            reason
        }
        other => panic!("expected SetAside, got {other:?}"),
    }
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    assert_eq!(load(&path, HOST), LoadOutcome::Missing);
    let state = sample_state();
    save_atomic(&path, &state).unwrap();
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(state.clone()));
    // Saving again replaces it and leaves no temporary file behind.
    let mut next = state;
    next.node.insert("cpu".into(), 43);
    save_atomic(&path, &next).unwrap();
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(next));
    assert_eq!(files(dir.path()), vec!["state.json"]);
}

/// Floats come back to the bit: the restart marker of a resumed exporter is the one it
/// published (a value the default JSON float parser read back one ulp off).
#[test]
fn floats_round_trip_to_the_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut state = sample_state();
    state.counters_start_unix = Some(1_796_589_119.701_301_3);
    save_atomic(&path, &state).unwrap();
    match load(&path, HOST) {
        LoadOutcome::Loaded(back) => assert_eq!(
            back.counters_start_unix.map(f64::to_bits),
            state.counters_start_unix.map(f64::to_bits)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn relative_path_in_the_current_directory_is_accepted() {
    // A bare file name has an empty parent, which must mean ".", not "".
    assert_eq!(parent_dir(Path::new("state.json")), Path::new("."));
    assert_eq!(parent_dir(Path::new("/state.json")), Path::new("/"));
}

#[test]
fn truncated_file_at_every_length_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    save_atomic(&path, &sample_state()).unwrap();
    let full = fs::read(&path).unwrap();
    let body_len = full.trim_ascii_end().len();
    for len in 0..full.len() {
        let cut = &full[..len];
        fs::write(&path, cut).unwrap();
        let outcome = load(&path, HOST);
        if len >= body_len {
            // Only the trailing newline is missing: the data is whole.
            assert!(
                matches!(outcome, LoadOutcome::Loaded(_)),
                "{len}: {outcome:?}"
            );
        } else {
            expect_set_aside(outcome, &path, cut);
        }
        for f in files(dir.path()) {
            if f.contains(".bad-") {
                fs::remove_file(dir.path().join(f)).unwrap();
            }
        }
    }
}

#[test]
fn garbage_wrong_format_wrong_version_and_foreign_host_are_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let valid = serde_json::to_value(sample_state()).unwrap();
    let with = |field: &str, v: serde_json::Value| {
        let mut x = valid.clone();
        x[field] = v;
        serde_json::to_vec(&x).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "not valid JSON"),
        ("binary", vec![0, 159, 146, 150, 255], "not valid JSON"),
        (
            "json array",
            b"[1, 2, 3]".to_vec(),
            "not a joulebook state file",
        ),
        (
            "other json",
            br#"{"groups": []}"#.to_vec(),
            "format missing",
        ),
        (
            "wrong magic",
            with("format", "prometheus-state".into()),
            "\"prometheus-state\"",
        ),
        ("newer version", with("version", 2.into()), "version 2"),
        (
            "version as text",
            with("version", "1".into()),
            "version missing",
        ),
        (
            "foreign host",
            with("hostname", "node-18".into()),
            "\"node-18\"",
        ),
        (
            "wrong field type",
            with("channels", serde_json::json!({"a": -1})),
            "malformed",
        ),
        (
            "trailing garbage",
            [serde_json::to_vec(&valid).unwrap(), b"}".to_vec()].concat(),
            "not valid JSON",
        ),
    ];
    for (name, bytes, expected) in cases {
        fs::write(&path, &bytes).unwrap();
        let reason = expect_set_aside(load(&path, HOST), &path, &bytes);
        assert!(reason.contains(expected), "{name}: {reason}");
    }
    // Ten bad files set aside within the same second, none overwritten.
    let bad = files(dir.path())
        .iter()
        .filter(|f| f.contains(".bad-"))
        .count();
    assert_eq!(bad, 10);
}

#[test]
fn older_and_newer_files_of_the_same_version_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    // Only the required fields: everything else defaults.
    fs::write(
        &path,
        format!(r#"{{"format":"{FORMAT}","version":1,"hostname":"{HOST}"}}"#),
    )
    .unwrap();
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(State::new(HOST)));
    // A field this exporter does not know (added later, with a default) is ignored.
    fs::write(
        &path,
        format!(
            r#"{{"format":"{FORMAT}","version":1,"hostname":"{HOST}","bmc":{{"x":1}},
                "jobs":{{"7":{{"joules_uj":{{"cpu":5}},"future":true}}}}}}"#
        ),
    )
    .unwrap();
    let LoadOutcome::Loaded(s) = load(&path, HOST) else {
        panic!("not loaded")
    };
    assert_eq!(s.jobs["7"].joules_uj["cpu"], 5);
}

/// An owner pair saved before its start time existed loads without it (`None`: the resume takes
/// the node's counters start); one saved with it reads it back.
#[test]
fn owner_pairs_without_a_start_time_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(
        &path,
        format!(
            r#"{{"format":"{FORMAT}","version":1,"hostname":"{HOST}","owners":[
                {{"account":"p","user":"old","joules_uj":{{"cpu":5}},"jobs":2,"last_active_unix":90.5}},
                {{"account":"p","user":"new","start_unix":12.25}}]}}"#
        ),
    )
    .unwrap();
    let LoadOutcome::Loaded(s) = load(&path, HOST) else {
        panic!("not loaded")
    };
    let old = &s.owners[0];
    assert_eq!((old.user.as_str(), old.start_unix), ("old", None));
    assert_eq!(
        (old.joules_uj["cpu"], old.jobs, old.last_active_unix),
        (5, 2, 90.5)
    );
    assert_eq!(s.owners[1].start_unix, Some(12.25));
}

#[test]
fn leftover_temporary_file_is_ignored_and_cleaned_by_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let good = sample_state();
    save_atomic(&path, &good).unwrap();
    // A crash between creating the temporary file and the rename leaves a partial file.
    let full = fs::read(&path).unwrap();
    let leftover = dir.path().join("state.json.tmp-99999-0");
    fs::write(&leftover, &full[..full.len() / 2]).unwrap();
    // Another file of the directory that merely looks alike is not ours to delete.
    let unrelated = dir.path().join("state.json.bak");
    fs::write(&unrelated, b"keep").unwrap();

    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(good.clone()));
    assert!(leftover.exists(), "load touches nothing but the state file");

    save_atomic(&path, &good).unwrap();
    assert!(!leftover.exists(), "the next save removes it");
    assert_eq!(files(dir.path()), vec!["state.json", "state.json.bak"]);
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(good));
}

#[test]
fn unwritable_target_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A parent that is a regular file: creating anything under it fails, even as root.
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, b"x").unwrap();
    let path = blocker.join("state.json");
    let err = save_atomic(&path, &sample_state()).unwrap_err();
    assert_eq!(err.path(), path);
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(matches!(err, StateError::Io { .. }));
    assert_eq!(fs::read(&blocker).unwrap(), b"x");

    // A path that is a directory cannot be replaced by a file; the directory stays.
    let target = dir.path().join("state-dir");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("inside"), b"y").unwrap();
    let err = save_atomic(&target, &sample_state()).unwrap_err();
    assert!(err.to_string().contains("state-dir"), "{err}");
    assert_eq!(fs::read(target.join("inside")).unwrap(), b"y");
    assert_eq!(
        files(dir.path()),
        vec!["not-a-dir", "state-dir"],
        "temp removed"
    );
}

#[test]
fn read_only_directory_is_an_error_unless_root() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    save_atomic(&path, &sample_state()).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
    let mut next = sample_state();
    next.node.insert("cpu".into(), 1);
    let result = save_atomic(&path, &next);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // Root ignores the permission bits; the parent-is-a-file test covers the error path.
        assert!(result.is_ok());
    } else {
        let err = result.unwrap_err();
        assert!(err.to_string().contains("state.json"), "{err}");
        assert_eq!(load(&path, HOST), LoadOutcome::Loaded(sample_state()));
    }
}

#[test]
fn full_disk_leaves_the_previous_file_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let old = sample_state();
    save_atomic(&path, &old).unwrap();
    // Simulated ENOSPC halfway through the write (a real full filesystem needs root to
    // mount a small tmpfs, or RLIMIT_FSIZE, which would hit every test in the process).
    let bytes = vec![b'{'; 4096];
    let err = write_atomic(&path, &bytes, |f, b| {
        f.write_all(&b[..b.len() / 2])?;
        Err(io::Error::from_raw_os_error(libc::ENOSPC))
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert_eq!(files(dir.path()), vec!["state.json"]);
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(old));
}

#[test]
fn non_finite_numbers_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let good = sample_state();
    save_atomic(&path, &good).unwrap();
    let mut bad = good.clone();
    bad.jobs.get_mut("4242").unwrap().gpu_seconds = f64::NAN;
    let err = save_atomic(&path, &bad).unwrap_err();
    assert!(
        err.to_string().contains("jobs[\"4242\"].gpu_seconds"),
        "{err}"
    );
    bad = good.clone();
    bad.saved_at_unix = f64::INFINITY;
    assert!(matches!(
        save_atomic(&path, &bad),
        Err(StateError::NotFinite { .. })
    ));
    bad = good.clone();
    bad.counters_start_unix = Some(f64::NAN);
    let err = save_atomic(&path, &bad).unwrap_err();
    assert!(err.to_string().contains("counters_start_unix"), "{err}");
    bad = good.clone();
    bad.owners.push(OwnerState {
        start_unix: Some(f64::INFINITY),
        ..Default::default()
    });
    let err = save_atomic(&path, &bad).unwrap_err();
    assert!(err.to_string().contains("owners[0].start_unix"), "{err}");
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(good));
}

#[test]
fn unreadable_path_is_set_aside_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    // A directory where the file should be cannot be read as one.
    fs::create_dir(&path).unwrap();
    match load(&path, HOST) {
        LoadOutcome::SetAside { reason, moved_to } => {
            assert!(reason.contains("cannot read"), "{reason}");
            assert!(moved_to.is_dir());
        }
        other => panic!("{other:?}"),
    }
    // A bad file that cannot be moved (its name is "/") is reported, not reused.
    assert!(matches!(
        load(Path::new("/"), HOST),
        LoadOutcome::Unusable { .. }
    ));
}

proptest! {
    /// Whatever bytes are in the file, `load` returns (never panics), never reuses them
    /// unless they are a valid state of this host, and keeps them when it sets them aside.
    #[test]
    fn load_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, &bytes).unwrap();
        match load(&path, HOST) {
            LoadOutcome::Loaded(s) => {
                prop_assert_eq!(s.format, FORMAT);
                prop_assert_eq!(s.hostname, HOST);
            }
            LoadOutcome::SetAside { moved_to, .. } => {
                prop_assert_eq!(fs::read(&moved_to).unwrap(), bytes);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// Random mutations of a valid file (a byte changed, dropped or inserted): never a
    /// panic, and never a load of something that is not a valid state of this host.
    #[test]
    fn load_never_panics_on_mutated_files(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        op in 0u8..3,
    ) {
        let mut bytes = serde_json::to_vec_pretty(&sample_state()).unwrap();
        let i = at.index(bytes.len());
        match op {
            0 => bytes[i] = byte,
            1 => { bytes.remove(i); }
            _ => bytes.insert(i, byte),
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, &bytes).unwrap();
        match load(&path, HOST) {
            LoadOutcome::Loaded(s) => prop_assert_eq!(s.hostname, HOST),
            LoadOutcome::SetAside { .. } => {}
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// Any state with finite numbers survives a save and a load.
    #[test]
    fn any_state_round_trips(
        channels in proptest::collection::btree_map("[a-z_\\[\\]0-9]{1,12}", any::<u64>(), 0..8),
        jobs in proptest::collection::btree_map(
            "[0-9]{1,7}",
            (any::<u64>(), 0u32..1_000_000, proptest::option::of(0u32..2_000_000_000)),
            0..8,
        ),
        boot_id in proptest::option::of("[0-9a-f-]{36}"),
    ) {
        let mut s = State::new(HOST);
        s.boot_id = boot_id;
        s.channels = channels.clone();
        s.node = channels;
        s.jobs = jobs
            .into_iter()
            .map(|(id, (uj, secs, end))| {
                (id, JobState {
                    joules_uj: [("cpu".to_string(), uj)].into(),
                    // Binary fractions, so equality is exact through decimal text.
                    cpu_seconds: f64::from(secs) / 64.0,
                    core_seconds: f64::from(secs) * 2.0,
                    gpu_seconds: 0.0,
                    ended_at_unix: end.map(f64::from),
                    meta: BTreeMap::new(),
                })
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        save_atomic(&path, &s).unwrap();
        prop_assert_eq!(load(&path, HOST), LoadOutcome::Loaded(s));
    }
}

/// A save writes `State`'s fields through `Out` (`out.rs`), whose order is written by hand:
/// the bytes must be the derived serialization's, every field set.
#[test]
fn a_state_written_from_its_parts_is_the_state_written_whole() {
    let mut s = sample_state();
    s.raw.insert("rapl_package[0]".into(), 99);
    s.owners.push(OwnerState {
        account: "p".into(),
        user: "u".into(),
        joules_uj: [("cpu".to_string(), 3u64)].into(),
        jobs: 2,
        start_unix: Some(1.5),
        ..Default::default()
    });
    let whole = serde_json::to_string(&s).unwrap();
    assert_eq!(
        String::from_utf8(s.whole().to_json().unwrap()).unwrap(),
        whole
    );
}
