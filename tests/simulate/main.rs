//! `joulebook-exporter simulate`, end to end: the built binary on `fixtures/simulate/small.yaml`
//! (half a day, four nodes with an AMD GPU node, wraps, a restart, a 2-node job, a job shorter than a scrape).
//!
//! - the same seed gives the same bytes, another seed other bytes;
//! - in the output, at every node and timestamp, jobs + unallocated = node per component, to the
//!   microjoule; energy counters never decrease; health counters reset only at the restart;
//!   counters wrapped;
//! - every job's last `joulebook_job_joules_total` equals the truth file, and the truth's hardware
//!   totals and model shares agree with what the exporter counted;
//! - promtool backfills the file and a real Prometheus on 127.0.0.1 answers like the truth;
//! - the VictoriaMetrics format has millisecond timestamps and no `# EOF`, and a real
//!   VictoriaMetrics imports it and answers like the truth;
//! - bad scenarios exit with status 2, naming the file, line and key.
//!
//! promtool and prometheus come from Debian's `prometheus` package, victoria-metrics from
//! `victoria-metrics` (scripts/install-test-deps); a missing one fails the test.

mod devices;
mod engines;
mod output;
mod scenarios;

use joulebook_tests::prometheus::{backfill_openmetrics, Prometheus, VictoriaMetrics};
use joulebook_tests::{assert_same, binary, fixture, json_report};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One sample line: metric name, labels, value, timestamp.
#[derive(Debug, Clone)]
struct Line {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    ts: i64,
}

/// Parses `name{a="b",...} value ts` (label values may hold escaped quotes and braces).
fn parse_line(line: &str) -> Option<Line> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' => {}
                '=' => {
                    let mut value = String::new();
                    chars.next(); // opening quote
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, e)) = chars.next() {
                                    value.push(match e {
                                        'n' => '\n',
                                        other => other,
                                    });
                                }
                            }
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &r[end?..];
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next()?.parse().ok()?;
    let ts = fields.next()?.parse().ok()?;
    Some(Line {
        name,
        labels,
        value,
        ts,
    })
}

fn uj(j: f64) -> i64 {
    (j * 1e6).round() as i64
}

struct Run {
    _dir: tempfile::TempDir,
    out: PathBuf,
    truth: Value,
    text: String,
}

fn simulate(scenario: &Path, dir: &Path, tag: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let out = dir.join(format!("{tag}.om"));
    let truth = dir.join(format!("{tag}.json"));
    let o = Command::new(binary("joulebook-exporter"))
        .arg("simulate")
        .arg("--scenario")
        .arg(scenario)
        .arg("--out")
        .arg(&out)
        .arg("--truth")
        .arg(&truth)
        .args(extra)
        .output()
        .expect("run joulebook-exporter simulate");
    assert!(
        o.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (out, truth)
}

/// The small scenario, simulated once for all the tests of this file.
fn small() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary folder");
        let scenario = fixture("simulate/small.yaml");
        simulated(dir, &scenario, "a")
    })
}

/// An Intel GPU node for small.yaml (`xe01`, its last node group): two Data Center GPU Max 1550,
/// named as the intel_gpu source names them (`Intel GPU <PCI device id>`; 0x0bd5 is the Max
/// 1550 in the kernel's `xe_pciids.h`, PVC ids), at most 600 W each (Intel's rated board power
/// of the Max 1550); the idle draw is an illustrative figure.
const INTEL_GROUP: &str = "
  - name: xe
    count: 1
    partition: gpu
    sockets: 2
    cores_per_socket: 4
    threads_per_core: 2
    memory: 64GiB
    cpu_model: \"Intel(R) Xeon(R) Platinum 8480+\"
    package_watts: {idle: 80, max: 350}
    dram_watts: {idle: 5, max: 20}
    gpus: {count: 2, model: \"Intel GPU 0x0bd5\", vendor: intel, idle_watts: 100, max_watts: 600}
";

/// small.yaml with an Intel GPU node, simulated once.
fn intel() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary folder");
        let text = std::fs::read_to_string(fixture("simulate/small.yaml")).expect("small.yaml");
        let at = text.find("\nprojects:").expect("small.yaml has projects");
        let scenario = dir.path().join("intel.yaml");
        let with_intel = format!("{}{INTEL_GROUP}{}", &text[..at], &text[at..]);
        std::fs::write(&scenario, with_intel).expect("write intel.yaml");
        simulated(dir, &scenario, "i")
    })
}

/// Simulates `scenario` into `dir` and keeps its output, truth and folder.
fn simulated(dir: tempfile::TempDir, scenario: &Path, tag: &str) -> Run {
    let (out, truth) = simulate(scenario, dir.path(), tag, &[]);
    let truth: Value =
        serde_json::from_slice(&std::fs::read(&truth).expect("truth file")).expect("JSON");
    let text = std::fs::read_to_string(&out).expect("output");
    Run {
        _dir: dir,
        out,
        truth,
        text,
    }
}

fn samples(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("unparsable line {l:?}")))
        .collect()
}
