//! Writes the exporter's own exposition text, one node and one scrape at a time, as a timestamped
//! file for backfilling.
//!
//! Each scrape of each node is encoded by [`crate::metrics::encode`], exactly as `/metrics` would
//! serve it; this module only adds the target labels Prometheus would add on scrape (`instance`,
//! `job`) plus `cluster`, and the scrape's timestamp, so it never needs to know a metric's name.
//!
//! What `promtool tsdb create-blocks-from openmetrics` (Prometheus 2.42) needs, from its source
//! (`cmd/promtool/backfill.go`, `model/textparse/openmetricsparse.go`):
//! - every sample has a timestamp (seconds; the parser keeps milliseconds);
//! - the samples of each series come in increasing time order (the block writer's appender
//!   rejects an older sample of a series as out of order, and a different value at the same time
//!   as a duplicate, and the whole backfill fails);
//! - the file ends with `# EOF` and nothing after it;
//! - `# UNIT` lines name a unit that is a suffix of the family name, label values are UTF-8.
//!
//! It does not need metadata lines, and it neither checks nor uses family grouping: metadata is
//! ignored and every sample is appended on its own. This writer therefore streams scrape after
//! scrape (time order within every series comes for free) and writes each family's `# HELP`,
//! `# TYPE` and `# UNIT` once, where the family first appears. A strictly conforming OpenMetrics
//! exposition would group each family (and each series) in one place, which for a month of data
//! means transposing the whole file; promtool does not need it, so it is not done.

use std::collections::HashSet;
use std::io::{self, Write};

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    /// OpenMetrics text with timestamps in seconds and a final `# EOF`: for promtool.
    OpenMetrics,
    /// The classic Prometheus text format with timestamps in milliseconds: for VictoriaMetrics'
    /// `/api/v1/import/prometheus` (and anything else that reads the classic format).
    PrometheusText,
}

impl OutFormat {
    pub fn exposition(self) -> crate::metrics::Format {
        match self {
            OutFormat::OpenMetrics => crate::metrics::Format::OpenMetrics,
            OutFormat::PrometheusText => crate::metrics::Format::Text,
        }
    }
}

pub struct Writer<W: Write> {
    out: W,
    format: OutFormat,
    /// Metadata lines already written (`HELP name`, `TYPE name`, `UNIT name`).
    described: HashSet<String>,
    pub bytes: u64,
    pub samples: u64,
    line: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, format: OutFormat) -> Self {
        Writer {
            out,
            format,
            described: HashSet::new(),
            bytes: 0,
            samples: 0,
            line: Vec::with_capacity(512),
        }
    }

    /// Writes one scrape: `text` as the exporter encoded it, `target` the labels to add
    /// (`instance="n1:9977",job="joulebook",cluster="c"`), `unix` the scrape time in seconds.
    pub fn scrape(&mut self, text: &str, target: &str, unix: i64) -> io::Result<()> {
        let ts = match self.format {
            OutFormat::OpenMetrics => unix.to_string(),
            OutFormat::PrometheusText => (unix * 1000).to_string(),
        };
        for line in text.lines() {
            if line.is_empty() || line == "# EOF" {
                continue;
            }
            if let Some(meta) = line.strip_prefix("# ") {
                // `HELP name text`, `TYPE name type`, `UNIT name unit`: keep the first of each.
                let mut parts = meta.splitn(3, ' ');
                let key = format!(
                    "{} {}",
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or("")
                );
                if self.described.insert(key) {
                    self.write_line(line.as_bytes())?;
                }
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let (name, rest) = line.split_at(name_end);
            let buf = &mut self.line;
            buf.clear();
            buf.extend_from_slice(name.as_bytes());
            buf.push(b'{');
            buf.extend_from_slice(target.as_bytes());
            match rest.strip_prefix('{') {
                Some(r) if r.starts_with('}') => buf.extend_from_slice(r.as_bytes()),
                Some(r) => {
                    buf.push(b',');
                    buf.extend_from_slice(r.as_bytes());
                }
                None => {
                    buf.push(b'}');
                    buf.extend_from_slice(rest.as_bytes());
                }
            }
            buf.push(b' ');
            buf.extend_from_slice(ts.as_bytes());
            let line = std::mem::take(&mut self.line);
            let r = self.write_line(&line);
            self.line = line;
            r?;
            self.samples += 1;
        }
        Ok(())
    }

    fn write_line(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.out.write_all(b"\n")?;
        self.bytes += b.len() as u64 + 1;
        Ok(())
    }

    /// Ends the file (`# EOF` for OpenMetrics) and returns the writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        if self.format == OutFormat::OpenMetrics {
            self.write_line(b"# EOF")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_target_labels_and_timestamps_and_describes_once() {
        let text = "# HELP a_joules A.\n# TYPE a_joules counter\n# UNIT a_joules joules\na_joules_total{x=\"1\"} 2.5\n# HELP b B.\n# TYPE b gauge\nb 3\n# EOF\n";
        let mut w = Writer::new(Vec::new(), OutFormat::OpenMetrics);
        w.scrape(text, "instance=\"n:9977\"", 60).unwrap();
        w.scrape(text, "instance=\"n:9977\"", 120).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            out,
            "# HELP a_joules A.\n# TYPE a_joules counter\n# UNIT a_joules joules\n\
             a_joules_total{instance=\"n:9977\",x=\"1\"} 2.5 60\n# HELP b B.\n# TYPE b gauge\n\
             b{instance=\"n:9977\"} 3 60\na_joules_total{instance=\"n:9977\",x=\"1\"} 2.5 120\n\
             b{instance=\"n:9977\"} 3 120\n# EOF\n"
        );
        let mut w = Writer::new(Vec::new(), OutFormat::PrometheusText);
        w.scrape("c{} 1\n", "i=\"x\"", 2).unwrap();
        assert_eq!(
            String::from_utf8(w.finish().unwrap()).unwrap(),
            "c{i=\"x\"} 1 2000\n"
        );
    }
}
