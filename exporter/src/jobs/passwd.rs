//! User names from `<rootfs>/etc/passwd`, cached and reloaded when the file changes, then,
//! when the exporter reads its own host (`rootfs` is `/`), from NSS (`getpwuid_r`,
//! `getpwnam_r`: LDAP, sssd), so that users missing from the file are still named.
//!
//! NSS answers, names found or not, are cached until the file changes (at most
//! [`MAX_NSS_ENTRIES`], then the cache starts afresh): one lookup per uid, never one per scan.
//! A lookup may block on the directory service for as long as its timeout (sssd caches
//! locally, so it rarely does).

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
    /// Ask NSS for what the file lacks.
    nss: bool,
    nss_names: HashMap<u32, Option<String>>,
    nss_uids: HashMap<String, Option<u32>>,
}

/// NSS answers kept, at most.
const MAX_NSS_ENTRIES: usize = 65_536;

impl Passwd {
    pub(crate) fn new(path: PathBuf, nss: bool) -> Self {
        Passwd {
            path,
            stamp: None,
            by_uid: BTreeMap::new(),
            by_name: HashMap::new(),
            generation: 0,
            nss,
            nss_names: HashMap::new(),
            nss_uids: HashMap::new(),
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
        self.nss_names.clear();
        self.nss_uids.clear();
    }

    fn load(&mut self, text: &str) {
        self.by_uid.clear();
        self.by_name.clear();
        self.nss_names.clear();
        self.nss_uids.clear();
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

    /// The name of `uid`: from the file, else from NSS (cached).
    pub(crate) fn name(&mut self, uid: u32) -> Option<&str> {
        if self.by_uid.contains_key(&uid) {
            return self.by_uid.get(&uid).map(String::as_str);
        }
        if !self.nss {
            return None;
        }
        if self.nss_names.len() >= MAX_NSS_ENTRIES {
            self.nss_names.clear();
        }
        self.nss_names
            .entry(uid)
            .or_insert_with(|| nss::name_of(uid))
            .as_deref()
    }

    /// The uid of user `name`: from the file, else from NSS (cached).
    pub(crate) fn uid(&mut self, name: &str) -> Option<u32> {
        if let Some(uid) = self.by_name.get(name) {
            return Some(*uid);
        }
        if !self.nss {
            return None;
        }
        if let Some(uid) = self.nss_uids.get(name) {
            return *uid;
        }
        if self.nss_uids.len() >= MAX_NSS_ENTRIES {
            self.nss_uids.clear();
        }
        let uid = nss::uid_of(name);
        self.nss_uids.insert(name.to_string(), uid);
        uid
    }
}

/// The C library's reentrant user lookups.
mod nss {
    use std::ffi::{CStr, CString};

    /// Calls `f(pwd, buf, len, result)` with a growing buffer; the entry's name and uid.
    fn lookup(
        f: impl Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> i32,
    ) -> Option<(String, u32)> {
        let mut len = 1024;
        while len <= 1 << 20 {
            let mut buf: Vec<libc::c_char> = vec![0; len];
            // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids); it is
            // only read after the call filled it in.
            let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = f(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
            if rc == libc::ERANGE {
                len *= 4;
                continue;
            }
            if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
                return None;
            }
            // SAFETY: on success `pw_name` points at a NUL-terminated string inside `buf`,
            // which lives until the end of this iteration.
            let name = unsafe { CStr::from_ptr(pwd.pw_name) };
            return Some((name.to_string_lossy().into_owned(), pwd.pw_uid));
        }
        None
    }

    pub(super) fn name_of(uid: u32) -> Option<String> {
        lookup(|pwd, buf, len, result| {
            // SAFETY: every pointer is valid for the call, `buf` for `len` bytes.
            unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) }
        })
        .map(|(name, _)| name)
    }

    pub(super) fn uid_of(name: &str) -> Option<u32> {
        let c = CString::new(name).ok()?;
        lookup(|pwd, buf, len, result| {
            // SAFETY: as above; `c` is NUL-terminated and outlives the call.
            unsafe { libc::getpwnam_r(c.as_ptr(), pwd, buf, len, result) }
        })
        .map(|(_, uid)| uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_skips_junk() {
        let mut p = Passwd::new(PathBuf::new(), false);
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
        let mut p = Passwd::new(path.clone(), false);
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

    /// This host's NSS names root (uid 0) whatever the file under `path` says.
    #[test]
    fn nss_names_users_the_file_lacks() {
        let mut p = Passwd::new(PathBuf::from("/nonexistent/passwd"), true);
        p.refresh(&mut Vec::new());
        assert_eq!(p.name(0), Some("root"));
        assert_eq!(p.uid("root"), Some(0));
        assert_eq!(p.name(4_000_000_000), None);
        let mut off = Passwd::new(PathBuf::from("/nonexistent/passwd"), false);
        assert_eq!(off.name(0), None);
    }
}
