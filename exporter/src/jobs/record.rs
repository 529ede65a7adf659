//! Job records written by the scheduler's prolog (deploy/gpu-map/joulebook-gpu-map, run as
//! root by slurmd or OAR) and removed by its epilog: the most trusted source of a job's
//! metadata, since the prolog's environment is set by the scheduler's daemon, not by the job's
//! user.
//!
//! Format: `<record_dir>/<jobid>`, at most [`MAX_RECORD_BYTES`], one `key=value` per line:
//! `job_id` (required, decimal), `sluid`, `user`, `uid` (decimal), `account`, `partition`,
//! `job_name`, `gpus` (comma-separated indices or UUIDs). Unknown keys and lines without `=`
//! are ignored; values are cut at [`super::MAX_LABEL_BYTES`]. A Slurm 26.05 job also has its
//! SLUID linked to the record (`<record_dir>/<SLUID>` → `<jobid>`).
//!
//! Trust: a record is used only when it is a regular file owned by root (or by the exporter's
//! own user, for tests and unprivileged installs) that neither group nor others may write.

use super::clip;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A record larger than this is not a record the prolog wrote: refused.
pub(crate) const MAX_RECORD_BYTES: u64 = 8192;

/// One job's record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Record {
    pub job_id: String,
    pub sluid: Option<String>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub account: Option<String>,
    pub partition: Option<String>,
    pub job_name: Option<String>,
    pub gpus: Option<String>,
}

/// Reads the record at `path`: `Ok(None)` when there is none, `Err` with the reason when the
/// file is there but is no record to trust.
pub(crate) fn read(path: &Path, buf: &mut Vec<u8>) -> Result<Option<Record>, String> {
    super::cgroup::counted(super::cgroup::Call::Open);
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read job record {}: {e}", path.display())),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read job record {}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file()
        || (meta.uid() != 0 && meta.uid() != me)
        || meta.mode() & 0o022 != 0
        || meta.len() > MAX_RECORD_BYTES
    {
        return Err(format!(
            "job record {} ignored: it must be a regular file of at most {MAX_RECORD_BYTES} bytes, owned by root and writable by its owner only",
            path.display()
        ));
    }
    buf.clear();
    file.take(MAX_RECORD_BYTES)
        .read_to_end(buf)
        .map_err(|e| format!("cannot read job record {}: {e}", path.display()))?;
    parse(&String::from_utf8_lossy(buf))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "job record {}: no valid job_id line (decimal digits)",
                path.display()
            )
        })
}

/// Parses a record's text; `None` without a valid `job_id`.
pub(crate) fn parse(text: &str) -> Option<Record> {
    let mut r = Record::default();
    let mut id = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let set = |slot: &mut Option<String>| {
            if slot.is_none() && !v.is_empty() {
                *slot = Some(clip(v).to_string());
            }
        };
        match k.trim() {
            "job_id" => {
                let v = v.trim();
                if id.is_none()
                    && !v.is_empty()
                    && v.len() <= 20
                    && v.bytes().all(|b| b.is_ascii_digit())
                {
                    id = Some(v.to_string());
                }
            }
            "sluid" => set(&mut r.sluid),
            "user" => set(&mut r.user),
            "uid" => r.uid = r.uid.or_else(|| v.trim().parse().ok()),
            "account" => set(&mut r.account),
            "partition" => set(&mut r.partition),
            "job_name" => set(&mut r.job_name),
            "gpus" => set(&mut r.gpus),
            _ => {}
        }
    }
    r.job_id = id?;
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_need_a_job_id() {
        let r = parse("job_id=42\nsluid=sEKNKTV3WPV500\nuser=alice\nuid=1000\naccount=physics\npartition=gpu\njob_name=a=b\ngpus=0,1\nother=x\n")
            .expect("record");
        assert_eq!(r.job_id, "42");
        assert_eq!(r.sluid.as_deref(), Some("sEKNKTV3WPV500"));
        assert_eq!(r.uid, Some(1000));
        assert_eq!(r.job_name.as_deref(), Some("a=b"));
        assert_eq!(r.gpus.as_deref(), Some("0,1"));
        assert_eq!(parse("user=alice\n"), None);
        assert_eq!(parse("job_id=4x\n"), None);
        let long = parse(&format!("job_id=1\naccount={}\n", "a".repeat(100_000))).expect("r");
        assert_eq!(
            long.account.map(|a| a.len()),
            Some(super::super::MAX_LABEL_BYTES)
        );
    }

    #[test]
    fn untrusted_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("7");
        std::fs::write(&path, "job_id=7\naccount=a\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut buf = Vec::new();
        assert_eq!(
            read(&path, &mut buf).ok().flatten().map(|r| r.job_id),
            Some("7".into())
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(read(&path, &mut buf).is_err());
        assert_eq!(read(&dir.path().join("8"), &mut buf), Ok(None));
    }
}
