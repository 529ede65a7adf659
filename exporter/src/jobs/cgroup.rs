//! The cgroup filesystem: which hierarchies are mounted, where each scheduler puts its jobs (the
//! names of the layouts' folders, and the job of a process's cgroup path), the budget of
//! descriptors kept open, and the subfolders of a job. The layouts are listed in the parent
//! module's documentation; their folders are walked by `lister`.

use super::reader::Vanished;
use super::{CgroupMode, JobsError};
#[cfg(test)]
pub(crate) use crate::fileio::calls;
pub(crate) use crate::fileio::{counted, is_gone, read_again, read_all, Call};
use std::ffi::OsStr;
use std::io;
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

/// One hierarchy: a v1 controller's folder or the v2 hierarchy. Per-hierarchy arrays
/// ([`PerSlot`]) and bit sets are indexed by [`Slot::index`]: the v1 controllers in
/// [`Controller`] order, then v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    V1(Controller),
    V2,
}

impl Slot {
    /// How many hierarchies there are.
    pub(crate) const COUNT: usize = Controller::ALL.len() + 1;
    /// Every hierarchy, in index order.
    pub(crate) const ALL: [Slot; Slot::COUNT] = [
        Slot::V1(Controller::Freezer),
        Slot::V1(Controller::Cpuset),
        Slot::V1(Controller::Cpuacct),
        Slot::V1(Controller::Memory),
        Slot::V1(Controller::Devices),
        Slot::V2,
    ];

    /// The hierarchy's index in a [`PerSlot`] array.
    pub(crate) const fn index(self) -> usize {
        match self {
            Slot::V1(c) => c as usize,
            Slot::V2 => Controller::ALL.len(),
        }
    }

    /// The hierarchy's bit in a set of hierarchies (`JobCache::listed_in`).
    pub(crate) const fn bit(self) -> u8 {
        1 << self.index()
    }
}

/// Per-hierarchy slots, indexed by [`Slot::index`].
pub(crate) type PerSlot<T> = [T; Slot::COUNT];

impl Found {
    /// The job's folder in hierarchy `h`.
    pub(crate) fn slot(&mut self, h: Slot) -> &mut Option<PathBuf> {
        match h {
            Slot::V1(c) => &mut self.v1[c as usize],
            Slot::V2 => &mut self.v2,
        }
    }
}

impl Hierarchy {
    /// The root of hierarchy `h`, if mounted.
    pub(crate) fn root(&self, h: Slot) -> Option<&Path> {
        match h {
            Slot::V1(c) => self.v1[c as usize].as_deref(),
            Slot::V2 => self.v2.as_deref(),
        }
    }
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

    #[test]
    fn each_hierarchy_has_its_own_index_and_bit() {
        for (i, s) in Slot::ALL.into_iter().enumerate() {
            assert_eq!(s.index(), i, "{s:?}");
        }
        for c in Controller::ALL {
            assert_eq!(Slot::V1(c).index(), c as usize, "{c:?}");
        }
        let bits: u8 = Slot::ALL.iter().map(|s| s.bit()).fold(0, |a, b| a | b);
        assert_eq!(bits.count_ones() as usize, Slot::COUNT);
    }
}
