//! Listing the job folders of every supported layout under one hierarchy root, through folder
//! descriptors kept open between scans and watched with inotify (see [`Lister`]). Which names
//! are jobs is the layouts' business (the name functions of `cgroup`); this module walks them.

use super::cgroup::{FdBudget, PerSlot, Slot};
use super::layout::slurm::slurm_v1_scope;
use super::sluid::Sluids;
use super::JobKey;
use crate::fileio::{counted, is_gone, Call};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
    open: HashMap<(Slot, u64), OpenDir>,
    buf: Vec<u8>,
    scan: u64,
    /// This scan lists every folder, watched or not.
    relist: bool,
    /// The scan that last listed each hierarchy.
    listed: PerSlot<u64>,
    watcher: Watcher,
    /// A folder listed on this scan was not watched (no watch, no descriptor to keep, an error):
    /// an entry made in it would show only at the next listing, not as an event.
    unwatched: bool,
    /// Each hierarchy's job folders as of its last listing, replayed whole (no folder visited,
    /// no name parsed) while no event came for any of its folders (see [`Saved`]).
    saved: PerSlot<Option<Saved>>,
    /// The listing under way can be saved: every folder it visited is watched and was read to
    /// its end, and nothing in it waits on another source (a SLUID not resolved).
    settled: bool,
}

/// One hierarchy's job folders, as [`Listed`] gave them, kept while none of the hierarchy's
/// folders had an inotify event since: the same listing would give the same folders. Saved
/// only from a listing with no problem, every folder watched and read whole, and no SLUID
/// folder (a SLUID's id is looked up on each listing); dropped by any event in the hierarchy,
/// an overflowing queue, and on every full listing (`relist`).
#[derive(Debug, Default)]
struct Saved {
    parents: Vec<std::path::PathBuf>,
    /// Names and user names back to back; [`SavedJob`] holds the ends.
    text: String,
    jobs: Vec<SavedJob>,
}

#[derive(Debug)]
struct SavedJob {
    key: JobKey,
    uid: Option<u32>,
    parent: usize,
    name: (usize, usize),
    user: Option<(usize, usize)>,
    ino: u64,
}

impl Saved {
    fn push(&mut self, l: &Listed<'_>) {
        if self.parents.last().is_none_or(|p| p != l.parent) {
            self.parents.push(l.parent.to_path_buf());
        }
        let mut text = |t: &str| {
            let start = self.text.len();
            self.text.push_str(t);
            (start, self.text.len())
        };
        let name = text(l.name);
        let user = l.user.map(text);
        self.jobs.push(SavedJob {
            key: l.key,
            uid: l.uid,
            parent: self.parents.len() - 1,
            name,
            user,
            ino: l.ino,
        });
    }

    fn replay(&self, f: &mut dyn FnMut(&Listed<'_>)) {
        let text = |(a, b): (usize, usize)| self.text.get(a..b).unwrap_or_default();
        for j in &self.jobs {
            let Some(parent) = self.parents.get(j.parent) else {
                continue;
            };
            f(&Listed {
                key: j.key,
                uid: j.uid,
                user: j.user.map(text),
                sluid: None,
                parent,
                name: text(j.name),
                ino: j.ino,
            });
        }
    }
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
    folders: HashMap<WatchDescriptor, (Slot, u64)>,
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
    fn watch(&mut self, path: &Path, key: (Slot, u64)) -> Option<WatchDescriptor> {
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
    fn drain(
        &mut self,
        open: &mut HashMap<(Slot, u64), OpenDir>,
        saved: &mut PerSlot<Option<Saved>>,
    ) {
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
                    saved.iter_mut().for_each(|s| *s = None);
                    return;
                }
            };
            for event in events {
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    open.values_mut().for_each(|d| d.entries = None);
                    saved.iter_mut().for_each(|s| *s = None);
                    continue;
                }
                // IGNORED: the folder went (or its file system), and the watch with it.
                let gone = event.mask.contains(EventMask::IGNORED);
                let key = if gone {
                    self.folders.remove(&event.wd)
                } else {
                    self.folders.get(&event.wd).copied()
                };
                match key {
                    Some((h, _)) => saved[h.index()] = None,
                    // A watch no folder is known by: whichever hierarchy it was, list again.
                    None => saved.iter_mut().for_each(|s| *s = None),
                }
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

    /// Calls `f` for each job folder of every supported layout under the root of hierarchy
    /// `h`. The root is listed once and only the layout
    /// folders it holds are opened, so an absent layout costs no failed `open`.
    pub(crate) fn list_jobs(
        &mut self,
        (h, root): (Slot, &Path),
        user_slices: bool,
        fds: &mut FdBudget,
        sluids: &mut Sluids,
        problems: &mut Vec<String>,
        f: &mut dyn FnMut(&Listed<'_>),
    ) {
        let v2 = h == Slot::V2;
        self.listed[h.index()] = self.scan;
        if self.replays_whole(h) {
            // The folders the saved listing went through stay open (see `begin`).
            self.keep_listing(h);
            if let Some(saved) = &self.saved[h.index()] {
                saved.replay(f);
            }
            return;
        }
        self.saved[h.index()] = None;
        self.settled = true;
        let before = problems.len();
        let mut saving = Saved::default();
        // (A job named by its SLUID is never saved: `Saved` keeps no SLUID.)
        let mut sluid_named = false;
        let f = &mut |l: &Listed<'_>| {
            sluid_named |= l.sluid.is_some();
            saving.push(l);
            f(l)
        };
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
        if self.settled && !sluid_named && problems.len() == before {
            self.saved[h.index()] = Some(saving);
        }
    }

    /// Starts a scan: folders that the last listing of their hierarchy did not reach (gone, or
    /// no longer holding jobs) are closed; with `relist`, every folder is listed again on this
    /// scan (see [`Lister::refresh`] for the others).
    pub(crate) fn begin(&mut self, scan: u64, relist: bool) {
        let watcher = &mut self.watcher;
        let listed = &self.listed;
        self.open.retain(|&(h, _), d| {
            let kept = d.used >= listed[h.index()];
            if !kept {
                if let Some(wd) = d.wd.take() {
                    watcher.forget(wd);
                }
            }
            kept
        });
        self.scan = scan;
        self.relist = relist;
        self.unwatched = false;
    }

    /// The inotify queue to wait on for job starts and ends, when every folder listed on this
    /// scan, and every folder kept open, is watched: a job folder created or removed under any
    /// of them then makes it readable. `None` otherwise (no inotify, a folder beyond the watch
    /// limit or the descriptor budget, a folder that could not be listed): callers must then
    /// look on a schedule.
    pub(crate) fn event_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        let all = !self.unwatched && self.open.values().all(|d| d.wd.is_some());
        self.watcher
            .inotify
            .as_ref()
            .filter(|_| all)
            .map(AsFd::as_fd)
    }

    /// Whether [`Lister::list_jobs`] would replay hierarchy `h`'s saved listing whole now (no
    /// event in it since, no full listing due): call after [`Lister::refresh`].
    pub(crate) fn replays_whole(&self, h: Slot) -> bool {
        !self.relist && self.saved[h.index()].is_some()
    }

    /// What [`Lister::list_jobs`] does to hierarchy `h` when it [replays it
    /// whole](Lister::replays_whole), without handing out its jobs: for a caller that knows
    /// them already (the same as on its last listing).
    pub(crate) fn keep_listing(&mut self, h: Slot) {
        self.listed[h.index()] = self.scan;
        counted(Call::Replay);
        let scan = self.scan;
        self.open
            .iter_mut()
            .filter(|(k, _)| k.0 == h)
            .for_each(|(_, d)| d.used = scan);
    }

    /// Takes in the changes reported since the last call: the folders in which something was
    /// created or removed are listed again. Called just before listing, after the CPU-time
    /// reads, so that a job folder removed after its read is not replayed.
    pub(crate) fn refresh(&mut self) {
        self.watcher.drain(&mut self.open, &mut self.saved);
    }
}

/// One hierarchy's listing. The layouts (`super::layout`) walk their folders with
/// [`ListCtx::list`].
pub(super) struct ListCtx<'a> {
    lister: &'a mut Lister,
    h: Slot,
    fds: &'a mut FdBudget,
    pub(super) sluids: &'a mut Sluids,
    pub(super) problems: &'a mut Vec<String>,
}

impl ListCtx<'_> {
    /// This listing depends on more than its folders (a SLUID looked up): not to be replayed.
    pub(super) fn unsettled(&mut self) {
        self.lister.settled = false;
    }
}

/// Where a layout hands each job folder it finds.
pub(super) type Sink<'a> = &'a mut dyn FnMut(&Listed<'_>);

impl ListCtx<'_> {
    /// Calls `f(name, inode)` for each entry of `dir` whose name is UTF-8 (`.` and `..` left
    /// out); true when `dir` could be listed. With `ino` (the folder's inode number from its
    /// parent's listing, 0 for a root), the folder is kept open under it. A folder that does
    /// not exist is empty (Slurm creates `slurm_<node>/` only with the first job; a uid folder
    /// goes away with the user's last job); other errors are problems when `report` is set.
    pub(super) fn list(
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
            unwatched,
            settled,
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
                    *unwatched |= d.wd.is_none();
                    d.used = *scan;
                    d.entries = list_cached(&d.file, buf, d.wd.is_some(), f);
                    *settled &= d.entries.is_some();
                    return true;
                }
                if let Some(wd) = open.remove(&key).and_then(|d| d.wd) {
                    watcher.forget(wd);
                }
            }
        }
        counted(Call::Open);
        // Settled only if opened, watched and read whole below (or absent: its parent, watched,
        // reports its creation).
        let was_settled = std::mem::replace(settled, false);
        let opening = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir);
        let file = match opening {
            Ok(file) => file,
            Err(e) if is_gone(&e) => {
                *settled = was_settled;
                return true;
            }
            Err(e) => {
                *unwatched = true;
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
                *unwatched |= wd.is_none();
                let entries = list_cached(&file, buf, wd.is_some(), f);
                *settled = was_settled && entries.is_some();
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
                *unwatched = true;
                list_open(&file, buf, f);
                true
            }
        }
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
