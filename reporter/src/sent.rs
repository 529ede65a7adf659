//! The send record of `email`: for one period (and `--cluster`), the (report, address) pairs
//! already delivered, so that a re-run after a failure sends only what was not (`--resend` sends
//! everything again). One text file in the state folder, `sent-START-END[-cluster-NAME].tsv`, a
//! line per delivery (report, address, time, tab-separated), rewritten through [`crate::output`]
//! after every delivery: a crash can at most send the message in flight a second time.

use crate::output::write_files;
use crate::period::{iso_utc as iso, Period};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

pub struct SendRecord {
    /// None: no folder to keep it in, nothing is remembered.
    dir: Option<PathBuf>,
    name: String,
    header: String,
    /// (report, address) → when it was delivered (ISO 8601).
    sent: BTreeMap<(String, String), String>,
}

impl SendRecord {
    /// Reads the period's record from `dir` if there is one (writes nothing: see [`Self::save`]).
    pub fn open(
        dir: Option<&Path>,
        period: &Period,
        cluster: Option<&str>,
    ) -> Result<SendRecord, RecordError> {
        let compact = |t: i64| iso(t).replace(':', "");
        let mut name = format!("sent-{}-{}", compact(period.start), compact(period.end));
        if let Some(c) = cluster {
            name.push_str("-cluster-");
            name.extend(c.chars().map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.' {
                    ch
                } else {
                    '_'
                }
            }));
        }
        name.push_str(".tsv");
        let mut r = SendRecord {
            dir: dir.map(Path::to_path_buf),
            name,
            header: format!(
                "# joulebook-report email: messages delivered for {period}{}; delete a line to send that message again\n",
                cluster.map(|c| format!(", cluster {c}")).unwrap_or_default()
            ),
            sent: BTreeMap::new(),
        };
        let Some(path) = r.path() else {
            return Ok(r);
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => r.sent = parse(&text, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RecordError(format!(
                    "cannot read the send record {}: {e}",
                    path.display()
                )))
            }
        }
        Ok(r)
    }

    /// The file, when there is a folder to keep it in.
    pub fn path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(&self.name))
    }

    pub fn contains(&self, report: &str, address: &str) -> bool {
        self.sent
            .contains_key(&(report.to_string(), address.to_string()))
    }

    /// Records one delivery at `at` (Unix seconds) and writes the record.
    pub fn add(&mut self, report: &str, address: &str, at: i64) -> Result<(), RecordError> {
        self.sent
            .insert((report.to_string(), address.to_string()), iso(at));
        self.save()
    }

    /// Writes the record; called once before sending, so that a folder that cannot be written
    /// fails before anything is sent.
    pub fn save(&self) -> Result<(), RecordError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut text = self.header.clone();
        for ((report, address), at) in &self.sent {
            text.push_str(&format!("{report}\t{address}\t{at}\n"));
        }
        write_files(dir, &[(self.name.clone(), text.into_bytes())])
            .map_err(|e| RecordError(format!("cannot write the send record: {e}")))
    }
}

fn parse(text: &str, path: &Path) -> Result<BTreeMap<(String, String), String>, RecordError> {
    let mut sent = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let [report, address, at] = f[..] else {
            return Err(RecordError(format!(
                "send record {} line {}: expected a report, an address and a time separated by tabs, found {line:?} (fix or delete the line; a deleted line is sent again)",
                path.display(),
                n + 1
            )));
        };
        sent.insert((report.to_string(), address.to_string()), at.to_string());
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCT: Period = Period {
        start: 1_790_812_800,
        end: 1_793_491_200,
    };

    #[test]
    fn deliveries_survive_a_reopen_per_period_and_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = SendRecord::open(Some(dir.path()), &OCT, None).unwrap();
        let path = r.path().unwrap();
        assert_eq!(
            path.file_name().unwrap(),
            "sent-2026-10-01T000000Z-2026-11-01T000000Z.tsv"
        );
        assert!(!path.exists(), "nothing written at open");
        r.save().unwrap();
        assert!(path.exists());
        r.add("report", "admin@x.org", OCT.end).unwrap();
        let again = SendRecord::open(Some(dir.path()), &OCT, None).unwrap();
        assert!(again.contains("report", "admin@x.org"));
        assert!(!again.contains("report-user-a", "admin@x.org"));
        let other = SendRecord::open(Some(dir.path()), &OCT, Some("c2/x")).unwrap();
        assert!(!other.contains("report", "admin@x.org"));
        assert!(other
            .path()
            .unwrap()
            .ends_with("sent-2026-10-01T000000Z-2026-11-01T000000Z-cluster-c2_x.tsv"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with("report\tadmin@x.org\t2026-11-01T00:00:00Z\n"),
            "{text}"
        );
    }

    #[test]
    fn without_a_folder_nothing_is_remembered() {
        let mut r = SendRecord::open(None, &OCT, None).unwrap();
        r.add("report", "a@x.org", 0).unwrap();
        assert!(r.path().is_none());
    }

    #[test]
    fn a_damaged_record_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = SendRecord::open(Some(dir.path()), &OCT, None)
            .unwrap()
            .path()
            .unwrap();
        std::fs::write(&path, "# x\nreport\ta@x.org\t2026\nbroken\n").unwrap();
        let e = SendRecord::open(Some(dir.path()), &OCT, None)
            .err()
            .unwrap()
            .0;
        assert!(e.contains(&format!("{} line 3", path.display())), "{e}");
    }
}
