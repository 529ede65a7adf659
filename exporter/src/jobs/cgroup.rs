//! The cgroup filesystem: which hierarchies are mounted, where each scheduler puts its jobs,
//! and reading small files in a way that tells "this job just ended" from "this file is bad".
//! The layouts are listed in the parent module's documentation.

use super::sluid::{is_sluid, Sluids};
use super::{CgroupMode, JobId, JobKey, JobsError, Scheduler};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The v1 controllers joulebook reads, in the order their folders are searched for a job's
/// processes: freezer first, because `proctrack/cgroup` puts every process of a job there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Controller {
    Freezer,
    Cpuset,
    Cpuacct,
    Memory,
    Devices,
}

impl Controller {
    pub(crate) const ALL: [Controller; 5] = [
        Controller::Freezer,
        Controller::Cpuset,
        Controller::Cpuacct,
        Controller::Memory,
        Controller::Devices,
    ];

    fn name(self) -> &'static str {
        match self {
            Controller::Freezer => "freezer",
            Controller::Cpuset => "cpuset",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Devices => "devices",
        }
    }
}

/// Per-controller slots, indexed by [`Controller`].
pub(crate) type PerController<T> = [Option<T>; 5];

/// The mounted hierarchies under the configured root.
#[derive(Clone, Debug)]
pub(crate) struct Hierarchy {
    pub mode: CgroupMode,
    /// v1 controller folders (`cpu,cpuacct/` serves as the cpuacct folder).
    pub v1: PerController<PathBuf>,
    /// The v2 hierarchy: the root itself, or `unified/` on a hybrid system.
    pub v2: Option<PathBuf>,
}

/// The controllers joulebook reads among those a v1 folder's name lists: `cpu,cpuacct` (the
/// usual co-mount) is the cpuacct folder.
fn v1_folder_controllers(name: &str) -> impl Iterator<Item = Controller> + '_ {
    name.split(',')
        .filter_map(|part| Controller::ALL.into_iter().find(|c| c.name() == part))
}

/// Finds the hierarchies under `root`. Folders are recognised by name; symlinks such as
/// `cpuacct -> cpu,cpuacct` are followed.
pub(crate) fn detect(root: &Path) -> Result<Hierarchy, JobsError> {
    let io_err = |e: io::Error| JobsError::Io {
        path: root.to_path_buf(),
        source: e,
    };
    if root.join("cgroup.controllers").is_file() {
        return Ok(Hierarchy {
            mode: CgroupMode::V2,
            v1: Default::default(),
            v2: Some(root.to_path_buf()),
        });
    }
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(JobsError::NotCgroupFs {
                path: root.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    let mut v1: PerController<PathBuf> = Default::default();
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    // The co-mounted folder (`cpu,cpuacct`) and its symlink (`cpuacct`) are the same
    // hierarchy; sorting makes the path in messages the same on every run.
    names.sort();
    for name in &names {
        for c in v1_folder_controllers(name) {
            let slot = &mut v1[c as usize];
            if slot.is_none() {
                let path = root.join(name);
                if path.is_dir() {
                    *slot = Some(path);
                }
            }
        }
    }
    let has_v1 = v1.iter().any(Option::is_some);
    let unified = root.join("unified");
    match (has_v1, unified.is_dir()) {
        (true, true) => Ok(Hierarchy {
            mode: CgroupMode::Hybrid,
            v1,
            v2: Some(unified),
        }),
        (true, false) => Ok(Hierarchy {
            mode: CgroupMode::V1,
            v1,
            v2: None,
        }),
        (false, _) => Err(JobsError::NotCgroupFs {
            path: root.to_path_buf(),
        }),
    }
}

/// Where one job lives: its folder in each hierarchy that has one, and what its path says.
#[derive(Clone, Debug, Default)]
pub(crate) struct Found {
    /// The uid written in the path (Slurm v1 `uid_<uid>`, OAR 3 `u<uid>`, user slices).
    pub uid: Option<u32>,
    /// The user name written in the path (OAR 2 `<user>_<jobid>`).
    pub user: Option<String>,
    /// The folder's SLUID (Slurm 26.05 folders named by it).
    pub sluid: Option<String>,
    /// The job's folder in each v1 controller where it exists.
    pub v1: PerController<PathBuf>,
    /// The job's folder in the v2 hierarchy.
    pub v2: Option<PathBuf>,
}

/// Hierarchies by index: the v1 controllers (`Controller as usize`), then the v2 hierarchy.
pub(crate) const HIERARCHIES: usize = 6;
/// The index of the v2 hierarchy.
pub(crate) const V2: usize = 5;

impl Found {
    /// The job's folder in hierarchy `h` (a [`Controller`] index or [`V2`]).
    pub(crate) fn slot(&mut self, h: usize) -> &mut Option<PathBuf> {
        match self.v1.get_mut(h) {
            Some(slot) => slot,
            None => &mut self.v2,
        }
    }
}

impl Hierarchy {
    /// The root of hierarchy `h` (a [`Controller`] index or [`V2`]), if mounted.
    pub(crate) fn root(&self, h: usize) -> Option<&Path> {
        match self.v1.get(h) {
            Some(root) => root.as_deref(),
            None => self.v2.as_deref(),
        }
    }
}

/// One job folder found by [`Lister::list_jobs`].
#[derive(Debug)]
pub(crate) struct Listed<'a> {
    pub key: JobKey,
    /// The uid written in the path (Slurm v1 `uid_<uid>`, OAR 3 `u<uid>`, user slices).
    pub uid: Option<u32>,
    /// The user name written in the path (OAR 2 `<user>_<jobid>`).
    pub user: Option<&'a str>,
    /// The folder's name when it is a Slurm 26.05 SLUID (`sEKNKTV3WPV500`); `key` then holds
    /// the numeric id found for it (see [`Sluids`]).
    pub sluid: Option<&'a str>,
    /// The folder holding the job's folder, and the job folder's name in it.
    pub parent: &'a Path,
    pub name: &'a str,
    /// The job folder's inode number, from the listing itself (no `stat`). cgroupfs never
    /// reuses one, so a job id that comes back in a new folder is told from the old job.
    pub ino: u64,
}

/// Lists folders through descriptors kept open between scans: rewinding an open folder and
/// reading it costs an `lseek` and two `getdents64`, where `std::fs::read_dir` costs a path
/// walk, an `open`, an `fstat`, a `close`, a 32 KiB buffer and two allocations per entry. A
/// folder is known by its hierarchy and inode number (from its parent's listing), so a folder
/// removed and created again under the same name is opened afresh; folders not listed on a
/// scan are closed.
///
/// Each open folder is also watched with inotify for entries created, removed or moved in it.
/// A folder for which no event came since its last listing is not listed again: its entries
/// are replayed from memory (no system call at all). cgroupfs reports the `mkdir` and `rmdir`
/// of job folders to inotify like any file system, since they go through the same VFS calls.
/// A full listing ([`Lister::begin`]'s `relist`) reads every folder again whatever the watches
/// say; an overflowing event queue, a folder that cannot be watched (the per-user watch limit)
/// or a system without inotify fall back to listing on every scan, as without watches.
#[derive(Debug, Default)]
pub(crate) struct Lister {
    /// Open folders by (hierarchy, inode number); a hierarchy's root by (hierarchy, 0).
    open: HashMap<(usize, u64), OpenDir>,
    buf: Vec<u8>,
    scan: u64,
    /// This scan lists every folder, watched or not.
    relist: bool,
    /// The scan that last listed each hierarchy.
    listed: [u64; HIERARCHIES],
    watcher: Watcher,
}

#[derive(Debug)]
struct OpenDir {
    file: File,
    used: u64,
    /// The inotify watch on the folder, if it could be set.
    wd: Option<WatchDescriptor>,
    /// The folder's entries as of its last listing, while no event said they changed.
    entries: Option<Entries>,
}

/// The entries of one listing: names back to back in one string, and (end of name, inode)
/// pairs, so that a folder of a thousand jobs costs two allocations.
#[derive(Debug, Default)]
struct Entries {
    names: String,
    items: Vec<(usize, u64)>,
}

impl Entries {
    fn push(&mut self, name: &str, ino: u64) {
        self.names.push_str(name);
        self.items.push((self.names.len(), ino));
    }

    fn each(&self, mut f: impl FnMut(&str, u64)) {
        let mut start = 0;
        for &(end, ino) in &self.items {
            if let Some(name) = self.names.get(start..end) {
                f(name, ino);
            }
            start = end;
        }
    }
}

/// The inotify instance that watches the open folders.
#[derive(Debug, Default)]
struct Watcher {
    /// Created with the first watch; `None` before, or when inotify is not available.
    inotify: Option<Inotify>,
    unavailable: bool,
    /// Which open folder each watch is on.
    folders: HashMap<WatchDescriptor, (usize, u64)>,
    events: Vec<u8>,
}

/// What changes a folder's listing: entries created, removed, or moved in or out.
fn watch_mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ONLYDIR
}

impl Watcher {
    /// Watches the folder at `path`, kept open under `key`; `None` if it cannot be watched.
    fn watch(&mut self, path: &Path, key: (usize, u64)) -> Option<WatchDescriptor> {
        if self.inotify.is_none() && !self.unavailable {
            match Inotify::init() {
                Ok(i) => self.inotify = Some(i),
                Err(_) => self.unavailable = true,
            }
        }
        let wd = self
            .inotify
            .as_ref()?
            .watches()
            .add(path, watch_mask())
            .ok()?;
        // The same folder under two keys (the same inode): let the first keep the watch.
        match self.folders.get(&wd) {
            Some(k) if *k != key => None,
            _ => {
                self.folders.insert(wd.clone(), key);
                Some(wd)
            }
        }
    }

    fn forget(&mut self, wd: WatchDescriptor) {
        if let Some(i) = &self.inotify {
            // Fails when the watch already went with its folder (IN_IGNORED): nothing to do.
            let _ = i.watches().remove(wd.clone());
        }
        self.folders.remove(&wd);
    }

    /// Reads the events queued since the last call: a folder with an event loses its cached
    /// entries, so it is listed again; an overflowed queue (or an error) clears them all.
    fn drain(&mut self, open: &mut HashMap<(usize, u64), OpenDir>) {
        let Some(inotify) = self.inotify.as_mut() else {
            return;
        };
        // Room for at least one event with the longest name.
        if self.events.len() < 4096 {
            self.events.resize(4096, 0);
        }
        loop {
            let events = match inotify.read_events(&mut self.events) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    open.values_mut().for_each(|d| d.entries = None);
                    return;
                }
            };
            for event in events {
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    open.values_mut().for_each(|d| d.entries = None);
                    continue;
                }
                // IGNORED: the folder went (or its file system), and the watch with it.
                let gone = event.mask.contains(EventMask::IGNORED);
                let key = if gone {
                    self.folders.remove(&event.wd)
                } else {
                    self.folders.get(&event.wd).copied()
                };
                if let Some(d) = key.and_then(|k| open.get_mut(&k)) {
                    d.entries = None;
                    if gone {
                        d.wd = None;
                    }
                }
            }
        }
    }
}

/// Bytes asked for per `getdents64`: about a thousand job folders.
const DIRENTS: usize = 32 * 1024;

impl Lister {
    /// Open folders (they count against the descriptor budget).
    pub(crate) fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Calls `f` for each job folder of every supported layout under one hierarchy root (`h`
    /// is a [`Controller`] index or [`V2`]). The root is listed once and only the layout
    /// folders it holds are opened, so an absent layout costs no failed `open`.
    pub(crate) fn list_jobs(
        &mut self,
        (h, root): (usize, &Path),
        user_slices: bool,
        fds: &mut FdBudget,
        sluids: &mut Sluids,
        problems: &mut Vec<String>,
        f: &mut dyn FnMut(&Listed<'_>),
    ) {
        let v2 = h == V2;
        if let Some(at) = self.listed.get_mut(h) {
            *at = self.scan;
        }
        // The layout folders directly under the root, in the order the layouts are listed.
        let mut slurm = Vec::new();
        let (mut system, mut oar, mut users) = (None, None, None);
        let oar_name = if v2 { "oar.slice" } else { "oar" };
        let mut ctx = ListCtx {
            lister: self,
            h,
            fds,
            sluids,
            problems,
        };
        let listed = ctx.list(root, Some(0), !v2, |name, ino| {
            let dir = || (root.join(name), Some(ino));
            if !v2 && slurm_v1_scope(name).is_some() {
                slurm.push(dir());
            } else if v2 && name == "system.slice" {
                system = Some(dir());
            } else if name == oar_name {
                oar = Some(dir());
            } else if user_slices && name == "user.slice" {
                users = Some(dir());
            }
        });
        if !listed {
            // The root could not be listed (it may still be traversable): try the fixed names.
            system = v2.then(|| (root.join("system.slice"), None));
            oar = Some((root.join(oar_name), None));
            users = user_slices.then(|| (root.join("user.slice"), None));
        }
        if v2 {
            if let Some((dir, ino)) = &system {
                ctx.slurm_v2(dir, *ino, f);
            }
            if let Some((dir, ino)) = &oar {
                ctx.oar3(dir, *ino, f);
            }
        } else {
            for (dir, ino) in &slurm {
                ctx.slurm_v1(dir, *ino, f);
            }
            if let Some((dir, ino)) = &oar {
                ctx.oar2(dir, *ino, f);
            }
        }
        if let Some((dir, ino)) = &users {
            ctx.user_slice_jobs(dir, *ino, f);
        }
    }

    /// Starts a scan: folders that the last listing of their hierarchy did not reach (gone, or
    /// no longer holding jobs) are closed; with `relist`, every folder is listed again on this
    /// scan (see [`Lister::refresh`] for the others).
    pub(crate) fn begin(&mut self, scan: u64, relist: bool) {
        let watcher = &mut self.watcher;
        let listed = &self.listed;
        self.open.retain(|&(h, _), d| {
            let kept = listed.get(h).is_none_or(|&at| d.used >= at);
            if !kept {
                if let Some(wd) = d.wd.take() {
                    watcher.forget(wd);
                }
            }
            kept
        });
        self.scan = scan;
        self.relist = relist;
    }

    /// Takes in the changes reported since the last call: the folders in which something was
    /// created or removed are listed again. Called just before listing, after the CPU-time
    /// reads, so that a job folder removed after its read is not replayed.
    pub(crate) fn refresh(&mut self) {
        self.watcher.drain(&mut self.open);
    }
}

/// One hierarchy's listing.
struct ListCtx<'a> {
    lister: &'a mut Lister,
    h: usize,
    fds: &'a mut FdBudget,
    sluids: &'a mut Sluids,
    problems: &'a mut Vec<String>,
}

type Sink<'a> = &'a mut dyn FnMut(&Listed<'_>);

impl ListCtx<'_> {
    /// Calls `f(name, inode)` for each entry of `dir` whose name is UTF-8 (`.` and `..` left
    /// out); true when `dir` could be listed. With `ino` (the folder's inode number from its
    /// parent's listing, 0 for a root), the folder is kept open under it. A folder that does
    /// not exist is empty (Slurm creates `slurm_<node>/` only with the first job; a uid folder
    /// goes away with the user's last job); other errors are problems when `report` is set.
    fn list(
        &mut self,
        dir: &Path,
        ino: Option<u64>,
        report: bool,
        f: impl FnMut(&str, u64),
    ) -> bool {
        let Lister {
            open,
            buf,
            scan,
            relist,
            watcher,
            ..
        } = &mut *self.lister;
        let key = ino.map(|i| (self.h, i));
        if let Some(key) = key {
            if let Some(d) = open.get_mut(&key) {
                if let (false, Some(entries)) = (*relist, &d.entries) {
                    counted(Call::Replay);
                    d.used = *scan;
                    entries.each(f);
                    return true;
                }
                if (&d.file).seek(SeekFrom::Start(0)).is_ok() {
                    counted(Call::Rewind);
                    d.used = *scan;
                    d.entries = list_cached(&d.file, buf, d.wd.is_some(), f);
                    return true;
                }
                if let Some(wd) = open.remove(&key).and_then(|d| d.wd) {
                    watcher.forget(wd);
                }
            }
        }
        counted(Call::Open);
        let opening = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir);
        let file = match opening {
            Ok(file) => file,
            Err(e) if is_gone(&e) => return true,
            Err(e) => {
                if report {
                    self.problems
                        .push(format!("cannot list {}: {e}", dir.display()));
                }
                return false;
            }
        };
        match key {
            Some(key) if self.fds.take() => {
                // Watched before it is listed: an entry made in between shows as an event.
                let wd = watcher.watch(dir, key);
                let entries = list_cached(&file, buf, wd.is_some(), f);
                open.insert(
                    key,
                    OpenDir {
                        file,
                        used: *scan,
                        wd,
                        entries,
                    },
                );
                true
            }
            _ => {
                list_open(&file, buf, f);
                true
            }
        }
    }

    /// `slurm[_<node>]/uid_<uid>/job_<id>`, from the `slurm[_<node>]` folder.
    fn slurm_v1(&mut self, slurm: &Path, ino: Option<u64>, f: Sink<'_>) {
        let scope = slurm
            .file_name()
            .and_then(OsStr::to_str)
            .and_then(slurm_v1_scope)
            .map_or(0, scope_of);
        let mut uid_dirs = Vec::new();
        self.list(slurm, ino, true, |name, ino| {
            if let Some(uid) = name.strip_prefix("uid_").and_then(parse_u32) {
                uid_dirs.push((uid, slurm.join(name), Some(ino)));
            }
        });
        for (uid, dir, ino) in &uid_dirs {
            self.list(dir, *ino, true, |name, ino| {
                if let Some(id) = slurm_job_dir(name) {
                    f(&Listed {
                        key: JobKey::new(Scheduler::Slurm, id).in_scope(scope),
                        uid: Some(*uid),
                        user: None,
                        sluid: None,
                        parent: dir,
                        name,
                        ino,
                    });
                }
            });
        }
    }

    /// `system.slice/[<node>_]slurmstepd.scope/{job_<id>,<SLUID>}`, from `system.slice`. A
    /// SLUID folder is listed once its numeric id is known (see [`Sluids`]); other folders
    /// (`system`, anything unknown) are not jobs.
    fn slurm_v2(&mut self, system: &Path, ino: Option<u64>, f: Sink<'_>) {
        let mut scopes = Vec::new();
        self.list(system, ino, true, |name, ino| {
            if let Some(node) = slurmstepd_scope(name) {
                scopes.push((system.join(name), Some(ino), scope_of(node)));
            }
        });
        for (dir, ino, scope) in &scopes {
            let mut sluid_dirs: Vec<(String, u64)> = Vec::new();
            self.list(dir, *ino, true, |name, ino| {
                if let Some(id) = slurm_job_dir(name) {
                    f(&Listed {
                        key: JobKey::new(Scheduler::Slurm, id).in_scope(*scope),
                        uid: None,
                        user: None,
                        sluid: None,
                        parent: dir,
                        name,
                        ino,
                    });
                } else if is_sluid(name) {
                    sluid_dirs.push((name.to_string(), ino));
                }
            });
            for (name, ino) in &sluid_dirs {
                let Some(id) = self.sluids.resolve(dir, name, *scope, *ino, self.problems) else {
                    continue;
                };
                f(&Listed {
                    key: JobKey {
                        scheduler: Scheduler::Slurm,
                        id,
                        scope: *scope,
                    },
                    uid: None,
                    user: None,
                    sluid: Some(name),
                    parent: dir,
                    name,
                    ino: *ino,
                });
            }
        }
    }

    /// `oar/<user>_<jobid>`, from `oar`.
    fn oar2(&mut self, oar: &Path, ino: Option<u64>, f: Sink<'_>) {
        self.list(oar, ino, true, |name, ino| {
            if let Some((user, id)) = oar2_job_dir(name) {
                f(&Listed {
                    key: JobKey::new(Scheduler::Oar, id),
                    uid: None,
                    sluid: None,
                    user: Some(user),
                    parent: oar,
                    name,
                    ino,
                });
            }
        });
    }

    /// `oar.slice/oar-u<uid>.slice/oar-u<uid>-j<jobid>.slice`, from `oar.slice`.
    fn oar3(&mut self, oar: &Path, ino: Option<u64>, f: Sink<'_>) {
        let mut user_slices = Vec::new();
        self.list(oar, ino, true, |name, ino| {
            if let Some(uid) = oar3_user_slice(name) {
                user_slices.push((uid, oar.join(name), Some(ino)));
            }
        });
        for (uid, dir, ino) in &user_slices {
            self.list(dir, *ino, true, |name, ino| {
                if let Some((job_uid, id)) = oar3_job_slice(name) {
                    if job_uid == *uid {
                        f(&Listed {
                            key: JobKey::new(Scheduler::Oar, id),
                            uid: Some(*uid),
                            sluid: None,
                            user: None,
                            parent: dir,
                            name,
                            ino,
                        });
                    }
                }
            });
        }
    }

    /// `user.slice/user-<uid>.slice`, from `user.slice`.
    fn user_slice_jobs(&mut self, users: &Path, ino: Option<u64>, f: Sink<'_>) {
        self.list(users, ino, true, |name, ino| {
            if let Some(uid) = user_slice(name) {
                f(&Listed {
                    key: JobKey::user_slice(uid),
                    uid: Some(uid),
                    sluid: None,
                    user: None,
                    parent: users,
                    name,
                    ino,
                });
            }
        });
    }
}

/// [`list_open`], keeping the entries when `keep` is set and the listing reached the end.
fn list_cached(
    dir: &File,
    buf: &mut Vec<u8>,
    keep: bool,
    mut f: impl FnMut(&str, u64),
) -> Option<Entries> {
    if !keep {
        list_open(dir, buf, f);
        return None;
    }
    let mut entries = Entries::default();
    let complete = list_open(dir, buf, |name, ino| {
        entries.push(name, ino);
        f(name, ino);
    });
    complete.then_some(entries)
}

/// Reads an open folder from its current position to its end: `f(name, inode)` per entry
/// that is not a regular file (every layout's entries are folders; cgroup files are left
/// out) and whose name is UTF-8, `.` and `..` left out. Like `read_dir` with its errors
/// skipped, an error while reading ends the listing; false then.
fn list_open(dir: &File, buf: &mut Vec<u8>, mut f: impl FnMut(&str, u64)) -> bool {
    if buf.len() < DIRENTS {
        buf.resize(DIRENTS, 0);
    }
    loop {
        let n = match getdents(dir, buf) {
            Ok(0) => return true,
            Err(_) => return false,
            Ok(n) => n,
        };
        // `struct linux_dirent64`: u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, then the
        // name, NUL-terminated, padded to 8 bytes.
        let mut rest = buf.get(..n).unwrap_or_default();
        while let (Some(ino), Some(len), Some(&kind), Some(tail)) = (
            rest.get(0..8),
            rest.get(16..18),
            rest.get(18),
            rest.get(19..),
        ) {
            let len = usize::from(u16::from_ne_bytes([len[0], len[1]]));
            let Some(name) = tail.get(..len.saturating_sub(19)) else {
                break;
            };
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            if kind != libc::DT_REG && name != b"." && name != b".." {
                if let Ok(name) = std::str::from_utf8(name) {
                    let mut b = [0; 8];
                    b.copy_from_slice(ino);
                    f(name, u64::from_ne_bytes(b));
                }
            }
            if len == 0 {
                break;
            }
            rest = rest.get(len..).unwrap_or_default();
        }
    }
}

/// One `getdents64` call into `buf`: the bytes of whole directory entries written, 0 at the
/// end of the folder.
fn getdents(dir: &File, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the kernel writes at most `buf.len()` bytes at `buf`, which is valid and
    // exclusively borrowed for that many; `dir` stays open for the duration of the call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Open files and folders kept between scans, within the process's limit on descriptors.
#[derive(Debug, Default)]
pub(crate) struct FdBudget {
    pub held: usize,
    /// How many may be held; `None` until first asked.
    limit: Option<usize>,
    /// The soft limit could not be raised further.
    at_hard_limit: bool,
}

/// File descriptors left for everything but the files and folders kept open here: the HTTP
/// server (64 connections), NVML, the state file, logs, and the files being read.
const FD_RESERVE: u64 = 256;

impl FdBudget {
    /// A budget of `n` descriptors, never raised (for tests).
    #[cfg(test)]
    pub(crate) fn fixed(n: usize) -> FdBudget {
        FdBudget {
            held: 0,
            limit: Some(n),
            at_hard_limit: true,
        }
    }

    /// True when one more descriptor may be kept (and counts it).
    pub(crate) fn take(&mut self) -> bool {
        let limit = *self.limit.get_or_insert_with(|| held_limit(0));
        if self.held >= limit && !self.at_hard_limit {
            let more = held_limit(2 * (self.held as u64 + FD_RESERVE));
            self.at_hard_limit = more <= limit;
            self.limit = Some(more);
        }
        if self.held >= self.limit.unwrap_or(0) {
            return false;
        }
        self.held += 1;
        true
    }
}

/// How many descriptors may be kept: the soft `RLIMIT_NOFILE` less [`FD_RESERVE`], after
/// raising the soft limit towards `want` (never above the hard limit). Raising it is safe:
/// nothing in the exporter uses `select(2)`, whose sets stop at descriptor 1023.
fn held_limit(want: u64) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    let target = want.min(lim.rlim_max);
    if target > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        }
    }
    usize::try_from(lim.rlim_cur.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
}

/// The inode number of `path` when it exists, as a listing of its folder would show it (a
/// final symlink is not followed).
pub(crate) fn probe(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    counted(Call::Stat);
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_job_id(s: &str) -> bool {
    // Slurm and OAR job ids are decimal; anything else in these folders is not a job.
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `job_<id>` → id.
fn slurm_job_dir(name: &str) -> Option<&str> {
    name.strip_prefix("job_").filter(|id| is_job_id(id))
}

/// `slurmstepd.scope` → `""`, `<node>_slurmstepd.scope` → node (Slurm cgroup v2).
fn slurmstepd_scope(name: &str) -> Option<&str> {
    if name == "slurmstepd.scope" {
        return Some("");
    }
    name.strip_suffix("_slurmstepd.scope")
        .filter(|node| !node.is_empty())
}

/// `slurm` → `""`, `slurm_<node>` → node (Slurm cgroup v1).
fn slurm_v1_scope(name: &str) -> Option<&str> {
    if name == "slurm" {
        return Some("");
    }
    name.strip_prefix("slurm_").filter(|node| !node.is_empty())
}

/// The scope of a slurmd instance, from the node name in its folder's name: 0 without one,
/// else a hash of the name (FNV-1a, never 0). The same node name gives the same scope in v1
/// and v2, so a job seen in both hierarchies of a hybrid node stays one entry.
pub(crate) fn scope_of(node: &str) -> u32 {
    if node.is_empty() {
        return 0;
    }
    let h = node.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h.max(1)
}

/// `<user>_<jobid>` → (user, id). User names may contain `_`, job ids may not.
fn oar2_job_dir(name: &str) -> Option<(&str, &str)> {
    let (user, id) = name.rsplit_once('_')?;
    (!user.is_empty() && is_job_id(id)).then_some((user, id))
}

/// `oar-u<uid>.slice` → uid.
fn oar3_user_slice(name: &str) -> Option<u32> {
    parse_u32(name.strip_prefix("oar-u")?.strip_suffix(".slice")?)
}

/// `oar-u<uid>-j<jobid>.slice` → (uid, id).
fn oar3_job_slice(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("oar-u")?.strip_suffix(".slice")?;
    let (uid, id) = rest.split_once("-j")?;
    Some((parse_u32(uid)?, id)).filter(|(_, id)| is_job_id(id))
}

/// `user-<uid>.slice` → uid.
fn user_slice(name: &str) -> Option<u32> {
    parse_u32(name.strip_prefix("user-")?.strip_suffix(".slice")?)
}

/// The job a cgroup path belongs to (a path from `/proc/<pid>/cgroup`, relative to its
/// hierarchy's root), or `None` for a path outside any job. Steps, tasks and the extern step
/// resolve to their job; a SLUID folder to the numeric id `sluid(scope, SLUID)` gives (the
/// ids found by [`Sluids`]), else to nothing.
pub(crate) fn job_of_cgroup_path(
    path: &str,
    user_slices: bool,
    sluid: &dyn Fn(u32, &str) -> Option<JobId>,
) -> Option<JobKey> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segs.iter().enumerate() {
        let rest = &segs[i + 1..];
        // Slurm: a `job_<id>` below `slurm[_<node>]/uid_<uid>/` (v1) or below the stepd scope (v2).
        if let Some(node) = slurm_v1_scope(seg) {
            if let (Some(uid), Some(job)) = (rest.first(), rest.get(1)) {
                if uid.strip_prefix("uid_").and_then(parse_u32).is_some() {
                    if let Some(id) = slurm_job_dir(job) {
                        return Some(JobKey::new(Scheduler::Slurm, id).in_scope(scope_of(node)));
                    }
                }
            }
        }
        if let Some(node) = slurmstepd_scope(seg) {
            let scope = scope_of(node);
            if let Some(j) = rest.first() {
                if let Some(id) = slurm_job_dir(j) {
                    return Some(JobKey::new(Scheduler::Slurm, id).in_scope(scope));
                }
                if is_sluid(j) {
                    return sluid(scope, j).map(|id| JobKey {
                        scheduler: Scheduler::Slurm,
                        id,
                        scope,
                    });
                }
            }
        }
        if *seg == "oar" {
            if let Some((_, id)) = rest.first().and_then(|j| oar2_job_dir(j)) {
                return Some(JobKey::new(Scheduler::Oar, id));
            }
        }
        if let Some((_, id)) = oar3_job_slice(seg) {
            return Some(JobKey::new(Scheduler::Oar, id));
        }
    }
    if user_slices {
        for w in segs.windows(2) {
            if w[0] == "user.slice" {
                if let Some(uid) = user_slice(w[1]) {
                    return Some(JobKey::user_slice(uid));
                }
            }
        }
    }
    None
}

/// Finds the job of a process from `/proc/<pid>/cgroup` (one line per hierarchy:
/// `<id>:<controllers>:<path>`). A scheduler's job wins over a user slice.
pub(crate) fn job_of_proc_cgroup(
    text: &str,
    user_slices: bool,
    sluid: &dyn Fn(u32, &str) -> Option<JobId>,
) -> Option<JobKey> {
    let mut fallback = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        match job_of_cgroup_path(path, user_slices, sluid) {
            Some(k) if k.scheduler != Scheduler::UserSlice => return Some(k),
            Some(k) => fallback = fallback.or(Some(k)),
            None => {}
        }
    }
    fallback
}

/// True for errors that mean "it is not there (any more)": ENOENT, and ENODEV from a file of
/// a cgroup removed between open and read, and ESRCH from a /proc entry of a process that exited.
pub(crate) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ESRCH))
}

/// The job's folder disappeared while it was being read: the job ended. Not a problem; the job
/// is left out of this scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Vanished;

/// Reads small cgroup files into a reused buffer, so a scan of a thousand jobs does not
/// allocate per file. Plain `read` calls: `read_to_string` would first `statx` and `lseek` each
/// file to size its buffer, and cgroup files report a size of 4096 or 0 anyway.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: Vec<u8>,
    path: PathBuf,
}

/// Bytes asked for per `read` call: every cgroup file joulebook reads but `cgroup.procs`
/// fits in one.
const CHUNK: usize = 4096;

impl Reader {
    /// The path of the file last read (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `dir/file`. `Ok(Some(text))` on success; `Ok(None)` when the file does not exist
    /// but `dir` does (this hierarchy lacks the file), or on an error, which is then pushed to
    /// `problems`; `Err(Vanished)` when `dir` itself is gone.
    pub(crate) fn read(
        &mut self,
        dir: &Path,
        file: &str,
        problems: &mut Vec<String>,
    ) -> Result<Option<&str>, Vanished> {
        Ok(self
            .read_keep(dir, file, problems)?
            .map(|(text, _, _)| text))
    }

    /// [`Reader::read`] that also hands back the file's path and the open file, to be read
    /// again with [`read_again`] instead of being opened again.
    pub(crate) fn read_keep(
        &mut self,
        dir: &Path,
        file: &str,
        problems: &mut Vec<String>,
    ) -> Result<Option<(&str, &Path, File)>, Vanished> {
        self.set_path(dir, file);
        let (f, n) = match read_all(&self.path, &mut self.buf) {
            Ok(r) => r,
            Err(e) if is_gone(&e) => {
                counted(Call::Stat);
                return if dir.exists() {
                    Ok(None)
                } else {
                    Err(Vanished)
                };
            }
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", self.path.display()));
                return Ok(None);
            }
        };
        match std::str::from_utf8(self.buf.get(..n).unwrap_or_default()) {
            Ok(text) => Ok(Some((text, &self.path, f))),
            Err(_) => {
                problems.push(format!("{}: content is not text", self.path.display()));
                Ok(None)
            }
        }
    }

    fn set_path(&mut self, dir: &Path, file: &str) {
        self.path.as_mut_os_string().clear();
        self.path.push(dir);
        self.path.push(file);
    }

    /// Reads `dir/file` from `held`, the file kept open by an earlier call (one `pread`, no
    /// path lookup); else, or when that read fails (the file was removed), by path, keeping the
    /// file open in `held` when `fds` has a descriptor to spare. Only for files produced in one
    /// go (see [`read_again`]). Results as [`Reader::read`].
    pub(crate) fn read_held(
        &mut self,
        dir: &Path,
        file: &str,
        held: &mut Option<File>,
        fds: &mut FdBudget,
        problems: &mut Vec<String>,
    ) -> Result<Option<&str>, Vanished> {
        if let Some(f) = held.as_ref() {
            counted(Call::PreadStatic);
            match read_again(f, &mut self.buf).map(str::len) {
                Ok(n) => {
                    self.set_path(dir, file);
                    return Ok(self.buf.get(..n).and_then(|b| std::str::from_utf8(b).ok()));
                }
                // Gone, failing or not text: the read by path tells which, and reports it.
                Err(_) => *held = None,
            }
        }
        match self.read_keep(dir, file, problems)? {
            Some((text, _, f)) => {
                if fds.take() {
                    *held = Some(f);
                }
                Ok(Some(text))
            }
            None => Ok(None),
        }
    }
}

/// Reads a whole file into `buf`; hands back the open file and the length read.
pub(crate) fn read_all(path: &Path, buf: &mut Vec<u8>) -> io::Result<(File, usize)> {
    counted(Call::Open);
    let mut f = File::open(path)?;
    let n = fill(buf, false, |chunk, _| f.read(chunk))?;
    Ok((f, n))
}

/// Reads an open file again from its start with `pread`: one system call, no path lookup. A
/// cgroup or sysfs file regenerates its content for a read at offset 0 and fails with ENODEV
/// once its cgroup or device is removed. Only for files whose content is produced in one go
/// (`cpuacct.usage`, `cpu.stat`, powercap's `energy_uj`), for which a read shorter than asked is
/// the end of the file.
pub(crate) fn read_again<'b>(f: &File, buf: &'b mut Vec<u8>) -> io::Result<&'b str> {
    let n = fill(buf, true, |chunk, offset| f.read_at(chunk, offset))?;
    std::str::from_utf8(buf.get(..n).unwrap_or_default())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "content is not text"))
}

/// Reads with `read(chunk, offset)` into `buf` from its start until the end of the file and
/// returns the length read. `buf` only grows: zeroing it is paid once, not on every read.
/// With `short_is_end`, a read shorter than asked is the end.
fn fill(
    buf: &mut Vec<u8>,
    short_is_end: bool,
    mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut n = 0;
    loop {
        if buf.len() < n + CHUNK {
            buf.resize(n + CHUNK, 0);
        }
        let Some(chunk) = buf.get_mut(n..n + CHUNK) else {
            return Ok(n);
        };
        match read(chunk, n as u64) {
            Ok(0) => return Ok(n),
            Ok(k) => {
                n += k;
                if short_is_end && k < CHUNK {
                    return Ok(n);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// File system calls, counted per thread in tests (to bound what a scan costs); nothing
/// otherwise.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Call {
    /// `open` of a file or folder (a folder listing included).
    Open,
    /// `pread` of an open file.
    Pread,
    /// `stat` of a path.
    Stat,
    /// Rewind of an open folder, to list it again.
    Rewind,
    /// A listing replayed from memory: no system call.
    Replay,
    /// `pread` of a static file kept open (a job's CPUs, its memory limit).
    PreadStatic,
}

#[cfg(test)]
thread_local! {
    static CALLS: std::cell::Cell<[u64; 6]> = const { std::cell::Cell::new([0; 6]) };
}

#[inline]
pub(crate) fn counted(_call: Call) {
    #[cfg(test)]
    CALLS.with(|c| {
        let mut v = c.get();
        v[_call as usize] += 1;
        c.set(v);
    });
}

/// The calls counted on this thread so far, indexed by [`Call`].
#[cfg(test)]
pub(crate) fn calls() -> [u64; 6] {
    CALLS.with(|c| c.get())
}

/// Subfolders of a job folder, for the fallback to steps and the search for processes. Sorted,
/// with Slurm's extern step last (its only process is a `sleep` that may not carry the job's
/// environment) and Slurm v2's `slurm` folders (slurmstepd itself) left out.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, Vanished> {
    counted(Call::Open);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_gone(&e) => return Err(Vanished),
        // Unreadable: treated as having no subfolders; the reads of the files say why.
        Err(_) => return Ok(Vec::new()),
    };
    let mut dirs: Vec<(bool, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name() != OsStr::new("slurm"))
        .map(|e| (e.file_name() == OsStr::new("step_extern"), e.path()))
        .collect();
    dirs.sort();
    Ok(dirs.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: Scheduler, id: &str) -> Option<JobKey> {
        Some(JobKey::new(s, id))
    }

    fn in_scope(s: Scheduler, id: &str, node: &str) -> Option<JobKey> {
        Some(JobKey::new(s, id).in_scope(scope_of(node)))
    }

    /// A SLUID known to be job 9 in the scope without a node name.
    fn sluids(scope: u32, s: &str) -> Option<JobId> {
        (scope == 0 && s == "sEKNKTV3WPV500").then(|| JobId::new("9"))
    }

    #[test]
    fn names() {
        assert_eq!(slurm_job_dir("job_42"), Some("42"));
        assert_eq!(slurm_job_dir("job_"), None);
        assert_eq!(slurm_job_dir("job_4x"), None);
        assert_eq!(slurmstepd_scope("slurmstepd.scope"), Some(""));
        assert_eq!(slurmstepd_scope("node1_slurmstepd.scope"), Some("node1"));
        assert_eq!(slurmstepd_scope("_slurmstepd.scope"), None);
        assert_eq!(slurm_v1_scope("slurm"), Some(""));
        assert_eq!(slurm_v1_scope("slurm_n1"), Some("n1"));
        assert_eq!(slurm_v1_scope("slurm_"), None);
        assert_eq!(slurm_v1_scope("slurmx"), None);
        assert_eq!(scope_of(""), 0);
        assert_ne!(scope_of("n1"), 0);
        assert_ne!(scope_of("n1"), scope_of("n2"));
        assert_eq!(oar2_job_dir("bob_smith_302"), Some(("bob_smith", "302")));
        assert_eq!(oar2_job_dir("_302"), None);
        assert_eq!(oar2_job_dir("alice_x"), None);
        assert_eq!(oar3_user_slice("oar-u1000.slice"), Some(1000));
        assert_eq!(oar3_job_slice("oar-u1000-j401.slice"), Some((1000, "401")));
        assert_eq!(oar3_job_slice("oar-u1000.slice"), None);
        assert_eq!(user_slice("user-0.slice"), Some(0));
        assert_eq!(user_slice("user-.slice"), None);
    }

    #[test]
    fn cgroup_paths_to_jobs() {
        use Scheduler::*;
        let cases = [
            (
                "/slurm_node1/uid_1000/job_42/step_0/task_1",
                in_scope(Slurm, "42", "node1"),
            ),
            ("/slurm/uid_0/job_2/step_batch", key(Slurm, "2")),
            ("/slurm/uid_0/job_2/step_extern", key(Slurm, "2")),
            (
                "/system.slice/slurmstepd.scope/job_7/step_0/user/task_0",
                key(Slurm, "7"),
            ),
            (
                "/system.slice/n1_slurmstepd.scope/job_7/step_extern/user/task_special",
                in_scope(Slurm, "7", "n1"),
            ),
            (
                "/system.slice/slurmstepd.scope/sEKNKTV3WPV500/step_0/user/task_0",
                key(Slurm, "9"),
            ),
            (
                "/system.slice/n1_slurmstepd.scope/sEKNKTV3WPV500/step_0/user/task_0",
                None,
            ),
            ("/system.slice/slurmstepd.scope/sUNKNOWN/step_0", None),
            ("/system.slice/slurmstepd.scope/system", None),
            ("/oar/alice_301", key(Oar, "301")),
            (
                "/oar.slice/oar-u1000.slice/oar-u1000-j401.slice/x.scope",
                key(Oar, "401"),
            ),
            (
                "/user.slice/user-1000.slice/session-3.scope",
                key(UserSlice, "user-1000"),
            ),
            ("/system.slice/sshd.service", None),
            ("/", None),
        ];
        for (path, want) in cases {
            assert_eq!(job_of_cgroup_path(path, true, &sluids), want, "{path}");
        }
        assert_eq!(
            job_of_cgroup_path("/user.slice/user-1000.slice", false, &sluids),
            None
        );
    }

    #[test]
    fn proc_cgroup_prefers_the_scheduler_over_the_user_slice() {
        let text = "12:freezer:/slurm_n1/uid_1000/job_5/step_0/task_0\n1:name=systemd:/user.slice/user-1000.slice/session-1.scope\n0::/user.slice/user-1000.slice/session-1.scope\n";
        assert_eq!(
            job_of_proc_cgroup(text, true, &sluids),
            in_scope(Scheduler::Slurm, "5", "n1")
        );
        let text = "0::/user.slice/user-1000.slice/session-1.scope\n";
        assert_eq!(
            job_of_proc_cgroup(text, true, &sluids),
            key(Scheduler::UserSlice, "user-1000")
        );
        assert_eq!(job_of_proc_cgroup("garbage", true, &sluids), None);
    }
}
