//! User names from `<rootfs>/etc/passwd`, cached and reloaded when the file changes.
//!
//! Only the local file is read: calling `getpwuid` would load NSS modules (LDAP, sssd) into the
//! exporter and can block on the network. Users known only to a directory service fall back to
//! the scheduler's own variables (`SLURM_JOB_USER`, `OAR_USER`).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

/// What identifies one version of the file: a rewrite changes at least one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    inode: u64,
}

#[derive(Debug)]
pub(crate) struct Passwd {
    path: PathBuf,
    stamp: Option<Stamp>,
    /// By uid: a search of a few integer comparisons, cheaper than hashing one (looked up for
    /// every job on every scan).
    by_uid: BTreeMap<u32, String>,
    by_name: HashMap<String, u32>,
    /// Counts the loads and clears: names looked up before may differ after a change.
    generation: u64,
}

impl Passwd {
    pub(crate) fn new(path: PathBuf) -> Self {
        Passwd {
            path,
            stamp: None,
            by_uid: BTreeMap::new(),
            by_name: HashMap::new(),
            generation: 0,
        }
    }

    /// Reloads the file if it changed since the last call; costs one `stat` otherwise. A missing
    /// file (a minimal container) is not a problem: names are then simply unknown.
    pub(crate) fn refresh(&mut self, problems: &mut Vec<String>) {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    problems.push(format!("cannot read {}: {e}", self.path.display()));
                }
                self.clear();
                return;
            }
        };
        let stamp = Stamp {
            mtime: meta.modified().ok(),
            len: meta.len(),
            inode: std::os::unix::fs::MetadataExt::ino(&meta),
        };
        if self.stamp == Some(stamp) {
            return;
        }
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                self.load(&String::from_utf8_lossy(&bytes));
                self.stamp = Some(stamp);
                self.generation += 1;
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    problems.push(format!("cannot read {}: {e}", self.path.display()));
                }
                self.clear();
            }
        }
    }

    /// Changes whenever the names known change (see [`Passwd::refresh`]).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    fn clear(&mut self) {
        if self.stamp.is_some() || !self.by_uid.is_empty() {
            self.generation += 1;
        }
        self.stamp = None;
        self.by_uid.clear();
        self.by_name.clear();
    }

    fn load(&mut self, text: &str) {
        self.by_uid.clear();
        self.by_name.clear();
        for line in text.lines() {
            let mut fields = line.split(':');
            let (Some(name), Some(_pw), Some(uid)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            // Comments and NIS "+"/"-" inclusion lines carry no usable entry.
            if name.is_empty() || name.starts_with(['#', '+', '-']) {
                continue;
            }
            let Ok(uid) = uid.parse::<u32>() else {
                continue;
            };
            // getpwuid returns the first entry for a uid, so the first one wins here too.
            self.by_uid.entry(uid).or_insert_with(|| name.to_string());
            self.by_name.entry(name.to_string()).or_insert(uid);
        }
    }

    pub(crate) fn name(&self, uid: u32) -> Option<&str> {
        self.by_uid.get(&uid).map(String::as_str)
    }

    pub(crate) fn uid(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_skips_junk() {
        let mut p = Passwd::new(PathBuf::new());
        p.load(
            "root:x:0:0:root:/root:/bin/bash\n# comment\n+nisuser::::::\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\nbad:x:notanumber:0::/:/bin/sh\n",
        );
        assert_eq!(p.name(0), Some("root"));
        assert_eq!(p.name(1000), Some("alice"));
        assert_eq!(p.uid("alias"), Some(1000));
        assert_eq!(p.uid("bad"), None);
        assert_eq!(p.name(4242), None);
    }

    #[test]
    fn reloads_when_the_file_changes_and_forgets_when_it_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        std::fs::write(&path, "alice:x:1000:1000::/:/bin/sh\n").expect("write");
        let mut p = Passwd::new(path.clone());
        let mut problems = Vec::new();
        p.refresh(&mut problems);
        assert_eq!(p.name(1000), Some("alice"));
        std::fs::write(
            &path,
            "alicia:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n",
        )
        .expect("write");
        p.refresh(&mut problems);
        assert_eq!(p.name(1000), Some("alicia"));
        assert_eq!(p.name(1001), Some("bob"));
        std::fs::remove_file(&path).expect("rm");
        p.refresh(&mut problems);
        assert_eq!(p.name(1000), None);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
