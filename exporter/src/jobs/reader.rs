//! Reading a job's small cgroup files by path or from a file kept open, telling "this job just
//! ended" ([`Vanished`]) from "this file is bad" (a problem naming the file).

use super::cgroup::FdBudget;
use crate::fileio::{counted, is_gone, read_again, read_all, Call};
use std::fs::File;
use std::path::{Path, PathBuf};

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
