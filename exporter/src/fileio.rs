//! Reading small kernel files (sysfs, cgroupfs, procfs) the way the sources and job discovery
//! need: into a reused buffer with plain `read`s, and again from a file kept open with one
//! `pread` (no path lookup). Telling "this file went away" (a removed cgroup, an exited
//! process) from a real error. A leaf module: it knows nothing of jobs or sources.
//!
//! In tests, the file system calls made through it are counted per thread ([`counted`]), so
//! that tests can bound what a scan costs.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes asked for per `read` call: every cgroup file joulebook reads but `cgroup.procs`
/// fits in one.
const CHUNK: usize = 4096;

/// True for errors that mean "it is not there (any more)": ENOENT, and ENODEV from a file of
/// a cgroup removed between open and read, and ESRCH from a /proc entry of a process that exited.
pub(crate) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ESRCH))
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
