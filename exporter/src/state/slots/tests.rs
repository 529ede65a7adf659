use super::*;
use crate::state::tests::{expect_set_aside, files, sample_state, HOST};
use crate::state::{load, save_atomic, JobState, LoadOutcome};
use proptest::prelude::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `sample_state` with node energy `n`, so that successive saves are told apart.
fn nth(n: u64) -> State {
    let mut s = sample_state();
    s.node.insert("cpu".into(), n);
    s
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

/// Where slot `i` of `path` starts.
fn slot_start(path: &Path, i: u64) -> u64 {
    let b = fs::read(path).unwrap();
    HEADER_BYTES + i * u64_at(&b, FILE_MAGIC.len()).unwrap()
}

fn flip_byte(path: &Path, at: u64) {
    let mut b = fs::read(path).unwrap();
    b[at as usize] ^= 0x55;
    fs::write(path, b).unwrap();
}

/// Three saves: A by rename (slot 0), B and C in place (slots 1, 0).
fn three_saves(path: &Path) -> Saver {
    let mut saver = Saver::new(path);
    saver.save(&nth(1)).unwrap();
    saver.save(&nth(2)).unwrap();
    saver.save(&nth(3)).unwrap();
    saver
}

#[test]
fn saves_alternate_slots_in_place_after_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut saver = Saver::new(&path);
    saver.save(&nth(1)).unwrap();
    let (ino, len) = (inode(&path), fs::metadata(&path).unwrap().len());
    assert!(fs::read(&path).unwrap().starts_with(FILE_MAGIC));
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(nth(1)));
    for n in 2..6 {
        saver.save(&nth(n)).unwrap();
        assert_eq!(load(&path, HOST), LoadOutcome::Loaded(nth(n)), "save {n}");
        assert_eq!(inode(&path), ino, "save {n} wrote in place, not by rename");
        assert_eq!(fs::metadata(&path).unwrap().len(), len);
    }
    // Both slots hold a valid save: the previous one survives in the other slot.
    let b = fs::read(&path).unwrap();
    let slot = u64_at(&b, FILE_MAGIC.len()).unwrap();
    let seqs: Vec<_> = [0, 1]
        .map(|i| read_slot(&b, HEADER_BYTES + i * slot, slot))
        .into_iter()
        .map(|s| match s {
            Slot::Valid { seq, .. } => seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [5, 4]);
    assert_eq!(files(dir.path()), vec!["state.json"]);
}

/// A file written by main at 316361c (plain JSON by rename; three Slurm jobs of
/// `bench/make-slurm-node`, 42 J per component) loads, and the first save converts it.
#[test]
fn a_json_file_of_the_previous_exporter_loads_and_the_first_save_converts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, include_bytes!("../testdata/written-by-316361c.json")).unwrap();
    let LoadOutcome::Loaded(old) = load(&path, "bench-node") else {
        panic!("the old file must load");
    };
    assert_eq!(old.node.get("cpu:rapl"), Some(&42_000_000));
    assert_eq!(old.jobs.len(), 3);
    assert_eq!(old.jobs["100000"].meta["user"], "user0");
    let mut next = old.clone();
    next.node.insert("cpu:rapl".into(), 43_000_000);
    let mut saver = Saver::new(&path);
    saver.save(&next).unwrap();
    assert!(fs::read(&path).unwrap().starts_with(FILE_MAGIC));
    assert_eq!(load(&path, "bench-node"), LoadOutcome::Loaded(next));
}

#[test]
fn a_torn_newest_slot_falls_back_to_the_other_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    three_saves(&path);
    // Save 3 went to slot 0, so save 4 goes to slot 1. A power cut in the middle of its write:
    // its first 40 bytes (into the checksum) written over save 2, whose rest is still there.
    let torn = slot_bytes(4, &serde_json::to_vec(&nth(4)).unwrap());
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&torn[..40], slot_start(&path, 1)).unwrap();
    match load(&path, HOST) {
        LoadOutcome::Recovered { state, note } => {
            assert_eq!(state, nth(3));
            assert!(note.contains("slot 1: checksum mismatch"), "{note}");
            assert!(note.contains("resumed from save 3"), "{note}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_checksum_in_either_slot_uses_the_other() {
    for (bad, good) in [(0, nth(2)), (1, nth(3))] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        three_saves(&path);
        // A byte of the payload, then of the sequence number: both are checksummed.
        for offset in [SLOT_HEADER as u64 + 10, 9] {
            let at = slot_start(&path, bad) + offset;
            flip_byte(&path, at);
            match load(&path, HOST) {
                LoadOutcome::Recovered { state, note } => {
                    assert_eq!(state, good, "slot {bad} bad");
                    assert!(
                        note.contains(&format!("slot {bad}: checksum mismatch")),
                        "{note}"
                    );
                }
                other => panic!("slot {bad}, offset {offset}: {other:?}"),
            }
            flip_byte(&path, at);
        }
    }
}

#[test]
fn both_slots_bad_sets_the_file_aside_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    three_saves(&path);
    flip_byte(&path, slot_start(&path, 0) + 100);
    flip_byte(&path, slot_start(&path, 1) + 2);
    let original = fs::read(&path).unwrap();
    let reason = expect_set_aside(load(&path, HOST), &path, &original);
    assert!(reason.contains("no valid slot"), "{reason}");
    assert!(reason.contains("slot 0: checksum mismatch"), "{reason}");
    assert!(reason.contains("slot 1: no slot header"), "{reason}");
    // The next save starts a new file.
    let mut saver = Saver::new(&path);
    saver.save(&nth(9)).unwrap();
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(nth(9)));
}

#[test]
fn a_file_truncated_anywhere_loads_the_slot_it_still_holds_whole_or_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut saver = Saver::new(&path);
    saver.save(&nth(1)).unwrap();
    saver.save(&nth(2)).unwrap();
    let full = fs::read(&path).unwrap();
    let slot1 = slot_start(&path, 1) as usize;
    let slot1_end = slot1 + SLOT_HEADER + serde_json::to_vec(&nth(2)).unwrap().len();
    let slot0_end =
        HEADER_BYTES as usize + SLOT_HEADER + serde_json::to_vec(&nth(1)).unwrap().len();
    let mut cuts: Vec<usize> = (0..full.len()).step_by(61).collect();
    cuts.extend([0, 31, 32, 4095, 4096, slot0_end - 1, slot0_end]);
    cuts.extend([slot1 - 1, slot1, slot1_end - 1, slot1_end]);
    for len in cuts {
        let cut = &full[..len];
        fs::write(&path, cut).unwrap();
        let outcome = load(&path, HOST);
        if len >= slot1_end {
            assert_eq!(outcome, LoadOutcome::Loaded(nth(2)), "{len}");
        } else if len >= slot1 + SLOT_HEADER {
            // Save 2's slot is cut short; save 1 is whole.
            match outcome {
                LoadOutcome::Recovered { state, note } => {
                    assert_eq!(state, nth(1), "{len}");
                    assert!(note.contains("slot 1: length"), "{len}: {note}");
                    assert!(note.contains("the file is truncated"), "{len}: {note}");
                }
                other => panic!("{len}: {other:?}"),
            }
        } else if len >= slot0_end {
            match outcome {
                LoadOutcome::Recovered { state, note } => {
                    assert_eq!(state, nth(1), "{len}");
                    let why = if len >= slot1 { "truncated" } else { "missing" };
                    assert!(note.contains(&format!("slot 1: {why}")), "{len}: {note}");
                }
                other => panic!("{len}: {other:?}"),
            }
        } else if len >= FILE_MAGIC.len() {
            let reason = expect_set_aside(outcome, &path, cut);
            assert!(
                reason.contains("truncated") || reason.contains("missing"),
                "{len}: {reason}"
            );
        } else {
            // Too short to be recognised as slotted: read as (invalid) JSON.
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
fn a_growing_state_gets_a_larger_file_and_a_shrinking_one_a_smaller() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut saver = Saver::new(&path);
    saver.save(&nth(1)).unwrap();
    let small = fs::metadata(&path).unwrap().len();
    let mut big = nth(2);
    for id in 0..2_000 {
        big.jobs.insert(
            format!("{id}"),
            JobState {
                joules_uj: [("cpu".to_string(), id)].into(),
                ..JobState::default()
            },
        );
    }
    saver.save(&big).unwrap();
    let grown = fs::metadata(&path).unwrap().len();
    assert!(grown > small, "{grown} > {small}");
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(big.clone()));
    let mut bigger = big;
    bigger.node.insert("cpu".into(), 3);
    saver.save(&bigger).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), grown, "fits: in place");
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(bigger));
    saver.save(&nth(4)).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), small, "shrunk again");
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(nth(4)));
    assert_eq!(files(dir.path()), vec!["state.json"]);
}

#[test]
fn a_file_replaced_or_removed_behind_the_saver_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut saver = three_saves(&path);
    fs::remove_file(&path).unwrap();
    saver.save(&nth(4)).unwrap();
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(nth(4)));
    save_atomic(&path, &nth(100)).unwrap();
    saver.save(&nth(5)).unwrap();
    assert_eq!(load(&path, HOST), LoadOutcome::Loaded(nth(5)));
}

#[test]
fn a_failed_save_names_the_file_and_the_next_one_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, "x").unwrap();
    let path = blocker.join("state.json");
    let mut saver = Saver::new(&path);
    let msg = saver.save(&nth(1)).unwrap_err().to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    let mut bad = nth(2);
    bad.saved_at_unix = f64::INFINITY;
    let ok = dir.path().join("state.json");
    let mut saver = Saver::new(&ok);
    saver.save(&nth(1)).unwrap();
    let msg = saver.save(&bad).unwrap_err().to_string();
    assert!(msg.contains("saved_at_unix"), "{msg}");
    assert_eq!(load(&ok, HOST), LoadOutcome::Loaded(nth(1)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes overwritten anywhere in a file of two saves: the loader never panics, never
    /// returns a state that was not saved, and returns the newest save whenever its slot is whole.
    #[test]
    fn corruption_anywhere_gives_a_saved_state_or_sets_the_file_aside(
        at in 0usize..40_000,
        junk in proptest::collection::vec(any::<u8>(), 1..300),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut saver = Saver::new(&path);
        saver.save(&nth(1)).unwrap();
        saver.save(&nth(2)).unwrap();
        let mut b = fs::read(&path).unwrap();
        let at = at % b.len();
        let end = (at + junk.len()).min(b.len());
        let touched = b[at..end] != junk[..end - at];
        b[at..end].copy_from_slice(&junk[..end - at]);
        fs::write(&path, &b).unwrap();
        let slot1 = slot_start(&path, 1) as usize;
        let slot1_end = slot1 + SLOT_HEADER + serde_json::to_vec(&nth(2)).unwrap().len();
        // Save 2 is whole unless the junk changed the file header or its slot.
        let newest_whole =
            !touched || at >= FILE_MAGIC.len() + 8 && (end <= slot1 || at >= slot1_end);
        match load(&path, HOST) {
            LoadOutcome::Loaded(s) | LoadOutcome::Recovered { state: s, .. } => {
                prop_assert!(s == nth(2) || s == nth(1) && !newest_whole);
            }
            LoadOutcome::SetAside { .. } => prop_assert!(!newest_whole),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
