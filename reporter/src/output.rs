//! Writing files into a folder that others may write to as well (`--out`, the state folder).
//!
//! Rules: every file is first written to a fresh temporary name in the same folder, created with
//! `O_CREAT|O_EXCL` (`create_new`: never opens an existing file and never follows a symbolic
//! link, even a dangling one) under an unpredictable name, synced, and only then renamed over its
//! final name (a rename replaces a link found there, it never writes through it); the folder is
//! synced last. A failure before the renames (the disk full, say) removes the temporaries and
//! leaves earlier files as they were; the renames come last, all together.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OutputError(pub String);

/// Tries at fresh names before giving up (each one found taken means someone else created it).
const ATTEMPTS: u32 = 64;

/// Writes every `(file name, bytes)` into `dir` (created if missing), all or nothing as above.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), OutputError> {
    for (name, _) in files {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(OutputError(format!(
                "{name:?} is not a plain file name (a bug: the names are made here)"
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| OutputError(format!("cannot create {}: {e}", dir.display())))?;
    let mut temps: Vec<PathBuf> = Vec::new();
    let cleanup = |temps: &[PathBuf]| {
        for t in temps {
            let _ = std::fs::remove_file(t);
        }
    };
    for (name, bytes) in files {
        match write_temp(dir, name, bytes) {
            Ok(t) => temps.push(t),
            Err(e) => {
                cleanup(&temps);
                return Err(e);
            }
        }
    }
    for (i, (tmp, (name, _))) in temps.iter().zip(files).enumerate() {
        if let Err(e) = std::fs::rename(tmp, dir.join(name)) {
            cleanup(&temps[i..]);
            return Err(OutputError(format!(
                "cannot rename {} to {name}: {e}",
                tmp.display()
            )));
        }
    }
    // The renames are durable once the folder is synced; some file systems refuse fsync on a
    // folder, which leaves the files written but the names possibly not yet on disk.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `dir/.NAME.RANDOM.tmp` with `create_new`, writes and syncs it.
fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, OutputError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", unpredictable()));
        let mut f = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(OutputError(format!("cannot create {}: {e}", tmp.display()))),
        };
        return match f.write_all(bytes).and_then(|()| f.sync_all()) {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(OutputError(format!("cannot write {}: {e}", tmp.display())))
            }
        };
    }
    Err(OutputError(format!(
        "cannot create a temporary file for {name} in {}: {ATTEMPTS} fresh names were all taken ({}); is someone creating files there?",
        dir.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// 64 bits another local user cannot guess: std's hasher keys are seeded from the operating
/// system's random source, and each `RandomState` gets fresh keys.
fn unpredictable() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("report.json".into(), b"{\"new\": true}\n".to_vec()),
            ("report.md".into(), b"# new\n".to_vec()),
        ]
    }

    /// The name the reporter used to write its temporaries at (`.NAME.tmp-PID`), planted as a
    /// link to a file the reporter must not touch: the write goes elsewhere, the report is in
    /// place, the link and its target are unchanged.
    #[test]
    fn a_link_at_the_old_predictable_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        for (name, _) in files() {
            let planted = dir
                .path()
                .join(format!(".{name}.tmp-{}", std::process::id()));
            std::os::unix::fs::symlink(&victim, &planted).unwrap();
        }
        write_files(dir.path(), &files()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("report.json")).unwrap(),
            "{\"new\": true}\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("report.md")).unwrap(),
            "# new\n"
        );
        let planted = dir
            .path()
            .join(format!(".report.json.tmp-{}", std::process::id()));
        assert_eq!(std::fs::read_link(&planted).unwrap(), victim);
        // Nothing else left behind: the two reports, the victim and the two links.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
    }

    /// A link at the final name is replaced by the report, its target left alone.
    #[test]
    fn a_link_at_the_final_name_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("report.md")).unwrap();
        write_files(dir.path(), &files()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        let md = dir.path().join("report.md");
        assert!(!std::fs::symlink_metadata(&md).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(md).unwrap(), "# new\n");
    }

    #[test]
    fn temporary_names_differ() {
        assert_ne!(unpredictable(), unpredictable());
    }

    #[test]
    fn a_failure_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), "old\n").unwrap();
        // A folder at the second name makes its rename fail after the first temporary was
        // written.
        std::fs::create_dir(dir.path().join("report.md")).unwrap();
        std::fs::write(dir.path().join("report.md/x"), "").unwrap();
        let e = write_files(dir.path(), &files()).unwrap_err().0;
        assert!(e.contains("cannot rename"), "{e}");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "temporaries left: {names:?}"
        );
        assert!(write_files(dir.path(), &[("../x".into(), vec![])]).is_err());
    }
}
