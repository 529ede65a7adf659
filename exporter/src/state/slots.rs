//! The slotted state file: durable saves without a rename.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! 0       file header: FILE_MAGIC (24 bytes), slot size S (u64); the rest of 4 KiB is zero
//! 4096    slot 0: SLOT_MAGIC (8), sequence (u64), length L (u64), SHA-256 of
//!         sequence ‖ length ‖ payload (32), then L bytes of payload (the state as JSON)
//! 4096+S  slot 1: the same
//! ```
//!
//! Rules:
//!
//! * **A save overwrites only the slot that does not hold the last saved state**, with one
//!   `pwrite` and one `fdatasync`; the file's size and blocks never change in place, so no
//!   rename and no directory flush is needed. A power cut mid-write tears at most that slot,
//!   whose checksum then fails, and the loader takes the other one.
//! * **The loader takes the valid slot with the highest sequence.** A slot that is all zero is
//!   empty (a fresh file); a slot with a bad magic, length or checksum is reported; a file with
//!   no valid slot is set aside like any other bad file.
//! * **The file is created, grown, shrunk or replaced only by [`super::save_atomic`]'s rename**
//!   (temporary file, `fsync`, rename, directory `fsync`), which is also how the first save of a
//!   process writes it, so a file left by an older exporter (plain JSON) is converted at the
//!   first save, and a file replaced or removed behind the exporter's back is written again.

use super::{write_atomic, Out, Part, State, StateError};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

/// The first bytes of a slotted state file (a plain JSON state file starts with `{`).
pub const FILE_MAGIC: &[u8; 24] = b"joulebook-state slots 1\n";
/// The first bytes of a written slot.
const SLOT_MAGIC: &[u8; 8] = b"JBSLOT1\n";
/// Where slot 0 starts; the file header's block.
const HEADER_BYTES: u64 = 4096;
/// A slot's own header: magic, sequence, length, checksum.
const SLOT_HEADER: usize = 8 + 8 + 8 + 32;
/// The smallest slot: a node without jobs needs about 2 KiB.
const MIN_SLOT: u64 = 16 << 10;
/// A slot larger than this is not believed (a corrupt header must not make the loader trust a
/// huge length).
const MAX_SLOT: u64 = 1 << 30;

/// The slot size for a payload of `len` bytes: a quarter more, whole pages, at least
/// [`MIN_SLOT`], so a growing job list rewrites the file seldom.
fn slot_size_for(len: usize) -> u64 {
    let want = (SLOT_HEADER + len + len / 4) as u64;
    want.max(MIN_SLOT).div_ceil(4096) * 4096
}

fn checksum(seq: u64, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seq.to_le_bytes());
    h.update((payload.len() as u64).to_le_bytes());
    h.update(payload);
    h.finalize().into()
}

/// One slot's bytes: header and payload.
fn slot_bytes(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(SLOT_HEADER + payload.len());
    b.extend_from_slice(SLOT_MAGIC);
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    b.extend_from_slice(&checksum(seq, payload));
    b.extend_from_slice(payload);
    b
}

/// A whole new file of slot size `slot`, with `payload` in slot 0 under `seq` and slot 1 empty.
fn file_bytes(slot: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; (HEADER_BYTES + 2 * slot) as usize];
    b[..FILE_MAGIC.len()].copy_from_slice(FILE_MAGIC);
    b[FILE_MAGIC.len()..FILE_MAGIC.len() + 8].copy_from_slice(&slot.to_le_bytes());
    let s = slot_bytes(seq, payload);
    b[HEADER_BYTES as usize..HEADER_BYTES as usize + s.len()].copy_from_slice(&s);
    b
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// What one slot holds.
#[derive(Debug, PartialEq)]
enum Slot<'a> {
    /// Never written (all zero, as a new file's second slot).
    Empty,
    /// Unusable, and why (torn write, corruption, truncated file).
    Bad(String),
    Valid {
        seq: u64,
        payload: &'a [u8],
    },
}

fn read_slot(bytes: &[u8], start: u64, size: u64) -> Slot<'_> {
    let start = start as usize;
    let end = start.saturating_add(size as usize);
    let Some(region) = bytes.get(start..end.min(bytes.len())) else {
        return Slot::Bad("missing: the file ends before it".into());
    };
    if region.len() < SLOT_HEADER {
        return Slot::Bad(format!(
            "truncated: the file ends {} bytes into it",
            region.len()
        ));
    }
    if region[..SLOT_HEADER].iter().all(|&b| b == 0) {
        return Slot::Empty;
    }
    if &region[..8] != SLOT_MAGIC {
        return Slot::Bad("no slot header (overwritten or torn)".into());
    }
    let (Some(seq), Some(len)) = (u64_at(region, 8), u64_at(region, 16)) else {
        return Slot::Bad("truncated header".into());
    };
    let Some(payload) = usize::try_from(len)
        .ok()
        .and_then(|len| region.get(SLOT_HEADER..SLOT_HEADER.checked_add(len)?))
    else {
        return Slot::Bad(format!(
            "length {len} does not fit the slot of {} bytes{}",
            size,
            if end > bytes.len() {
                " (the file is truncated)"
            } else {
                ""
            }
        ));
    };
    if region[24..SLOT_HEADER] != checksum(seq, payload) {
        return Slot::Bad(format!(
            "checksum mismatch (torn or corrupt write of save {seq})"
        ));
    }
    Slot::Valid { seq, payload }
}

/// The payload of the newest valid slot of a slotted file, and a note naming any bad slot (a
/// torn last write: the other slot still holds the last published state). `Err` says why no
/// slot is usable.
pub(super) fn newest_payload(bytes: &[u8]) -> Result<(&[u8], Option<String>), String> {
    let size =
        u64_at(bytes, FILE_MAGIC.len()).ok_or("slotted state file truncated in its header")?;
    if size < SLOT_HEADER as u64 || size > MAX_SLOT {
        return Err(format!(
            "slotted state file with an implausible slot size {size}"
        ));
    }
    let slots = [
        read_slot(bytes, HEADER_BYTES, size),
        read_slot(bytes, HEADER_BYTES + size, size),
    ];
    let note = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Slot::Bad(why) => Some(format!("slot {i}: {why}")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ");
    let best = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Valid { seq, payload } => Some((*seq, *payload)),
            _ => None,
        })
        .max_by_key(|(seq, _)| *seq);
    match best {
        Some((seq, payload)) => Ok((
            payload,
            (!note.is_empty()).then(|| format!("{note}; resumed from save {seq}")),
        )),
        None if note.is_empty() => Err("slotted state file with both slots empty".into()),
        None => Err(format!("no valid slot ({note})")),
    }
}

/// The open slotted file the writer saves into.
struct Open {
    file: File,
    /// Device and inode, to notice a file replaced or removed behind the exporter's back.
    id: (u64, u64),
    slot: u64,
    /// The slot (0 or 1) that holds the last saved state; the next save goes to the other.
    last: u64,
}

/// Saves states into one slotted file: the first save of a process (and any save that must
/// grow, shrink or recreate the file) writes a whole new file by rename, the others one slot in
/// place. One `Saver` per path; states must come in the order they were taken.
pub struct Saver {
    path: PathBuf,
    open: Option<Open>,
    seq: u64,
}

impl Saver {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Saver {
            path: path.into(),
            open: None,
            seq: 0,
        }
    }

    /// Saves `state` durably. On error the last saved state is intact (in the other slot, or in
    /// the previous file) and the error names the file; the next save writes a whole new file.
    pub fn save(&mut self, state: &State) -> Result<(), StateError> {
        self.save_parts(&state.whole())
    }

    /// [`Saver::save`] of a state whose jobs and owners are written from where they are kept.
    pub fn save_parts<J: Part, O: Part>(
        &mut self,
        state: &Out<'_, J, O>,
    ) -> Result<(), StateError> {
        if let Some((field, value)) = state.non_finite() {
            return Err(StateError::NotFinite {
                path: self.path.clone(),
                field,
                value,
            });
        }
        let payload = state.to_json().map_err(|error| StateError::Encode {
            path: self.path.clone(),
            error,
        })?;
        self.seq += 1;
        let seq = self.seq;
        let in_place = match self.open.take() {
            Some(o) if self.fits(&o, payload.len()) => Some(o),
            _ => None,
        };
        match in_place {
            Some(o) => self.save_in_place(o, seq, &payload),
            None => self.save_new_file(seq, &payload),
        }
    }

    /// Whether `payload_len` bytes go into `o`'s slots (neither too big nor far too small) and
    /// `o` is still the file at the path.
    fn fits(&self, o: &Open, payload_len: usize) -> bool {
        let need = (SLOT_HEADER + payload_len) as u64;
        let too_roomy = o.slot > MIN_SLOT && slot_size_for(payload_len) * 4 <= o.slot;
        need <= o.slot
            && !too_roomy
            && fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == o.id)
    }

    fn save_in_place(&mut self, o: Open, seq: u64, payload: &[u8]) -> Result<(), StateError> {
        let next = 1 - o.last;
        let err = |action: &'static str, error: io::Error| StateError::Io {
            path: self.path.clone(),
            action,
            error,
        };
        o.file
            .write_all_at(&slot_bytes(seq, payload), HEADER_BYTES + next * o.slot)
            .map_err(|e| err("writing its spare slot", e))?;
        // Without this, a power cut could lose a state whose counters were already published.
        o.file
            .sync_data()
            .map_err(|e| err("flushing its spare slot to disk", e))?;
        self.open = Some(Open { last: next, ..o });
        Ok(())
    }

    fn save_new_file(&mut self, seq: u64, payload: &[u8]) -> Result<(), StateError> {
        let slot = slot_size_for(payload.len());
        let bytes = file_bytes(slot, seq, payload);
        write_atomic(&self.path, &bytes, |f, b| f.write_all(b))?;
        // Saved; keeping it open for the next save is an optimisation, so a failure here only
        // means the next save writes a whole file again.
        let file = OpenOptions::new().read(true).write(true).open(&self.path);
        self.open = file.ok().and_then(|file| {
            let m = file.metadata().ok()?;
            Some(Open {
                id: (m.dev(), m.ino()),
                file,
                slot,
                last: 0,
            })
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
