//! The state file: what makes the exporter's counters survive a restart.
//!
//! Prometheus counters must never go down; an exporter that restarted from zero would make every
//! `increase()` over the restart wrong for node and job energy alike. So the exporter saves its
//! totals (µJ per channel, component, job, owner and unallocated, plus health counters) as JSON
//! to one small file, and resumes from it at start.
//!
//! Two promises:
//!
//! * **A save never destroys the previous state.** The exporter's [`Saver`] keeps two slots in
//!   one preallocated file and overwrites only the one not holding the last save, with one
//!   `pwrite` and `fdatasync`, each slot checksummed ([`slots`] has the layout and rules).
//!   Creating or resizing that file, and [`save_atomic`] (plain JSON, as older exporters wrote
//!   and the simulator writes), write a temporary file in the same directory, fsync it, rename
//!   it over the target (atomic on POSIX filesystems) and fsync the directory so the rename
//!   itself is durable. A crash, power cut or full disk at any point leaves the old state or the
//!   new one, never a mix. A temporary file left by a crash is never read (only the exact path
//!   is) and is removed by the next save.
//! * **A bad file is never reused and never crashes the exporter.** [`load`] checks that the file
//!   (either layout) parses, has the right `format` magic and `version`, and was written by this host (a state
//!   file copied with a disk image must not give one node another node's totals). Anything else is
//!   renamed to `<name>.bad-<unix-time>` and reported, so an administrator can look at it, and the
//!   exporter starts from zero.
//!
//! One exporter owns a state file; two writers on the same path are not supported.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

mod out;
mod slots;
pub use out::{field, job_non_finite, key, uj_fields, uj_map, Fields, Out, OwnerOut, Part};
pub use slots::Saver;

/// The `format` field of every state file, so that no other JSON file is mistaken for one.
pub const FORMAT: &str = "joulebook-state";

/// The layout version this exporter writes and reads. Adding a field with `#[serde(default)]`
/// keeps the version; a change that an older exporter would misread bumps it.
pub const VERSION: u32 = 1;

/// Everything the exporter persists. New fields must carry `#[serde(default)]`, so files written
/// before they existed still load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// The host that wrote the file; a file from another host is set aside.
    pub hostname: String,
    /// When the state was saved, seconds since the Unix epoch.
    #[serde(default)]
    pub saved_at_unix: f64,
    /// The kernel boot id (`/proc/sys/kernel/random/boot_id`) at save time, so the exporter can
    /// tell a restart of itself from a reboot of the node; `None` where unknown.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Energy per channel (e.g. `rapl_package[0]`), µJ since the exporter first ran.
    #[serde(default)]
    pub channels: BTreeMap<String, u64>,
    /// Node energy per component (`cpu`, `dram`, `gpu`, `other`), µJ.
    #[serde(default)]
    pub node: BTreeMap<String, u64>,
    /// Energy no job held, per component, µJ.
    #[serde(default)]
    pub unallocated: BTreeMap<String, u64>,
    /// Per job, by job id.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobState>,
    /// Health counters (counter wraps, dropped samples, ...), by name.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// Last raw hardware reading of each channel (same keys as `channels`): with the same boot,
    /// the energy drawn while the exporter was down is recovered from the hardware counters.
    #[serde(default)]
    pub raw: BTreeMap<String, u64>,
    /// Per (account, user) totals ([`crate::owners`]).
    #[serde(default)]
    pub owners: Vec<OwnerState>,
    /// Unix time since which the counters above have only grown: when they last started from
    /// zero (published as `joulebook_counters_start_time_seconds`). `None` in files written before
    /// it existed: the resuming exporter then uses its own start time, which is true from then on.
    #[serde(default)]
    pub counters_start_unix: Option<f64>,
}

impl State {
    /// An empty state for `hostname`, with the current format and version.
    pub fn new(hostname: impl Into<String>) -> Self {
        State {
            format: FORMAT.to_string(),
            version: VERSION,
            hostname: hostname.into(),
            saved_at_unix: 0.0,
            boot_id: None,
            channels: BTreeMap::new(),
            node: BTreeMap::new(),
            unallocated: BTreeMap::new(),
            jobs: BTreeMap::new(),
            counters: BTreeMap::new(),
            raw: BTreeMap::new(),
            owners: Vec::new(),
            counters_start_unix: None,
        }
    }

    /// The first float that JSON cannot hold (NaN or infinite), as (field, value). serde_json
    /// would write it as `null`, which then fails to load and would cost every total.
    fn non_finite(&self) -> Option<(String, f64)> {
        self.whole().non_finite()
    }

    /// The state as a save writes it, its own jobs and owners included.
    fn whole(&self) -> Out<'_, &BTreeMap<String, JobState>, &Vec<OwnerState>> {
        Out {
            head: self,
            jobs: &self.jobs,
            owners: &self.owners,
        }
    }
}

/// What the exporter keeps per (account, user) pair ([`crate::owners`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnerState {
    pub account: String,
    pub user: String,
    /// Energy of the pair's jobs per component, µJ.
    #[serde(default)]
    pub joules_uj: BTreeMap<String, u64>,
    #[serde(default)]
    pub cpu_seconds: f64,
    #[serde(default)]
    pub core_seconds: f64,
    #[serde(default)]
    pub gpu_seconds: f64,
    /// Absent from files written before these counters existed: they then start from 0 there.
    #[serde(default)]
    pub elapsed_seconds: f64,
    #[serde(default)]
    pub memory_byte_seconds: f64,
    /// Jobs started under the pair.
    #[serde(default)]
    pub jobs: u64,
    /// Last time a job of the pair ran, seconds since the Unix epoch.
    #[serde(default)]
    pub last_active_unix: f64,
    /// Unix time the pair's counters last started from zero (the owner series' `since`
    /// label). `None` in files written before it existed: the
    /// resuming exporter then uses the node's counters start time ([`crate::owners`]).
    #[serde(default)]
    pub start_unix: Option<f64>,
}

/// What the exporter keeps per job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// Energy attributed to the job per component, µJ.
    #[serde(default)]
    pub joules_uj: BTreeMap<String, u64>,
    /// CPU time the job used, seconds.
    #[serde(default)]
    pub cpu_seconds: f64,
    /// Cores held × wall time, seconds.
    #[serde(default)]
    pub core_seconds: f64,
    /// GPUs held × wall time, seconds.
    #[serde(default)]
    pub gpu_seconds: f64,
    /// When the job was seen to end, seconds since the Unix epoch; `None` while it runs.
    #[serde(default)]
    pub ended_at_unix: Option<f64>,
    /// Published metadata (scheduler, user, account, partition, job_name), so a job that ended
    /// while the exporter was down is still published with its labels during its grace period.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// A save failed. The message names the state file and says whether the previous file is intact
/// (it is, except after [`StateError::NotDurable`]).
#[derive(Debug)]
pub enum StateError {
    /// A filesystem operation failed (`action` says which).
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },
    /// The new file is in place, but flushing its directory failed, so a power cut could still
    /// bring back the previous version.
    NotDurable { path: PathBuf, error: io::Error },
    /// A float field is NaN or infinite; nothing was written.
    NotFinite {
        path: PathBuf,
        field: String,
        value: f64,
    },
    /// The state could not be encoded; nothing was written.
    Encode {
        path: PathBuf,
        error: serde_json::Error,
    },
}

impl StateError {
    /// The state file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            StateError::Io { path, .. }
            | StateError::NotDurable { path, .. }
            | StateError::NotFinite { path, .. }
            | StateError::Encode { path, .. } => path,
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Io {
                path,
                action,
                error,
            } => write!(
                f,
                "cannot save state file {}: {action} failed: {error}; the previously saved state is intact",
                path.display()
            ),
            StateError::NotDurable { path, error } => write!(
                f,
                "saved state file {}, but flushing its directory failed: {error}; a power cut could bring back the previous version",
                path.display()
            ),
            StateError::NotFinite { path, field, value } => write!(
                f,
                "cannot save state file {}: {field} is {value}, which JSON cannot hold; nothing was written",
                path.display()
            ),
            StateError::Encode { path, error } => write!(
                f,
                "cannot save state file {}: encoding failed: {error}; nothing was written",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { error, .. } | StateError::NotDurable { error, .. } => Some(error),
            StateError::Encode { error, .. } => Some(error),
            StateError::NotFinite { .. } => None,
        }
    }
}

/// What [`load`] found.
// Made once per start and moved once: the size of `State` beside the other variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum LoadOutcome {
    /// No state file: a first start.
    Missing,
    /// A valid state file of this host.
    Loaded(State),
    /// A valid state from a slotted file one of whose slots is bad (`note` names it and the save
    /// resumed from): after a power cut during a save, the other slot holds the last saved state.
    Recovered { state: State, note: String },
    /// The file was unusable (`reason`) and was renamed to `moved_to`; start from zero.
    SetAside { reason: String, moved_to: PathBuf },
    /// The file was unusable (`reason`) and could not even be renamed (the reason says why):
    /// start from zero; the next save replaces it.
    Unusable { reason: String },
}

/// Saves `state` to `path` atomically: temporary file in the same directory, fsync, rename over
/// `path`, fsync of the directory. On error the previous file at `path` is intact, the temporary
/// file is removed, and the error names `path`. Temporary files left by a crash are removed.
pub fn save_atomic(path: &Path, state: &State) -> Result<(), StateError> {
    if let Some((field, value)) = state.non_finite() {
        return Err(StateError::NotFinite {
            path: path.to_path_buf(),
            field,
            value,
        });
    }
    let mut bytes = serde_json::to_vec_pretty(state).map_err(|error| StateError::Encode {
        path: path.to_path_buf(),
        error,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, |f, b| f.write_all(b))
}

/// Distinguishes temporary files of saves within one process.
static SAVE_SEQ: AtomicU64 = AtomicU64::new(0);

/// The prefix of the temporary files of `name`; everything starting with it is ours to remove.
fn temp_prefix(name: &str) -> String {
    format!("{name}.tmp-")
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes temporary files a crashed save left next to `name` (best effort: one that cannot be
/// removed costs only disk space and is retried next time).
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
            && entry.file_type().is_ok_and(|t| t.is_file());
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The atomic replace, with the write itself injectable so tests can simulate a full disk.
fn write_atomic(
    path: &Path,
    bytes: &[u8],
    write: impl FnOnce(&mut File, &[u8]) -> io::Result<()>,
) -> Result<(), StateError> {
    let err = |action: &'static str, error: io::Error| StateError::Io {
        path: path.to_path_buf(),
        action,
        error,
    };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        err(
            "naming the file",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path must end in a UTF-8 file name",
            ),
        )
    })?;
    let dir = parent_dir(path);
    // Before writing, so that a disk filled by stale temporary files gets the space back.
    remove_stale_temps(dir, name);
    let tmp = dir.join(format!(
        "{}{}-{}",
        temp_prefix(name),
        std::process::id(),
        SAVE_SEQ.fetch_add(1, Ordering::Relaxed)
    ));

    let replaced = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| err("creating a temporary file in its directory", e))?;
        write(&mut file, bytes).map_err(|e| err("writing the temporary file", e))?;
        // Without this, a power cut after the rename can leave a renamed but empty file.
        file.sync_all()
            .map_err(|e| err("flushing the temporary file to disk", e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| err("renaming the temporary file over it", e))
    })();
    if let Err(e) = replaced {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename lives in the directory; without this a power cut can undo it.
    sync_dir(dir).map_err(|error| StateError::NotDurable {
        path: path.to_path_buf(),
        error,
    })
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Loads the state file at `path` for host `hostname`. Never panics: a file that cannot be read,
/// does not parse, has another format, version or hostname is renamed to
/// `<name>.bad-<unix-time>` and reported as [`LoadOutcome::SetAside`]. Temporary files of an
/// interrupted save are never looked at.
pub fn load(path: &Path, hostname: &str) -> LoadOutcome {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return LoadOutcome::Missing,
        Err(e) => return set_aside(path, format!("cannot read it: {e}")),
    };
    if !bytes.starts_with(slots::FILE_MAGIC) {
        return match check(&bytes, hostname) {
            Ok(state) => LoadOutcome::Loaded(state),
            Err(reason) => set_aside(path, reason),
        };
    }
    match slots::newest_payload(&bytes) {
        Ok((payload, note)) => match (check(payload, hostname), note) {
            (Ok(state), None) => LoadOutcome::Loaded(state),
            (Ok(state), Some(note)) => LoadOutcome::Recovered { state, note },
            (Err(reason), _) => set_aside(path, reason),
        },
        Err(reason) => set_aside(path, reason),
    }
}

/// Parses and validates a state file's bytes, or says why they are unusable.
fn check(bytes: &[u8], hostname: &str) -> Result<State, String> {
    // Parse loosely first, so that a file of another format or version is named as such rather
    // than reported as a missing field.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("not valid JSON (truncated or corrupt): {e}"))?;
    let format = value.get("format").and_then(|f| f.as_str());
    if format != Some(FORMAT) {
        return Err(format!(
            "not a joulebook state file (format {}, expected {FORMAT:?})",
            format.map_or_else(|| "missing".to_string(), |f| format!("{f:?}"))
        ));
    }
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(VERSION)) {
        return Err(format!(
            "version {}, this exporter reads version {VERSION}",
            version.map_or_else(|| "missing".to_string(), |v| v.to_string())
        ));
    }
    let state: State =
        serde_json::from_value(value).map_err(|e| format!("malformed state file: {e}"))?;
    if state.hostname != hostname {
        return Err(format!(
            "written by host {:?}, this is {hostname:?}",
            state.hostname
        ));
    }
    Ok(state)
}

/// Renames an unusable state file to `<name>.bad-<unix-time>` (with `-N` appended if that name is
/// taken, so no earlier bad file is overwritten).
fn set_aside(path: &Path, reason: String) -> LoadOutcome {
    let Some(name) = path.file_name() else {
        return LoadOutcome::Unusable {
            reason: format!("{reason}; the path has no file name, so it was left in place"),
        };
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut base = name.to_os_string();
    base.push(format!(".bad-{now}"));
    let dir = parent_dir(path);
    let free = (0..=1000u32)
        .map(|n| {
            let mut candidate = base.clone();
            if n > 0 {
                candidate.push(format!("-{n}"));
            }
            dir.join(candidate)
        })
        .find(|p| fs::symlink_metadata(p).is_err());
    let Some(target) = free else {
        return LoadOutcome::Unusable {
            reason: format!(
                "{reason}; 1,000 set-aside files already exist, so it was left in place"
            ),
        };
    };
    match fs::rename(path, &target) {
        Ok(()) => {
            // Best effort: if the rename is lost in a power cut, the next start sets it aside again.
            let _ = sync_dir(dir);
            LoadOutcome::SetAside {
                reason,
                moved_to: target,
            }
        }
        Err(e) => LoadOutcome::Unusable {
            reason: format!(
                "{reason}; moving it aside to {} failed: {e}",
                target.display()
            ),
        },
    }
}

#[cfg(test)]
mod tests;
