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

use joulebook_tests::prometheus::{backfill_openmetrics, Prometheus, VictoriaMetrics};
use joulebook_tests::{binary, fixture};
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

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let run = small();
    let dir = tempfile::tempdir().unwrap();
    let (out, truth) = simulate(&fixture("simulate/small.yaml"), dir.path(), "b", &[]);
    assert!(
        std::fs::read(&out).unwrap() == run.text.as_bytes(),
        "two runs with the same seed differ"
    );
    let t: Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    assert_eq!(t, run.truth);
    let (out, _) = simulate(
        &fixture("simulate/small.yaml"),
        dir.path(),
        "c",
        &["--seed", "8"],
    );
    assert!(std::fs::read(&out).unwrap() != run.text.as_bytes());
}

#[test]
fn the_file_is_what_promtool_needs() {
    let run = small();
    assert!(run.text.ends_with("# EOF\n"));
    assert_eq!(run.text.matches("# EOF").count(), 1);
    let mut described = std::collections::HashSet::new();
    let mut last_ts: BTreeMap<String, i64> = BTreeMap::new();
    for line in run.text.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            if meta != "EOF" {
                assert!(
                    described.insert(meta.split(' ').take(2).collect::<Vec<_>>().join(" ")),
                    "metadata written twice: {line}"
                );
            }
            continue;
        }
        let l = parse_line(line).unwrap();
        for k in ["instance", "job", "cluster"] {
            assert!(l.labels.contains_key(k), "{line}");
        }
        assert_eq!(l.labels["cluster"], "testlab");
        assert_eq!(l.labels["job"], "joulebook");
        let series = line.rsplitn(3, ' ').nth(2).unwrap().to_string();
        if let Some(prev) = last_ts.insert(series, l.ts) {
            assert!(l.ts > prev, "series out of time order: {line}");
        }
    }
}

/// A restart that lost its state file (`lose_state`): the node's counters start again from zero
/// and its restart marker moves to the first cycle after it; the other nodes' markers stay.
#[test]
fn restart_without_state_moves_the_restart_marker() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let text = std::fs::read_to_string(fixture("simulate/small.yaml")).expect("small.yaml");
    let text = text
        .replace("duration: 12h", "duration: 4h")
        .replace("  - {start: 2025-03-03T12:00:00Z, duration: 1h}\n", "")
        .replace("maintenance:\n", "")
        .replace("downtime: 30s}", "downtime: 30s, lose_state: true}");
    assert!(
        text.contains("lose_state: true"),
        "small.yaml's restart changed"
    );
    let scenario = dir.path().join("lost.yaml");
    std::fs::write(&scenario, text).expect("write lost.yaml");
    let (out, truth) = simulate(&scenario, dir.path(), "l", &[]);
    let truth: Value = serde_json::from_slice(&std::fs::read(truth).expect("truth")).expect("JSON");
    let up = truth["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "cpu01")
        .and_then(|n| n["restarts"][0]["up_unix"].as_f64())
        .expect("cpu01's restart");
    let lines = samples(&std::fs::read_to_string(out).expect("output"));
    let mut markers: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut cpu_energy: Vec<(i64, f64)> = Vec::new();
    for l in &lines {
        let inst = l.labels["instance"].clone();
        if l.name == "joulebook_counters_start_time_seconds" {
            markers.entry(inst).or_default().insert(l.value as u64);
        } else if inst == "cpu01:9977"
            && l.name == "joulebook_node_joules_total"
            && l.labels["component"] == "cpu"
        {
            cpu_energy.push((l.ts, l.value));
        }
    }
    let cpu01 = &markers["cpu01:9977"];
    assert_eq!(cpu01.len(), 2, "{markers:?}");
    assert_eq!(
        cpu01.last().copied(),
        Some(up as u64),
        "moved to the first cycle after"
    );
    assert!(markers
        .iter()
        .filter(|(i, _)| *i != "cpu01:9977")
        .all(|(_, m)| m.len() == 1));
    assert!(
        cpu_energy.windows(2).any(|w| w[1].1 < w[0].1 / 2.0),
        "the counters started again from zero"
    );
}

#[test]
fn jobs_plus_unallocated_equal_the_node_and_counters_only_grow() {
    jobs_plus_unallocated_equal_the_node_and_counters_only_grow_in(small());
    jobs_plus_unallocated_equal_the_node_and_counters_only_grow_in(intel());
}

fn jobs_plus_unallocated_equal_the_node_and_counters_only_grow_in(run: &Run) {
    let lines = samples(&run.text);
    let restarts = restart_ups(run);
    // Per instance and timestamp: node and unallocated by component; the job values scraped.
    let mut node: BTreeMap<Key, BTreeMap<String, i64>> = BTreeMap::new();
    let mut unallocated: BTreeMap<Key, BTreeMap<String, i64>> = BTreeMap::new();
    let mut jobs_at: BTreeMap<Key, Vec<(String, String, i64)>> = BTreeMap::new();
    let mut last: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    let mut wraps = 0.0f64;
    // The restart marker of each instance: set by its first cycle, kept through every restart
    // (the simulator's exporters resume from their state file).
    let mut marker: BTreeMap<String, f64> = BTreeMap::new();
    for l in &lines {
        let inst = l.labels["instance"].clone();
        if l.name == "joulebook_counters_start_time_seconds" {
            let first = *marker.entry(inst.clone()).or_insert(l.value);
            assert_eq!(l.value, first, "{inst}: the marker moved at {}", l.ts);
            assert!(
                l.value > 0.0 && l.value <= l.ts as f64,
                "{inst}: {}",
                l.value
            );
        }
        let series = format!("{}{:?}", l.name, l.labels);
        let counter = l.name.ends_with("_total");
        if let Some((ts, prev)) = last.insert(series.clone(), (l.ts, l.value)) {
            if counter && l.value < prev {
                // Only the exporter's own health counters restart with the process (they are
                // not in the state file), at the first scrape after it came back; energy and
                // job counters never go back.
                let health =
                    ["joulebook_samples_total", "joulebook_wraps_total"].contains(&l.name.as_str());
                let restarted = restarts[&inst].iter().any(|up| ts < *up && *up <= l.ts);
                assert!(
                    health && restarted,
                    "{series} went from {prev} to {} between {ts} and {}",
                    l.value,
                    l.ts
                );
            }
        }
        let key = (inst, l.ts);
        match l.name.as_str() {
            "joulebook_node_joules_total" => {
                node.entry(key)
                    .or_default()
                    .insert(l.labels["component"].clone(), uj(l.value));
            }
            "joulebook_unallocated_joules_total" => {
                unallocated
                    .entry(key)
                    .or_default()
                    .insert(l.labels["component"].clone(), uj(l.value));
            }
            "joulebook_job_joules_total" => jobs_at.entry(key).or_default().push((
                l.labels["job_id"].clone(),
                l.labels["component"].clone(),
                uj(l.value),
            )),
            "joulebook_wraps_total" if l.labels["source"] == "rapl" => wraps = wraps.max(l.value),
            _ => {}
        }
    }
    assert!(
        wraps > 100.0,
        "the small RAPL ranges should wrap often: {wraps}"
    );
    assert_eq!(
        marker.keys().collect::<Vec<_>>(),
        restarts.keys().collect::<Vec<_>>(),
        "every node publishes the marker"
    );
    let checked = assert_balanced(&node, &unallocated, &jobs_at);
    assert!(checked > 2000, "{checked}");
}

/// (instance, Unix seconds) of a scrape.
type Key = (String, i64);

/// The Unix seconds at which each instance's exporter came back from a restart, by instance.
fn restart_ups(run: &Run) -> BTreeMap<String, Vec<i64>> {
    run.truth["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ups = n["restarts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["up_unix"].as_i64().unwrap())
                .collect();
            (format!("{}:9977", n["name"].as_str().unwrap()), ups)
        })
        .collect()
}

/// Asserts jobs (the last value of every job seen so far) + unallocated = node at every scrape
/// of every instance, per component; returns how many were checked.
fn assert_balanced(
    node: &BTreeMap<Key, BTreeMap<String, i64>>,
    unallocated: &BTreeMap<Key, BTreeMap<String, i64>>,
    jobs_at: &BTreeMap<Key, Vec<(String, String, i64)>>,
) -> usize {
    let mut job_last: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    let mut checked = 0;
    for ((inst, ts), comps) in node {
        for (job, comp, v) in jobs_at.get(&(inst.clone(), *ts)).into_iter().flatten() {
            job_last.insert((inst.clone(), job.clone(), comp.clone()), *v);
        }
        for (comp, n) in comps {
            let jobs: i64 = job_last
                .iter()
                .filter(|((i, _, c), _)| i == inst && c == comp)
                .map(|(_, v)| v)
                .sum();
            let un = unallocated[&(inst.clone(), *ts)][comp];
            assert_eq!(
                jobs + un,
                *n,
                "{inst} at {ts}, {comp}: jobs {jobs} + unallocated {un} != node {n}"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn owner_counters_are_the_sums_of_their_jobs_counters() {
    owner_counters_are_the_sums_of_their_jobs_counters_in(small());
    owner_counters_are_the_sums_of_their_jobs_counters_in(intel());
}

/// At every node and timestamp, each (account, user) pair's energy counter equals the sum of the
/// last values of its jobs' counters on that node, to the microjoule, per component (so owners +
/// unallocated = node too), and its core-seconds the sum of its jobs' (to float rounding).
fn owner_counters_are_the_sums_of_their_jobs_counters_in(run: &Run) {
    type Pair = (String, String);
    let lines = samples(&run.text);
    // Per (instance, job): its pair, from joulebook_job_info.
    let mut owner_of: BTreeMap<(String, String), Pair> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.name == "joulebook_job_info") {
        let pair = (l.labels["account"].clone(), l.labels["user"].clone());
        owner_of.insert(
            (l.labels["instance"].clone(), l.labels["job_id"].clone()),
            pair,
        );
    }
    // Last value of every job and owner series so far, by (instance, pair, component).
    let mut jobs: BTreeMap<(String, String, String), (Pair, i64)> = BTreeMap::new();
    let mut job_core: BTreeMap<(String, String), (Pair, f64)> = BTreeMap::new();
    let mut owners: BTreeMap<(String, Pair, String), i64> = BTreeMap::new();
    let mut owner_core: BTreeMap<(String, Pair), f64> = BTreeMap::new();
    let mut by_time: BTreeMap<(String, i64), Vec<&Line>> = BTreeMap::new();
    for l in &lines {
        by_time
            .entry((l.labels["instance"].clone(), l.ts))
            .or_default()
            .push(l);
    }
    let (mut checked, mut pairs_seen) = (0, std::collections::BTreeSet::new());
    for ((inst, ts), ls) in &by_time {
        for l in ls {
            let pair = || (l.labels["account"].clone(), l.labels["user"].clone());
            let job_pair = || owner_of[&(inst.clone(), l.labels["job_id"].clone())].clone();
            match l.name.as_str() {
                "joulebook_job_joules_total" => {
                    let k = (
                        inst.clone(),
                        l.labels["job_id"].clone(),
                        l.labels["component"].clone(),
                    );
                    jobs.insert(k, (job_pair(), uj(l.value)));
                }
                "joulebook_job_core_seconds_total" => {
                    job_core.insert(
                        (inst.clone(), l.labels["job_id"].clone()),
                        (job_pair(), l.value),
                    );
                }
                "joulebook_owner_joules_total" => {
                    owners.insert(
                        (inst.clone(), pair(), l.labels["component"].clone()),
                        uj(l.value),
                    );
                }
                "joulebook_owner_core_seconds_total" => {
                    owner_core.insert((inst.clone(), pair()), l.value);
                }
                _ => {}
            }
        }
        for ((i, pair, comp), v) in owners.iter().filter(|((i, _, _), _)| i == inst) {
            let sum: i64 = jobs
                .iter()
                .filter(|((ji, _, c), (p, _))| ji == i && c == comp && p == pair)
                .map(|(_, (_, v))| v)
                .sum();
            assert_eq!(
                *v, sum,
                "{i} at {ts}, {pair:?} {comp}: owner {v} != its jobs {sum}"
            );
            pairs_seen.insert(pair.clone());
            checked += 1;
        }
        for ((i, pair), v) in owner_core.iter().filter(|((i, _), _)| i == inst) {
            let sum: f64 = job_core
                .iter()
                .filter(|((ji, _), (p, _))| ji == i && p == pair)
                .map(|(_, (_, v))| v)
                .sum();
            assert!(
                (v - sum).abs() <= 1e-6 * sum.max(1.0),
                "{i} at {ts}, {pair:?}: {v} != {sum}"
            );
        }
    }
    assert!(checked > 1000, "{checked}");
    assert!(pairs_seen.len() >= 2, "{pairs_seen:?}");
}

#[test]
fn every_job_ends_at_its_truth_and_the_truth_agrees_with_the_hardware() {
    every_job_ends_at_its_truth_and_the_truth_agrees_with_the_hardware_in(small());
    every_job_ends_at_its_truth_and_the_truth_agrees_with_the_hardware_in(intel());
}

fn every_job_ends_at_its_truth_and_the_truth_agrees_with_the_hardware_in(run: &Run) {
    let lines = samples(&run.text);
    let mut final_j: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    let mut info: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for l in &lines {
        match l.name.as_str() {
            "joulebook_job_joules_total" => {
                let node = l.labels["instance"].trim_end_matches(":9977").to_string();
                final_j.insert(
                    (
                        l.labels["job_id"].clone(),
                        node,
                        l.labels["component"].clone(),
                    ),
                    l.value,
                );
            }
            "joulebook_job_info" => {
                info.insert(l.labels["job_id"].clone(), l.labels.clone());
            }
            _ => {}
        }
    }
    let t = &run.truth;
    assert_eq!(t["schema"], "joulebook-simulate-truth/1");
    let jobs = t["jobs"].as_array().unwrap();
    assert!(jobs.len() >= 50);
    let mut seen_multi = false;
    let mut seen_tiny = false;
    for j in jobs {
        let id = j["id"].as_str().unwrap();
        if j["start_unix"].is_null() {
            continue;
        }
        let meta = &info[id];
        for k in ["user", "account", "partition"] {
            assert_eq!(meta[k], j[k].as_str().unwrap(), "job {id} {k}");
        }
        assert_eq!(meta["job_name"], j["name"].as_str().unwrap());
        for (node, by_comp) in j["by_node"].as_object().unwrap() {
            for (comp, v) in by_comp.as_object().unwrap() {
                let got = final_j[&(id.to_string(), node.clone(), comp.clone())];
                assert_eq!(got, v.as_f64().unwrap(), "job {id} on {node}, {comp}");
            }
        }
        let nodes = j["nodes"].as_array().unwrap().len();
        seen_multi |= nodes > 1;
        seen_tiny |= j["name"] == "tiny";
        // The model's share, computed from the hardware alone, matches the exporter's integer
        // attribution to within 1 µJ per split per cycle, except where a restart moved the
        // downtime's energy to the jobs running when the exporter came back.
        if !j["affected_by_restart"].as_bool().unwrap() {
            let cycles = (j["end_unix"]
                .as_i64()
                .unwrap_or(t["end_unix"].as_i64().unwrap())
                - j["start_unix"].as_i64().unwrap()) as f64
                / t["sample_interval_s"].as_f64().unwrap();
            for (comp, v) in j["energy_j"].as_object().unwrap() {
                let model = j["model_energy_j"][comp].as_f64().unwrap();
                let got = v.as_f64().unwrap();
                assert!(
                    got <= model + 1e-6 && model - got <= cycles * 8e-6 * nodes as f64 + 1e-6,
                    "job {id} {comp}: exporter {got} J, model {model} J"
                );
            }
        }
    }
    assert!(seen_multi && seen_tiny);
    for n in t["nodes"].as_array().unwrap() {
        assert_eq!(
            n["energy_j"], n["hardware_j"],
            "{}: exporter vs hardware",
            n["name"]
        );
        for (c, v) in n["energy_j"].as_object().unwrap() {
            let parts =
                uj(n["jobs_j"][c].as_f64().unwrap()) + uj(n["unallocated_j"][c].as_f64().unwrap());
            assert_eq!(parts, uj(v.as_f64().unwrap()), "{} {c}", n["name"]);
        }
    }
    // The days add up to the totals.
    for c in t["components"].as_array().unwrap() {
        let c = c.as_str().unwrap();
        let days: i64 = t["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| uj(d["node_j"][c].as_f64().unwrap()))
            .sum();
        assert_eq!(days, uj(t["totals"]["node_j"][c].as_f64().unwrap()), "{c}");
    }
}

#[test]
fn promtool_backfills_it_and_prometheus_answers_like_the_truth() {
    let run = small();
    let dir = tempfile::tempdir().unwrap();
    let tsdb = dir.path().join("tsdb");
    backfill_openmetrics(&run.out, &tsdb);
    let prom = Prometheus::start(&tsdb, &[]);
    let t = &run.truth;
    let end = t["end_unix"].as_i64().unwrap();
    // Every job's energy: its largest value over the period, per node and component.
    let got = prom.query("max_over_time(joulebook_job_joules_total[1d])", end);
    let mut by: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for (l, v) in got {
        by.insert(
            (
                l["job_id"].clone(),
                l["instance"].trim_end_matches(":9977").to_string(),
                l["component"].clone(),
            ),
            v,
        );
    }
    let mut compared = 0;
    for j in t["jobs"].as_array().unwrap() {
        for (node, comps) in j["by_node"].as_object().unwrap() {
            for (c, v) in comps.as_object().unwrap() {
                let key = (
                    j["id"].as_str().unwrap().to_string(),
                    node.clone(),
                    c.clone(),
                );
                assert_eq!(by.get(&key).copied(), v.as_f64(), "{key:?}");
                compared += 1;
            }
        }
    }
    assert!(compared > 100);
    // The cluster's node energy and unallocated energy at the end.
    for (metric, field) in [
        ("joulebook_node_joules_total", "node_j"),
        ("joulebook_unallocated_joules_total", "unallocated_j"),
    ] {
        let got = prom.query(
            &format!("sum by (component) ({metric}{{cluster=\"testlab\"}})"),
            end,
        );
        assert_eq!(
            got.len(),
            t["components"].as_array().unwrap().len(),
            "{metric}"
        );
        for (l, v) in got {
            let want = t["totals"][field][&l["component"]].as_f64().unwrap();
            assert!(
                (v - want).abs() <= 1e-6 * want.max(1.0),
                "{metric} {l:?}: {v} vs {want}"
            );
        }
    }
    // An account's energy by joining job_info, as the reporter does.
    let got = prom.query(
        "sum by (account) (max_over_time(joulebook_job_joules_total[1d]) * on (instance, job_id) group_left(account) max_over_time(joulebook_job_info[1d]))",
        end,
    );
    for (l, v) in got {
        let want = t["accounts"][&l["account"]]["total_j"].as_f64().unwrap();
        assert!((v - want).abs() <= 1e-6 * want, "{l:?}: {v} vs {want}");
    }
    drop(prom);
}

/// The per-owner counters, read by PromQL from a real Prometheus, give the same project and user
/// totals (energy, core- and GPU-hours) as the reporter's sums over the jobs of the same data.
#[test]
fn owner_counters_give_the_reports_project_and_user_totals() {
    let run = small();
    let dir = tempfile::tempdir().unwrap();
    let tsdb = dir.path().join("tsdb");
    backfill_openmetrics(&run.out, &tsdb);
    let prom = Prometheus::start(&tsdb, &[]);
    let out = dir.path().join("report");
    let o = Command::new(binary("joulebook-report"))
        .args([
            "--prometheus",
            &prom.url(),
            "--from",
            "2025-03-03",
            "--to",
            "2025-03-04",
        ])
        .args(["--format", "json", "--out"])
        .arg(&out)
        .env_remove("JOULEBOOK_PROMETHEUS_URL")
        .output()
        .expect("run joulebook-report");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    let report: Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    // The counters start at 0 with the simulation and never go down (the restart resumes from
    // the state file): their largest value is the period's increase.
    let end = run.truth["end_unix"].as_i64().unwrap();
    let total = |metric: &str, by: &str| -> BTreeMap<String, f64> {
        let q = format!("sum by ({by}) (max_over_time({metric}[1d]))");
        prom.query(&q, end)
            .into_iter()
            .map(|(l, v)| (l.get(by).cloned().unwrap_or_default(), v))
            .collect()
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9);
    let mut compared = 0;
    for (section, by) in [("projects", "account"), ("users", "user")] {
        let energy = total("joulebook_owner_joules_total", by);
        let core = total("joulebook_owner_core_seconds_total", by);
        let gpu = total("joulebook_owner_gpu_seconds_total", by);
        let jobs = total("joulebook_owner_jobs_total", by);
        let rows = report[section]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), energy.len(), "{section}: {energy:?}");
        for r in rows {
            let name = r["name"].as_str().unwrap();
            let kwh = r["energy_kwh"].as_f64().unwrap();
            assert!(
                close(energy[name] / 3.6e6, kwh),
                "{section} {name}: {energy:?} vs {kwh} kWh"
            );
            let ch = r["core_hours"].as_f64().unwrap();
            assert!(
                close(core[name] / 3600.0, ch),
                "{section} {name}: core {core:?} vs {ch}"
            );
            let gh = r["gpu_hours"].as_f64().unwrap();
            assert!(
                close(gpu[name] / 3600.0, gh),
                "{section} {name}: gpu {gpu:?} vs {gh}"
            );
            // A job on several nodes starts once on each; a job that did nothing is not listed.
            assert!(
                jobs[name] >= r["jobs"].as_f64().unwrap(),
                "{section} {name}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 4, "{compared}");
}

#[test]
fn victoriametrics_imports_the_prometheus_format_and_answers_like_the_truth() {
    let run = small();
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = simulate(
        &fixture("simulate/small.yaml"),
        dir.path(),
        "vm",
        &["--format", "prometheus"],
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("# EOF"));
    let first = samples(&text).into_iter().next().unwrap();
    assert_eq!(first.ts, run.truth["start_unix"].as_i64().unwrap() * 1000);
    assert!(text.contains("# TYPE joulebook_node_joules_total counter"));

    let vm = VictoriaMetrics::start_with(&text);
    let t = &run.truth;
    let end = t["end_unix"].as_i64().unwrap();
    let got = vm.query(
        "sum by (component) (max_over_time(joulebook_job_joules_total[1d]))",
        end,
    );
    assert!(!got.is_empty());
    for (l, v) in got {
        let want = t["totals"]["jobs_j"][&l["component"]].as_f64().unwrap();
        assert!(
            (v - want).abs() <= 1e-6 * want.max(1.0),
            "{l:?}: {v} vs {want}"
        );
    }
}

#[test]
fn bad_scenarios_exit_2_naming_file_line_and_key() {
    let good = std::fs::read_to_string(fixture("simulate/small.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = bad_scenarios(&good);
    for (what, text, expect) in cases {
        assert_ne!(text, good, "{what}: the replacement did not apply");
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text).unwrap();
        let o = Command::new(binary("joulebook-exporter"))
            .args(["simulate", "--scenario"])
            .arg(&path)
            .arg("--out")
            .arg(dir.path().join("x.om"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("bad.yaml"), "{what}: {err}");
        for e in expect {
            assert!(err.contains(e), "{what}: expected {e:?} in {err}");
        }
    }
    let o = Command::new(binary("joulebook-exporter"))
        .args(["simulate", "--scenario", "/nonexistent/s.yaml", "--out"])
        .arg(dir.path().join("x.om"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/s.yaml"));
}

/// Bad variants of the scenario `good` (small.yaml): what is wrong, the text, and what the error
/// must name.
fn bad_scenarios(good: &str) -> [(&'static str, String, &'static [&'static str]); 13] {
    let restart = "restarts:\n  - {node: cpu01, at: 2025-03-03T08:30:00Z, downtime: 30s}\n";
    [
        (
            "unknown key",
            good.replace("    sockets: 2\n", "    sockets: 2\n    sokets: 3\n"),
            &["line 16", "sokets"],
        ),
        (
            "bad value",
            good.replace("  - name: cpu\n    count: 1", "  - name: cpu\n    count: 0"),
            &["line 26", "node_groups[1].count"],
        ),
        (
            "bad duration",
            good.replace("duration: 12h", "duration: 12 fortnights"),
            &["fortnights"],
        ),
        (
            "restart of a node that does not exist",
            good.replace("{node: cpu01,", "{node: cpu09,"),
            &["restarts[0].node", "cpu09"],
        ),
        (
            "a fault of a source the node lacks",
            good.replace(
                restart,
                &format!("{restart}faults:\n  - {{node: cpu01, kind: source_down, source: nvml, start: 2025-03-03T09:00:00Z, duration: 10m}}\n"),
            ),
            &["faults[0].source", "cpu01"],
        ),
        (
            "an unknown fault",
            good.replace(
                restart,
                &format!("{restart}faults:\n  - {{node: cpu01, kind: meltdown, start: 2025-03-03T09:00:00Z}}\n"),
            ),
            &["meltdown"],
        ),
        (
            "a stall without a duration",
            good.replace(
                restart,
                &format!("{restart}faults:\n  - {{node: gpu01, kind: sampler_stall, start: 2025-03-03T09:00:00Z}}\n"),
            ),
            &["faults[0].duration"],
        ),
        (
            "load outside the period",
            good.replace(
                restart,
                &format!("{restart}stray_load:\n  - {{node: gpu01, start: 2025-03-04T09:00:00Z, duration: 1h, gpu_util: 0.5}}\n"),
            ),
            &["stray_load[0].start"],
        ),
        (
            "a BMC drawing less at full load than idle",
            good.replace(
                "    gpus: {count: 2,",
                "    bmc: {other_watts: {idle: 100, max: 50}}\n    gpus: {count: 2,",
            ),
            &["node_groups[0].bmc.other_watts"],
        ),
        (
            "a MIG instance of 5 slices",
            good.replace("mig: [3, 2]", "mig: [5, 2]"),
            &["node_groups[3].gpus.mig", "5"],
        ),
        (
            "MIG on an AMD GPU",
            good.replace("vendor: amd,", "vendor: amd, mig: [3],"),
            &["node_groups[2].gpus.mig", "NVIDIA"],
        ),
        (
            "an NVML fault on the AMD node",
            good.replace(
                restart,
                &format!("{restart}faults:\n  - {{node: mi30001, kind: source_down, source: nvml, start: 2025-03-03T09:00:00Z, duration: 10m}}\n"),
            ),
            &["faults[0].source", "mi30001"],
        ),
        (
            "a job that fits nowhere",
            good.replace("cores: [1, 2, 4]", "cores: [1, 2, 64]"),
            &["jobs.classes[3].cores", "64"],
        ),
    ]
}

/// The mixed cluster: the AMD node's GPUs are measured by the amdgpu source (no NVML there), and
/// jobs on it are charged GPU energy.
#[test]
fn the_amd_node_measures_its_gpus_and_charges_its_jobs() {
    let run = small();
    let lines = samples(&run.text);
    let on_amd = |l: &&Line| l.labels.get("instance").map(String::as_str) == Some("mi30001:9977");
    let amd: Vec<&Line> = lines.iter().filter(on_amd).collect();
    assert!(
        amd.iter()
            .any(|l| l.name == "joulebook_amdgpu_joules_total" && l.value > 0.0),
        "no amdgpu energy on mi30001"
    );
    assert!(
        !amd.iter().any(|l| l.name == "joulebook_gpu_joules_total"),
        "NVML series on the AMD node"
    );
    assert!(
        amd.iter().any(|l| l.name == "joulebook_job_joules_total"
            && l.labels["component"] == "gpu"
            && l.value > 0.0),
        "no job charged GPU energy on mi30001"
    );
    assert!(amd.iter().any(|l| l.name == "joulebook_energy_device_info"
        && l.labels.get("model").map(String::as_str) == Some("AMD Instinct MI300X")));
}

#[test]
fn the_mig_node_splits_its_gpu_by_instance_and_leaves_free_slices_unallocated() {
    // small.yaml's mig01: one A100 as a 3g and a 2g instance (slot order of the truth's
    // gpu_uuids); 2 of its 7 slices are in no instance, so no job is ever charged them.
    let run = small();
    let node = run.truth["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "mig01")
        .expect("mig01 in the truth");
    let slices: BTreeMap<String, i64> = node["gpu_uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .zip([3, 2])
        .collect();
    assert_eq!(slices.len(), 2);
    assert!(slices.keys().all(|u| u.starts_with("MIG-")), "{slices:?}");
    let lines = samples(&run.text);
    let on_mig: Vec<&Line> = lines
        .iter()
        .filter(|l| l.labels.get("instance").map(String::as_str) == Some("mig01:9977"))
        .collect();
    let MigScrapes {
        gpu,
        free,
        job,
        held,
        physical,
        parts,
    } = MigScrapes::of(&on_mig);
    assert!(!held.is_empty(), "no job held a MIG instance on mig01");
    // Each instance is published as a part of the one physical GPU (what the idle-GPU alert
    // joins on), and nothing else is.
    assert_eq!(physical.len(), 1, "{physical:?}");
    let gpu_uuid = physical.iter().next().unwrap();
    let expected: std::collections::BTreeSet<(String, String)> = slices
        .keys()
        .map(|u| (u.clone(), gpu_uuid.clone()))
        .collect();
    assert_eq!(parts, expected);
    for (id, uuids) in &held {
        assert!(
            uuids.iter().all(|u| slices.contains_key(u)),
            "job {id} holds {uuids:?}, not mig01's instances"
        );
    }
    // Between two scrapes: the free slices' 2/7 of the GPU stay unallocated, and a job gets at
    // most its instances' share (a job charged the whole GPU would get 7/7). A few µJ of
    // carried remainders per sample either way.
    let slack = 10;
    let ts: Vec<i64> = gpu.keys().copied().collect();
    let mut charged = false;
    for w in ts.windows(2) {
        let d = gpu[&w[1]] - gpu[&w[0]];
        let u = free[&w[1]] - free[&w[0]];
        assert!(
            7 * u >= 2 * d - 7 * slack,
            "at {}: unallocated {u} of {d} µJ",
            w[1]
        );
        for (id, uuids) in &held {
            let (Some(a), Some(b)) = (job.get(&(id.clone(), w[0])), job.get(&(id.clone(), w[1])))
            else {
                continue;
            };
            let s: i64 = uuids.iter().map(|u| slices[u]).sum();
            assert!(
                7 * (b - a) <= s * d + 7 * slack,
                "at {}: job {id} ({s} slices) got {} of {d} µJ",
                w[1],
                b - a
            );
            charged |= b > a;
        }
    }
    assert!(charged, "no job on mig01 was charged GPU energy");
    let e = node["energy_j"]["gpu"].as_f64().unwrap();
    let un = node["unallocated_j"]["gpu"].as_f64().unwrap();
    assert!(
        e > 0.0 && un >= 2.0 / 7.0 * e - 1e-3,
        "mig01: {un} of {e} J unallocated"
    );
}

/// mig01's scrapes, per timestamp: the GPU's energy, the unallocated GPU energy, each job's GPU
/// energy; the instances each job holds, the physical GPUs and the (part, parent) pairs.
#[derive(Default)]
struct MigScrapes {
    gpu: BTreeMap<i64, i64>,
    free: BTreeMap<i64, i64>,
    job: BTreeMap<(String, i64), i64>,
    held: BTreeMap<String, std::collections::BTreeSet<String>>,
    physical: std::collections::BTreeSet<String>,
    parts: std::collections::BTreeSet<(String, String)>,
}

impl MigScrapes {
    fn of(lines: &[&Line]) -> MigScrapes {
        let mut m = MigScrapes::default();
        for l in lines {
            let comp = l.labels.get("component").map(String::as_str);
            match l.name.as_str() {
                "joulebook_node_joules_total" if comp == Some("gpu") => {
                    m.gpu.insert(l.ts, uj(l.value));
                }
                "joulebook_unallocated_joules_total" if comp == Some("gpu") => {
                    m.free.insert(l.ts, uj(l.value));
                }
                "joulebook_job_joules_total" if comp == Some("gpu") => {
                    m.job
                        .insert((l.labels["job_id"].clone(), l.ts), uj(l.value));
                }
                "joulebook_job_gpu_info" => {
                    m.held
                        .entry(l.labels["job_id"].clone())
                        .or_default()
                        .insert(l.labels["gpu_uuid"].clone());
                }
                "joulebook_gpu_info" => {
                    m.physical.insert(l.labels["gpu_uuid"].clone());
                }
                "joulebook_gpu_part_info" => {
                    m.parts.insert((
                        l.labels["gpu_uuid"].clone(),
                        l.labels["parent_gpu_uuid"].clone(),
                    ));
                }
                _ => {}
            }
        }
        m
    }
}

/// The Intel node: its GPUs are measured by the intel_gpu source as the live source publishes
/// them (PCI addresses, the xe `card` counter, no NVML), each GPU's counter ends at what the
/// hardware drew, and its jobs hold its GPUs by PCI address and are charged their energy.
#[test]
fn the_intel_node_measures_its_gpus_and_charges_its_jobs() {
    let run = intel();
    let node = run.truth["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "xe01")
        .expect("xe01 in the truth");
    let ids: Vec<&str> = node["gpu_uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0000:18:00.0", "0000:28:00.0"]);
    let lines = samples(&run.text);
    let xe: Vec<&Line> = lines
        .iter()
        .filter(|l| l.labels.get("instance").map(String::as_str) == Some("xe01:9977"))
        .collect();
    assert!(
        !xe.iter().any(|l| l.name.starts_with("joulebook_gpu_")),
        "NVML series on the Intel node"
    );
    // Each GPU's last counter value; their sum is the node's GPU energy, as the truth has it.
    let mut last: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for l in xe
        .iter()
        .filter(|l| l.name == "joulebook_intel_gpu_joules_total")
    {
        let e = last
            .entry(l.labels["gpu_uuid"].clone())
            .or_insert((l.ts, l.value));
        assert!(
            l.value >= e.1,
            "the counter of {} went back",
            l.labels["gpu_uuid"]
        );
        *e = (l.ts, l.value);
    }
    let got: Vec<&str> = last.keys().map(String::as_str).collect();
    assert_eq!(got, ids);
    let sum: f64 = last.values().map(|(_, v)| v).sum();
    let truth = node["energy_j"]["gpu"].as_f64().unwrap();
    assert!(truth > 0.0);
    assert_eq!(
        uj(sum),
        uj(truth),
        "xe01: intel_gpu {sum} J vs truth {truth} J"
    );
    for id in &ids {
        assert!(
            xe.iter().any(|l| l.name == "joulebook_energy_device_info"
                && l.labels.get("device").map(String::as_str) == Some(id)
                && l.labels.get("model").map(String::as_str) == Some("Intel GPU 0x0bd5")
                && l.labels
                    .get("name")
                    .is_some_and(|n| n.ends_with("(xe card)"))),
            "no device info for {id}"
        );
    }
    let held: Vec<&str> = xe
        .iter()
        .filter(|l| l.name == "joulebook_job_gpu_info")
        .map(|l| l.labels["gpu_uuid"].as_str())
        .collect();
    assert!(!held.is_empty(), "no job held an Intel GPU");
    assert!(held.iter().all(|u| ids.contains(u)), "{held:?}");
    assert!(
        xe.iter().any(|l| l.name == "joulebook_job_joules_total"
            && l.labels["component"] == "gpu"
            && l.value > 0.0),
        "no job charged GPU energy on xe01"
    );
}
